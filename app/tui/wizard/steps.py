"""The wizard's step indicator: its steps in one line, the current one standing out."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Label


class StepIndicator(Horizontal):
    """The wizard's steps in one line; the current one stands out, done ones are ticked."""

    DEFAULT_CSS = """
    StepIndicator {
        height: 1;
        width: 1fr;
        padding: 0 1;
    }
    StepIndicator > .step-label {
        color: $text-muted;
    }
    StepIndicator > .step-label.-done {
        color: $text-success;
    }
    StepIndicator > .step-label.-current {
        background: $accent;
        color: $text;
        text-style: bold;
    }
    StepIndicator > .step-sep {
        color: $text-muted;
        padding: 0 1;
    }
    """

    current: reactive[int] = reactive(1)
    """The step being shown, from 1."""
    compact: reactive[bool] = reactive(False)
    """True when the titles do not fit: only the current step's is written out."""

    def __init__(self, titles: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.titles = tuple(titles)

    def compose(self) -> ComposeResult:
        for number, title in enumerate(self.titles, 1):
            if number > 1:
                yield Label("›", classes="step-sep")
            yield Label(f" {number} {title} ", id=f"step-label-{number}", classes="step-label")

    def on_resize(self) -> None:
        # Cells needed with every title written out (" 1 title " each, separators between).
        full = sum(len(t) + 4 for t in self.titles) + 3 * (len(self.titles) - 1) + 2
        self.compact = self.size.width < full

    def watch_compact(self) -> None:
        self.watch_current(self.current)

    def watch_current(self, current: int) -> None:
        for number, title in enumerate(self.titles, 1):
            label = self.query_one(f"#step-label-{number}", Label)
            label.set_class(number == current, "-current")
            label.set_class(number < current, "-done")
            mark = "✓" if number < current else str(number)
            full = number == current or not self.compact
            label.update(f" {mark} {title} " if full else f" {mark} ")

