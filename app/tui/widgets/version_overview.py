"""One version at a glance: status and why, a transfer under way, timings, resources,
parameters, the spec.

While the version stages `s3://` data or uploads its output and logs, its supervisor
(another process) keeps the transfer's progress in a small file in the version's state
dir (`app.storage.progress.TransferFile`); the overview shows it as a progress bar. The
file is read in a worker: twice a second while a transfer runs, every few seconds while
the version is initializing (staging comes first), and whenever the job screen hands the
overview a fresh look at the version. A version with no transfer costs no timer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml
from rich.color import Color as RichColor
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.color import Color
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ProgressBar, Static

from app.formatting import (
    describe_code,
    describe_devices,
    describe_resource_limits,
    format_duration,
    format_value,
)
from app.readmodels import format_resources
from app.tui.widgets.formatting import WrappedPath, format_seconds_time, run_duration
from app.tui.widgets.status import status_colour, status_text

if TYPE_CHECKING:
    from app.config import Settings
    from app.readmodels import VersionInfo
    from app.storage import TransferSnapshot

TRANSFER_TICK_SECONDS = 0.5
"""How often the progress file is read while a transfer runs."""
STAGING_PROBE_SECONDS = 2.0
"""How often an initializing version is looked at for a transfer that started."""

REASON_TITLES = {
    "failed": "Why it failed",
    "queued": "Waiting for",
    "stopped": "Stopped",
    "initializing": "Starting",
    "running": "Note",
    "succeeded": "Note",
}


def headline(info: VersionInfo, app: App[object] | None = None) -> Text:
    """`V003  ✖ failed  ·  ran 12m 03s  ·  exit code 1`: the line that changes while running."""
    text = Text()
    text.append(f"{info.job} {info.version}", style="bold")
    text.append("  ")
    text.append_text(status_text(app, info.status, bold=True))
    seconds = run_duration(info.started, info.finished)
    if seconds is not None:
        verb = "running for" if info.finished is None else "ran"
        text.append(f"  ·  {verb} {format_duration(seconds)}")
    if info.exit_code is not None:
        text.append(f"  ·  exit code {info.exit_code}")
    if info.parent:
        text.append(f"  ·  from {info.parent}", style="dim")
    return text


def details_table(info: VersionInfo) -> Table:
    """Timings, engine, resources and locations as a two-column grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    gpus = info.allocated_gpus or "—"
    rows: list[tuple[str, RenderableType]] = [
        ("Created", format_seconds_time(info.created)),
        ("Queued", format_seconds_time(info.queued)),
        ("Started", format_seconds_time(info.started)),
        ("Finished", format_seconds_time(info.finished)),
        ("Engine", info.engine or "—"),
        ("Resources", f"{format_resources(info.gpus, info.nodes, info.runtime)}"
                      f"  ·  pool {info.pool}  ·  GPUs held {gpus}"),
        ("Output", WrappedPath(info.output or "—")),
        ("Logs", WrappedPath(_logs_location(info))),
    ]
    devices = describe_devices(info.allocated_gpus, info.allocated_uuids, "\n")
    if devices:
        # One a line, cut rather than folded: a UUID is told apart by its start.
        rows.insert(-2, ("Devices", Text(devices, no_wrap=True, overflow="ellipsis")))
    limits = limits_text(info)
    if limits:
        rows.insert(-2, ("Limits", limits))
    if info.code:
        rows.insert(-2, ("Code", describe_code(info.code)))
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def limits_text(info: VersionInfo) -> str:
    """The spec's per-node limits, processes and network in words ("" when none is set)."""
    return describe_resource_limits(info.spec.get("resources") or {}, info.runtime)


def _logs_location(info: VersionInfo) -> str:
    """Where the logs go: an object-storage folder names the local copy too."""
    from app.specs.spec import is_remote

    local = info.log_dir or "—"
    spec_log_dir = str(info.spec.get("log_dir") or "")
    if not is_remote(spec_log_dir):
        return local
    return f"{spec_log_dir.rstrip('/')}/{info.version}  (written locally to {local})"


def parameters_table(info: VersionInfo) -> Table | Text:
    """Run parameters as `name  value` rows, passed to the boot file as `--name=value`."""
    if not info.parameters:
        return Text("No run parameters.", style="dim")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name in sorted(info.parameters):
        grid.add_row(name, format_value(info.parameters[name]))
    return grid


def transfer_title(snapshot: TransferSnapshot) -> Text:
    """`Staging s3://bucket/data  ·  12 of 40 files · 35.2 MiB/s`: what moves where, how."""
    text = Text()
    text.append(snapshot.what.capitalize(), style="bold")
    text.append(f" {snapshot.uri}", style="bold")
    pace = snapshot.pace()
    if pace:
        text.append(f"  ·  {pace}", style="dim")
    return text


class TransferBox(Vertical):
    """A transfer under way: what moves where, a bar, and the amounts.

    Mounted by the overview when a version shows its first transfer (most never do)."""

    DEFAULT_CSS = """
    TransferBox {
        height: auto;
        margin-top: 1;
    }
    TransferBox #ov-transfer-row {
        height: 1;
    }
    TransferBox #ov-transfer-bar {
        width: auto;
        margin-right: 2;
    }
    TransferBox #ov-transfer-stats {
        width: 1fr;
        color: $text-muted;
    }
    """

    def __init__(self, snapshot: TransferSnapshot) -> None:
        super().__init__(id="ov-transfer")
        self._first = snapshot

    def compose(self) -> ComposeResult:
        yield Static("", id="ov-transfer-title")
        with Horizontal(id="ov-transfer-row"):
            yield ProgressBar(total=1, show_eta=False, id="ov-transfer-bar")
            yield Static("", id="ov-transfer-stats")

    def on_mount(self) -> None:
        self.show(self._first)

    def show(self, snapshot: TransferSnapshot) -> None:
        """Show where `snapshot` has got to."""
        self.query_one("#ov-transfer-title", Static).update(transfer_title(snapshot))
        bar = self.query_one("#ov-transfer-bar", ProgressBar)
        total = max(snapshot.total, 1)
        bar.update(total=total, progress=total if snapshot.total <= 0 else snapshot.done)
        self.query_one("#ov-transfer-stats", Static).update(snapshot.amount())


