"""The command helper: `traindeck` commands run in a warm, forked process.

These run the installed `traindeck` script as a user does, with the helper's folder
inside the test's tmp folder, and check that a command through the helper behaves as
one run in its own process: output, exit codes, errors, the caller's folder and
environment, Ctrl-C, and a caller that is killed. The suite turns the helper off
for every other test (see conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import Project, traindeck_executable
from test_executors import wait_dead

import app.db
from app.cli import warm, warm_server
from app.context import Context
from app.runtime.plan import metrics_file_name, state_dir
from app.runtime.procs import pid_alive

pytestmark = pytest.mark.slow

READY_SECONDS = 60.0


class Helper:
    """The helper's folder and environment for one test; stops the helper at the end."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env

    @property
    def socket(self) -> Path:
        return Path(warm.socket_path(self.folder))

    @property
    def log(self) -> str:
        try:
            return Path(warm.log_path(self.folder)).read_text()
        except FileNotFoundError:
            return ""

    def pid(self) -> int | None:
        found = re.findall(r"\[(\d+)\] ready in", self.log)
        return int(found[-1]) if found else None

    def run(self, *args: str | Path, cwd: Path | None = None, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([traindeck_executable(), *map(str, args)], capture_output=True,
                              text=True, env=env or self.env, cwd=cwd, input=input,
                              timeout=60)

    def wait_ready(self) -> None:
        """Wait until the helper (started by a first command) accepts callers."""
        assert warm.wait_until_ready(self.folder, READY_SECONDS), (
            f"no helper after {READY_SECONDS:g}s; log:\n{self.log}")

    def served(self, command: str) -> int:
        """How many times the helper ran `command`."""
        return len(re.findall(rf"ran `{re.escape(command)}` in pid", self.log))

    def child_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"ran `[^`]*` in pid (\d+)", self.log)]

    def spare_pids(self) -> list[int]:
        """Every spare the helper made that got ready, oldest first."""
        return [int(p) for p in re.findall(r"\[(\d+)\] spare ready in", self.log)]

    def wait_spare(self) -> int:
        """Wait until a spare is ready and not yet taken; its pid."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            spares = self.spare_pids()
            if spares and spares[-1] not in self.child_pids():
                return spares[-1]
            time.sleep(0.05)
        raise AssertionError(f"no spare after {READY_SECONDS:g}s; log:\n{self.log}")

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_dead(pid, timeout=10)


@pytest.fixture
def helper(home: Path, tmp_path: Path) -> Iterator[Helper]:
    env = {k: v for k, v in os.environ.items() if k != warm.SWITCH_ENV}
    env[warm.DIR_ENV] = str(tmp_path / "helper")
    made = Helper(tmp_path / "helper", env)
    yield made
    made.stop()


@pytest.fixture
def warm_helper(helper: Helper) -> Helper:
    """A helper started by a first command and ready for the next."""
    first = helper.run("engines", "--json")
    assert first.returncode == 0, first.stderr
    helper.wait_ready()
    return helper


def test_a_first_command_runs_itself_and_starts_the_helper(helper: Helper) -> None:
    first = helper.run("engines", "--json")
    assert first.returncode == 0, first.stderr
    assert {e["name"] for e in json.loads(first.stdout)} >= {"pytorch"}
    helper.wait_ready()
    assert helper.served("engines") == 0  # the first one ran in its own process
    again = helper.run("engines", "--json")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert helper.served("engines") == 1


def test_submit_through_the_helper_uses_the_callers_folder(
        warm_helper: Helper, make_project: Callable[..., Project], tmp_path: Path) -> None:
    project = make_project()
    spec = project.write_spec()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    submitted = warm_helper.run("submit", os.path.relpath(spec, elsewhere), "--json",
                                cwd=elsewhere)
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["version"] == "V001"
    assert warm_helper.served("submit") == 1
    waited = warm_helper.run("wait", "demo", "--timeout", "30")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    (version,) = json.loads(warm_helper.run("show", "demo", "--json").stdout)["versions"]
    assert version["status"] == "succeeded"
    assert version["spec"]["data"]["paths"] == [str(project.data_dir.resolve())]


def test_errors_and_exit_codes_are_the_commands(warm_helper: Helper, tmp_path: Path) -> None:
    missing = warm_helper.run("validate", tmp_path / "missing.yaml")
    assert missing.returncode == 1
    assert missing.stdout == ""
    (line,) = missing.stderr.splitlines()
    assert line.startswith("error: ") and "missing.yaml" in line
    usage = warm_helper.run("no-such-command")
    assert usage.returncode == 2
    assert "invalid choice" in usage.stderr
    assert warm_helper.served("validate") == 1 and warm_helper.served("no-such-command") == 1


def test_each_command_gets_the_callers_environment(warm_helper: Helper, tmp_path: Path,
                                                   make_project: Callable[..., Project]
                                                   ) -> None:
    spec = make_project().write_spec()
    assert warm_helper.run("submit", spec).returncode == 0
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    other = warm_helper.run("list", "--json",
                            env={**warm_helper.env, "TRAINDECK_HOME": str(other_home)})
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == []
    mine = json.loads(warm_helper.run("list", "--json").stdout)
    assert [job["name"] for job in mine] == ["demo"]
    assert warm_helper.served("list") == 2


def _follow(helper: Helper, make_project: Callable[..., Project]) -> subprocess.Popen[str]:
    """`traindeck logs demo -f` of a running job, once its first line has arrived."""
    boot = "import time\nprint('tick', flush=True)\ntime.sleep(60)\n"
    spec = make_project(boot=boot).write_spec()
    assert helper.run("submit", spec).returncode == 0
    follow = subprocess.Popen([traindeck_executable(), "logs", "demo", "-f"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=helper.env)
    assert follow.stdout is not None
    deadline = time.monotonic() + 30
    while "tick" not in follow.stdout.readline():
        assert time.monotonic() < deadline and follow.poll() is None, "no log line"
    return follow


def test_ctrl_c_stops_a_followed_log(warm_helper: Helper,
                                     make_project: Callable[..., Project]) -> None:
    follow = _follow(warm_helper, make_project)
    try:
        child = warm_helper.child_pids()[-1]
        assert pid_alive(child)
        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) == 130
        wait_dead(child, timeout=10)
    finally:
        follow.kill()
        warm_helper.run("stop", "demo")


def test_a_killed_caller_takes_its_command_along(warm_helper: Helper,
                                                 make_project: Callable[..., Project]
                                                 ) -> None:
    follow = _follow(warm_helper, make_project)
    try:
        child = warm_helper.child_pids()[-1]
        follow.kill()
        follow.wait(10)
        wait_dead(child, timeout=10)
    finally:
        follow.kill()
        warm_helper.run("stop", "demo")


def test_a_new_helper_starts_while_an_old_ones_command_still_runs(
        warm_helper: Helper, make_project: Callable[..., Project]) -> None:
    follow = _follow(warm_helper, make_project)
    try:
        old, child = warm_helper.pid(), warm_helper.child_pids()[-1]
        assert old is not None
        os.kill(old, signal.SIGTERM)
        wait_dead(old, timeout=10)
        assert pid_alive(child)  # the command outlives its helper...
        assert warm_helper.run("engines", "--json").returncode == 0
        warm_helper.wait_ready()  # ...and does not hold the next helper back
        assert warm_helper.pid() not in (None, old)
    finally:
        follow.kill()
        warm_helper.run("stop", "demo")


@contextmanager
def code_changed() -> Iterator[None]:
    """As after an upgrade: the helper's own source is newer than what it loaded."""
    source = Path(warm_server.__file__)
    before = source.stat()
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    try:
        yield
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))


