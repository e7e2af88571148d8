"""Copying a Docker rank's log from the job's folder into the rank's log (see
app.runtime.logpump): exactly once across a hand-over between copiers, and as data only.

Real files; a thread plays the rank wrapper that writes the job's file. The engine side
(a supervisor killed with -9 mid-flood, a hostile job swapping the file) is in
test_faults and test_runtime_docker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from app.logs import LogWriter, split_timestamp
from app.runtime.logpump import RankLog, copy_job_log, drop_lines, own_lines_path


def rank_log(tmp_path: Path, *, fresh: bool) -> RankLog:
    """The rank log as a supervisor opens it: fresh at the start, else resumed."""
    log = RankLog(tmp_path / "rank-0.log", own_lines_path(tmp_path, 0))
    if fresh:
        log.start_fresh()
    else:
        log.resume()
    return log


def texts(path: Path) -> list[str]:
    """A log's lines without their stamps."""
    return [split_timestamp(line)[1] for line in path.read_text().splitlines()]


def test_a_first_copy_then_a_taker_copy_every_line_once(tmp_path: Path) -> None:
    """The starter copies the first line (then gives up), a supervisor killed mid-copy
    leaves, another one resumes: each line once, stamps as the wrapper wrote them, the
    partial last line made whole at the end."""
    source = tmp_path / "job" / "rank0.log"
    wrapper = LogWriter(source)
    wrapper.write(b"one\n")
    first = rank_log(tmp_path, fresh=True)
    first.note("starting")
    until = time.monotonic() + 5
    copy_job_log(source, first, lambda: first.rank_lines > 0 or time.monotonic() > until)
    first.abandon()
    assert texts(first.path) == ["[traindeck] starting", "one"]
    stamp = split_timestamp(source.read_text().splitlines()[0])[0]
    assert split_timestamp(first.path.read_text().splitlines()[1])[0] == stamp

    wrapper.write(b"two\nthr")
    second = rank_log(tmp_path, fresh=False)
    assert second.rank_lines == 1
    done = threading.Event()
    copier = threading.Thread(target=copy_job_log, args=(source, second, done.is_set))
    copier.start()
    deadline = time.monotonic() + 5
    while second.rank_lines < 2:
        assert time.monotonic() < deadline, "the copy did not follow the file"
        time.sleep(0.01)
    second.note("a note of its own")  # killed now: never closed
    third = rank_log(tmp_path, fresh=False)
    done.set()
    copier.join()
    assert third.rank_lines == 2  # the note is the supervisor's, not the rank's
    wrapper.write(b"ee\nfour")
    wrapper.close()  # the rank ended: its wrapper ended the partial line
    copy_job_log(source, third, lambda: True)
    third.close()
    assert texts(third.path) == ["[traindeck] starting", "one", "two",
                                 "[traindeck] a note of its own", "three", "four"]


def test_a_first_copy_gives_up_in_time(tmp_path: Path) -> None:
    log = rank_log(tmp_path, fresh=True)
    began = time.monotonic()
    until = began + 0.3
    copy_job_log(tmp_path / "never-written.log", log,
                 lambda: log.rank_lines > 0 or time.monotonic() > until)
    assert 0.3 <= time.monotonic() - began < 1.5
    assert log.rank_lines == 0


def test_a_link_or_fifo_in_place_of_the_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("2026-12-06T00:00:00.000Z HOST-SECRET\n")
    source = tmp_path / "rank0.log"
    source.symlink_to(secret)
    log = rank_log(tmp_path, fresh=True)
    copy_job_log(source, log, lambda: True)
    source.unlink()
    os.mkfifo(source)
    began = time.monotonic()
    copy_job_log(source, log, lambda: False)  # returns at once: never blocks on a FIFO
    assert time.monotonic() - began < 1
    log.close()
    lines = texts(log.path)
    assert "HOST-SECRET" not in log.path.read_text()
    assert lines[0].startswith("[traindeck] rank0.log of the job's folder not copied: ")
    assert len(lines) == 2 and log.rank_lines == 0


def test_a_file_the_job_cuts_short_is_copied_on_from_its_new_start(tmp_path: Path) -> None:
    source = tmp_path / "rank0.log"
    source.write_bytes(b"x old one\nx old two\n")
    log = rank_log(tmp_path, fresh=True)
    done = threading.Event()
    copier = threading.Thread(target=copy_job_log, args=(source, log, done.is_set))
    copier.start()
    while log.rank_lines < 2:
        time.sleep(0.01)
    source.write_bytes(b"x new\n")  # truncated, then written again
    deadline = time.monotonic() + 5
    while log.rank_lines < 3:
        assert time.monotonic() < deadline, "the copy stopped at the cut"
        time.sleep(0.01)
    done.set()
    copier.join()
    log.close()
    text = log.path.read_text()
    assert "cut rank0.log of its folder short" in text
    assert text.endswith("x new\n")


def test_drop_lines_keeps_count_across_chunks() -> None:
    assert drop_lines(b"a\nb\nc", 2) == (b"c", 0)
    assert drop_lines(b"a\nb", 3) == (b"", 2)
    assert drop_lines(b"x\n", 0) == (b"x\n", 0)


def test_the_wrapper_runs_on_the_python_of_older_images() -> None:
    """In a container the rank wrapper runs on the image's python3: what it imports must
    not need a newer Python than 3.8 (vermin reads the code for what each use needs)."""
    import app.logs
    import app.runtime.rankrun

    found = subprocess.run(
        [str(Path(sys.executable).with_name("vermin")), "--no-tips", "--violations", "-t=3.8-",
         app.runtime.rankrun.__file__, app.logs.__file__],
        capture_output=True, text=True, check=False)
    assert found.returncode == 0, found.stdout + found.stderr
