"""Event subscriptions delivered through apprise to a real HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import noop_launcher, run_cli
from sqlmodel import select

from app.config import get_settings, load_settings
from app.context import Context
from app.errors import ConflictError, FieldError, NotFoundError
from app.jobs import set_status, submit
from app.notify import (
    add_topic,
    list_topics,
    notify_status,
    notify_status_in_background,
    osc9,
    remove_topic,
    subscribed_events_since,
    wait_for_notifications,
)
from app.runtime.control import wait_final
from app.store.models import Event, MetricSummary, Status, Version

FAST = (0.05, 0.1)


class Hook:
    """An HTTP server on 127.0.0.1 that records every POSTed JSON body."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_first = fail_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if hook.fail_first > 0:
                    hook.fail_first -= 1
                    self.send_response(500)
                else:
                    hook.received.append({"path": self.path, **json.loads(body)})
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def configure(home: Path, topics: list[dict[str, Any]], **other: Any) -> Context:
    (home / "config.yaml").write_text(yaml.safe_dump({**other, "topics": topics}))
    get_settings.cache_clear()
    return Context.open(load_settings())


def job_with(ctx: Context, make_project: Callable[..., Any], subscriptions: list[dict[str, Any]],
             name: str = "demo") -> int:
    project = make_project(name)
    ref = submit(ctx, project.raw(subscriptions=subscriptions), project.base,
                 launcher=noop_launcher)
    return ref.version_id


def notification_events(ctx: Context, version_id: int) -> list[str]:
    with ctx.db.read() as session:
        return list(session.exec(select(Event.message).where(
            Event.version_id == version_id, Event.kind == "notification").order_by(Event.id)))


def test_subscribed_events_arrive_with_their_content_and_only_those(
    home: Path, hook: Hook, make_project: Callable[..., Any],
) -> None:
    ctx = configure(home, [{"name": "ops", "urls": [hook.url()]}])
    vid = job_with(ctx, make_project, [{"topic": "ops",
                                        "events": ["OnJobSucceeded", "OnJobFailed"]}])
    set_status(ctx, vid, Status.QUEUED, "waiting for GPUs", notify=False)
    assert notify_status(ctx, vid, Status.QUEUED, retry_delays=FAST) == []
    set_status(ctx, vid, Status.RUNNING, notify=False)
    assert notify_status(ctx, vid, Status.RUNNING, retry_delays=FAST) == []  # not subscribed
    assert hook.received == []

    with ctx.db.write() as session:
        session.add(MetricSummary(version_id=vid, name="accuracy", value=0.9375))
        session.add(MetricSummary(version_id=vid, name="f1", value=0.91))
    set_status(ctx, vid, Status.SUCCEEDED, exit_code=0, notify=False)
    [delivery] = notify_status(ctx, vid, "succeeded", retry_delays=FAST)
    assert delivery.delivered and delivery.attempts == 1
    [message] = hook.received
    assert message["path"] == "/hook"
    assert message["type"] == "success"
    assert message["title"] == "[traindeck] demo V001 succeeded"
    body = message["message"]
    for line in ("Job: demo", "Version: V001", "Status: succeeded", "Duration: ",
                 "Metrics: f1=0.91 accuracy=0.9375"):
        assert line in body
    assert notification_events(ctx, vid) == ["OnJobSucceeded to topic 'ops': delivered (1 URL)"]

    # Once per event: a second call (a restarted supervisor) sends nothing more.
    assert notify_status(ctx, vid, Status.SUCCEEDED, retry_delays=FAST) == []
    assert len(hook.received) == 1


def test_failed_and_running_events_carry_reason_and_type(
    home: Path, hook: Hook, make_project: Callable[..., Any],
) -> None:
    ctx = configure(home, [{"name": "ops", "urls": [hook.url("a"), hook.url("b")]},
                           {"name": "quiet", "urls": [hook.url("q")]}])
    vid = job_with(ctx, make_project, [
        {"topic": "ops", "events": ["OnJobRunning", "OnJobFailed"]},
        {"topic": "quiet", "events": ["OnJobSucceeded"]},
    ])
    set_status(ctx, vid, Status.RUNNING, notify=False)
    notify_status(ctx, vid, Status.RUNNING, retry_delays=FAST)
    assert sorted(m["path"] for m in hook.received) == ["/a", "/b"]
    assert {m["type"] for m in hook.received} == {"info"}
    hook.received.clear()
    set_status(ctx, vid, Status.FAILED, "exit code 3", exit_code=3, notify=False)
    [delivery] = notify_status(ctx, vid, Status.FAILED, retry_delays=FAST)
    assert delivery.urls == 2 and delivery.delivered
    assert len(hook.received) == 2
    assert all(m["type"] == "failure" and "Reason: exit code 3" in m["message"]
               for m in hook.received)
    assert notification_events(ctx, vid) == [
        "OnJobRunning to topic 'ops': delivered (2 URLs)",
        "OnJobFailed to topic 'ops': delivered (2 URLs)",
    ]


