"""Versions side by side: differing run parameters, metrics with the best marked, curves.

Columns are versions. Parameters that are the same everywhere are hidden until `a`; each
metric's best value (highest for scores, lowest for losses) is bold in the success colour
and starred; `n`/`p` choose the metric whose curves are overlaid below.

Only the plotted metric's curves are read, by a worker each time the metric changes:
100 versions x 50 metrics x 1,000 steps are 5 million points, a thousand times what
the plot can show. The table draws only the version columns in view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static
from textual.widgets.data_table import RowKey
from textual.worker import get_current_worker

from app.formatting import format_value, shorten
from app.tui.screens.first_show import FirstShow
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.key_table import KeyTable
from app.tui.widgets.metric_plot import MetricPlot
from app.tui.widgets.metrics_view import curve_title
from app.tui.widgets.status import status_text

if TYPE_CHECKING:
    from app.context import Context
    from app.readmodels import Comparison

Curves = dict[int, list[tuple[int, float]]]
"""One metric's curves: version id → [(step, value), ...]."""
GpuRows = list[tuple[str, list[float | None]]]
"""`app.readmodels.gpu_compare_rows`: (title, each version's figure or None)."""
SPEC_VALUE_WIDTH = 20
"""A spec field's value is cut to this many characters: two versions fit in 80 columns
(`traindeck compare --json` has them whole)."""


class _VersionTable(KeyTable):
    """The comparison table, rendering only the columns in view.

    DataTable renders every cell of a row before cropping it to the view: with 100
    version columns, ten times what shows. Cells out of view render as blanks of their
    width, and a row's cached render is dropped whenever the columns in view change.
    (Relies on DataTable's private render methods, like KeyTable; Textual is pinned.)
    """

    _in_view: range = range(0)
    """Indices of the columns at least partly in view when the row was rendered."""
    _row_height = 1

    def _render_line_in_row(
        self, row_key: RowKey, line_no: int, base_style: Style, cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[list[list[Segment]], list[list[Segment]]]:
        left, right = self.scroll_x, self.scroll_x + self.size.width
        first, last, x = -1, -1, 0
        for index, column in enumerate(self.ordered_columns):
            width = column.get_render_width(self)
            if x + width > left and x < right:
                first = index if first < 0 else first
                last = index
            x += width
        in_view = range(first, last + 1)
        if in_view != self._in_view:
            self._row_render_cache.clear()
            self._in_view = in_view
        row = self.rows.get(row_key)
        self._row_height = row.height if row is not None else self.header_height
        return super()._render_line_in_row(row_key, line_no, base_style, cursor_location,
                                           hover_location)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        if column_index >= self.fixed_columns and column_index not in self._in_view:
            return [[Segment(" " * width, base_style)]] * self._row_height
        return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)


