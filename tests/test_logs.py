"""Tests for app.logs on real files: writing, tailing and following job logs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.logs import (
    STAMP_STYLES,
    LogFollower,
    LogWriter,
    StampFormatter,
    format_timestamp,
    list_rank_logs,
    rank_log_path,
    split_timestamp,
    tail,
    tail_file,
)


def texts(path: Path) -> list[str]:
    """The text of every line of a log file, stamps checked and removed."""
    out = []
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        stamp, text = split_timestamp(line)
        assert stamp is not None, line
        out.append(text)
    return out


class CountingFile(io.FileIO):
    """A real file that counts the bytes read through it."""

    bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        count = super().readinto(buffer)
        self.bytes_read += count or 0
        return count  # type: ignore[return-value]


def test_rank_paths_and_listing(tmp_path: Path) -> None:
    assert rank_log_path(tmp_path, 3) == tmp_path / "rank-3.log"
    for rank in (10, 0, 2):
        rank_log_path(tmp_path, rank).write_text("")
    (tmp_path / "rank-x.log").write_text("")
    (tmp_path / "other.txt").write_text("")
    assert list_rank_logs(tmp_path) == [(r, tmp_path / f"rank-{r}.log") for r in (0, 2, 10)]
    assert list_rank_logs(tmp_path / "missing") == []
    with pytest.raises(ValueError):
        rank_log_path(tmp_path, -1)


def test_writer_joins_lines_split_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "logs" / "rank-0.log"
    with LogWriter(path) as writer:
        for chunk in (b"ep", b"och 1 lo", b"ss 0.3\nepoch 2", b" loss 0.2\n\n", b"x\n"):
            writer.write(chunk)
    assert texts(path) == ["epoch 1 loss 0.3", "epoch 2 loss 0.2", "", "x"]


def test_writer_normalises_crlf_even_split_between_chunks(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    with LogWriter(path) as writer:
        writer.write(b"one\r\ntwo\r")
        writer.write(b"\nthree\r\n")
    assert "\r" not in path.read_text()
    assert texts(path) == ["one", "two", "three"]


def test_writer_replaces_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    euro = "€".encode()
    with LogWriter(path) as writer:
        writer.write(b"bad \xff\xfe byte\nsplit ")
        writer.write(euro[:1])  # a multi-byte character cut in two chunks survives
        writer.write(euro[1:] + b" ok\n")
    assert texts(path) == ["bad \ufffd\ufffd byte", "split € ok"]


def test_close_flushes_partial_line_and_write_line(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    writer = LogWriter(path)
    writer.write(b"progress 50%")
    writer.write_line("supervisor: container started")
    writer.write_line("two\nlines")
    writer.close()
    writer.close()  # idempotent
    assert writer.closed
    assert texts(path) == ["supervisor: container started", "two", "lines", "progress 50%"]
    with pytest.raises(ValueError):
        writer.write(b"late\n")


def test_writer_appends_and_stamps_in_order(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    with LogWriter(path) as writer:
        writer.write(b"first\n")
    with LogWriter(path) as writer:
        writer.write(b"second\n")
    lines = path.read_text().splitlines()
    stamps = [datetime.fromisoformat(split_timestamp(line)[0] or "") for line in lines]
    assert stamps == sorted(stamps)
    assert abs(datetime.now(UTC) - stamps[-1]) < timedelta(seconds=30)
    assert texts(path) == ["first", "second"]


def test_raw_copy_and_long_lines(tmp_path: Path) -> None:
    raw = tmp_path / "raw.log"
    with LogWriter(raw, stamp=False) as writer:
        writer.write(b"as\r\nis")
    assert raw.read_bytes() == b"as\r\nis"
    capped = tmp_path / "capped.log"
    with LogWriter(capped, max_line_bytes=100) as writer:
        writer.write(b"y" * 150)
        writer.write(b"z\n")
    assert texts(capped) == ["y" * 150, "z"]


def test_other_process_sees_lines_while_writer_is_open(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    writer = LogWriter(path)
    try:
        writer.write(b"step 1\nstep 2\nstep")
        script = textwrap.dedent(
            f"""
            from app.logs import LogFollower
            print("|".join(LogFollower({str(path)!r}).read_new()))
            """
        )
        seen = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout.strip()
        assert [split_timestamp(s)[1] for s in seen.split("|")] == ["step 1", "step 2"]
    finally:
        writer.close()


def test_timestamps_format_and_split() -> None:
    assert format_timestamp(0.5) == "1970-01-01T00:00:00.500Z"
    assert split_timestamp("2026-11-23T13:45:00.123456789Z x") == (  # Docker's nanoseconds
        "2026-11-23T13:45:00.123456789Z", "x")
    assert split_timestamp("2026-11-23T13:45:00.123Z epoch 1 loss 0.3") == (
        "2026-11-23T13:45:00.123Z", "epoch 1 loss 0.3")
    assert split_timestamp("2026-11-23T13:45:00.123Z ") == ("2026-11-23T13:45:00.123Z", "")
    assert split_timestamp("no stamp here") == (None, "no stamp here")
    assert split_timestamp("2026-11-23 13:45:00 x") == (None, "2026-11-23 13:45:00 x")




def test_tail_small_files(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    assert tail(path, 10) == ([], 0)
    path.write_bytes(b"")
    assert tail(path, 10) == ([], 0)
    path.write_bytes(b"a\nb\r\nc\n")
    assert tail(path, 10) == (["a", "b", "c"], 7)
    assert tail(path, 2) == (["b", "c"], 7)
    assert tail(path, 0) == ([], 7)
    path.write_bytes(b"a\nb\nunfinished")
    # The unfinished line is left to the follower, which starts at the returned offset.
    assert tail(path, 2) == (["a", "b"], 4)
    assert tail(path, 2, include_partial=True) == (["b", "unfinished"], 14)
    path.write_bytes(b"only partial")
    assert tail(path, 3) == ([], 0)


def test_tail_across_blocks(tmp_path: Path) -> None:
    lines = [f"line {i} " + "x" * (i % 37) for i in range(5000)]
    path = tmp_path / "rank-0.log"
    path.write_text("\n".join(lines) + "\n")
    for n in (1, 7, 100, 4999, 5000, 6000):
        with open(path, "rb") as f:
            got, end = tail_file(f, n, block_size=97)
        assert got == lines[-n:]
        assert end == path.stat().st_size


def test_tail_of_large_file_reads_bounded_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    line = b"2026-11-23T13:45:00.123Z epoch 1 step 123456 loss 0.123456\n"
    body = line * (50 * 1024 * 1024 // len(line))
    tail_lines = [f"2026-11-23T13:45:01.000Z final {i}".encode() for i in range(1000)]
    path.write_bytes(body + b"\n".join(tail_lines) + b"\n")
    size = path.stat().st_size
    assert size > 50_000_000
    with CountingFile(path, "rb") as f:
        got, end = tail_file(f, 1000)
        assert [g.encode() for g in got] == tail_lines
        assert end == size
        # 1000 short lines are ~40 KB: one or two 64 KiB blocks, never the 50 MB.
        assert 0 < f.bytes_read <= 2 * 64 * 1024 + 1
    with CountingFile(path, "rb") as f:
        tail_file(f, 10, max_bytes=4096)  # the cap holds even when lines run long
        assert f.bytes_read <= 4096 + 1
    assert tail(path, 2)[0] == [t.decode() for t in tail_lines[-2:]]


def test_follower_incremental_and_partial(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    follower = LogFollower(path)
    assert follower.read_new() == []  # not created yet
    with open(path, "ab", buffering=0) as f:
        f.write(b"one\ntw")
        assert follower.read_new() == ["one"]
        assert follower.read_new() == []
        f.write(b"o\r\nthree\n")
        assert follower.read_new() == ["two", "three"]
        f.write(b"".join(b"line %d\n" % i for i in range(100)))
        got: list[str] = []
        while batch := follower.read_new(max_bytes=50):
            got.extend(batch)
        assert got == [f"line {i}" for i in range(100)]
        f.write(b"tail end")
    assert follower.read_new() == []
    assert follower.read_new(final=True) == ["tail end"]
    assert follower.offset == path.stat().st_size


def test_follower_starts_where_tail_ended(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    path.write_bytes(b"a\nb\nc")
    lines, end = tail(path, 10)
    follower = LogFollower(path, end)
    with open(path, "ab") as f:
        f.write(b"d\ne\n")
    assert lines + follower.read_new() == ["a", "b", "cd", "e"]


def test_follower_truncation_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "rank-0.log"
    path.write_bytes(b"old 1\nold 2\nold 3\n")
    follower = LogFollower(path)
    assert follower.read_new() == ["old 1", "old 2", "old 3"]
    path.write_bytes(b"new\n")  # truncated in place, shorter than the offset
    assert follower.read_new() == ["new"]
    replacement = tmp_path / "next.log"
    replacement.write_bytes(b"fresh 1\nfresh 2\nfresh 3\nfresh 4\n")
    os.replace(replacement, path)  # a new file, longer than the offset
    assert follower.read_new() == ["fresh 1", "fresh 2", "fresh 3", "fresh 4"]
    path.unlink()
    assert follower.read_new() == []
    path.write_bytes(b"again\n")
    assert follower.read_new() == ["again"]


def test_stamp_formatter_shows_local_time_of_day_utc_or_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        line = "2026-05-01T14:03:07.215379Z epoch 3 loss=0.2"
        assert StampFormatter("time")(line) == "22:03:07.215 epoch 3 loss=0.2"
        assert StampFormatter("time")("2026-05-01T23:59:59Z no fraction") == "07:59:59 no fraction"
        assert StampFormatter("full")(line) == line
        assert StampFormatter("off")(line) == "epoch 3 loss=0.2"
        raw = "a line copied without a stamp"
        assert [StampFormatter(s)(raw) for s in STAMP_STYLES] == [raw] * 3
        assert StampFormatter("off").lines([line, raw]) == ["epoch 3 loss=0.2", raw]
        # A tqdm bar rewrote its line: it shows as the terminal showed it, stamp kept.
        bar = "2026-05-01T14:03:07.215Z  0%|          | 0/9\r 50%|#####     | 4/9\r100%|#| 9/9\r"
        assert StampFormatter("time")(bar) == "22:03:07.215 100%|#| 9/9"
        assert StampFormatter("full")(bar) == "2026-05-01T14:03:07.215Z 100%|#| 9/9"
        assert StampFormatter("off")("no stamp\rrewritten") == "rewritten"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    with pytest.raises(ValueError, match="stamp style"):
        StampFormatter("iso")


def test_an_abandoned_rank_log_keeps_whole_lines_only(tmp_path: Path) -> None:
    """The starter of a Docker run hands the log over mid-stream: the partial line it
    holds is dropped (the supervisor's replay brings it whole) and nothing after."""
    from app.runtime.logpump import RankLog

    rank_log = RankLog(tmp_path / "rank-0.log", tmp_path / "own-lines.rank0")
    rank_log.start_fresh()
    rank_log.feed(b"one\npart")
    rank_log.abandon()
    rank_log.feed(b"ial\n")
    lines = (tmp_path / "rank-0.log").read_text().splitlines()
    assert [split_timestamp(line)[1] for line in lines] == ["one"]
    assert rank_log.rank_lines == 1