def run_declined(helper: Helper) -> None:
    """Run a command once the code changed: it must run on its own, and work."""
    with code_changed():
        result = helper.run("engines", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
    assert helper.served("engines") == 0, helper.log  # declined: it ran itself


def test_a_changed_installation_sends_commands_back(warm_helper: Helper) -> None:
    pid = warm_helper.pid()
    assert pid is not None
    run_declined(warm_helper)
    wait_dead(pid, timeout=10)
    assert "changed: exiting" in warm_helper.log or warm_helper.pid() != pid


def test_an_idle_helper_leaves_when_its_code_changes(warm_helper: Helper) -> None:
    """An upgrade does not leave an old helper waiting for commands it would decline."""
    pid = warm_helper.pid()
    assert pid is not None
    with code_changed():
        wait_dead(pid, timeout=warm_server._CHECK_SECONDS + 10)
    assert "changed: exiting" in warm_helper.log


def test_off_means_no_helper(helper: Helper) -> None:
    off = {**helper.env, warm.SWITCH_ENV: "off"}
    assert helper.run("engines", "--json", env=off).returncode == 0
    time.sleep(0.5)
    assert not helper.socket.exists()
    assert not helper.log


@pytest.mark.parametrize(("argv", "expected"), [
    (["list"], True),
    (["submit", "spec.yaml", "--json"], True),
    (["templates", "list"], True),
    (["templates", "edit", "t1"], False),
    (["create", "--from", "spec.yaml"], False),
    (["--version"], False),
    ([], False),
])
def test_interactive_commands_stay_in_their_own_process(argv: list[str], expected: bool
                                                        ) -> None:
    assert warm.eligible(argv) is expected


def test_the_helper_opens_nothing_before_it_forks() -> None:
    """Preloading and the warm-up leave nothing open: no cached settings or database, no
    thread to fork over, no process started."""
    probe = ("import os, threading, app.config, app.db\n"
             "from app.cli.warm_server import preload, warm_up\n"
             "preload()\n"
             "warm_up()\n"
             "children = open(f'/proc/{os.getpid()}/task/{os.getpid()}/children').read()\n"
             "print(app.config.get_settings.cache_info().currsize,"
             " app.db._open.cache_info().currsize, threading.active_count(),"
             " len(children.split()))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["0", "0", "1", "0"]


def test_the_warm_up_rehearses_on_a_stand_in_of_the_users_database(ctx: Context) -> None:
    """With the user's database there, the warm-up prepares its statements on a stand-in
    and keeps that engine for the commands. Nothing in the user's folder is opened or
    changed: not the database, not the state of a version with the rehearsal's id."""
    real = app.db.sqlite_file(ctx.db.url)
    assert real is not None
    ctx.db.dispose()
    state = state_dir(ctx.settings, 1)
    state.mkdir(parents=True)
    (state / metrics_file_name(0)).write_text('{"step": 1, "loss": 0.5}\n')
    home = ctx.settings.data_dir
    files_before = {p: p.stat().st_mtime_ns for p in home.rglob("*")}
    probe = ("import json, os, app.db\n"
             "from app.cli.warm_server import preload, warm_up\n"
             "preload()\n"
             "warm_up()\n"
             "fds = [os.path.realpath(f'/proc/self/fd/{n}') for n in os.listdir('/proc/self/fd')]\n"
             "print(json.dumps([list(app.db._rehearsed), fds]))\n")
    before = real.stat().st_mtime_ns
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rehearsed, fds = json.loads(done.stdout)
    assert rehearsed == [ctx.db.url]
    assert not [f for f in fds if f.startswith(str(real.resolve()))]
    assert {p: p.stat().st_mtime_ns for p in home.rglob("*")} == files_before
    assert real.stat().st_mtime_ns == before


def test_a_large_environment_goes_through_whole(warm_helper: Helper) -> None:
    big = {f"BIG_{i}": "x" * 100_000 for i in range(4)}  # more than the first read takes
    result = warm_helper.run("list", "--json", env={**warm_helper.env, **big})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert warm_helper.served("list") == 1


def test_the_client_imports_only_what_it_must() -> None:
    """Every `traindeck` command imports the client first: the standard library's heavier
    modules (enum types, `re`, `selectors`, ...) would add ~20 ms to each."""
    probe = ("import sys\n"
             "before = set(sys.modules)\n"
             "import app.cli.warm\n"
             "print(' '.join(sorted(set(sys.modules) - before)))\n")
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                text=True, timeout=60, check=True).stdout.split())
    assert "app.cli.warm" in loaded
    heavy = {"socket", "signal", "json", "enum", "re", "typing", "contextlib", "selectors",
             "tempfile", "pathlib", "subprocess"}
    assert not loaded & heavy


def test_a_ready_spare_runs_the_next_command(warm_helper: Helper, tmp_path: Path) -> None:
    spare = warm_helper.wait_spare()
    result = warm_helper.run("list", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert f"[{spare}] ran `list` in pid {spare} (a spare)" in warm_helper.log
    wait_dead(spare, timeout=10)  # it became that command, and ended with it
    assert warm_helper.wait_spare() != spare  # and the helper made the next one


def test_the_spare_ends_with_its_helper(warm_helper: Helper) -> None:
    spare, helper = warm_helper.wait_spare(), warm_helper.pid()
    assert helper is not None
    os.kill(helper, signal.SIGKILL)  # not even a chance to tell it
    wait_dead(spare, timeout=10)


def test_a_spare_declines_once_the_code_changed(warm_helper: Helper) -> None:
    spare, helper = warm_helper.wait_spare(), warm_helper.pid()
    assert helper is not None
    run_declined(warm_helper)
    wait_dead(spare, timeout=10)
    wait_dead(helper, timeout=10)
