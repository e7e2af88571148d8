"""`stop` takes effect within the grace period while data is staged from an object-storage
endpoint that accepts connections and never answers (a hung server on loopback)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import cli, script_spec, submit, wait, wait_for
from s3server import DUMMY_KEY, DUMMY_SECRET, REGION, isolate_aws

from app.context import Context
from app.queries import version_info


@pytest.fixture
def hung_endpoint() -> Iterator[str]:
    """A loopback server that accepts every connection and never sends a byte; it stops
    by itself after a minute at most."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_stop_while_staging_from_a_hung_endpoint(
        ctx: Context, tmp_path: Path, hung_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    for name, value in (("AWS_ENDPOINT_URL", hung_endpoint), ("AWS_ACCESS_KEY_ID", DUMMY_KEY),
                        ("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)  # the supervisor inherits them
    spec = script_spec(tmp_path, "hung", "print('never runs')")
    spec.write_text(spec.read_text().replace(str(tmp_path / "hung" / "data"),
                                             "s3://inputs/set"))
    submit(spec)
    wait_for(lambda: version_info(ctx.db, "hung").status == "initializing", 10, "the start")
    time.sleep(2.0)  # the supervisor is staging: its request waits on the endpoint
    grace = ctx.settings.stop_grace_seconds
    began = time.monotonic()
    cli("stop", "hung")
    version = wait(ctx, "hung", timeout=grace + 5)
    assert (version.status, version.reason) == ("stopped", "stopped by user")
    assert time.monotonic() - began < grace
