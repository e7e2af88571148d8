"""TensorBoard sessions for real: served on 127.0.0.1, stopped on request or when idle."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import noop_launcher, run_cli

from app.context import Context
from app.errors import ConflictError, TraindeckError
from app.jobs import set_status, submit
from app.procs import cmdline, pid_alive
from app.store.models import Status, TensorBoardSession, Version
from app.tensorboard import (
    INSTALL_HINT,
    TensorBoardError,
    list_sessions,
    start_tensorboard,
    stop_session,
    unavailable_reason,
)

pytest.importorskip("tensorboard")


def write_events(folder: Path, steps: int = 5) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for step in range(steps):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
    writer.close()


@pytest.fixture
def boards(ctx: Context) -> Iterator[Context]:
    """The context; every session still running at the end is stopped."""
    yield ctx
    for info in list_sessions(ctx):
        with contextlib.suppress(TraindeckError):
            stop_session(ctx, info.id)


def versions(ctx: Context, make_project: Callable[..., Any], count: int, events: bool = True
             ) -> list[Version]:
    project = make_project("board")
    ref = submit(ctx, project.raw(), project.base, launcher=noop_launcher)
    from app.jobs import create_version, modified_spec

    ids = [ref.version_id]
    for _ in range(count - 1):
        _, spec, parent = modified_spec(ctx, "board", "V001")
        ids.append(create_version(ctx, "board", spec, parent, launcher=noop_launcher).version_id)
    out = []
    for vid in ids:
        set_status(ctx, vid, Status.RUNNING)
        set_status(ctx, vid, Status.SUCCEEDED, exit_code=0)
        with ctx.db.read() as session:
            version = session.get(Version, vid)
        assert version is not None
        if events:
            write_events(Path(version.output) / "tb")
        out.append(version)
    return out


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


@pytest.mark.slow
def test_serves_http_on_loopback_and_stops_on_request(
    boards: Context, make_project: Callable[..., Any],
) -> None:
    ctx = boards
    v1, v2 = versions(ctx, make_project, 2)
    start = time.monotonic()
    info = start_tensorboard(ctx, "board", ["V001", "v2"], idle_timeout=600)
    status, _ = get(info.url, timeout=30)
    assert status == 200 and time.monotonic() - start < 30
    assert info.url == f"http://127.0.0.1:{info.port}/"
    assert info.ssh.startswith(f"ssh -L {info.port}:127.0.0.1:{info.port} ")
    assert "@" in info.ssh.split()[-1]
    assert info.versions == ["V001", "V002"] and info.job == "board"
    assert info.logdir == f"V001:{v1.output},V002:{v2.output}"
    _, runs = get(info.url + "data/runs")
    assert {run.split("/")[0] for run in json.loads(runs)} == {"V001", "V002"}
    with ctx.db.read() as session:
        row = session.get(TensorBoardSession, info.id)
    assert row is not None and row.pid == info.pid and row.port == info.port
    assert pid_alive(info.pid)

    again = start_tensorboard(ctx, "board", ["V002", "V001"])
    assert again.id == info.id  # the same versions reuse the running session
    assert [s.id for s in list_sessions(ctx)] == [info.id]

    stopped = stop_session(ctx, info.id)
    assert stopped.stopped is not None and not stopped.running
    assert wait_until(lambda: not pid_alive(info.pid), 10)
    assert refused(info.port)
    assert list_sessions(ctx) == []
    assert [s.id for s in list_sessions(ctx, include_stopped=True)] == [info.id]
    with pytest.raises(ConflictError, match="already stopped"):
        stop_session(ctx, info.id)


@pytest.mark.slow
def test_idle_timeout_stops_it(boards: Context, make_project: Callable[..., Any]) -> None:
    versions(boards, make_project, 1)
    info = start_tensorboard(boards, "board", idle_timeout=2)
    assert get(info.url, timeout=30)[0] == 200
    assert wait_until(lambda: not pid_alive(info.pid), 20), "still running after idling"
    assert refused(info.port)
    with boards.db.read() as session:
        row = session.get(TensorBoardSession, info.id)
    assert row is not None and row.stopped_at is not None  # the watchdog marked it


def test_refused_with_a_reason_without_event_files(
    boards: Context, make_project: Callable[..., Any],
) -> None:
    [version] = versions(boards, make_project, 1, events=False)
    with pytest.raises(TensorBoardError) as info:
        start_tensorboard(boards, "board", ["V001"])
    assert str(info.value) == (
        f"create TensorBoard: V001: no TensorBoard event files in {version.output} or its "
        "working folder")
    assert list_sessions(boards, include_stopped=True) == []
    assert "object storage" in (unavailable_reason("s3://bucket/out") or "")
    assert "comma" in (unavailable_reason("/tmp/a,b") or "")
    write_events(Path(version.output) / "deep" / "er")
    assert unavailable_reason(version.output) is None


@pytest.mark.slow
def test_event_files_in_the_working_folder_are_shown_too(
    boards: Context, make_project: Callable[..., Any],
) -> None:
    """`SummaryWriter()` with its defaults writes `runs/` in the working folder, the
    version's copy of its code."""
    from app.runtime.plan import work_dir

    [version] = versions(boards, make_project, 1, events=False)
    work = work_dir(boards.settings, version.id or 0)
    write_events(work / "runs" / "Dec06_12-00-00_host")
    info = start_tensorboard(boards, "board", ["V001"])
    assert info.logdir == f"V001:{work}"
    _, runs = get(info.url + "data/runs", timeout=30)
    assert [run.split("/")[0] for run in json.loads(runs)] == ["V001"]


