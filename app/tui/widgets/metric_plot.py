"""Metric curves drawn with plotext: one metric, one or more versions overlaid."""

from __future__ import annotations

from textual_plotext import PlotextPlot


class MetricPlot(PlotextPlot):
    """A line plot of `(step, value)` series, one line per version."""

    def show(self, title: str, curves: list[tuple[str, list[tuple[int, float]]]],
             empty: str = "No curve recorded for this metric.") -> None:
        """Draw `curves` (label, points); an empty list shows `empty` instead."""
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        plt.xlabel("step")
        drawn = False
        for label, points in curves:
            if not points:
                continue
            steps = [step for step, _ in points]
            values = [value for _, value in points]
            plt.plot(steps, values, label=label, marker="braille")
            drawn = True
        if not drawn:
            plt.title(f"{title} — {empty}" if title else empty)
        self.refresh()
