"""Event subscriptions: topics of apprise URLs, and the messages sent to them.

A topic is a name and a list of apprise URLs (mail, Slack, ntfy, a webhook, ...) kept in
the `topics:` list of the config file; a job spec subscribes a topic to any of
`OnJobRunning`, `OnJobSucceeded` and `OnJobFailed`. On each status change the
supervisor calls `notify_status_in_background` (and `wait_for_notifications` before it
exits). Sending retries with back-off, is recorded as a `notification` event on the
version (saying delivered or failed, and to which topic, never a URL), and never raises:
a notification can never change how a run ends.

For the TUI, `subscribed_events_since` returns the status changes a user subscribed to,
so that it can ring the terminal bell / send OSC 9 and show a toast.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlmodel import col, select

from app.config import Settings, TopicSettings, config_file
from app.context import Context
from app.errors import ConfigError, ConflictError, FieldError, NotFoundError
from app.formatting import format_duration
from app.readmodels import duration_seconds
from app.specs.spec import check_name
from app.store.db import Database
from app.store.models import (
    STATUS_EVENTS,
    Event,
    Job,
    MetricSummary,
    Status,
    Version,
    version_label,
)

log = logging.getLogger("traindeck.notify")

RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)
"""Seconds to wait before each retry of a failed delivery (so 4 tries in all)."""

NOTIFICATION_KIND = "notification"


@dataclass(frozen=True)
class Delivery:
    """What became of one event sent to one topic."""

    topic: str
    event: str
    delivered: bool
    urls: int
    failed_urls: int
    attempts: int
    error: str = ""

    @property
    def message(self) -> str:
        """The event message recorded on the version (no URL, no secret)."""
        head = f"{self.event} to topic {self.topic!r}: "
        if self.delivered:
            return head + f"delivered ({self.urls} URL{'s' if self.urls != 1 else ''})"
        if not self.urls:
            return head + f"not sent: {self.error}"
        return head + (f"failed for {self.failed_urls} of {self.urls} URL(s) after "
                       f"{self.attempts} tr{'y' if self.attempts == 1 else 'ies'}"
                       + (f": {self.error}" if self.error else ""))

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        return {**asdict(self), "message": self.message}


# ------------------------------------------------------------------------------ topics


def redact_url(url: str) -> str:
    """The URL as apprise shows it privately (passwords and tokens masked)."""
    import apprise

    try:
        plugin = apprise.Apprise.instantiate(url)
    except Exception:
        plugin = None
    if plugin is None:
        return (url.split("://", 1)[0] + "://****") if "://" in url else "****"
    from urllib.parse import parse_qsl, urlencode, urlsplit

    shown = urlsplit(str(plugin.url(privacy=True)))
    # apprise spells out every default in the query; show only what the user wrote.
    given = {key for key, _ in parse_qsl(urlsplit(url).query)}
    query = urlencode([(k, v) for k, v in parse_qsl(shown.query) if k in given], safe="*")
    return shown._replace(query=query).geturl()


@dataclass(frozen=True)
class TopicInfo:
    """A topic as shown to users: its URLs redacted."""

    name: str
    description: str
    urls: list[str]

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        return asdict(self)


def topic_info(topic: TopicSettings) -> TopicInfo:
    """The shown form of a configured topic."""
    return TopicInfo(topic.name, topic.description, [redact_url(u) for u in topic.urls])


def list_topics(settings: Settings) -> list[TopicInfo]:
    """Every configured topic."""
    return [topic_info(t) for t in settings.topics]


def get_topic(settings: Settings, name: str) -> TopicInfo:
    """One configured topic; NotFoundError when there is none of that name."""
    topic = settings.topic(name)
    if topic is None:
        raise NotFoundError(f"topic {name!r} not found")
    return topic_info(topic)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a YAML mapping")
    return data


def _write_config(path: Path, data: dict[str, Any]) -> None:
    """Replace the config file atomically, keeping its permissions (0600 for a new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600  # topic URLs hold secrets
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, sort_keys=False, allow_unicode=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _config_topics(data: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    topics = data.get("topics") or []
    if not isinstance(topics, list) or not all(isinstance(t, dict) for t in topics):
        raise ConfigError(f"{path}: topics must be a list of mappings")
    return topics


def _forget_settings() -> None:
    from app.config import get_settings

    get_settings.cache_clear()


def add_topic(name: str, urls: Sequence[str], description: str = "", *,
              replace: bool = False) -> TopicInfo:
    """Add topic `name` to the config file (or replace it with `replace`).

    Every URL must be one apprise can send to. Other settings are kept as they are
    (comments in the file are not: it is rewritten as plain YAML).
    """
    try:
        check_name(name, "topic name")
    except ValueError as exc:
        raise FieldError("name", str(exc)) from exc
    if not urls:
        raise FieldError("urls", "give at least one apprise URL")
    import apprise

    for i, url in enumerate(urls):
        try:
            ok = apprise.Apprise.instantiate(url) is not None
        except Exception:
            ok = False
        if not ok:
            raise FieldError(f"urls[{i}]", f"{redact_url(url)} is not a URL apprise can send to")
    try:
        entry = TopicSettings(name=name, urls=list(urls), description=description)
    except ValidationError as exc:
        raise FieldError("topic", str(exc.errors()[0]["msg"])) from exc
    path = config_file()
    data = _read_config(path)
    topics = _config_topics(data, path)
    at = next((i for i, t in enumerate(topics) if t.get("name") == name), None)
    if at is not None and not replace:
        raise ConflictError(f"topic {name!r} already exists (use --replace to change it)")
    record = entry.model_dump(exclude_defaults=False)
    if at is None:
        topics.append(record)
    else:
        topics[at] = record
    data["topics"] = topics
    _write_config(path, data)
    _forget_settings()
    return topic_info(entry)


def remove_topic(name: str) -> None:
    """Remove topic `name` from the config file (versions subscribed to it send nothing)."""
    path = config_file()
    data = _read_config(path)
    topics = _config_topics(data, path)
    kept = [t for t in topics if t.get("name") != name]
    if len(kept) == len(topics):
        raise NotFoundError(f"topic {name!r} not found in {path}")
    data["topics"] = kept
    _write_config(path, data)
    _forget_settings()


# ------------------------------------------------------------------------------ sending


def _apprise_type(status: str) -> Any:
    import apprise

    return {
        Status.SUCCEEDED.value: apprise.NotifyType.SUCCESS,
        Status.FAILED.value: apprise.NotifyType.FAILURE,
    }.get(status, apprise.NotifyType.INFO)


def _last_warning(captured: str) -> str:
    lines = [ln.split(" - ", 2)[-1] for ln in captured.splitlines()
             if " - WARNING - " in ln or " - ERROR - " in ln]
    return lines[-1].strip() if lines else "not delivered"


def _scrub(text: str, url: str) -> str:
    """`text` without any part of `url` that the redacted URL hides (passwords, tokens)."""
    from urllib.parse import parse_qsl, urlsplit

    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        pieces = [parts.username or "", parts.password or "",
                  *parts.path.split("/"), *(v for _, v in parse_qsl(parts.query))]
    except ValueError:
        pieces = []
    for piece in sorted(set(pieces), key=len, reverse=True):
        if len(piece) >= 4 and piece not in shown:
            text = text.replace(piece, "****")
    return text


def send_to_url(url: str, title: str, body: str, status: str,
                retry_delays: Sequence[float] = RETRY_DELAYS) -> tuple[bool, int, str]:
    """Send one message to one apprise URL, retrying with back-off.

    Returns (delivered, tries, why not) and never raises; the reason holds no secret.
    """
    import apprise

    # One URL per sender, sent in this thread: each URL's outcome is known on its own.
    asset = apprise.AppriseAsset(async_mode=False)
    try:
        plugin = apprise.Apprise.instantiate(url, asset=asset)
    except Exception:  # apprise raises a variety of things for odd URLs
        plugin = None
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    if plugin is None:
        return False, 0, f"{scheme}: not a URL apprise can send to"
    sender = apprise.Apprise(asset=asset)
    sender.add(plugin)
    reason = ""
    delays = [0.0, *retry_delays]
    for attempt, delay in enumerate(delays, start=1):
        if delay > 0:
            time.sleep(delay)
        try:
            with apprise.LogCapture(level=logging.WARNING) as captured:
                ok = bool(sender.notify(body=body, title=title,
                                        notify_type=_apprise_type(status)))
            if ok:
                return True, attempt, ""
            reason = _last_warning(captured.getvalue())
        except Exception as exc:  # a plugin bug must not reach the supervisor
            reason = f"{type(exc).__name__}: {exc}"
    return False, len(delays), f"{scheme}: {_scrub(reason, url)}"


def deliver(topic: str, urls: Sequence[str], event: str, title: str, body: str, status: str,
            retry_delays: Sequence[float] = RETRY_DELAYS) -> Delivery:
    """Send one message to every URL of a topic."""
    if not urls:
        return Delivery(topic, event, False, 0, 0, 0, "the topic has no URLs")
    failures: list[str] = []
    tries = 0
    for url in urls:
        ok, attempts, reason = send_to_url(url, title, body, status, retry_delays)
        tries = max(tries, attempts)
        if not ok:
            failures.append(reason)
    return Delivery(topic, event, not failures, len(urls), len(failures), tries,
                    "; ".join(failures))


# ------------------------------------------------------------------------------ messages


def compose(job: str, label: str, status: str, reason: str, duration: float | None,
            metrics: dict[str, float]) -> tuple[str, str]:
    """Title and body of a status message."""
    from app.metrics import ordered_metric_names

    title = f"[traindeck] {job} {label} {status}"
    lines = [f"Job: {job}", f"Version: {label}", f"Status: {status}"]
    if reason:
        lines.append(f"Reason: {reason}")
    lines.append(f"Duration: {format_duration(duration, '-')}")
    if metrics:
        shown = " ".join(f"{n}={metrics[n]:.4g}" for n in ordered_metric_names(metrics))
        lines.append(f"Metrics: {shown}")
    lines.append(f"Host: {socket.gethostname()}")
    return title, "\n".join(lines)


def _subscriptions(spec_json: str) -> list[tuple[str, list[str]]]:
    try:
        spec = json.loads(spec_json)
        return [(s["topic"], list(s.get("events", []))) for s in spec.get("subscriptions", [])]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []


def _already_sent(db: Database, version_id: int, prefix: str) -> bool:
    with db.read() as session:
        messages = session.exec(select(Event.message).where(
            Event.version_id == version_id, Event.kind == NOTIFICATION_KIND)).all()
    return any(m.startswith(prefix) for m in messages)


def _record(db: Database, version_id: int, message: str) -> None:
    with db.write() as session:
        session.add(Event(version_id=version_id, kind=NOTIFICATION_KIND, message=message))


def notify_status(ctx: Context, version_id: int, status: Status | str,
                  *, retry_delays: Sequence[float] | None = None) -> list[Delivery]:
    """Send the version's subscribed event for its new `status` to each topic.

    Call it after each status change (once per change). Statuses that raise no event
    (initializing, queued, stopped) and versions without matching subscriptions send
    nothing. Each topic's outcome is recorded as a `notification` event. Never raises.
    """
    status = Status(status).value
    event = STATUS_EVENTS.get(status)
    if event is None:
        return []
    delays = RETRY_DELAYS if retry_delays is None else tuple(retry_delays)
    try:
        return _notify(ctx, version_id, status, event, delays)
    except Exception:
        log.exception("notifications of version %s failed", version_id)
        return []


def _notify(ctx: Context, version_id: int, status: str, event: str,
            delays: Sequence[float]) -> list[Delivery]:
    with ctx.db.read() as session:
        version = session.get(Version, version_id)
        if version is None:
            return []
        topics = [t for t, events in _subscriptions(version.spec_json) if event in events]
        if not topics:
            return []
        job = session.exec(select(Job.name).where(Job.id == version.job_id)).one()
        metrics = {r.name: r.value for r in session.exec(
            select(MetricSummary).where(MetricSummary.version_id == version_id))}
    label = version_label(version.number)
    reason = version.reason if version.status == status else ""
    title, body = compose(job, label, status, reason,
                          duration_seconds(version.started_at, version.finished_at), metrics)
    out: list[Delivery] = []
    for topic in topics:
        prefix = f"{event} to topic {topic!r}:"
        if _already_sent(ctx.db, version_id, prefix):
            continue
        entry = ctx.settings.topic(topic)
        if entry is None:
            result = Delivery(topic, event, False, 0, 0, 0, "the topic is no longer configured")
        else:
            result = deliver(topic, entry.urls, event, title, body, status, delays)
        try:
            _record(ctx.db, version_id, result.message)
        except Exception:
            log.exception("could not record a notification of version %s", version_id)
        out.append(result)
    return out


_pending: list[threading.Thread] = []
_pending_lock = threading.Lock()


def notify_status_in_background(ctx: Context, version_id: int, status: Status | str
                                ) -> threading.Thread:
    """`notify_status` in a thread, so that retries never hold up the caller.

    A process must call `wait_for_notifications` before it returns from its main
    function: once the interpreter has begun to exit, apprise can no longer load its
    plugins, so a message still on its way then would be lost.
    """
    # Imported here, in the caller's thread: at interpreter exit the import would fail.
    import concurrent.futures.thread  # noqa: F401

    import apprise  # noqa: F401

    thread = threading.Thread(target=notify_status, args=(ctx, version_id, status),
                              name=f"notify-{version_id}-{Status(status).value}")
    with _pending_lock:
        _pending[:] = [t for t in _pending if t.is_alive()]
        _pending.append(thread)
    thread.start()
    return thread


def wait_for_notifications(timeout: float | None = 120.0) -> bool:
    """Wait until every background notification of this process is done.

    Returns False when some are still running after `timeout` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with _pending_lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    with _pending_lock:
        _pending[:] = [t for t in _pending if t.is_alive()]
        return not _pending


def send_topic_test(ctx: Context, name: str) -> Delivery:
    """Send a test message to every URL of topic `name`."""
    entry = ctx.settings.topic(name)
    if entry is None:
        raise NotFoundError(f"topic {name!r} not found")
    title = f"[traindeck] test of topic {name}"
    body = f"A test message from Traindeck on {socket.gethostname()}."
    return deliver(name, entry.urls, "test", title, body, Status.RUNNING.value)


# ------------------------------------------------------------------------------ for the TUI


@dataclass(frozen=True)
class Alert:
    """A status change worth ringing the bell for."""

    job: str
    version: str
    status: str
    reason: str

    @property
    def title(self) -> str:
        """Short text for OSC 9 / the toast's title."""
        return f"{self.job} {self.version} {self.status}"

    @property
    def text(self) -> str:
        """The toast's text."""
        return self.title + (f": {self.reason}" if self.reason else "")


def latest_event_id(db: Database) -> int:
    """The newest event id (0 when none): where the TUI starts watching from."""
    with db.read() as session:
        rows = session.exec(select(Event.id).order_by(col(Event.id).desc()).limit(1)).all()
    return int(rows[0] or 0) if rows else 0


def subscribed_events_since(db: Database, after_id: int, *,
                            limit: int = 200) -> tuple[list[Alert], int]:
    """Status changes to running/succeeded/failed recorded after event `after_id`.

    Returns `(alerts, cursor)`: the alerts oldest first — only those whose version
    subscribes to the matching event — and the id to pass as `after_id` next time. Reads
    one indexed window of the events table, so polling every second or two is cheap.
    """
    top = latest_event_id(db)  # read first: an event added meanwhile waits for next time
    query = (
        select(Event, Version.number, Version.spec_json, Job.name)
        .join(Version, col(Version.id) == col(Event.version_id))
        .join(Job, col(Job.id) == col(Version.job_id))
        .where(col(Event.id) > after_id, col(Event.id) <= top, Event.kind == "status",
               col(Event.status).in_(list(STATUS_EVENTS)))
        .order_by(col(Event.id)).limit(limit)
    )
    with db.read() as session:
        rows = session.exec(query).all()
    cursor = max(after_id, top) if len(rows) < limit else max(e.id or 0 for e, *_ in rows)
    alerts = []
    for event_row, number, spec_json, job in rows:
        name = STATUS_EVENTS[event_row.status or ""]
        if any(name in events for _, events in _subscriptions(spec_json)):
            _, _, reason = event_row.message.partition(": ")
            alerts.append(Alert(job, version_label(number), event_row.status or "", reason))
    return alerts, cursor


def osc9(text: str) -> str:
    """The OSC 9 escape that makes many terminals show a desktop notification."""
    clean = "".join(ch for ch in text if ch.isprintable())[:200]
    return f"\x1b]9;{clean}\x07"
