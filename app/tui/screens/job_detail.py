"""One job: its version tree on the left, the selected version's tabs on the right.

Opens on the latest version. Quick actions act on the selected version; an action the
version does not allow is dimmed in the footer, and pressing it says why. The Logs,
Metrics and Events tabs are filled the first time they are shown, so that opening a job
costs only the tree and the overview.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Header, Input, Static, Tree
from textual.worker import get_current_worker

from app.tui.screens.first_show import FirstShow
from app.tui.screens.version_actions import ACTIVE, VersionActionsScreen
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.tab_strip import TabStrip
from app.tui.widgets.version_overview import VersionOverview
from app.tui.widgets.version_tree import VersionTree

if TYPE_CHECKING:
    from app.context import Context
    from app.jobs import VersionRef
    from app.readmodels import EventInfo, VersionInfo

POLL_SECONDS = 2.0
"""How often the job's versions are re-read for status changes."""
TABS = ("overview", "logs", "metrics", "events")
PANES = {"overview": "overview-pane", "logs": "logs", "metrics": "metrics", "events": "events"}
"""The id of each tab's pane (the Logs, Metrics and Events panes are made when first shown)."""
PANE_IDS = frozenset(PANES.values())
TAB_FOCUS = {"logs": "#log-view", "metrics": "#metrics-table", "events": "#events-table"}
"""What takes the keys when a tab is shown (the version tree, for the overview)."""


def _tab_content(tab: str) -> Widget:
    """What the Logs, Metrics or Events tab shows (its code is loaded when first shown:
    the metrics' plotting library alone is a tenth of opening a job)."""
    if tab == "logs":
        from app.tui.widgets.log_panel import LogPanel

        return LogPanel(id="log-panel")
    if tab == "metrics":
        from app.tui.widgets.metrics_view import MetricsView

        return MetricsView(id="metrics-view")
    from app.tui.widgets.events_table import EventsTable

    return EventsTable(id="events-table")


def matches_filter(info: VersionInfo, text: str) -> bool:
    """Every word of `text` must match the label, the status or `status:X`."""
    for word in text.lower().split():
        if word.startswith("status:"):
            if info.status != word.split(":", 1)[1]:
                return False
        elif word not in info.version.lower() and word not in info.status:
            return False
    return True


def _same(a: VersionInfo | None, b: VersionInfo | None) -> bool:
    """Equal apart from the duration (it moves on while running)."""
    if a is None or b is None:
        return a is b
    return dataclasses.replace(a, duration=None) == dataclasses.replace(b, duration=None)


