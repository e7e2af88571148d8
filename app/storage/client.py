"""S3 locations, the endpoints that serve them, clients, and errors a user can act on.

Credentials always come from the standard AWS configuration (environment variables, a
profile, the shared credentials file): Traindeck stores none, so no secret ever reaches
its database, logs or events. Named endpoints from the settings add what S3-compatible
services (OBS, MinIO, Ceph) need: an endpoint URL, path-style addressing, and checksums
only when required. boto3 is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from app.storage.errors import StorageError

if TYPE_CHECKING:
    import botocore.session

BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
SCHEMES = ("s3://", "obs://")
S3_COMPATIBLE_ADDRESSING = "path"
S3_COMPATIBLE_CHECKSUM = "when_required"
_loader: list[Any] = []
_client_lock = threading.Lock()


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix, parsed from `s3://bucket/prefix` (or `obs://`).

    The prefix names a folder: `s3://b/data` covers `data/...`, never `data2/...`.
    """

    bucket: str
    prefix: str
    uri: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """Parse a location; StorageError names the text when it is not one."""
        scheme = next((s for s in SCHEMES if uri.startswith(s)), None)
        rest = uri[len(scheme):] if scheme else ""
        bucket, _, prefix = rest.partition("/")
        if scheme is None or not BUCKET_PATTERN.fullmatch(bucket):
            raise StorageError(f"{uri!r} is not a valid s3://bucket/prefix location")
        prefix = prefix.strip("/")
        return cls(bucket, prefix, f"{scheme}{bucket}/{prefix}" if prefix else f"{scheme}{bucket}")

    @property
    def key_prefix(self) -> str:
        """The prefix every key under this location starts with (`""` or ending in `/`)."""
        return f"{self.prefix}/" if self.prefix else ""

    def key(self, relative: str) -> str:
        """The key of a file at `relative` (a POSIX path) under this location."""
        return self.key_prefix + relative

    def uri_of(self, key: str) -> str:
        """The URI of one key of this bucket."""
        return f"{self.uri.split('://', 1)[0]}://{self.bucket}/{key}"

    def child(self, name: str) -> S3Location:
        """The location `name` below this one."""
        return S3Location.parse(f"{self.uri.rstrip('/')}/{name.strip('/')}")


@dataclass(frozen=True)
class Endpoint:
    """A named S3-compatible endpoint (the settings' `storage_endpoints` entries look alike)."""

    name: str
    endpoint_url: str | None = None
    region: str | None = None
    addressing: Literal["path", "virtual"] = "path"
    checksum: Literal["when_required", "when_supported"] = "when_required"
    profile: str | None = None
    buckets: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ClientOptions:
    """Timeouts and retries of a client: low enough that a dead or hung endpoint fails
    within about `max_attempts * (connect_timeout + read_timeout)` seconds."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    """Attempts of one request in all (the first included)."""
    max_pool_connections: int = 16

    @classmethod
    def of(cls, settings: Any) -> ClientOptions:
        """The options the settings give (`storage_connect_timeout`, ...), else defaults."""
        default = cls()
        return cls(
            connect_timeout=getattr(settings, "storage_connect_timeout", default.connect_timeout),
            read_timeout=getattr(settings, "storage_read_timeout", default.read_timeout),
            max_attempts=getattr(settings, "storage_max_attempts", default.max_attempts))


def endpoints_of(settings: Any) -> tuple[list[Any], str | None]:
    """The settings' named endpoints and default endpoint name (none before they exist)."""
    return (list(getattr(settings, "storage_endpoints", None) or []),
            getattr(settings, "default_endpoint", None))


def endpoint_for(bucket: str, endpoints: Sequence[Any], default: str | None = None
                 ) -> Any | None:
    """The endpoint serving `bucket`: one listing it, else the default one, else None.

    None means the standard AWS configuration alone (`AWS_ENDPOINT_URL`, profiles, ...).
    """
    for endpoint in endpoints:
        if bucket in (getattr(endpoint, "buckets", None) or ()):
            return endpoint
    if default is None:
        return None
    found = next((e for e in endpoints if e.name == default), None)
    if found is None:
        raise StorageError(f"default_endpoint: no storage endpoint named {default!r}")
    return found


