"""A real S3 server on loopback for the tests: moto's threaded server, spoken to over HTTP.

One server runs per test process (`shared_server()`, stopped at exit). Tests point boto3
at it the standard way — `AWS_ENDPOINT_URL` plus dummy credentials in the environment
(`use_server`) — so the code under test builds its clients exactly as in production.
Authentication is off by default; `server.require_auth()` turns it on (moto then checks
access keys and IAM policies) until `server.allow_all()`.
"""

from __future__ import annotations

import atexit
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DUMMY_KEY = "testing-key"
DUMMY_SECRET = "testing-secret"  # a dummy value for a local test server, not a credential
REGION = "us-east-1"
_servers: list[S3Server] = []


@dataclass
class S3Server:
    """A running moto server on 127.0.0.1."""

    server: Any
    url: str
    _clients: dict[str, Any] = field(default_factory=dict)

    def _post(self, path: str, body: bytes = b"") -> None:
        request = urllib.request.Request(self.url + path, data=body, method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def reset(self) -> None:
        """Forget every bucket, object and IAM user."""
        self._post("/moto-api/reset")

    def require_auth(self) -> None:
        """From now on every request needs a known access key allowed by IAM."""
        self._post("/moto-api/reset-auth", b"0")

    def allow_all(self) -> None:
        """Accept every request again, whatever its credentials."""
        self._post("/moto-api/reset-auth", b"inf")

    def client(self, service: str = "s3") -> Any:
        """A boto3 client for this server with the dummy credentials (test set-up only)."""
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.session.Session().client(
                service, endpoint_url=self.url, region_name=REGION,
                aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_SECRET)
        return self._clients[service]


def start_server() -> S3Server:
    """Start a moto server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(server, f"http://{host}:{port}")


def shared_server() -> S3Server:
    """The server of this test process (started on first use)."""
    if not _servers:
        _servers.append(start_server())
        atexit.register(_servers[0].server.stop)
    return _servers[0]


def dead_endpoint() -> str:
    """The URL of a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def hung_endpoint(lifetime: float = 60.0) -> Iterator[str]:
    """The URL of a loopback server that accepts connections and never answers.

    It stops itself (closing every connection) when the block ends, or after `lifetime`
    seconds whatever happens, so a test that hangs cannot keep it running.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        deadline = time.monotonic() + lifetime
        while not done.is_set() and time.monotonic() < deadline:
            try:
                held.append(server.accept()[0])  # read nothing, answer nothing
            except OSError:
                continue
        for conn in [*held, server]:
            conn.close()

    thread = threading.Thread(target=serve, name="hung-endpoint", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        thread.join(5)


AWS_VARIABLES = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


def isolate_aws(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """No AWS setting of the machine leaks in: empty config and credentials files."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(folder / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def use_server(monkeypatch: pytest.MonkeyPatch, folder: Path, server: S3Server) -> None:
    """Point the standard AWS configuration at `server` with dummy credentials."""
    isolate_aws(monkeypatch, folder)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def put_objects(server: S3Server, bucket: str, objects: dict[str, bytes]) -> None:
    """Create `bucket` (if needed) and put `objects` (key → body) into it."""
    client = server.client()
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