class CompareScreen(FirstShow, Screen[None]):
    """Compare versions of one job."""

    CSS_PATH = "compare.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back", id="compare.back"),
        Binding("a", "toggle_all", "All/differing params", id="compare.toggle-all"),
        Binding("n", "next_metric", "Next metric", id="compare.next-metric"),
        Binding("p", "previous_metric", "Previous metric", id="compare.previous-metric"),
        Binding("c", "code_diff", "Code diff", id="compare.code-diff"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="compare.reload"),
    ]

    show_all: reactive[bool] = reactive(False, init=False)
    """Show every run parameter, not only those that differ."""
    metric: reactive[str] = reactive("", init=False)
    """The metric whose curves are plotted."""

    class Loaded(Message):
        """The comparison, read by a worker (or why it could not be)."""

        def __init__(self, comparison: Comparison | None, error: str = "",
                     gpu_rows: GpuRows | None = None) -> None:
            super().__init__()
            self.comparison = comparison
            self.error = error
            self.gpu_rows = gpu_rows or []

    class CurveNamesLoaded(Message):
        """Which metrics have curves, read by a worker after the comparison."""

        def __init__(self, names: set[str], error: str = "") -> None:
            super().__init__()
            self.names = names
            self.error = error

    class CurvesLoaded(Message):
        """One metric's curves, read by a worker (or why they could not be)."""

        def __init__(self, metric: str, curves: Curves, error: str = "") -> None:
            super().__init__()
            self.metric = metric
            self.curves = curves
            self.error = error

    def __init__(self, ctx: Context, job: str, labels: list[str] | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.job = job
        self.labels = labels
        """Versions to compare; None compares all of the job's versions."""
        self._comparison: Comparison | None = None
        self._curve_names: set[str] = set()
        """Metrics with at least one curve point in a compared version."""
        self._curves: Curves = {}
        """The plotted metric's curves, once read."""
        self._row_metrics: dict[str, str] = {}
        self._gpu_rows: GpuRows = []
        """Peak GPU memory and mean utilisation of each version, from its `sys/` samples."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Reading versions…", id="compare-summary")
        yield _VersionTable(id="compare-table", cursor_type="row")
        yield MetricPlot(id="compare-plot")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = f"compare {self.job}"
        self.query_one(MetricPlot).show("", [], empty="Reading curves…")
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-load")
    def _load(self) -> None:
        """Read the comparison and its GPU figures, then (while the table fills) which
        metrics have curves."""
        from app import queries
        from app.errors import TraindeckError
        from app.readmodels import gpu_compare_rows
        from app.runtime.sampler import gpu_summary

        try:
            comparison = queries.compare(self.ctx.db, self.job, self.labels)
            ids = list(comparison.version_ids)
            gpu_rows = gpu_compare_rows(gpu_summary(self.ctx.db, ids), ids)
        except TraindeckError as exc:
            self.post_message(self.Loaded(None, str(exc)))
            return
        self.post_message(self.Loaded(comparison, gpu_rows=gpu_rows))
        try:
            names = queries.metric_curve_names(self.ctx.db, comparison.version_ids)
        except TraindeckError as exc:
            self.post_message(self.CurveNamesLoaded(set(), str(exc)))
            return
        self.post_message(self.CurveNamesLoaded(names))

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-curves")
    def _load_curves(self, version_ids: list[int], metric: str) -> None:
        """Read `metric`'s curves of the compared versions."""
        from app import queries
        from app.errors import TraindeckError

        try:
            curves = queries.metric_curves(self.ctx.db, version_ids, metric)
        except TraindeckError as exc:
            self.post_message(self.CurvesLoaded(metric, {}, str(exc)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.CurvesLoaded(metric, curves))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.comparison is None:
            self.query_one("#compare-summary", Static).update(message.error)
            self.notify(message.error, title="Cannot compare", severity="error")
            self.query_one(MetricPlot).show("", [], empty="Nothing to plot.")
            return
        self._comparison = message.comparison
        self._gpu_rows = message.gpu_rows
        self._fill_table()

    @on(CurveNamesLoaded)
    def _curve_names_loaded(self, message: CurveNamesLoaded) -> None:
        if message.error:
            self.query_one(MetricPlot).show("", [], empty=message.error)
            return
        self._curve_names = message.names
        names = self._plottable_metrics()
        if self.metric in names:
            self._read_curves()
            return
        with_curves = [n for n in names if n in self._curve_names]
        first = (with_curves or names or [""])[0]
        if first == self.metric:  # "" with nothing to plot: no change for the watcher
            self._read_curves()
        else:
            self.metric = first

    @on(CurvesLoaded)
    def _curves_loaded(self, message: CurvesLoaded) -> None:
        if message.metric != self.metric:
            return  # read for a metric since left; the current one's worker follows
        if message.error:
            self.query_one(MetricPlot).show(self.metric, [], empty=message.error)
            return
        self._curves = message.curves
        self._plot()

    # -- table -----------------------------------------------------------------------------

    def _fill_table(self) -> None:
        comparison = self._comparison
        if comparison is None:
            return
        table = self.query_one("#compare-table", KeyTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        table.add_column("", key="name")
        for label in comparison.versions:
            table.add_column(label, key=label)
        self._row_metrics = {}
        table.add_row(Text("status", style="bold"),
                      *(status_text(self.app, s) for s in comparison.statuses), key="status")
        params = comparison.parameter_names if self.show_all else comparison.differing
        shown = "all" if self.show_all else "differing"
        table.add_row(self._section(f"Run parameters — {shown} (a)"),
                      *([""] * len(comparison.versions)), key="section-params")
        if not params:
            note = "all the same" if comparison.parameter_names else "none"
            table.add_row(Text(f"  ({note})", style="dim"), *([""] * len(comparison.versions)),
                          key="params-none")
        for name in params:
            differs = name in comparison.differing
            cells = [format_value(v) for v in comparison.parameters[name]]
            table.add_row(Text(f"  {name}", style="bold" if differs else ""),
                          *[Text(c, style="" if differs else "dim") for c in cells],
                          key=f"param-{name}")
        if comparison.spec_changes:
            table.add_row(self._section("Spec — other fields that differ"),
                          *([""] * len(comparison.versions)), key="section-spec")
        for path, values in comparison.spec_changes.items():
            cells = (shorten(format_value(v), SPEC_VALUE_WIDTH) for v in values)
            table.add_row(Text(f"  {path}"), *cells, key=f"spec-{path}")
        table.add_row(self._section("Final metrics (★ best)"),
                      *([""] * len(comparison.versions)), key="section-metrics")
        if not comparison.metric_names:
            table.add_row(Text("  (none reported)", style="dim"),
                          *([""] * len(comparison.versions)), key="metrics-none")
        for name in comparison.metric_names:
            key = f"metric-{name}"
            self._row_metrics[key] = name
            table.add_row(self._metric_label(name), *self._metric_cells(name), key=key)
        if self._gpu_rows:
            table.add_row(self._section("GPUs (sampled while running)"),
                          *([""] * len(comparison.versions)), key="section-gpus")
        for title, values in self._gpu_rows:
            table.add_row(Text(f"  {title}"), *map(format_value, values), key=f"gpu-{title}")
        table.move_cursor(row=min(max(cursor, 0), table.row_count - 1), animate=False)
        self._update_summary()

    def _section(self, title: str) -> Text:
        return Text(title, style=f"bold {self.app.theme_variables.get('accent', '')}".strip())

    def _metric_label(self, name: str) -> Text:
        comparison = self._comparison
        goal = comparison.goals.get(name, "max") if comparison else "max"
        arrow = "↑" if goal == "max" else "↓"
        marker = "▸ " if name == self.metric else "  "
        return Text(f"{marker}{name} {arrow}", style="bold" if name == self.metric else "")

    def _metric_cells(self, name: str) -> list[Any]:
        comparison = self._comparison
        if comparison is None:
            return []
        best = comparison.best.get(name, ())
        success = self.app.theme_variables.get("success", "green")
        cells: list[Any] = []
        for index, value in enumerate(comparison.metrics[name]):
            if index in best:
                cells.append(Text(f"{format_value(value)} ★", style=f"bold {success}"))
            else:
                cells.append(Text(format_value(value)))
        return cells

    def _update_summary(self) -> None:
        comparison = self._comparison
        if comparison is None:
            return
        count = len(comparison.versions)
        differing = len(comparison.differing)
        total = len(comparison.parameter_names)
        text = Text()
        text.append(f"{self.job}", style="bold")
        text.append(f" · {count} version{'s' if count != 1 else ''}"
                    f" · {differing} of {total} run parameters differ"
                    f" · {len(comparison.metric_names)} metrics")
        if self.metric:
            text.append(" · plotting ")
            text.append(self.metric, style="bold")
        text.append(" · finals: the summary, else the last step", style="dim")
        self.query_one("#compare-summary", Static).update(text)

    # -- plot ------------------------------------------------------------------------------

    def _plottable_metrics(self) -> list[str]:
        """Metrics in display order, then any with curves but no final value."""
        comparison = self._comparison
        if comparison is None:
            return []
        names = list(comparison.metric_names)
        return names + sorted(self._curve_names - set(names))

    def _read_curves(self) -> None:
        """Plot the metric's curves: at once when it has none, else once a worker has read
        them (the plot keeps what it shows until then; its title names that metric)."""
        comparison = self._comparison
        if comparison is None:
            return
        if not self.metric or self.metric not in self._curve_names:
            self._curves = {}
            self._plot()
            return
        self._load_curves(list(comparison.version_ids), self.metric)

    def _plot(self) -> None:
        comparison = self._comparison
        plot = self.query_one(MetricPlot)
        if comparison is None or not self.metric:
            plot.show("", [], empty="No metrics to plot.")
            return
        curves = [
            (label, self._curves.get(vid, []))
            for label, vid in zip(comparison.versions, comparison.version_ids, strict=True)
        ]
        plot.show(curve_title(self.metric, [points for _label, points in curves]), curves)

    def watch_metric(self, old: str, new: str) -> None:
        table = self.query_one("#compare-table", KeyTable)
        for name in (old, new):
            key = f"metric-{name}"
            if name and key in self._row_metrics:
                # Only these rows: `update_cell` would re-render every column of every
                # visible row (100 versions: thousands of cells) for one marker.
                table.update_row_cells(key, {"name": self._metric_label(name)})
        self._update_summary()
        self._read_curves()

    def watch_show_all(self) -> None:
        self._fill_table()

    @on(DataTable.RowHighlighted, "#compare-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value if event.row_key else None
        if key in self._row_metrics:
            self.metric = self._row_metrics[key]

    # -- actions ---------------------------------------------------------------------------

    def action_back(self) -> None:
        """Back to the job."""
        self.app.pop_screen()

    def action_toggle_all(self) -> None:
        """Show every run parameter, or only those that differ."""
        self.show_all = not self.show_all

    def action_next_metric(self) -> None:
        """Plot the next metric."""
        self._step_metric(1)

    def action_previous_metric(self) -> None:
        """Plot the previous metric."""
        self._step_metric(-1)

    def _step_metric(self, step: int) -> None:
        names = self._plottable_metrics()
        if not names:
            self.notify("compare: no metrics reported by these versions", severity="warning")
            return
        index = names.index(self.metric) if self.metric in names else -step
        self.metric = names[(index + step) % len(names)]

    def action_reload(self) -> None:
        """Read the versions again."""
        self._load()

    def action_code_diff(self) -> None:
        """Show how the code of the first compared version differs from the last one's."""
        comparison = self._comparison
        if comparison is None or len(comparison.versions) < 2:
            self.notify("code diff: needs two versions to compare", severity="warning")
            return
        from app.tui.screens.code_diff import CodeDiffScreen

        self.app.push_screen(CodeDiffScreen(self.ctx, self.job, comparison.versions[0],
                                            comparison.versions[-1]))

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("compare: toggle all parameters", "All or only differing",
                            self.action_toggle_all)
        yield SystemCommand("compare: next metric", "Plot the next metric",
                            self.action_next_metric)
        yield SystemCommand("compare: previous metric", "Plot the previous metric",
                            self.action_previous_metric)
        yield SystemCommand("compare: reload", "Read the versions again", self.action_reload)
        yield SystemCommand("view: code diff", "How the code of the first compared version "
                            "differs from the last one's", self.action_code_diff)
