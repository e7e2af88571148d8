"""Object storage against hostile outputs and hung endpoints (a real S3 server on loopback)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from s3server import S3Server, hung_endpoint, isolate_aws, put_objects

from app.config import Settings
from app.storage import DataError, Endpoint, prepare_data, upload_output
from app.storage.transfer import open_no_follow

SECRET = b"host-only secret bytes 7f3a"




def _bucket_bodies(server: S3Server, bucket: str) -> dict[str, bytes]:
    client = server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_output_upload_never_follows_links(s3: S3Server, tmp_path: Path) -> None:
    put_objects(s3, "results", {})
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "key.pem").write_bytes(SECRET)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "model.bin").write_bytes(b"weights")
    os.symlink(secret, out / "x")  # a file outside the output
    os.symlink(outside, out / "sub" / "d")  # a folder outside the output
    os.symlink(out / "model.bin", out / "again")  # inside, but a link all the same
    warnings: list[str] = []
    lines: list[str] = []

    error = upload_output(None, out, "s3://results/run/V001", lines.append,
                          warn=warnings.append)

    assert error is None
    bodies = _bucket_bodies(s3, "results")
    assert bodies == {"run/V001/model.bin": b"weights"}
    assert not any(SECRET in body for body in bodies.values())
    assert warnings == ["output: 3 symbolic link(s) not uploaded (links are never "
                        "followed): again, sub/d, x"]
    assert f"warning: {warnings[0]}" in lines


def test_a_link_swapped_in_after_the_walk_is_not_read(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    outside.mkdir()
    (out / "sub" / "f").write_bytes(b"mine")
    (outside / "f").write_bytes(SECRET)
    with open_no_follow(out, str(out / "sub" / "f")) as f:
        assert f.read() == b"mine"
    (out / "sub" / "f").unlink()
    (out / "sub").rmdir()
    os.symlink(outside, out / "sub")  # a parent folder turned into a link
    with pytest.raises(OSError):
        open_no_follow(out, str(out / "sub" / "f"))
    os.symlink(outside / "f", out / "g")  # the file itself a link
    with pytest.raises(OSError):
        open_no_follow(out, str(out / "g"))
    os.mkfifo(out / "pipe")  # a FIFO neither hangs nor counts as a file
    with pytest.raises(OSError, match="not a regular file"):
        open_no_follow(out, str(out / "pipe"))


QUICK = {"storage_connect_timeout": 1.0, "storage_read_timeout": 1.0,
         "storage_max_attempts": 2}
BOUND = 15.0
"""Seconds within which a hung endpoint must fail with QUICK settings (2-7 s seen: an
upload waits for a `100-continue` before it sends, then for the reply)."""


@pytest.mark.slow
def test_hung_endpoint_fails_staging_within_the_settings_bound(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    settings = Settings(**QUICK)  # type: ignore[arg-type]
    with hung_endpoint() as url:
        lab = [Endpoint("lab", url, buckets=("data-bucket",))]
        started = time.monotonic()
        with pytest.raises(DataError) as caught:
            prepare_data(settings, ["s3://data-bucket/p"], tmp_path / "c", print,
                         lambda m, k: None, endpoints=lab)
        elapsed = time.monotonic() - started
    assert caught.value.reason == f"s3://data-bucket/p: endpoint {url} did not answer in time"
    assert elapsed < BOUND


@pytest.mark.slow
def test_hung_endpoint_fails_the_output_upload_within_the_bound(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    settings = Settings(**QUICK)  # type: ignore[arg-type]
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.bin").write_bytes(b"w" * 1000)
    with hung_endpoint() as url:
        started = time.monotonic()
        error = upload_output(settings, out, "s3://results/V001", lambda line: None,
                              endpoints=[Endpoint("lab", url, buckets=("results",))])
        elapsed = time.monotonic() - started
    assert error is not None and f"endpoint {url} did not answer in time" in error
    assert elapsed < BOUND