def redact_url(url: str | None) -> str:
    """An endpoint URL without any user:password part, for messages."""
    if not url:
        return "the default AWS endpoint"
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return urlunsplit(parts)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _configured_endpoint_url(session: botocore.session.Session) -> str | None:
    """The endpoint the standard AWS configuration names for S3, if any."""
    if _truthy(os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")):
        return None
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    scoped = session.get_scoped_config()
    section = scoped.get("services")
    if section:
        services = session.full_config.get("services", {}).get(section, {})
        url = services.get("s3", {}).get("endpoint_url")
        if url:
            return str(url)
    url = scoped.get("endpoint_url")
    return str(url) if url else None


def _compatible_defaults(session: botocore.session.Session) -> dict[str, Any]:
    """Path style and `when_required` checksums for a non-AWS endpoint named by the AWS
    configuration, each only where that configuration does not choose for itself."""
    if _configured_endpoint_url(session) is None:
        return {}
    scoped = session.get_scoped_config()
    out: dict[str, Any] = {}
    s3_section = scoped.get("s3")
    if not (isinstance(s3_section, dict) and s3_section.get("addressing_style")):
        out["s3"] = {"addressing_style": S3_COMPATIBLE_ADDRESSING}
    for key in ("request_checksum_calculation", "response_checksum_validation"):
        if not (os.environ.get(f"AWS_{key.upper()}") or scoped.get(key)):
            out[key] = S3_COMPATIBLE_CHECKSUM
    return out


def _new_session(profile: str | None) -> botocore.session.Session:
    """A fresh session (so credentials and config files are read anew) sharing one
    loader of the service models (parsing them is most of a client's creation time)."""
    import botocore.loaders
    import botocore.session

    session = botocore.session.Session(profile=profile)
    if not _loader:
        _loader.append(botocore.loaders.create_loader())
    session.register_component("data_loader", _loader[0])
    return session


def make_client(endpoint: Any | None = None, options: ClientOptions | None = None) -> Any:
    """An S3 client for `endpoint` (None: the standard AWS configuration as is)."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    options = options or ClientOptions()
    profile = getattr(endpoint, "profile", None) if endpoint is not None else None
    config: dict[str, Any] = {
        "connect_timeout": options.connect_timeout,
        "read_timeout": options.read_timeout,
        "retries": {"max_attempts": options.max_attempts, "mode": "standard"},
        "max_pool_connections": options.max_pool_connections,
    }
    where = f"storage endpoint {endpoint.name!r}" if endpoint is not None else "AWS configuration"
    try:
        with _client_lock:
            session = _new_session(profile)
            if endpoint is not None:
                config["s3"] = {"addressing_style": endpoint.addressing}
                config["request_checksum_calculation"] = endpoint.checksum
                config["response_checksum_validation"] = endpoint.checksum
            else:
                config.update(_compatible_defaults(session))
            return session.create_client(
                "s3",
                endpoint_url=getattr(endpoint, "endpoint_url", None) if endpoint else None,
                region_name=getattr(endpoint, "region", None) if endpoint else None,
                config=Config(**config),
            )
    except BotoCoreError as exc:
        raise StorageError(f"{where}: {_botocore_reason(exc)}") from exc
    except ValueError as exc:  # an invalid endpoint URL (its text may hold a password)
        url = getattr(endpoint, "endpoint_url", None) if endpoint is not None else None
        raise StorageError(f"{where}: invalid endpoint URL {redact_url(url)}") from exc


def client_for(uri: str, settings: Any = None, *, endpoints: Sequence[Any] | None = None,
               options: ClientOptions | None = None) -> Any:
    """A client for the endpoint that serves `uri`'s bucket, per the settings (or the
    `endpoints` given; `settings` then only supplies the default endpoint's name).
    Without `options`, the settings' timeouts and retries apply."""
    location = S3Location.parse(uri)
    options = options or ClientOptions.of(settings)
    named, default_name = endpoints_of(settings)
    if endpoints is not None:
        named = list(endpoints)
    return make_client(endpoint_for(location.bucket, named, default_name), options)


# ---------------------------------------------------------------- errors

_ACCESS_DENIED = {
    "AccessDenied": "access denied",
    "AllAccessDisabled": "access denied",
    "Forbidden": "access denied",
    "403": "access denied",
    "InvalidAccessKeyId": "access denied (the access key id is not known to the endpoint)",
    "SignatureDoesNotMatch": "access denied (the secret access key does not match)",
    "ExpiredToken": "access denied (the session token has expired)",
    "InvalidToken": "access denied (the session token is invalid)",
    "AccountProblem": "access denied (a problem with the account)",
}
_MISSING = {
    "NoSuchBucket": "no such bucket",
    "NoSuchKey": "no such key",
    "NotFound": "no such key",
    "404": "no such key",
}


def _botocore_reason(exc: BaseException) -> str:
    from botocore import exceptions as bce

    if isinstance(exc, bce.ProfileNotFound):
        return f"AWS profile {exc.kwargs.get('profile')!r} not found"
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return ("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "a profile, or a shared credentials file")
    return str(exc).splitlines()[0][:200]


def _os_error(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def storage_error(exc: BaseException, uri: str, endpoint_url: str | None = None,
                  local: str | None = None) -> StorageError:
    """Translate any failure of an S3 operation on `uri` into a one-line StorageError.

    Messages carry the location, the endpoint URL (credentials removed) and an error
    code — never a secret.
    """
    if isinstance(exc, StorageError):
        return exc
    from botocore import exceptions as bce

    endpoint = redact_url(endpoint_url)
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {})
                   .get("HTTPStatusCode", "error"))
        reason = _MISSING.get(code) or _ACCESS_DENIED.get(code)
        if reason is None:
            message = str(error.get("Message") or "").splitlines()[0:1]
            reason = f"{code}" + (f": {message[0][:200]}" if message else "")
        return StorageError(f"{uri}: {reason}")
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectTimeoutError
                  | bce.ConnectionClosedError):
        return StorageError(f"{uri}: endpoint {endpoint} unreachable")
    if isinstance(exc, bce.ReadTimeoutError):
        return StorageError(f"{uri}: endpoint {endpoint} did not answer in time")
    if isinstance(exc, bce.HTTPClientError):
        return StorageError(f"{uri}: endpoint {endpoint} unreachable ({type(exc).__name__})")
    if isinstance(exc, bce.BotoCoreError):
        return StorageError(f"{uri}: {_botocore_reason(exc)}")
    os_error = _os_error(exc)
    if os_error is not None and os_error.errno == errno.ENOSPC:
        return StorageError(f"disk full while transferring {uri}"
                            + (f" to {local}" if local else ""))
    if os_error is not None:
        where = os_error.filename or local or uri
        return StorageError(f"{where}: {os_error.strerror or os_error}")
    return StorageError(f"{uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                        if str(exc) else f"{uri}: {type(exc).__name__}")