class VersionOverview(VerticalScroll):
    """The Overview tab of the job screen."""

    class TransferRead(Message):
        """What the progress file of version `version_id` says (None: no transfer)."""

        def __init__(self, version_id: int, snapshot: TransferSnapshot | None) -> None:
            super().__init__()
            self.version_id = version_id
            self.snapshot = snapshot

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._headline = Text()
        self._version_id: int | None = None
        self._transfer: TransferSnapshot | None = None
        self._tick: Timer | None = None
        """Reads the progress file while a transfer runs."""
        self._probe: Timer | None = None
        """Looks for a transfer while the version is initializing."""

    def compose(self) -> ComposeResult:
        yield Static("", id="ov-headline")
        yield Static("", id="ov-reason")
        yield Static("Details", classes="ov-section", id="ov-details-title")
        yield Static("", id="ov-details")
        yield Static("Run parameters", classes="ov-section")
        yield Static("", id="ov-params")
        yield Static("Spec", classes="ov-section")
        yield Static("", id="ov-spec", markup=False)

    def show(self, info: VersionInfo | None) -> None:
        """Show `info` (None: no version selected)."""
        reason = self.query_one("#ov-reason", Static)
        self._follow_transfer(info)
        if info is None:
            self._headline = Text("No version selected.")
            self.query_one("#ov-headline", Static).update(self._headline)
            reason.display = False
            for part in ("#ov-details", "#ov-params", "#ov-spec"):
                self.query_one(part, Static).update("")
            return
        self.refresh_headline(info)
        reason.display = bool(info.reason)
        if info.reason:
            # (as Rich reads it: `color(9)` under an ANSI theme, which CSS styles refuse)
            colour = Color.from_rich_color(RichColor.parse(status_colour(self.app, info.status)))
            reason.border_title = REASON_TITLES.get(info.status, "Reason")
            reason.styles.border = ("round", colour)
            reason.styles.border_title_color = colour
            reason.update(Text(info.reason, style="bold" if info.status == "failed" else ""))
        self.query_one("#ov-details", Static).update(details_table(info))
        self.query_one("#ov-params", Static).update(parameters_table(info))
        spec = yaml.safe_dump(info.spec, sort_keys=False, allow_unicode=True).rstrip()
        self.query_one("#ov-spec", Static).update(spec)

    def refresh_headline(self, info: VersionInfo) -> None:
        """Redraw only the headline (a running version's duration moves on)."""
        line = headline(info, self.app)
        if line != self._headline:
            self._headline = line
            self.query_one("#ov-headline", Static).update(line)
        self._follow_transfer(info)

    # -- a transfer under way ----------------------------------------------------------------

    def _follow_transfer(self, info: VersionInfo | None) -> None:
        """Look for a transfer of the version shown (now, and later while it may start)."""
        if info is None or info.id != self._version_id:
            self._stop_timers()
            self._show_transfer(None)
        self._version_id = info.id if info is not None else None
        if info is None:
            return
        if info.status == "initializing":
            if self._probe is None:
                self._probe = self.set_interval(STAGING_PROBE_SECONDS, self._read_now)
        elif self._probe is not None:
            self._probe.stop()
            self._probe = None
        if self._tick is None:
            # Once what is shown now is drawn: the first read in a session loads the
            # runtime's and the storage's code, in a thread that would otherwise take turns
            # with drawing the job screen that is opening (tens of milliseconds of it).
            self.call_after_refresh(self._read_now)

    def _stop_timers(self) -> None:
        for timer in (self._tick, self._probe):
            if timer is not None:
                timer.stop()
        self._tick = self._probe = None

    def _read_now(self) -> None:
        ctx = getattr(self.app, "ctx", None)
        if ctx is None or self._version_id is None:
            return
        self._read_transfer(ctx.settings, self._version_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="overview-transfer")
    def _read_transfer(self, settings: Settings, version_id: int) -> None:
        """Read the version's progress file (a few hundred bytes)."""
        from app.runtime.plan import state_dir
        from app.storage import read_transfer, transfer_path

        snapshot = read_transfer(transfer_path(state_dir(settings, version_id)))
        self.post_message(self.TransferRead(version_id, snapshot))

    @on(TransferRead)
    def _transfer_read(self, message: TransferRead) -> None:
        message.stop()
        if message.version_id != self._version_id:
            return
        self._show_transfer(message.snapshot)
        if message.snapshot is not None and self._tick is None:
            self._tick = self.set_interval(TRANSFER_TICK_SECONDS, self._read_now)
        elif message.snapshot is None and self._tick is not None:
            self._tick.stop()
            self._tick = None

    def _show_transfer(self, snapshot: TransferSnapshot | None) -> None:
        if snapshot == self._transfer:
            return
        self._transfer = snapshot
        boxes = self.query(TransferBox)
        if snapshot is None:
            boxes.set(display=False)
        elif boxes:
            box = boxes.first()
            box.display = True
            box.show(snapshot)
        else:
            self.mount(TransferBox(snapshot), before="#ov-details-title")

    @property
    def transfer(self) -> TransferSnapshot | None:
        """The transfer shown (None: none under way)."""
        return self._transfer
