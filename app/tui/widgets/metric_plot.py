"""Metric curves drawn with plotext: one metric, one or more versions overlaid."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import pairwise

from textual.app import RenderResult
from textual_plotext import PlotextPlot

Points = Sequence[tuple[int, float]]


def downsample(points: Points, columns: int) -> list[tuple[int, float]]:
    """At most two points per column of `columns` spanning the steps of `points` (in
    step order): each column's lowest and highest value, so spikes stay visible, plus
    the first and last points. A series that short already comes back unchanged.

    Plotext draws a line through every point it is given; a column can show no more
    than its extremes, and 1,000 points per curve cost it seconds for 100 curves.
    """
    if columns < 1 or len(points) <= 2 * columns:
        return list(points)
    steps = [step for step, _ in points]
    values = [value for _, value in points]
    first, span = steps[0], steps[-1] - steps[0]
    bounds = [0, *(bisect_left(steps, first + span * k / columns) for k in range(1, columns)),
              len(points)]
    kept = [0]
    for start, end in pairwise(bounds):
        if start < end:
            chunk = values[start:end]
            low, high = start + chunk.index(min(chunk)), start + chunk.index(max(chunk))
            kept.extend((low, high) if low <= high else (high, low))
    kept.append(len(points) - 1)
    out: list[tuple[int, float]] = []
    last = -1
    for index in kept:
        if index != last:
            out.append(points[index])
            last = index
    return out


class MetricPlot(PlotextPlot):
    """A line plot of `(step, value)` series, one line per version.

    The curves are handed to plotext when the plot is drawn, thinned to what its width
    can show, and again only when that width changes.
    """

    def __init__(self, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None, disabled: bool = False) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._title = ""
        self._curves: list[tuple[str, Points]] = []
        self._empty = ""
        self._drawn_width: int | None = None
        """The width the curves were last handed to plotext for; None: not yet."""

    def show(self, title: str, curves: Sequence[tuple[str, Points]],
             empty: str = "No curve recorded for this metric.") -> None:
        """Draw `curves` (label, points in step order); none with points shows `empty`."""
        self._title = title
        self._curves = list(curves)
        self._empty = empty
        self._drawn_width = None
        self.refresh()

    @property
    def plot_title(self) -> str:
        """The title given to the last `show`."""
        return self._title

    @property
    def curves(self) -> list[tuple[str, Points]]:
        """The curves given to the last `show`, as given (not thinned)."""
        return list(self._curves)

    def render(self) -> RenderResult:
        """Hand the curves to plotext for the current width, then draw."""
        width = self.size.width
        if width != self._drawn_width:
            self._feed(width)
            self._drawn_width = width
        return super().render()

    def _feed(self, width: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self._title)
        plt.xlabel("step")
        drawn = False
        for label, points in self._curves:
            if not points:
                continue
            thinned = downsample(points, width)
            plt.plot([step for step, _ in thinned], [value for _, value in thinned],
                     label=label, marker="braille")
            drawn = True
        if not drawn:
            plt.title(f"{self._title} — {self._empty}" if self._title else self._empty)
