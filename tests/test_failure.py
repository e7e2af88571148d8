"""True failure reasons (app.runtime.failure): the error lines of real scripts' output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.logs import LogWriter
from app.runtime.executors import RankExit
from app.runtime.failure import MAX_REASON_CHARS, TAIL_BYTES, error_line
from app.runtime.supervisor.outcome import outcome_of
from app.store.models import Status


def run_into_log(tmp_path: Path, source: str, *args: str, log: str = "rank-0.log",
                 own: str = "") -> tuple[Path, int]:
    """Run a script as a rank would, its output stamped into a log; (log, exit code)."""
    script = tmp_path / "train.py"
    script.write_text(source)
    done = subprocess.run([sys.executable, str(script), *args], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    path = tmp_path / log
    with LogWriter(path) as writer:
        writer.write_line("[traindeck] starting rank 0")
        writer.write(done.stdout)
        writer.write_line(own or f"[traindeck] rank 0 exited with code {done.returncode}")
    return path, done.returncode


def failure_reason(log: Path, code: int) -> str:
    """The reason a one-rank version that ended with `code` is given, its log being `log`."""
    return outcome_of([RankExit(0, code)], [], stopped=False, logs={0: log}).reason


STRICT_ARGPARSE = (
    "import argparse\n"
    "parser = argparse.ArgumentParser()\n"
    "parser.add_argument('--epochs', type=int, default=1)\n"
    "parser.parse_args()\n"
)


def test_argparse_rejecting_modelarts_flags(tmp_path: Path) -> None:
    log, code = run_into_log(tmp_path, STRICT_ARGPARSE, "--data_url=/x/", "--train_url=/y/")
    assert failure_reason(log, code) == (
        "exit code 2: train.py: error: unrecognized arguments: --data_url=/x/ --train_url=/y/")


def test_module_not_found(tmp_path: Path) -> None:
    log, code = run_into_log(tmp_path, "print('loading')\nimport not_a_module_here\n")
    assert failure_reason(log, code) == (
        "exit code 1: ModuleNotFoundError: No module named 'not_a_module_here'")


def test_last_traceback_of_a_chain_and_multiline_message(tmp_path: Path) -> None:
    log, code = run_into_log(tmp_path, (
        "try:\n"
        "    {}['x']\n"
        "except KeyError:\n"
        "    raise ValueError('bad config\\nsecond line of the message')\n"))
    assert failure_reason(log, code) == "exit code 1: ValueError: bad config"


def test_message_on_the_lines_after_an_empty_first_line(tmp_path: Path) -> None:
    """optuna.integration without optuna-integration: the final exception says the fix."""
    log, code = run_into_log(tmp_path, (
        "try:\n"
        "    import optuna_integration_not_here\n"
        "except ModuleNotFoundError:\n"
        "    raise ModuleNotFoundError(\n"
        "        '\\nCould not find `optuna-integration` for `lightgbm`.\\n'\n"
        "        'Please run `pip install optuna-integration[lightgbm]`.')\n"))
    assert failure_reason(log, code) == (
        "exit code 1: ModuleNotFoundError: Could not find `optuna-integration` for "
        "`lightgbm`. Please run `pip install optuna-integration[lightgbm]`.")
    # An empty message with nothing after it: the exception's name is the reason.
    for n, message in enumerate(("", "'\\n'", "' '")):
        log, code = run_into_log(tmp_path, (
            f"class SomeError(Exception):\n    pass\nraise SomeError({message})\n"),
            log=f"empty-{n}.log")
        assert failure_reason(log, code) == "exit code 1: SomeError", message


def test_syntax_error_and_custom_exception(tmp_path: Path) -> None:
    log, code = run_into_log(tmp_path, "print(\n")
    assert failure_reason(log, code) == "exit code 1: SyntaxError: '(' was never closed"
    log, code = run_into_log(tmp_path, (
        "class Diverged(Exception):\n    pass\n"
        "raise Diverged('loss is nan at step 3')\n"))
    assert failure_reason(log, code) == "exit code 1: Diverged: loss is nan at step 3"


def test_worker_exception_beats_a_launchers_summary(tmp_path: Path) -> None:
    """torchrun prints the worker's traceback, then its own ChildFailedError."""
    log, code = run_into_log(tmp_path, (
        "import traceback\n"
        "class ChildFailedError(Exception):\n    pass\n"
        "try:\n"
        "    raise RuntimeError('CUDA error: device-side assert triggered')\n"
        "except RuntimeError:\n"
        "    print('[rank0]: ' + traceback.format_exc().replace('\\n', '\\n[rank0]: '))\n"
        "raise ChildFailedError('\\n======\\ntrain.py FAILED\\n  exitcode  : 1 (pid: 9)')\n"))
    assert failure_reason(log, code) == (
        "exit code 1: RuntimeError: CUDA error: device-side assert triggered")


