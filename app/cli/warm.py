"""The command helper's client side: run a `traindeck` command in a warm process.

A `traindeck` command spends most of its time importing the database layer (about half
a second) before it does anything. The *command helper* (`app.cli.warm_server`) is a
small per-user process that has done those imports once; for each command it forks a
child that runs the command exactly as this process would have: with this process's
arguments, working folder, environment, umask and its stdin, stdout and stderr (the
file descriptors themselves are passed over a Unix socket). Signals sent here (Ctrl-C,
SIGTERM, SIGHUP) are forwarded to the child, the child's exit code becomes ours, and
the child ends when this process goes away.

Nothing depends on the helper: when it is not running this process runs the command
itself and starts one in the background for the next command; a helper whose code or
packages changed since it started declines, and exits. It leaves after 15 idle
minutes. `TRAINDECK_CLI_HELPER=off` turns it off.

This module is the `traindeck` script's entry point (`main`), imported before anything
heavy, so every command pays for its imports: it uses the C halves of `socket` and
`signal` (`_socket`, `_signal`) and `marshal` instead of `json`. The full modules would
add about 20 ms to every command here (their enum types, `selectors`, `re`).
"""

from __future__ import annotations

import _signal
import _socket
import marshal
import os
import stat  # (already imported by `os`)
import struct
import sys
import zlib

SWITCH_ENV = "TRAINDECK_CLI_HELPER"
"""`off` (or 0, no, false): run every command in its own process, start no helper."""
DIR_ENV = "TRAINDECK_CLI_HELPER_DIR"
"""Folder for the helper's socket, lock and log (default: the user's runtime folder)."""
IDLE_ENV = "TRAINDECK_CLI_HELPER_IDLE"
"""Seconds the helper waits for a command before it exits (default 900)."""
DEFAULT_IDLE_SECONDS = 900.0
INTERACTIVE = {("create",), ("templates", "edit")}
"""Commands that need the terminal itself (a TUI, `$EDITOR`): never sent to the helper."""
FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)
HEADER = struct.Struct("!I")
"""Length prefix of the request (marshalled) that travels with the three descriptors."""
STDIO = struct.pack("3i", 0, 1, 2)
"""The descriptors passed to the helper (SCM_RIGHTS data): stdin, stdout, stderr."""
PID, EXIT, STALE = b"pid", b"exit", b"stale"
"""The helper's replies, one line each: `pid N` (the command started in process N),
`exit N` (it ended with code N), `stale` (the helper's code changed: run it here)."""


def enabled() -> bool:
    """False when the user turned the helper off."""
    return os.environ.get(SWITCH_ENV, "").strip().lower() not in ("0", "off", "no", "false")


def eligible(argv: list[str]) -> bool:
    """True for a command the helper may run: not the TUI, not an interactive one."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or argv[0].startswith("-"):
        return False  # the TUI, `--version`, `--help`: nothing heavy to save
    return not any(tuple(words[:len(key)]) == key for key in INTERACTIVE)


def helper_dir() -> str | None:
    """This user's private folder for the helper, made if needed; None if unsafe.

    The folder must belong to this user and be closed to everyone else: whoever can
    reach the socket runs commands as its owner (the helper also checks each caller's
    uid). Paths are plain strings here: `pathlib` alone costs a few milliseconds.
    """
    folder = os.environ.get(DIR_ENV)
    if not folder:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if not (runtime and os.path.isdir(runtime)):
            runtime = os.environ.get("TMPDIR") or "/tmp"  # (`tempfile` is slow to import)
        folder = os.path.join(runtime, f"traindeck-{os.getuid()}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return None
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or info.st_mode & 0o077):
        return None
    return folder


def installation_key() -> str:
    """One helper per interpreter and code tree (two checkouts do not share one)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return f"{zlib.crc32(f'{sys.executable}{package}'.encode()):08x}"


def socket_path(folder: str | os.PathLike[str]) -> str:
    return os.path.join(folder, f"cli-{installation_key()}.sock")