def test_unreachable_url_is_retried_and_recorded_without_raising(
    home: Path, make_project: Callable[..., Any],
) -> None:
    secret = "hunter2-very-secret"
    url = f"json://alice:{secret}@127.0.0.1:{closed_port()}/hooks/{secret}"
    ctx = configure(home, [{"name": "ops", "urls": [url]}])
    vid = job_with(ctx, make_project, [{"topic": "ops", "events": ["OnJobFailed"]}])
    set_status(ctx, vid, Status.FAILED, "killed (OOM)", notify=False)
    [delivery] = notify_status(ctx, vid, Status.FAILED, retry_delays=FAST)
    assert not delivery.delivered
    assert delivery.attempts == 3 and delivery.failed_urls == 1
    [message] = notification_events(ctx, vid)
    assert message.startswith("OnJobFailed to topic 'ops': failed for 1 of 1 URL(s) after 3 tries")
    assert secret not in message and "alice" not in message
    with ctx.db.read() as session:
        version = session.get(Version, vid)
    assert version is not None and (version.status, version.reason) == ("failed", "killed (OOM)")


def test_a_flaky_endpoint_gets_the_message_on_a_retry(
    home: Path, make_project: Callable[..., Any],
) -> None:
    flaky = Hook(fail_first=2)
    try:
        ctx = configure(home, [{"name": "ops", "urls": [flaky.url()]}])
        vid = job_with(ctx, make_project, [{"topic": "ops", "events": ["OnJobRunning"]}])
        set_status(ctx, vid, Status.RUNNING, notify=False)
        [delivery] = notify_status(ctx, vid, Status.RUNNING, retry_delays=FAST)
    finally:
        flaky.close()
    assert delivery.delivered and delivery.attempts == 3
    assert len(flaky.received) == 1


def test_a_status_change_sends_its_subscribed_event_in_the_background(
    home: Path, hook: Hook, make_project: Callable[..., Any],
) -> None:
    ctx = configure(home, [{"name": "ops", "urls": [hook.url()]}])
    vid = job_with(ctx, make_project, [{"topic": "ops", "events": ["OnJobSucceeded"]}])
    set_status(ctx, vid, Status.RUNNING)  # not subscribed: nothing sent
    set_status(ctx, vid, Status.SUCCEEDED)
    assert wait_for_notifications(30)
    assert [m["title"] for m in hook.received] == ["[traindeck] demo V001 succeeded"]
    set_status(ctx, vid, Status.FAILED)  # a final status is never left: nothing more
    assert wait_for_notifications(30)
    assert len(hook.received) == 1


def test_explicit_background_delivery_does_not_hold_up_the_caller(
    home: Path, hook: Hook, make_project: Callable[..., Any],
) -> None:
    ctx = configure(home, [{"name": "ops", "urls": [hook.url()]}])
    vid = job_with(ctx, make_project, [{"topic": "ops", "events": ["OnJobSucceeded"]}])
    set_status(ctx, vid, Status.RUNNING, notify=False)
    set_status(ctx, vid, Status.SUCCEEDED, notify=False)
    thread = notify_status_in_background(ctx, vid, Status.SUCCEEDED)
    assert wait_for_notifications(30) and not thread.is_alive()
    assert [m["title"] for m in hook.received] == ["[traindeck] demo V001 succeeded"]