def test_out_of_memory_and_killed(tmp_path: Path) -> None:
    log, code = run_into_log(tmp_path, (
        "import sys\nprint('step 1')\n"
        "print('CUDA error: out of memory (cudaMalloc of 2 GiB)', flush=True)\nsys.exit(3)\n"))
    assert failure_reason(log, code) == (
        "exit code 3: CUDA error: out of memory (cudaMalloc of 2 GiB)")
    killer = tmp_path / "kill.sh"
    killer.write_text(f"{sys.executable} -c 'import os; os.kill(os.getpid(), 9)'\nexit 137\n")
    done = subprocess.run(["bash", str(killer)], capture_output=True, check=False)
    with LogWriter(log) as writer:
        writer.write(done.stdout + done.stderr)
    assert done.returncode == 137
    reason = failure_reason(log, done.returncode)
    assert reason.startswith("killed (SIGKILL, exit code 137): ") and " Killed " in reason


def test_no_error_line_keeps_the_exit_code(tmp_path: Path) -> None:
    log, code = run_into_log(tmp_path, "import sys\nprint('loss: 0.3')\nsys.exit(4)\n")
    assert failure_reason(log, code) == "exit code 4"
    assert failure_reason(tmp_path / "missing.log", 1) == "exit code 1"


def test_only_the_tail_is_read_and_the_line_is_bounded(tmp_path: Path) -> None:
    log, code = run_into_log(tmp_path, (
        f"print('x' * 100)\nraise ValueError('{'v' * 1000}')\n"))
    reason = failure_reason(log, code)
    assert reason.startswith("exit code 1: ValueError: vvv") and reason.endswith("…")
    assert len(reason) == len("exit code 1: ") + MAX_REASON_CHARS and "\n" not in reason
    with LogWriter(log) as writer:  # the error is now further back than the tail
        writer.write(b"".join(b"%d\n" % i for i in range(TAIL_BYTES // 4)))
    assert failure_reason(log, code) == "exit code 1"


def test_traindeck_error_lines_count_its_other_lines_do_not(tmp_path: Path) -> None:
    log, code = run_into_log(
        tmp_path, "import sys\nsys.exit(97)\n",
        own="[traindeck] error: requirements.txt needs pip in image python:3.11-slim")
    assert failure_reason(log, code) == (
        "exit code 97: requirements.txt needs pip in image python:3.11-slim")
    log, code = run_into_log(tmp_path, "raise ValueError('x')\n",
                             own="[traindeck] ValueError: not the script's")
    assert failure_reason(log, code) == "exit code 1: ValueError: x"


def test_outcome_names_the_failed_ranks_line(tmp_path: Path) -> None:
    (tmp_path / "r0").mkdir()
    (tmp_path / "r1").mkdir()
    log0, _ = run_into_log(tmp_path / "r0", "import time\nraise KeyboardInterrupt\n")
    log1, code = run_into_log(tmp_path / "r1", "raise ValueError('rank 1 broke')\n")
    exits = [RankExit(0, 143), RankExit(1, code)]
    logs = {0: log0, 1: log1}
    outcome = outcome_of(exits, [exits[1]], stopped=False, logs=logs)
    assert outcome.status == Status.FAILED
    assert outcome.reason == "exit code 1 (rank 1): ValueError: rank 1 broke"
    assert outcome_of(exits, [exits[1]], stopped=False).reason == "exit code 1 (rank 1)"
    assert outcome_of([RankExit(0, 0)], [], False, logs).status == Status.SUCCEEDED
    # An out-of-memory kill is not said twice; an executor's own error stays as it is.
    killed = tmp_path / "killed.log"
    killed.write_text("2026-11-23T13:45:00.123Z Killed\n")
    assert outcome_of([RankExit(0, 137, oom_killed=True)], [], False,
                      {0: killed}).reason == "killed (OOM)"
    assert outcome_of([RankExit(0, 1, error="container vanished")], [], False,
                      {0: log1}).reason == "container vanished"


@pytest.mark.parametrize(("text", "found"), [
    ("2026-11-23T13:45:00.123Z UserWarning: deprecated\n", None),
    ("2026-11-23T13:45:00.123Z Note: ValueError: is a word here\n", None),
    ("2026-11-23T13:45:00.123Z RuntimeError: NCCL timeout\n", "RuntimeError: NCCL timeout"),
])
def test_lines_on_their_own(tmp_path: Path, text: str, found: str | None) -> None:
    path = tmp_path / "rank-0.log"
    path.write_text(text)
    assert error_line(path) == found
