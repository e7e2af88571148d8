"""The stream record beside a Docker rank's log: where in the engine's output the rank
lines in the file end, so that a new supervisor resumes exactly (see app.runtime.logpump).

The log file is the truth: the record is never ahead of it, and a record behind it (a
supervisor killed between writing lines and rewriting the record) is corrected by the
line count. Real files; the engine side is in test_faults (kill -9 after rotations).
"""

from __future__ import annotations

import time
from pathlib import Path

from app.runtime.logpump import RECORD_SECONDS, RankLog, drop_lines, gap_message, own_lines_path


def first_log(tmp_path: Path) -> RankLog:
    """A rank log as a supervisor starts it: one line of its own, then two rank lines
    copied from the stream (the record says: they end at frame T2)."""
    rank_log = RankLog(tmp_path / "rank-0.log", own_lines_path(tmp_path, 0))
    rank_log.start_fresh()
    rank_log.note("starting")
    rank_log.feed(b"one\ntwo\n", {"last": b"2026-12-06T04:00:00.000000002Z", "seen": 1})
    return rank_log


def taker(tmp_path: Path) -> RankLog:
    """The rank log as a new supervisor adopting the run reads it."""
    rank_log = RankLog(tmp_path / "rank-0.log", own_lines_path(tmp_path, 0))
    rank_log.resume()
    return rank_log


def test_a_new_supervisor_resumes_at_the_record(tmp_path: Path) -> None:
    first_log(tmp_path)  # killed: never closed
    resumed = taker(tmp_path)
    assert resumed.rank_lines == 2
    assert resumed.position == {"last": b"2026-12-06T04:00:00.000000002Z", "seen": 1}
    assert resumed.skip == 0
    assert (tmp_path / "stream.rank0").stat().st_mode & 0o777 == 0o600


def test_lines_written_after_the_record_are_skipped_beyond_it(tmp_path: Path) -> None:
    rank_log = first_log(tmp_path)
    rank_log.feed(b"three\nfour\n")  # in the file; the record not rewritten (a kill)
    rank_log.note("a note of its own")
    resumed = taker(tmp_path)
    assert (resumed.rank_lines, resumed.skip) == (4, 2)
    assert resumed.position["last"] == b"2026-12-06T04:00:00.000000002Z"


def test_a_partial_line_is_never_recorded(tmp_path: Path) -> None:
    rank_log = first_log(tmp_path)
    record = (tmp_path / "stream.rank0").read_bytes()
    time.sleep(RECORD_SECONDS * 2)  # a rewrite is due
    rank_log.feed(b"three\nfo", {"last": b"2026-12-06T04:00:00.000000004Z", "seen": 1})
    assert (tmp_path / "stream.rank0").read_bytes() == record  # "fo" is not in the file
    resumed = taker(tmp_path)
    assert (resumed.rank_lines, resumed.skip) == (3, 1)


def test_a_record_ahead_of_the_file_is_not_trusted(tmp_path: Path) -> None:
    """A log file cut short by hand: the stream is replayed from its start instead."""
    first_log(tmp_path)
    log = tmp_path / "rank-0.log"
    log.write_bytes(log.read_bytes().split(b"\n", 1)[0] + b"\n")  # the note alone
    resumed = taker(tmp_path)
    assert (resumed.rank_lines, resumed.position, resumed.skip) == (0, {}, 0)


def test_a_fresh_start_forgets_the_record(tmp_path: Path) -> None:
    first_log(tmp_path).close()
    again = RankLog(tmp_path / "rank-0.log", own_lines_path(tmp_path, 0))
    again.start_fresh()
    assert not (tmp_path / "stream.rank0").exists()
    assert taker(tmp_path).position == {}


def test_a_gap_ends_the_partial_line_and_is_said_in_the_log(tmp_path: Path) -> None:
    rank_log = first_log(tmp_path)
    rank_log.feed(b"thr")
    message = rank_log.gap("2026-12-06T04:00:00.000000002Z", "2026-12-06T04:00:09.5Z")
    assert message == gap_message("2026-12-06T04:00:00.000000002Z", "2026-12-06T04:00:09.5Z")
    rank_log.close()
    text = (tmp_path / "rank-0.log").read_text()
    assert text.splitlines()[-2].endswith(" thr")
    assert text.splitlines()[-1].endswith(f" [traindeck] {message}")
    assert taker(tmp_path).rank_lines == 3  # the note is the supervisor's, not the rank's


def test_drop_lines_keeps_count_across_chunks() -> None:
    assert drop_lines(b"a\nb\nc", 2) == (b"c", 0)
    assert drop_lines(b"a\nb", 3) == (b"", 2)
    assert drop_lines(b"x\n", 0) == (b"x\n", 0)
