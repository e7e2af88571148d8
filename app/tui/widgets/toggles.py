"""A checkbox and a radio button whose mark shows whether they are on without colour.

Textual draws the same mark (`X`, `●`) on and off and tells them apart by colour alone:
on a monochrome terminal, or to a colour-blind user, every box looks ticked. Here the
mark is drawn only when the button is on.
"""

from __future__ import annotations

from textual.content import Content
from textual.style import Style
from textual.widgets import Checkbox, RadioButton
from textual.widgets._toggle_button import ToggleButton


def _marked_button(button: ToggleButton) -> Content:
    """`▐X▌` when on, `▐ ▌` when off (Textual's look otherwise)."""
    button_style = button.get_visual_style("toggle--button")
    side_style = Style(foreground=button_style.background,
                       background=button.background_colors[1])
    return Content.assemble(
        (button.BUTTON_LEFT, side_style),
        (button.BUTTON_INNER if button.value else " ", button_style),
        (button.BUTTON_RIGHT, side_style),
    )


class Check(Checkbox):
    """A Checkbox whose `X` is there only when it is ticked."""

    @property
    def _button(self) -> Content:
        return _marked_button(self)


class Radio(RadioButton):
    """A RadioButton whose `●` is there only when it is the chosen one."""

    @property
    def _button(self) -> Content:
        return _marked_button(self)
