"""Screens drawn once when they are first shown.

Textual styles every widget as it is mounted, styles them all again when the new screen
is first shown, lays the screen out, and then lays it out a second time when the screen
is told its size — the size it was just laid out at. On a screen of a few dozen widgets
that is most of the time it takes to appear. A screen built with `FirstShow` takes its
width class (its horizontal breakpoint) before anything is styled, skips the second
styling on its first showing, and skips a layout at the size it already has. A real
resize (a new size) is laid out as before; so is a screen coming back to the top.

Modal screens are not built with it: when one is first shown, the screen beneath it is
laid out again under its backdrop, on the very Resize this would skip.
"""

from __future__ import annotations

from textual import events
from textual.screen import Screen


class FirstShow:
    """Mixin for a Screen (put it first among the bases)."""

    HORIZONTAL_BREAKPOINTS: list[tuple[int, str]] | None = None
    _shown_once = False

    def take_width_class(self) -> None:
        """Set the breakpoint class for the terminal's width now (call it at the start of
        `compose`): the first Resize would otherwise set it once everything is styled,
        and style the whole screen again."""
        assert isinstance(self, Screen)
        current = self._width_class(self.app.size.width)
        for _, name in self.HORIZONTAL_BREAKPOINTS or []:
            self.set_class(name == current, name, update=False)

    def _width_class(self, width: int) -> str | None:
        reached = [(edge, name) for edge, name in self.HORIZONTAL_BREAKPOINTS or []
                   if width >= edge]
        return max(reached)[1] if reached else None

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        if not self._shown_once:
            self._shown_once = True
            event.refresh_styles = False  # (every widget was styled as it was mounted)

    def on_resize(self, event: events.Resize) -> None:
        assert isinstance(self, Screen)
        width_class = self._width_class(event.size.width)
        if event.size == self._compositor.size and (
                width_class is None or self.has_class(width_class)):
            event.prevent_default()  # (laid out at this size, with its class, already)
