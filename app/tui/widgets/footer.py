"""The key footer, rebuilt only when the keys it shows change.

Textual's Footer removes and mounts all of its keys whenever its screen says the
bindings may have changed: on every focus move, every `refresh_bindings`, and while
the screen is hidden under another. Each rebuild styles a dozen widgets again; opening
a job screen did four of them and the hidden job list one more. This footer compares
what it would show with what it shows, and rebuilds only on a difference, and only
while its screen is the one on top (a screen that comes back to the top refreshes its
bindings, and so its footer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

if TYPE_CHECKING:
    from textual.screen import Screen

KEPT_ACTIONS = frozenset({"help", "app.help"})
"""Keys the footer keeps however narrow it is (the help lists every other key)."""


class KeyFooter(Footer):
    """A Footer that skips rebuilds which would show the same keys."""

    def __init__(self, *, compact: bool = False, id: str | None = None) -> None:
        super().__init__(compact=compact, id=id)
        self._shown: tuple[Any, ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not screen.is_current:
            return  # (it refreshes its bindings when it is on top again)
        # Before the next frame rather than after it: a new screen's keys are then in its
        # first frame, not laid out and drawn in one more. Changes that come together are
        # compared, and rebuilt once.
        self.call_next(self._rebuild_if_changed)

    def compose(self) -> ComposeResult:
        """Textual's keys, less the last ones that would not fit: a key is shown whole or not.

        Keys come in priority order (the focused widget's, the screen's, then the app's);
        the help key stays, since the help lists every key the footer leaves out.
        """
        widgets = list(super().compose())
        palette = [w for w in widgets if isinstance(w, FooterKey)
                   and w.has_class("-command-palette")]
        keys = [w for w in widgets if w not in palette]
        room = self.app.size.width - sum(self._key_width(w) + 2 for w in palette)
        needed = sum(self._key_width(w) for w in keys)
        for key in reversed(list(keys)):
            if needed <= room:
                break
            if isinstance(key, FooterKey) and key.action not in KEPT_ACTIONS:
                keys.remove(key)
                needed -= self._key_width(key)
        yield from keys
        yield from palette

    def _key_width(self, widget: object) -> int:
        """Cells a key takes in this footer (Textual's paddings and margins)."""
        if not isinstance(widget, FooterKey):
            return 0
        text = len(widget.key_display) + len(widget.description)
        return text + 2 if self.compact else text + 3

    def on_resize(self, event: events.Resize) -> None:
        """A wider or narrower terminal shows more or fewer keys."""
        self.call_next(self._rebuild_if_changed)

    def shown_keys(self) -> tuple[Any, ...]:
        """What the footer would show now: each key, its label, and whether it is on."""
        app = self.app
        active = self.screen.active_bindings  # (worked out afresh on each read)
        keys = tuple(
            (binding.key, app.get_key_display(binding), binding.description,
             binding.action, enabled, tooltip, binding.group)
            for (_, binding, enabled, tooltip) in active.values()
            if binding.show
        )
        palette = active.get(app.COMMAND_PALETTE_BINDING)
        return (keys, palette is not None and palette[2], self.show_command_palette,
                self.compact, self.app.size.width)

    async def _rebuild_if_changed(self) -> None:
        if not self.is_attached or not self.screen.is_current:
            return
        keys = self.shown_keys()
        if keys != self._shown:
            self._shown = keys
            await self.recompose()
