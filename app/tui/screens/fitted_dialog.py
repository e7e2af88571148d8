"""Dialogs whose fields scroll on a short terminal while their title and buttons stay.

A dialog is `height: auto`, so that it is as tall as its fields; on a terminal shorter
than that its buttons went off the bottom. A `FittedDialog` caps its `.dialog-fields`
container at the rows left once the dialog's other parts and the footer have theirs.
"""

from __future__ import annotations

from textual import events
from textual.screen import ModalScreen
from textual.widget import Widget

FOOTER_ROWS = 1


class FittedDialog:
    """Mixin for a ModalScreen (put it first among the bases) with one `.dialog-fields`."""

    def on_mount(self) -> None:
        assert isinstance(self, ModalScreen)
        self.call_after_refresh(self._fit_fields)

    def on_resize(self, event: events.Resize) -> None:
        assert isinstance(self, ModalScreen)
        self.call_after_refresh(self._fit_fields)

    def _fit_fields(self) -> None:
        assert isinstance(self, ModalScreen)
        fields = next(iter(self.query(".dialog-fields").results(Widget)), None)
        dialog = fields.parent if fields is not None else None
        if fields is None or not isinstance(dialog, Widget):
            return
        others = sum(child.outer_size.height + child.styles.margin.height
                     for child in dialog.children if child is not fields and child.display)
        chrome = others + dialog.styles.gutter.height + fields.styles.margin.height
        rows = max(3, self.size.height - FOOTER_ROWS - chrome)
        if fields.styles.max_height is None or fields.styles.max_height.value != rows:
            fields.styles.max_height = rows
