"""The shim's object storage side: `s3://` and `obs://` URLs through boto3.

boto3 is imported on first use, so `import moxing` works in an image without it; an
`s3://` call there fails with "moxing shim: s3:// needs boto3 in this image".

Configuration, all from the environment of the run:
- endpoint: `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else `S3_ENDPOINT` (the
  ModelArts/TensorFlow name; a bare host gets `https://`, or `http://` with `S3_USE_HTTPS=0`);
  none means AWS itself.
- with an endpoint: path-style addressing and checksums only where required (what
  S3-compatible services such as OBS, MinIO and Ceph need).
- credentials and region: boto3's standard chain (`AWS_ACCESS_KEY_ID`,
  `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_PROFILE`, the shared files;
  `AWS_REGION` / `AWS_DEFAULT_REGION`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

SCHEMES = ("s3://", "obs://")
_clients: list[Any] = []
_lock = threading.Lock()


def is_remote(url: str) -> bool:
    """Whether `url` names object storage rather than a local path."""
    return url.startswith(SCHEMES)


def split(url: str) -> tuple[str, str, str]:
    """`obs://bucket/a/b/` → (`obs://`, `bucket`, `a/b`)."""
    scheme = next(s for s in SCHEMES if url.startswith(s))
    bucket, _, key = url[len(scheme):].partition("/")
    if not bucket:
        raise ValueError(f"moxing shim: {url!r} names no bucket")
    return scheme, bucket, key.strip("/")


def endpoint_url() -> str | None:
    """The endpoint named by the environment (see the module's docstring), if any."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "S3_ENDPOINT"):
        value = os.environ.get(name, "").strip()
        if value:
            if "://" not in value:
                https = os.environ.get("S3_USE_HTTPS", "1").strip() not in ("0", "false")
                value = ("https://" if https else "http://") + value
            return value
    return None


def client() -> Any:
    """The boto3 S3 client of this process (made on first use)."""
    with _lock:
        if not _clients:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise ImportError("moxing shim: s3:// needs boto3 in this image") from None
            url = endpoint_url()
            options: dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"}}
            if url:
                options["s3"] = {"addressing_style": "path"}
                options["request_checksum_calculation"] = "when_required"
                options["response_checksum_validation"] = "when_required"
            try:
                config = Config(**options)
            except TypeError:  # a botocore older than checksum settings
                config = Config(retries=options["retries"], s3=options.get("s3"))
            _clients.append(boto3.session.Session().client("s3", endpoint_url=url,
                                                           config=config))
        return _clients[0]


def missing(error: Exception) -> bool:
    """Whether a botocore error says that the object or bucket does not exist."""
    code = str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound")


def objects(bucket: str, prefix: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
    """Every listing entry under `prefix`: objects (`Key`) and, with a delimiter,
    common prefixes (`Prefix`)."""
    pages = client().get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter=delimiter)
    for page in pages:
        yield from page.get("CommonPrefixes", [])
        yield from page.get("Contents", [])


def head(bucket: str, key: str) -> dict[str, Any] | None:
    """The object's metadata, or None when there is no such object."""
    if not key:
        return None
    try:
        return dict(client().head_object(Bucket=bucket, Key=key))
    except Exception as error:
        if missing(error):
            return None
        raise


def is_dir(bucket: str, key: str) -> bool:
    """Whether any object lies below `key/` (the bucket itself for an empty key)."""
    if not key:
        try:
            client().head_bucket(Bucket=bucket)
            return True
        except Exception as error:
            if missing(error):
                return False
            raise
    return next(objects(bucket, key + "/"), None) is not None


def relatives(bucket: str, key: str, recursive: bool) -> tuple[list[str], list[str]]:
    """(folders, files) below `key`, as paths relative to it (one level unless recursive)."""
    prefix = key + "/" if key else ""
    folders: set[str] = set()
    files: list[str] = []
    for entry in objects(bucket, prefix, "" if recursive else "/"):
        rel = (entry.get("Key") or entry["Prefix"])[len(prefix):]
        name = rel.rstrip("/")
        if not name:
            continue  # the folder's own marker object
        if rel.endswith("/"):
            folders.add(name)
        else:
            files.append(name)
        parts = name.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(folders), sorted(files)


def read(bucket: str, key: str, url: str) -> bytes:
    """The object's bytes; FileNotFoundError names `url` when there is none."""
    try:
        return bytes(client().get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as error:
        if missing(error):
            raise FileNotFoundError(f"moxing shim: no such object {url}") from None
        raise


def write(bucket: str, key: str, data: bytes) -> None:
    """Put `data` as the object."""
    client().put_object(Bucket=bucket, Key=key, Body=data)


def delete(bucket: str, keys: list[str]) -> None:
    """Delete `keys` (in batches of a thousand, the API's most)."""
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start:start + 1000]]
        client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
