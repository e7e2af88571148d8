"""One version at a glance: status and why, timings, resources, parameters, the spec."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from app.tui.widgets.formatting import (
    format_duration,
    format_resources,
    format_seconds_time,
    format_value,
    run_duration,
)
from app.tui.widgets.status import status_colour, status_text

if TYPE_CHECKING:
    from app.queries import VersionInfo

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
    rows = [
        ("Created", format_seconds_time(info.created)),
        ("Queued", format_seconds_time(info.queued)),
        ("Started", format_seconds_time(info.started)),
        ("Finished", format_seconds_time(info.finished)),
        ("Engine", info.engine or "—"),
        ("Resources", f"{format_resources(info.gpus, info.nodes, info.runtime)}"
                      f"  ·  pool {info.pool}  ·  GPUs held {gpus}"),
        ("Output", info.output or "—"),
        ("Logs", info.log_dir or "—"),
    ]
    for name, value in rows:
        grid.add_row(name, value)
    return grid


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


class VersionOverview(VerticalScroll):
    """The Overview tab of the job screen."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._headline = Text()

    def compose(self) -> ComposeResult:
        yield Static("", id="ov-headline")
        yield Static("", id="ov-reason")
        yield Static("Details", classes="ov-section")
        yield Static("", id="ov-details")
        yield Static("Run parameters", classes="ov-section")
        yield Static("", id="ov-params")
        yield Static("Spec", classes="ov-section")
        yield Static("", id="ov-spec", markup=False)

    def show(self, info: VersionInfo | None) -> None:
        """Show `info` (None: no version selected)."""
        reason = self.query_one("#ov-reason", Static)
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
            colour = status_colour(self.app, info.status)
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
