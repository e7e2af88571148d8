"""Object storage against a second S3 implementation: s3rver (npm), on loopback.

The same code as against moto (`test_storage.py`): staging in and uploading out, multipart
both ways, the progress file, a missing bucket. s3rver keeps each object as a file named
after its key, so keys with names near 255 characters crash it: the 255 rule is tested
against moto only.

s3rver is found as `$TRAINDECK_S3RVER`, on the PATH, or under
`~/.cache/traindeck/s3rver/node_modules/.bin/` (`npm install --prefix
~/.cache/traindeck/s3rver s3rver@3.7.1`). Without it these tests skip, or fail when
`TRAINDECK_REQUIRE_S3RVER=1`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3server import isolate_aws

from app.storage import (
    DataError,
    TransferOptions,
    TransferSnapshot,
    finalize_outputs,
    local_output_path,
    make_client,
    prepare_data,
    read_transfer,
    stage_in,
    transfer_path,
    upload_dir,
)

MiB = 1024 * 1024
SMALL_PARTS = TransferOptions(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB,
                              max_concurrency=4)
KEY = "S3RVER"  # s3rver's own well-known test key (a local test server, not a credential)


def s3rver_executable() -> str | None:
    """Where s3rver is installed, if anywhere."""
    candidates = [os.environ.get("TRAINDECK_S3RVER"), shutil.which("s3rver"),
                  str(Path.home() / ".cache/traindeck/s3rver/node_modules/.bin/s3rver")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def s3rver_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running s3rver on a free loopback port (module-wide), with an empty data dir."""
    executable = s3rver_executable()
    if executable is None:
        reason = "s3rver is not installed (npm install --prefix ~/.cache/traindeck/s3rver " \
                 "s3rver@3.7.1)"
        if os.environ.get("TRAINDECK_REQUIRE_S3RVER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path_factory.mktemp("s3rver")
    proc = subprocess.Popen(
        [executable, "-d", str(data), "-a", "127.0.0.1", "-p", str(port), "--silent",
         "--allow-mismatched-signatures", "--no-vhost-buckets"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("s3rver did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3(s3rver_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The standard AWS configuration pointed at s3rver; a fresh bucket name per test."""
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3rver_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"bucket-{tmp_path.name.replace('_', '-').lower()[-40:]}".rstrip("-")
    make_client().create_bucket(Bucket=bucket)
    return bucket


def test_multipart_both_ways_with_the_progress_file(s3: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "ckpt").mkdir(parents=True)
    body = os.urandom(12 * MiB)
    (out / "ckpt" / "model.bin").write_bytes(body)
    (out / "metrics.json").write_text('{"accuracy": 0.9}')
    uri = f"s3://{s3}/runs/V001"
    result = upload_dir(out, uri, transfer=SMALL_PARTS)
    assert (result.files, result.bytes) == (2, 12 * MiB + 17)

    state = tmp_path / "versions" / "3"
    seen: list[TransferSnapshot | None] = []
    paths = prepare_data(None, [uri], state / "data-cache", lambda line: None,
                         lambda message, kind: None, transfer=SMALL_PARTS,
                         progress=lambda d, t: seen.append(read_transfer(transfer_path(state))))
    model = paths[0] / "ckpt" / "model.bin"
    assert hashlib.sha256(model.read_bytes()).digest() == hashlib.sha256(body).digest()
    last = [shot for shot in seen if shot is not None][-1]
    assert (last.what, last.done, last.files_done, last.files) == (
        "staging", 12 * MiB + 17, 2, 2)
    assert not transfer_path(state).exists()
    again = stage_in(uri, state / "data-cache" / "0")
    assert again.reused


def test_finalize_sends_output_and_logs(s3: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    output = local_output_path(f"s3://{s3}/out/V002", state)
    output.mkdir(parents=True)
    (output / "result.txt").write_text("ok")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "rank-0.log").write_text("line\n")
    result = finalize_outputs(None, output, f"s3://{s3}/out/V002", logs,
                              f"s3://{s3}/logs/V002", lambda line: None)
    assert (result.output_error, result.log_error) == (None, None)
    client = make_client()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=s3)["Contents"])
    assert keys == ["logs/V002/rank-0.log", "out/V002/result.txt"]
    assert client.get_object(Bucket=s3, Key="logs/V002/rank-0.log")["Body"].read() == \
        b"line\n"


def test_a_missing_bucket_is_a_reason(s3: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^s3://no-such-bucket-here/x: no such bucket$"):
        prepare_data(None, ["s3://no-such-bucket-here/x"], tmp_path / "c", lambda line: None,
                     lambda message, kind: None)
