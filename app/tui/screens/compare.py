"""Versions side by side: differing run parameters, metrics with the best marked, curves.

Columns are versions. Parameters that are the same everywhere are hidden until `a`; each
metric's best value (highest for scores, lowest for losses) is bold in the success colour
and starred; `n`/`p` choose the metric whose curves are overlaid below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from app.tui.widgets.formatting import format_value
from app.tui.widgets.key_table import KeyTable
from app.tui.widgets.metric_plot import MetricPlot
from app.tui.widgets.status import status_text

if TYPE_CHECKING:
    from app.context import Context
    from app.queries import Comparison

Series = dict[int, dict[str, list[tuple[int, float]]]]


class CompareScreen(Screen[None]):
    """Compare versions of one job."""

    CSS_PATH = "compare.tcss"
    BINDINGS = [
        Binding("escape", "back", "Back", id="compare.back"),
        Binding("a", "toggle_all", "All/differing params", id="compare.toggle-all"),
        Binding("n", "next_metric", "Next metric", id="compare.next-metric"),
        Binding("p", "previous_metric", "Previous metric", id="compare.previous-metric"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="compare.reload"),
    ]

    show_all: reactive[bool] = reactive(False, init=False)
    """Show every run parameter, not only those that differ."""
    metric: reactive[str] = reactive("", init=False)
    """The metric whose curves are plotted."""

    class Loaded(Message):
        """The comparison and the curves, read by a worker (or why they could not be)."""

        def __init__(self, comparison: Comparison | None, series: Series,
                     error: str = "") -> None:
            super().__init__()
            self.comparison = comparison
            self.series = series
            self.error = error

    def __init__(self, ctx: Context, job: str, labels: list[str] | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.job = job
        self.labels = labels
        """Versions to compare; None compares all of the job's versions."""
        self._comparison: Comparison | None = None
        self._series: Series = {}
        self._row_metrics: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Reading versions…", id="compare-summary")
        yield KeyTable(id="compare-table", cursor_type="row")
        yield MetricPlot(id="compare-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"compare {self.job}"
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-load")
    def _load(self) -> None:
        """Read the comparison and every compared version's curves."""
        from app import queries
        from app.errors import TraindeckError

        try:
            comparison = queries.compare(self.ctx.db, self.job, self.labels)
            series = queries.metric_series(self.ctx.db, comparison.version_ids,
                                           comparison.metric_names or None)
        except TraindeckError as exc:
            self.post_message(self.Loaded(None, {}, str(exc)))
            return
        self.post_message(self.Loaded(comparison, series))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.comparison is None:
            self.query_one("#compare-summary", Static).update(message.error)
            self.notify(message.error, title="Cannot compare", severity="error")
            return
        self._comparison = message.comparison
        self._series = message.series
        names = self._plottable_metrics()
        if self.metric not in names:
            with_curves = [n for n in names if any(n in per for per in self._series.values())]
            first = (with_curves or names or [""])[0]
            self.set_reactive(CompareScreen.metric, first)
        self._fill_table()
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
        table.add_row(self._section("Metrics (final values, ★ best)"),
                      *([""] * len(comparison.versions)), key="section-metrics")
        if not comparison.metric_names:
            table.add_row(Text("  (none reported)", style="dim"),
                          *([""] * len(comparison.versions)), key="metrics-none")
        for name in comparison.metric_names:
            key = f"metric-{name}"
            self._row_metrics[key] = name
            table.add_row(self._metric_label(name), *self._metric_cells(name), key=key)
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
        self.query_one("#compare-summary", Static).update(text)

    # -- plot ------------------------------------------------------------------------------

    def _plottable_metrics(self) -> list[str]:
        """Metrics in display order, then any with curves but no final value."""
        comparison = self._comparison
        if comparison is None:
            return []
        names = list(comparison.metric_names)
        extra = {n for per in self._series.values() for n in per} - set(names)
        return names + sorted(extra)

    def _plot(self) -> None:
        comparison = self._comparison
        plot = self.query_one(MetricPlot)
        if comparison is None or not self.metric:
            plot.show("", [], empty="No metrics to plot.")
            return
        curves = [
            (label, self._series.get(vid, {}).get(self.metric, []))
            for label, vid in zip(comparison.versions, comparison.version_ids, strict=True)
        ]
        plot.show(self.metric, curves)

    def watch_metric(self, old: str, new: str) -> None:
        table = self.query_one("#compare-table", KeyTable)
        for name in (old, new):
            key = f"metric-{name}"
            if name and key in self._row_metrics:
                table.update_cell(key, "name", self._metric_label(name))
        self._update_summary()
        self._plot()

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

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("compare: toggle all parameters", "All or only differing",
                            self.action_toggle_all)
        yield SystemCommand("compare: next metric", "Plot the next metric",
                            self.action_next_metric)
        yield SystemCommand("compare: previous metric", "Plot the previous metric",
                            self.action_previous_metric)
        yield SystemCommand("compare: reload", "Read the versions again", self.action_reload)
