"""The Metrics tab: final values (f1, recall, precision, accuracy first) and their curves."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from app.formatting import format_value
from app.tui.widgets.key_table import KeyTable
from app.tui.widgets.metric_plot import MetricPlot


class MetricsView(Horizontal):
    """Final values on the left; the curve of the highlighted metric on the right."""

    HELP_GROUP = "Metrics"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._names: list[str] = []
        self._series: dict[str, list[tuple[int, float]]] = {}
        self._version_label = ""

    def compose(self) -> ComposeResult:
        table = KeyTable(id="metrics-table", cursor_type="row")
        table.add_column("Metric", key="name")
        table.add_column("Final", key="value")
        table.add_column("From", key="source")
        table.add_column("Better", key="goal")
        yield table
        yield Static("", id="metrics-empty", classes="empty-state")
        yield MetricPlot(id="metrics-plot")

    def show(self, label: str, finals: dict[str, float],
             series: dict[str, list[tuple[int, float]]],
             parameters: Collection[str] = ()) -> None:
        """Show one version's metrics: final values and every recorded curve.

        Names among the run `parameters` are settings the script echoed, not results: left
        out. Each final value says where it is from: the run's summary (`metrics.json`,
        often a held-out figure) or the last logged step of its curve.
        """
        from app.metrics import metric_goal, ordered_metric_names

        same_version = label == self._version_label
        self._version_label = label
        self._series = series
        self._names = ordered_metric_names((set(finals) | set(series)) - set(parameters))
        table = self.query_one("#metrics-table", KeyTable)
        previous = table.cursor_row
        table.clear()
        for name in self._names:
            final, source = final_and_source(finals.get(name), series.get(name, []))
            goal = "higher" if metric_goal(name) == "max" else "lower"
            table.add_row(name, format_value(final), source, goal, key=name)
        has_any = bool(self._names)
        empty = self.query_one("#metrics-empty", Static)
        empty.update("No metrics reported yet. Scripts report them as JSON lines, "
                     "a metrics.json in the output folder, or TensorBoard events.")
        empty.display = not has_any
        table.display = has_any
        self.query_one(MetricPlot).display = has_any
        if has_any:
            if same_version:
                row = min(max(previous, 0), len(self._names) - 1)
            else:
                # A new version opens on its first metric that has a curve to draw.
                row = next((i for i, n in enumerate(self._names) if series.get(n)), 0)
            table.move_cursor(row=row, animate=False)
            self._plot(self._names[row])

    @on(DataTable.RowHighlighted, "#metrics-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self._names):
            self._plot(self._names[event.cursor_row])

    def _plot(self, name: str) -> None:
        points = self._series.get(name, [])
        self.query_one(MetricPlot).show(curve_title(name, [points]),
                                        [(self._version_label, points)])


def final_and_source(final: float | None, points: Sequence[tuple[int, float]],
                     ) -> tuple[float | None, str]:
    """A metric's final value and where it is from: `summary` or `step N` (its curve's)."""
    if points and (final is None or final == points[-1][1]):
        return points[-1][1], f"step {points[-1][0]}"
    return final, "summary" if final is not None else ""


def curve_title(name: str, curves: Sequence[Sequence[tuple[int, float]]]) -> str:
    """A plot's title that says its points are logged steps (a summary's final may differ)."""
    return f"{name} by logged step" if any(curves) else name
