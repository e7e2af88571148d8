"""GPUs and the queue: who holds each GPU, and why every queued version still waits.

A worker reads the inventory (NVML or the config) and the allocations every
`POLL_SECONDS`; the tables redraw only cells whose text changed, so an idle screen sends
nothing to the terminal. A GPU no version holds shows the processes outside Traindeck
that NVML finds on it (someone's notebook), since the scheduler keeps off a GPU they fill.
Slurm pools, where configured, show their partitions as the controller reports them
(`app.machine.slurm_pools`, read in a worker of its own every `SLURM_POLL_SECONDS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import DataTable, Header, Static
from textual.worker import get_current_worker

from app.tui import clock
from app.tui.messages import OpenJob
from app.tui.screens.first_show import FirstShow
from app.tui.themes import theme_colour
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.formatting import format_coarse_duration, format_time
from app.tui.widgets.gpu_table import GpuTable, SyncRow

if TYPE_CHECKING:
    from app.context import Context
    from app.machine import GpuBoard, GpuRow, QueuedRow, SlurmPoolRow
    from app.runtime.gpus import GpuInfo

POLL_SECONDS = 2.0
"""How often the GPUs and the queue are read again."""

GPU_COLUMNS: list[tuple[str, str, int | None]] = [
    # What is on each GPU and how busy it is first: all of it fits 80 columns.
    ("gpu", "GPU", 4), ("name", "Name", 16), ("holder", "Held by", 20), ("util", "Util", 4),
    ("memory", "Memory", 15), ("temp", "Temp", 4), ("pools", "Pool", 12),
    ("since", "Since", 16), ("for", "For", 8),
]
SLURM_POLL_SECONDS = 10.0
"""How often the Slurm controllers are asked again (a round trip per pool each time)."""
SLURM_COLUMNS: list[tuple[str, str, int | None]] = [
    ("pool", "Slurm pool", 12), ("partition", "Partition", 11), ("nodes", "Nodes", 5),
    ("gpus", "GPUs", 4), ("allocated", "In use", 6), ("free", "Free", 4),
    ("pending", "Pending", 7), ("note", "Note", 40),
]
QUEUE_COLUMNS: list[tuple[str, str, int | None]] = [
    ("position", "#", 3), ("version", "Version", 22), ("pool", "Pool", 12),
    ("gpus", "GPUs", 4), ("waited", "Waited", 8), ("reason", "Reason", 54),
]
SOURCES = {"nvml": "read from the NVIDIA driver", "config": "declared in the config"}


def coarse_age(since: datetime | None, now: datetime) -> str:
    """`<1m`, `47m`, `3h 04m`, `2d 05h`: minutes at best, so a poll seldom changes it."""
    if since is None:
        return "—"
    return format_coarse_duration((now - since).total_seconds())


@dataclass(frozen=True)
class GpuExtra:
    """What NVML says of a GPU beyond the board: its temperature and who else is on it."""

    temperature: str = "—"
    foreign: str = ""
    """`python 4312 (ana) +1`: processes outside Traindeck, the biggest first; '' if none."""


def gpu_extras(gpus: list[GpuInfo], own: set[int]) -> dict[int, GpuExtra]:
    """Per whole GPU index, its temperature and the processes outside Traindeck on it."""
    from app.runtime.gpus import foreign_processes

    out = {}
    for gpu in gpus:
        if gpu.mig_index is not None:
            continue
        foreign = foreign_processes(gpu, own)
        text = "" if not foreign else foreign[0].short() + (
            f" +{len(foreign) - 1}" if len(foreign) > 1 else "")
        out[gpu.index] = GpuExtra(
            "—" if gpu.temperature is None else f"{gpu.temperature}°C", text)
    return out


def memory_text(used_mb: int | None, total_mb: int | None) -> str:
    """`12.3/80.0 GiB`, or `—` when the driver did not say."""
    if used_mb is None or total_mb is None:
        return "—"
    return f"{used_mb / 1024:.1f}/{total_mb / 1024:.1f} GiB"


class GpusScreen(FirstShow, Screen[None]):
    """Each GPU with its pool and holder; below, the queue in the order it is served."""

    CSS_PATH = "gpus.tcss"
    AUTO_FOCUS = "#gpus-table"
    BINDINGS = [
        # Priority: the table's own enter (show=False) would hide this one from the footer.
        Binding("enter", "open", "Open job", priority=True, id="gpus.open"),
        Binding("tab", "switch_table", "GPUs/queue", id="gpus.switch"),
        Binding("escape", "back", "Back", id="gpus.back"),
        Binding("ctrl+r", "refresh_now", "Refresh", show=False, id="gpus.refresh"),
    ]

    board: reactive[GpuBoard | None] = reactive(None, init=False, always_update=False)
    """The last GPUs + queue read; None until the first read comes back."""

    class Polled(Message):
        """A fresh read of the GPUs and the queue (or why it failed)."""

        def __init__(self, board: GpuBoard | None, error: str = "",
                     extras: dict[int, GpuExtra] | None = None) -> None:
            super().__init__()
            self.board = board
            self.error = error
            self.extras = extras or {}

    class SlurmPolled(Message):
        """A fresh read of the Slurm pools' partitions from their controllers."""

        def __init__(self, rows: list[SlurmPoolRow]) -> None:
            super().__init__()
            self.rows = rows

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self._timer: Timer | None = None
        self._texts: dict[str, str] = {}
        self._last_error = ""
        self._extras: dict[int, GpuExtra] = {}
        self._has_slurm = any(pool.kind == "slurm" for pool in ctx.settings.pools)
        self._slurm_rows: list[SlurmPoolRow] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("GPUs", id="gpus-title", classes="section-title")
        yield GpuTable(GPU_COLUMNS, id="gpus-table")
        if self._has_slurm:
            yield Static("Slurm pools — asking the controller…", id="slurm-title",
                         classes="section-title")
            yield GpuTable(SLURM_COLUMNS, id="slurm-table")
        yield Static("Queue", id="queue-title", classes="section-title")
        yield GpuTable(QUEUE_COLUMNS, id="queue-table")
        yield Static("", id="queue-reason")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "GPUs and queue"
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self._poll()
        self._timer = self.set_interval(POLL_SECONDS, self._poll)
        if self._has_slurm:
            self._read_slurm(self.ctx)
            self.set_interval(SLURM_POLL_SECONDS, self._poll_slurm)

    def on_screen_resume(self) -> None:
        self._poll()

    # -- reading ---------------------------------------------------------------------------

    def _poll(self) -> None:
        if self.is_active or self.board is None:
            self._read(self.ctx)

    @work(thread=True, exclusive=True, exit_on_error=False, group="gpus-poll")
    def _read(self, ctx: Context) -> None:
        """Read the inventory, the allocations and the queue."""
        from app.errors import TraindeckError
        from app.machine import gpu_board
        from app.runtime.gpus import inventory, whole_gpus
        from app.runtime.scheduler import own_pids

        try:
            gpus = inventory(ctx.settings)
            board = gpu_board(ctx.settings, ctx.db, whole_gpus(gpus))
            own = own_pids(ctx) if any(g.processes for g in gpus) else set()
        except TraindeckError as exc:
            self.post_message(self.Polled(None, str(exc)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.Polled(board, extras=gpu_extras(gpus, own)))

    def _poll_slurm(self) -> None:
        if self.is_active:
            self._read_slurm(self.ctx)

    @work(thread=True, exclusive=True, exit_on_error=False, group="gpus-slurm")
    def _read_slurm(self, ctx: Context) -> None:
        """Ask each Slurm pool's controller for its partition (`sinfo`, `squeue`)."""
        from app.machine import slurm_pools

        rows = slurm_pools(ctx.settings)
        if not get_current_worker().is_cancelled:
            self.post_message(self.SlurmPolled(rows))

    @on(SlurmPolled)
    def _slurm_polled(self, message: SlurmPolled) -> None:
        self._show_slurm(message.rows)

    def _show_slurm(self, rows: list[SlurmPoolRow], force: bool = False) -> None:
        self._slurm_rows = rows
        self.query_one("#slurm-table", GpuTable).sync(
            [self._slurm_row(row) for row in rows], force=force)
        read = [row.usage for row in rows if row.usage is not None]
        free = sum(usage.gpus_free for usage in read)
        pending = sum(usage.pending_jobs for usage in read)
        self._set_text("#slurm-title", f"Slurm pools — {free} GPU(s) free, {pending} "
                       f"job(s) pending" if read else "Slurm pools — no controller answers")

    def _slurm_row(self, row: SlurmPoolRow) -> SyncRow:
        usage = row.usage
        figures = ((str(usage.nodes), str(usage.gpus_total), str(usage.gpus_allocated),
                    str(usage.gpus_free), str(usage.pending_jobs)) if usage else ("—",) * 5)
        texts = (row.name, row.partition, *figures, row.error or "—")
        note = Text(texts[-1], no_wrap=True, overflow="ellipsis",
                    style=theme_colour(self.app, "error", "red") if row.error else "")
        return SyncRow(f"slurm-{row.name}", texts, (Text(row.name, style="bold"),
                                                    *texts[1:-1], note))

    @on(Polled)
    def _polled(self, message: Polled) -> None:
        if message.board is None:
            if message.error != self._last_error:  # one popup per new problem, not per poll
                self.notify(message.error, title="Cannot read the GPUs", severity="error")
            self._last_error = message.error
            return
        self._last_error = ""
        self._extras = message.extras
        self.board = message.board
        self._show(message.board)

    def _show(self, board: GpuBoard, force: bool = False) -> None:
        """Bring the tables and titles up to date, touching only what changed."""
        now = clock.now()
        self.query_one("#gpus-table", GpuTable).sync(
            [self._gpu_row(gpu, now) for gpu in board.gpus], force=force)
        self.query_one("#queue-table", GpuTable).sync(
            [self._queue_row(item, now) for item in board.queue], force=force)
        held = sum(1 for gpu in board.gpus if gpu.holder and gpu.present)
        present = sum(1 for gpu in board.gpus if gpu.present)
        gpus = ("none found" if board.source == "none" else
                f"{present} GPU{'s' if present != 1 else ''} {SOURCES.get(board.source, '')}")
        if present:
            gpus += f"  ·  {held} in use  ·  {present - held} free"
            others = sum(1 for gpu in board.gpus if not gpu.holder
                         and self._extras.get(gpu.index, GpuExtra()).foreign)
            gpus += f" ({others} with others' processes)" if others else ""
        self._set_text("#gpus-title", f"GPUs — {gpus}")
        waiting = len(board.queue)
        queue = (f"Queue — {waiting} waiting, served first come first served" if waiting
                 else "Queue — nothing waiting")
        self._set_text("#queue-title", queue)
        self._show_reason()

    def _set_text(self, selector: str, text: str) -> None:
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            self.query_one(selector, Static).update(text)

    def _gpu_row(self, gpu: GpuRow, now: datetime) -> SyncRow:
        pools = ", ".join(gpu.pools) or "—"
        extra = self._extras.get(gpu.index, GpuExtra())
        holder = gpu.holder or extra.foreign or "free"
        memory = memory_text(gpu.memory_used_mb, gpu.memory_total_mb)
        util = f"{gpu.utilization}%" if gpu.utilization is not None else "—"
        name = gpu.name.removeprefix("NVIDIA ")
        texts = (f"GPU{gpu.index}", name, holder, util, memory, extra.temperature, pools,
                 format_time(gpu.held_since), coarse_age(gpu.held_since, now),
                 str(gpu.present))
        if gpu.holder:
            holder_cell = Text(holder, style=theme_colour(self.app, "status-running", "blue"))
        elif extra.foreign:  # not Traindeck's: the scheduler may keep off it
            holder_cell = Text(holder, style=theme_colour(self.app, "warning", "yellow"))
        else:
            holder_cell = Text(holder, style=theme_colour(self.app, "success", "green"))
        name_cell = Text(name) if gpu.present else Text(
            name, style=theme_colour(self.app, "warning", "yellow"))
        cells = (Text(texts[0], style="bold"), name_cell, holder_cell, *texts[3:9])
        return SyncRow(f"gpu-{gpu.index}", texts, cells)

    def _queue_row(self, item: QueuedRow, now: datetime) -> SyncRow:
        texts = (str(item.position), item.label, item.pool, str(item.gpus),
                 coarse_age(item.queued_at, now), item.reason or "—")
        queued = theme_colour(self.app, "status-queued", "yellow")
        cells = (texts[0], Text(item.label, style=queued), *texts[2:5],
                 Text(texts[5], no_wrap=True, overflow="ellipsis"))
        return SyncRow(str(item.version_id), texts, cells)

    def _theme_changed(self, _theme: Theme) -> None:
        if self.board is not None:
            self._show(self.board, force=True)
        if self._slurm_rows is not None:
            self._show_slurm(self._slurm_rows, force=True)

    # -- the highlighted row ---------------------------------------------------------------

    def _highlighted_queued(self) -> QueuedRow | None:
        if self.board is None:
            return None
        key = self.query_one("#queue-table", GpuTable).highlighted_key()
        return next((q for q in self.board.queue if str(q.version_id) == key), None)

    def _show_reason(self) -> None:
        item = self._highlighted_queued()
        self._set_text("#queue-reason",
                       f"{item.label}: {item.reason or 'waiting for its turn'}" if item else "")

    @on(DataTable.RowHighlighted, "#queue-table")
    def _queue_highlighted(self) -> None:
        self._show_reason()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    # -- actions ---------------------------------------------------------------------------

    def _target(self) -> tuple[str, str] | None:
        """(job, version label) of the highlighted holder or queued version."""
        board = self.board
        if board is None:
            return None
        focused = self.focused
        if isinstance(focused, GpuTable) and focused.id == "slurm-table":
            return None  # a partition, not a version
        if isinstance(focused, GpuTable) and focused.id == "queue-table":
            item = self._highlighted_queued()
            return (item.job, item.version) if item else None
        key = self.query_one("#gpus-table", GpuTable).highlighted_key()
        gpu = next((g for g in board.gpus if f"gpu-{g.index}" == key), None)
        if gpu is None or gpu.holder is None:
            return None
        job, _, version = gpu.holder.rpartition("/")
        return job, version

    def action_open(self) -> None:
        """Open the job of the highlighted holder or queued version."""
        target = self._target()
        if target is None:
            return
        self.post_message(OpenJob(target[0], select=target[1]))

    def action_switch_table(self) -> None:
        """Move to the next table: GPUs, Slurm pools (where configured), queue."""
        tables = list(self.query(GpuTable))
        at = tables.index(self.focused) if self.focused in tables else -1
        tables[(at + 1) % len(tables)].focus()

    def action_refresh_now(self) -> None:
        """Read the GPUs and the queue now."""
        self._read(self.ctx)

    def action_back(self) -> None:
        """Go back to the previous screen."""
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("gpu: open holder's job", "Open the job of the highlighted row",
                            self.action_open)
        yield SystemCommand("gpu: refresh", "Read the GPUs and the queue now",
                            self.action_refresh_now)