def log_path(folder: str | os.PathLike[str]) -> str:
    return os.path.join(folder, f"cli-{installation_key()}.log")


def main() -> int:
    """The `traindeck` script: a command through the helper where it can, else here."""
    argv = sys.argv[1:]
    code = run_via_helper(argv) if argv else None
    if code is not None:
        # The command ran in the helper: nothing here needs tearing down, and the
        # interpreter's own teardown would add a few milliseconds to every command.
        for stream in (sys.stdout, sys.stderr):
            try:  # noqa: SIM105 - `contextlib` costs milliseconds to import
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    from app.cli.main import main as run_here

    return run_here(argv)


def wait_until_ready(folder: str | os.PathLike[str], seconds: float) -> bool:
    """Wait until a helper answers on `folder`'s socket; False if none does in time."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        probe = _connect(socket_path(folder))
        if probe is not None:
            probe.close()
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _connect(path: str) -> _socket.socket | None:
    """A connection to the helper's socket at `path` (the caller closes it), or None."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def run_via_helper(argv: list[str]) -> int | None:
    """Run `traindeck ARGV` in the helper; its exit code, or None: run it here instead.

    None also means "not sent": the helper is off, absent (one is started for the next
    command), stale or declined before the command began.
    """
    if not enabled() or not eligible(argv):
        return None
    folder = helper_dir()
    if folder is None:
        return None
    sock = _connect(socket_path(folder))
    if sock is None:
        start_helper(folder)
        return None
    try:
        return _converse(sock, argv)
    except _Declined:
        start_helper(folder)
        return None
    finally:
        sock.close()


class _Declined(Exception):
    """The helper did not start the command (stale, busy, broken): run it here."""


def _request(argv: list[str]) -> bytes:
    try:
        cwd = os.getcwd()
    except OSError as exc:  # the working folder was deleted: let the command say so
        raise _Declined from exc
    umask = os.umask(0o022)
    os.umask(umask)
    body = marshal.dumps({"argv": argv, "cwd": cwd, "env": dict(os.environ),
                          "umask": umask})
    return HEADER.pack(len(body)) + body


def _converse(sock: _socket.socket, argv: list[str]) -> int:
    request = _request(argv)
    try:
        sent = sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, STDIO)])
        sock.sendall(request[sent:])  # (a large environment may not go in one message)
    except OSError as exc:
        raise _Declined from exc
    replies = _Replies(sock)
    word, child = replies.next()
    if word != PID:
        raise _Declined  # stale (it said so) or gone before starting the command
    previous = {sig: _signal.signal(sig, _forward_to(child)) for sig in FORWARDED_SIGNALS}
    try:
        word, code = replies.next()
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)
    if word == EXIT:
        return code
    print("error: the command ended without an exit status (killed?)", file=sys.stderr)
    return 1


def _forward_to(pid: int) -> object:
    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - `contextlib` costs milliseconds to import
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    return forward


class _Replies:
    """The helper's reply lines, as (word, number); (b"", 0) at the end of the stream."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self) -> tuple[bytes, int]:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(4096)
            except InterruptedError:  # pragma: no cover - retried by Python (PEP 475)
                continue
            except OSError:
                return b"", 0
            if not chunk:
                return b"", 0
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        word, _, number = line.partition(b" ")
        try:
            return word, int(number or 0)
        except ValueError:
            return b"", 0


def start_helper(folder: str) -> None:
    """Start a helper in the background (one that finds another running just exits)."""
    if not enabled():
        return
    import subprocess

    try:
        with open(log_path(folder), "ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "app.cli.warm_server", folder],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
                start_new_session=True, cwd="/",
                env={**os.environ, "PYTHONPATH": _package_root_path()},
            )
    except OSError:
        pass  # no helper: every command still runs on its own


def _package_root_path() -> str:
    """PYTHONPATH that finds this `app` package from `/` (an editable or plain checkout)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    current = os.environ.get("PYTHONPATH", "")
    return root if not current else f"{root}{os.pathsep}{current}"