class JobDetailScreen(FirstShow, VersionActionsScreen):
    """A job's versions, one version's overview, logs, metrics and events."""

    AUTO_FOCUS = "#version-tree"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    """Below 100 columns the version tree gives the tabs more room."""
    BINDINGS = [
        Binding("escape", "back", "Back", id="job.back"),
        Binding("slash", "filter", "Filter", id="job.filter"),
        Binding("m", "modify", "Modify", id="version.modify"),
        Binding("x", "stop", "Stop", id="version.stop"),
        Binding("d", "delete", "Delete", id="version.delete"),
        Binding("C", "compare", "Compare", id="job.compare"),
        Binding("t", "tensorboard", "TensorBoard", id="version.tensorboard"),
        Binding("M", "create_model", "Model", id="version.create-model"),
        Binding("p", "save_parameters", "Save params", id="version.save-parameters"),
        Binding("c", "code_diff", "Code diff", show=False, id="version.code-diff"),
        Binding("1", "tab('overview')", "Overview tab", show=False, id="job.tab-overview"),
        Binding("2", "tab('logs')", "Logs tab", show=False, id="job.tab-logs"),
        Binding("3", "tab('metrics')", "Metrics tab", show=False, id="job.tab-metrics"),
        Binding("4", "tab('events')", "Events tab", show=False, id="job.tab-events"),
    ]

    selected: reactive[str | None] = reactive(None, init=False)
    """Label of the version shown on the right (`V003`)."""
    version_filter: reactive[str] = reactive("", init=False)
    """Words that versions must match (label, status, `status:X`)."""
    marked: reactive[frozenset[str]] = reactive(frozenset(), init=False)
    """Versions marked with space for comparison."""

    class VersionsLoaded(Message):
        """The job's versions, read by a worker (or why they could not be)."""

        def __init__(self, versions: list[VersionInfo], error: str = "") -> None:
            super().__init__()
            self.versions = versions
            self.error = error

    class DetailLoaded(Message):
        """Curves and events of one version."""

        def __init__(self, label: str, series: dict[str, list[tuple[int, float]]],
                     events: list[EventInfo]) -> None:
            super().__init__()
            self.label = label
            self.series = series
            self.events = events

    def __init__(self, ctx: Context, job: str, *, select: str | None = None,
                 versions: list[VersionInfo] | None = None) -> None:
        """`versions`: the job's versions, already read (the screen is then drawn with
        them at once); None: the screen reads them."""
        super().__init__()
        self._preloaded = versions
        self.ctx = ctx
        self.job = job
        self._versions: list[VersionInfo] = []
        self._by_label: dict[str, VersionInfo] = {}
        self._loaded = False
        self._want: str | None = select
        self._shown_info: VersionInfo | None = None
        self._shown_detail: tuple[Any, ...] | None = None
        self._detail: JobDetailScreen.DetailLoaded | None = None
        self._filled: set[str] = set()
        self._ready: set[str] = set()
        self._focus_when_ready: str | None = None
        self._resumed = False

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        self.take_width_class()
        yield Header()
        with Horizontal(id="detail-body"):
            with Vertical(id="detail-left"):
                yield VersionTree(id="version-tree")  # (the filter goes above it on `/`)
                yield Static("", id="detail-marks")
            with Vertical(id="detail-tabs"):
                yield TabStrip([(tab, tab.capitalize()) for tab in TABS], id="detail-tab-strip")
                yield VersionOverview(id="overview-pane")
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"job {self.job}"
        self._update_marks()
        if self._preloaded is not None:
            self._versions_loaded(self.VersionsLoaded(self._preloaded))
            self._preloaded = None
        else:
            self._load_versions()
        self.set_interval(POLL_SECONDS, self._poll)
        self.query_one(VersionTree).focus()

    # -- reading ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-versions")
    def _load_versions(self) -> None:
        """Read every version of the job."""
        from app import queries
        from app.errors import TraindeckError

        try:
            versions = queries.job_versions(self.ctx.db, self.job)
        except TraindeckError as exc:
            self.post_message(self.VersionsLoaded([], str(exc)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.VersionsLoaded(versions))

    def _poll(self) -> None:
        if self.is_active:
            self._load_versions()
            if self.current is not None and self.current.status in ACTIVE:
                self._read_detail()

    def _read_detail(self) -> None:
        """Read the selected version's curves and events, once a tab shows them."""
        info = self.current
        if info is not None and self._filled & {"metrics", "events"}:
            self._load_detail(info.id, info.version)

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-version")
    def _load_detail(self, version_id: int, label: str) -> None:
        """Read one version's curves and events."""
        from app import queries
        from app.errors import TraindeckError

        try:
            series = queries.metric_series(self.ctx.db, [version_id]).get(version_id, {})
            history = queries.version_events(self.ctx.db, version_id)
        except TraindeckError:
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.DetailLoaded(label, series, history))

    @on(VersionsLoaded)
    def _versions_loaded(self, message: VersionsLoaded) -> None:
        if message.error:
            self.query_one(VersionOverview).show(None)
            self.notify(message.error, title=f"Job {self.job}", severity="error")
            return
        first = not self._loaded
        self._loaded = True
        self._versions = message.versions
        self._by_label = {v.version: v for v in self._versions}
        labels = self._by_label.keys()
        self.marked = frozenset(m for m in self.marked if m in labels)
        want = self._want
        self._want = None
        if want not in labels:
            want = None
        if first and want is None and self._versions:
            want = self._versions[-1].version
        if want is None and self.selected not in labels:
            want = self._versions[-1].version if self._versions else None
        self._show_tree(want or self.selected)
        if want is not None and want != self.selected:
            self.selected = want  # (its watcher refreshes the bindings)
        else:
            self._refresh_current()
            self.refresh_bindings()

    def _show_tree(self, select: str | None) -> None:
        visible = self.visible_versions
        self.query_one(VersionTree).show(visible, set(self.marked), select)

    def _refresh_current(self) -> None:
        info = self.current
        overview = self.query_one(VersionOverview)
        if not _same(info, self._shown_info):
            overview.show(info)
            if info is not None and info.status != getattr(self._shown_info, "status", None):
                self._read_detail()
            self._shown_info = info
        elif info is not None and info.finished is None and info.started is not None:
            overview.refresh_headline(info)

    @on(DetailLoaded)
    def _detail_loaded(self, message: DetailLoaded) -> None:
        info = self.current
        if info is None or message.label != info.version:
            return
        self._detail = message
        key = (info.metrics, message.series, message.events)
        if key == self._shown_detail:
            return
        self._shown_detail = key
        self._show_detail("metrics")
        self._show_detail("events")

    def _show_detail(self, tab: str) -> None:
        """Put the selected version's curves or events in their tab, if it is filled."""
        info, detail = self.current, self._detail
        if tab not in self._ready or info is None or detail is None:
            return
        if detail.label != info.version:
            return
        if tab == "metrics":
            from app.tui.widgets.metrics_view import MetricsView

            view = self.query_one("#metrics-view", MetricsView)
            view.show(info.version, info.metrics, detail.series, info.parameters)
            if not view.display:
                # Shown once what it was given has settled (the table highlights its
                # row after a refresh, and the plot draws what is highlighted).
                self.call_after_refresh(setattr, view, "display", True)
        elif tab == "events":
            from app.tui.widgets.events_table import EventsTable

            self.query_one("#events-table", EventsTable).show(detail.events)

    # -- tabs, filled when first shown -------------------------------------------------------

    @on(TabStrip.Activated, "#detail-tab-strip")
    def _tab_activated(self, event: TabStrip.Activated) -> None:
        self._show_tab(event.tab)

    def _show_tab(self, tab: str) -> None:
        """Show tab `tab`'s pane (made the first time) and mark the tab active."""
        self.query_one(TabStrip).active = tab
        self._fill_tab(tab)
        for pane in self.query_one("#detail-tabs").children:
            if pane.id in PANE_IDS:
                pane.display = pane.id == PANES[tab]

    def _fill_tab(self, tab: str) -> None:
        """Mount a tab's pane and content the first time the tab is shown."""
        if tab not in TAB_FOCUS or tab in self._filled:
            return
        self._filled.add(tab)
        content = _tab_content(tab)
        if tab == "metrics":
            content.display = False  # until it has a version's metrics to show
        pane = Container(content, id=PANES[tab])
        mounting = self.query_one("#detail-tabs").mount(pane)
        if tab != "logs" and self._detail is None:
            self._read_detail()

        async def filled() -> None:
            await mounting
            self._ready.add(tab)
            if tab == "logs":
                if self.current is not None:
                    self._open_log()
            else:
                self._show_detail(tab)
            if self._focus_when_ready == tab:
                self._focus_when_ready = None
                self.query_one(TAB_FOCUS[tab]).focus()

        self.call_later(filled)

    def _open_log(self) -> None:
        """Show the selected version's log, if the Logs tab is filled."""
        if "logs" in self._ready:
            info = self.current
            from app.tui.widgets.log_panel import LogPanel

            self.query_one("#log-panel", LogPanel).open(info.log_dir if info else None)

    # -- selection -------------------------------------------------------------------------

    @property
    def current(self) -> VersionInfo | None:
        """The selected version."""
        return self._by_label.get(self.selected) if self.selected is not None else None

    @property
    def version_count(self) -> int:
        """How many versions the job has."""
        return len(self._versions)

    @property
    def visible_versions(self) -> list[VersionInfo]:
        """Versions that pass the filter."""
        if not self.version_filter.strip():
            return list(self._versions)
        return [v for v in self._versions if matches_filter(v, self.version_filter)]

    def watch_selected(self, label: str | None) -> None:
        info = self.current
        self._shown_info = info
        self._shown_detail = None
        self._detail = None
        self.query_one(VersionOverview).show(info)
        self._open_log()
        if info is not None:
            self._read_detail()
            self.query_one(VersionTree).select_label(info.version)
        self.refresh_bindings()

    @on(Tree.NodeHighlighted, "#version-tree")
    def _node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        # Moving the cursor from code posts events too; only the one for the node under
        # the cursor now is current (older ones would make the selection swing back).
        if event.node.data is not None and event.node is event.control.cursor_node:
            self.selected = event.node.data

    @on(VersionTree.MarkToggled)
    def _mark_toggled(self, message: VersionTree.MarkToggled) -> None:
        self.marked = self.marked ^ {message.label}

    def watch_marked(self) -> None:
        self._show_tree(None)
        self._update_marks()
        self.refresh_bindings()

    def _update_marks(self) -> None:
        hint = self.query_one("#detail-marks", Static)
        if self.marked:
            hint.update(f"{len(self.marked)} marked · C compares them")
        else:
            hint.update("space marks · C compares")

    @on(Input.Changed, "#version-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.version_filter = event.value

    @on(Input.Submitted, "#version-filter")
    def _filter_submitted(self) -> None:
        self.query_one(VersionTree).focus()

    def watch_version_filter(self) -> None:
        self._show_tree(self.selected)
        self.refresh_bindings()

    # -- actions ---------------------------------------------------------------------------

    def action_back(self) -> None:
        """Close the filter, or go back to the job list."""
        fields = self.query("#version-filter").results(Input)
        field = next(fields, None)
        if field is not None and field.display:
            field.value = ""
            field.display = False
            self.version_filter = ""
            self.query_one(VersionTree).focus()
            return
        self.app.pop_screen()

    def action_filter(self) -> None:
        """Filter the versions by label or status."""
        fields = self.query("#version-filter").results(Input)
        field = next(fields, None)
        if field is None:  # (made on first use: most visits never filter)
            field = Input(placeholder="filter: V00, failed, status:running",
                          id="version-filter", classes="filter-input")
            self.query_one("#detail-left").mount(field, before=0)
        field.display = True
        field.focus()

    def action_tab(self, tab: str) -> None:
        """Show one of the tabs (and put the keys on it: `f` and `/` then act on the log)."""
        if tab not in TABS:
            return
        self._show_tab(tab)
        self._focus_when_ready = None
        if tab not in TAB_FOCUS:
            self.query_one(VersionTree).focus()
        elif tab in self._ready:
            self.query_one(TAB_FOCUS[tab]).focus()
        else:
            self._focus_when_ready = tab

    def action_compare(self) -> None:
        """Compare the marked versions, or the filtered ones, or all."""
        if not self.allowed("compare"):
            return
        from app.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(self.ctx, self.job, self.compare_labels()))

    def code_diff_pair(self) -> tuple[str, str] | None:
        """What `c` diffs: the two marked versions, else the selected one and its parent."""
        if len(self.marked) == 2:
            old, new = sorted(self.marked)
            return old, new
        info = self.current
        if info is None or not info.parent or self.marked:
            return None
        return info.parent, info.version

    def disabled_reason(self, action: str) -> str | None:
        """Why `action` cannot run now (None: it can)."""
        if action == "code_diff" and self.code_diff_pair() is None:
            if self.marked:
                return "code diff: mark exactly two versions (or none for the parent's)"
            label = self.current.version if self.current else "no version"
            return f"code diff: {label} has no parent; mark two versions with space"
        return super().disabled_reason(action)

    def action_code_diff(self) -> None:
        """Show how the code differs between the selected version and its parent (or the
        two marked versions)."""
        pair = self.code_diff_pair()
        if pair is None or not self.allowed("code_diff"):
            return
        from app.tui.screens.code_diff import CodeDiffScreen

        self.app.push_screen(CodeDiffScreen(self.ctx, self.job, *pair))

    def compare_labels(self) -> list[str] | None:
        """What `C` compares: marked versions, else the filtered ones, else None (all)."""
        if self.marked:
            return sorted(self.marked)
        if self.version_filter:
            return [v.version for v in self.visible_versions]
        return None

    # -- from other screens ---------------------------------------------------------------

    def data_changed(self, job: str | None) -> None:
        """Something changed (a delete, a stop): read the versions again."""
        if job in (None, self.job):
            self._load_versions()

    def version_created(self, ref: VersionRef) -> None:
        """A new version of this job: show it."""
        if ref.job == self.job:
            self._want = ref.version
            self._load_versions()

    def on_screen_resume(self) -> None:
        # The first resume is the push itself, and `on_mount` already has the versions
        # (reading them twice would pay for both).
        if self._resumed:
            self._load_versions()
        self._resumed = True

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        label = self.selected or "version"
        yield from self.version_commands(label)
        yield SystemCommand("view: compare versions", "Marked, filtered or all versions",
                            self.action_compare)
        yield SystemCommand("view: code diff", "The code of the selected version against "
                            "its parent's, or of the two marked versions",
                            self.action_code_diff)
        yield SystemCommand("view: filter versions", "By label or status", self.action_filter)
        for tab in TABS:
            yield SystemCommand(f"view: {tab} tab", f"Show the {tab} of {label}",
                                lambda tab=tab: self.action_tab(tab))