def test_a_real_run_notifies_from_its_supervisor(
    home: Path, hook: Hook, make_project: Callable[..., Any],
) -> None:
    """The supervisor process sends the messages: no TUI or CLI needs to be open."""
    ctx = configure(home, [{"name": "ops", "urls": [hook.url()]}])
    project = make_project("live")
    ref = submit(ctx, project.raw(subscriptions=[
        {"topic": "ops", "events": ["OnJobRunning", "OnJobSucceeded"]}]), project.base)
    version = wait_final(ctx, "live", ref.version, 60)
    assert version.status == "succeeded"
    deadline = time.monotonic() + 30
    while len(hook.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(m["title"] for m in hook.received) == [
        "[traindeck] live V001 running", "[traindeck] live V001 succeeded"]


def test_a_topic_removed_from_the_config_is_recorded_not_raised(
    home: Path, make_project: Callable[..., Any], hook: Hook,
) -> None:
    ctx = configure(home, [{"name": "ops", "urls": [hook.url()]}])
    vid = job_with(ctx, make_project, [{"topic": "ops", "events": ["OnJobRunning"]}])
    ctx = configure(home, [])
    set_status(ctx, vid, Status.RUNNING, notify=False)
    [delivery] = notify_status(ctx, vid, Status.RUNNING, retry_delays=FAST)
    assert not delivery.delivered
    assert notification_events(ctx, vid) == [
        "OnJobRunning to topic 'ops': not sent: the topic is no longer configured"]
    assert notify_status(ctx, 987654, Status.RUNNING) == []  # no such version: nothing


def test_tui_alerts_list_subscribed_status_changes_after_a_cursor(
    home: Path, hook: Hook, make_project: Callable[..., Any],
) -> None:
    ctx = configure(home, [{"name": "ops", "urls": [hook.url()]}])
    watched = job_with(ctx, make_project, [{"topic": "ops", "events": ["OnJobFailed"]}], "a")
    other = job_with(ctx, make_project, [], "b")
    alerts, cursor = subscribed_events_since(ctx.db, 0)
    assert alerts == []
    for vid in (watched, other):
        set_status(ctx, vid, Status.RUNNING, notify=False)
        set_status(ctx, vid, Status.FAILED, "exit code 1", notify=False)
    alerts, cursor2 = subscribed_events_since(ctx.db, cursor)
    assert [(a.job, a.version, a.status, a.reason) for a in alerts] == [
        ("a", "V001", "failed", "exit code 1")]
    assert alerts[0].text == "a V001 failed: exit code 1"
    assert subscribed_events_since(ctx.db, cursor2) == ([], cursor2)
    assert osc9("a V001 failed\x07\x1b") == "\x1b]9;a V001 failed\x07"


# ------------------------------------------------------------------------------ topics config


def test_add_and_remove_topics_keep_other_settings(home: Path, hook: Hook) -> None:
    config = home / "config.yaml"
    config.write_text("theme: nord\ngpus: [0, 1]\nstop_grace_seconds: 3.5\n")
    config.chmod(0o640)
    info = add_topic("ops", ["json://bob:pw123456@127.0.0.1:1/x", hook.url()], "team alerts")
    assert info.urls[0].startswith("json://bob:****@")
    settings = load_settings()
    assert (settings.theme, settings.gpus, settings.stop_grace_seconds) == ("nord", [0, 1], 3.5)
    assert settings.topic("ops") is not None
    assert settings.topic("ops").urls[1] == hook.url()  # type: ignore[union-attr]
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert not [p for p in home.iterdir() if p.name.startswith(".config.yaml")]

    with pytest.raises(ConflictError, match="already exists"):
        add_topic("ops", [hook.url()])
    add_topic("ops", [hook.url("new")], replace=True)
    assert [t.urls for t in list_topics(load_settings())] == [[hook.url("new")]]
    with pytest.raises(FieldError) as bad:
        add_topic("web", ["nothing://really"])
    assert bad.value.field == "urls[0]"
    with pytest.raises(FieldError):
        add_topic("9bad name", [hook.url()])
    remove_topic("ops")
    assert load_settings().topics == [] and load_settings().theme == "nord"
    with pytest.raises(NotFoundError):
        remove_topic("ops")


def test_a_new_config_file_is_private(home: Path, hook: Hook) -> None:
    add_topic("ops", [hook.url()])
    assert stat.S_IMODE((home / "config.yaml").stat().st_mode) == 0o600


# ------------------------------------------------------------------------------ CLI




def test_topics_cli(home: Path, hook: Hook) -> None:
    code, out = run_cli("topics", "add", "ops", hook.url(), "--description", "alerts")
    assert code == 0 and "added topic 'ops'" in out
    code, out = run_cli("topics", "list", "--json")
    assert json.loads(out) == [{"name": "ops", "description": "alerts", "urls": [hook.url()]}]
    code, out = run_cli("topics", "--json", "show", "ops")
    assert json.loads(out)["name"] == "ops"
    code, out = run_cli("topics", "test", "ops", "--json")
    assert code == 0 and json.loads(out)["delivered"] is True
    assert hook.received[0]["title"] == "[traindeck] test of topic ops"
    with Context.open().db.read() as session:
        from app.store.models import Topic

        assert [t.name for t in session.exec(select(Topic))] == ["ops"]
    code, out = run_cli("topics", "remove", "ops")
    assert code == 0
    code, out = run_cli("topics", "show", "ops")
    assert code == 1 and "topic 'ops' not found" in out
