"""Reaching the Docker engine: round trips and timeouts, against a small HTTP engine on a
Unix socket that records what it was asked (the real engine cannot be slowed down)."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from app.runtime import dockerhost
from app.runtime.dockerhost import EngineAddress, docker_client, reachable_client

API = "1.43"
SLOW_SECONDS = 0.6


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path) -> None:
        super().__init__(str(path), Handler)
        self.paths: list[str] = []
        self.names_version = True
        """Whether a ping's answer carries the API-Version header (engines since 1.13)."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a caller that gave up (the timeout test) closed its end: nothing to report


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeEngine

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.path == "/version":
            self._answer(json.dumps({"ApiVersion": API, "Version": "24.0.0"}).encode())
        elif self.path in ("/_ping", f"/v{API}/_ping"):
            self._answer(b"OK", "text/plain",
                         {"API-Version": API} if self.server.names_version else {})
        elif self.path == f"/v{API}/info":
            time.sleep(SLOW_SECONDS)
            self._answer(json.dumps({"ID": "fake"}).encode())
        else:
            self.send_error(404)

    def _answer(self, body: bytes, kind: str = "application/json",
                headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEngine]:
    monkeypatch.setattr(dockerhost, "_api_versions", {})  # as in a new process
    server = FakeEngine(tmp_path / "engine.sock")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def address(server: FakeEngine) -> EngineAddress:
    return EngineAddress(docker_host=f"unix://{server.server_address}")


def test_a_new_process_reaches_the_engine_in_one_round_trip(engine: FakeEngine) -> None:
    client = reachable_client(address(engine))
    assert client is not None
    try:
        assert client.api.api_version == API  # learnt from the ping's answer
        assert client.info() == {"ID": "fake"}
    finally:
        client.close()
    # No `/version`: the engine takes far longer to answer that than a ping.
    assert engine.paths == ["/_ping", f"/v{API}/info"]


def test_once_the_version_is_known_a_ping_checks_the_engine(engine: FakeEngine) -> None:
    docker_client(address(engine)).close()
    docker_client(address(engine)).close()
    assert engine.paths == ["/_ping", f"/v{API}/_ping"]


def test_an_engine_that_does_not_name_its_version_is_asked(engine: FakeEngine) -> None:
    engine.names_version = False
    client = docker_client(address(engine))
    client.close()
    assert client.api.api_version == API
    assert engine.paths == ["/_ping", "/version"]


def test_the_checked_client_waits_longer_than_the_check(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dockerhost, "PING_SECONDS", SLOW_SECONDS / 3)
    client = reachable_client(address(engine), timeout=10)
    assert client is not None
    try:
        assert client.info() == {"ID": "fake"}  # slower than the check's own limit
    finally:
        client.close()
    short = docker_client(address(engine), timeout=SLOW_SECONDS / 3)
    try:
        with pytest.raises(Exception, match="timed out"):
            short.info()
    finally:
        short.close()


def test_no_engine_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dockerhost, "_api_versions", {})
    gone = EngineAddress(docker_host=f"unix://{tmp_path / 'nothing.sock'}")
    assert reachable_client(gone) is None
    assert dockerhost.docker_reachable(gone) is False