def test_says_how_to_install_tensorboard(boards: Context, monkeypatch: pytest.MonkeyPatch,
                                         make_project: Callable[..., Any]) -> None:
    versions(boards, make_project, 1)
    monkeypatch.setattr("app.tensorboard.tensorboard_installed", lambda: False)
    with pytest.raises(TensorBoardError, match="install it with") as info:
        start_tensorboard(boards, "board")
    assert INSTALL_HINT in str(info.value) and "pip install tensorboard" in INSTALL_HINT




@pytest.mark.slow
def test_tensorboard_cli(boards: Context, make_project: Callable[..., Any]) -> None:
    versions(boards, make_project, 1)
    code, out = run_cli("tensorboard", "start", "board", "V001", "--idle-timeout", "300",
                        "--json")
    assert code == 0, out
    started = json.loads(out)
    assert started["running"] and started["idle_timeout"] == 300
    code, out = run_cli("tensorboard", "list")
    assert code == 0 and started["url"] in out
    code, out = run_cli("tensorboard", "stop", str(started["id"]))
    assert code == 0 and f"stopped TensorBoard {started['id']}" in out
    code, out = run_cli("tensorboard", "start", "nojob")
    assert code == 1 and "job 'nojob' not found" in out


@pytest.mark.slow
def test_tensorboard_ends_with_a_killed_watchdog(boards: Context,
                                                 make_project: Callable[..., Any]) -> None:
    versions(boards, make_project, 1)
    info = start_tensorboard(boards, "board", idle_timeout=600)
    assert get(info.url, timeout=30)[0] == 200
    board = [int(p) for p in os.listdir("/proc") if p.isdigit()
             and any("tensorboard.main" in a for a in cmdline(int(p)))
             and info.logdir in cmdline(int(p))]
    assert board, "no TensorBoard process found"
    os.kill(info.pid, signal.SIGKILL)
    assert wait_until(lambda: not any(pid_alive(p) for p in board), 10), \
        "TensorBoard outlived its watchdog"
    assert list_sessions(boards) == []
    assert [s.id for s in list_sessions(boards, include_stopped=True)] == [info.id]
