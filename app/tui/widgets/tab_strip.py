"""A row of tab labels over an underline, drawn by one widget.

It looks and acts like the tab row of Textual's `TabbedContent` (labels, the bar under
the active one, `left`/`right` when focused, a click on a label), but it is one widget
instead of a dozen (the row, a scroller, a tab per label, the underline): a screen that
opens often pays for every widget it mounts, styles and lays out. The owner shows the
pane of the active tab.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.renderables.bar import Bar
from textual.widget import Widget


class TabStrip(Widget, can_focus=True):
    """Tab labels, the active one underlined; posts `Activated` when the user picks one."""

    HELP_GROUP = "Tabs"
    DEFAULT_CSS = """
    TabStrip {
        width: 1fr;
        height: 2;
        & > .tab-strip--tab {
            color: $foreground 50%;
        }
        & > .tab-strip--hover {
            color: $foreground;
        }
        & > .tab-strip--active {
            color: $foreground;
        }
        & > .tab-strip--bar {
            color: $block-cursor-background;
            background: $foreground 10%;
        }
        &:focus {
            & > .tab-strip--active {
                text-style: $block-cursor-text-style;
                color: $block-cursor-foreground;
                background: $block-cursor-background;
            }
            & > .tab-strip--bar {
                background: $foreground 30%;
            }
        }
        &:ansi {
            & > .tab-strip--tab {
                text-style: dim;
            }
            & > .tab-strip--active {
                text-style: not dim bold;
            }
            & > .tab-strip--bar {
                background: $border-blurred;
            }
        }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "tab-strip--tab", "tab-strip--hover", "tab-strip--active", "tab-strip--bar",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "previous_tab", "Previous tab", show=False, id="tabs.previous"),
        Binding("right", "next_tab", "Next tab", show=False, id="tabs.next"),
    ]

    active: reactive[str] = reactive("")
    """Id of the tab shown as active."""

    class Activated(Message):
        """The user picked tab `tab` (a click, or `left`/`right`)."""

        def __init__(self, strip: TabStrip, tab: str) -> None:
            super().__init__()
            self.strip = strip
            self.tab = tab

        @property
        def control(self) -> TabStrip:
            """The strip the tab belongs to."""
            return self.strip

    def __init__(self, tabs: list[tuple[str, str]], *, active: str | None = None,
                 id: str | None = None) -> None:
        """`tabs`: (id, label) of each tab, in order; `active`: the first one if None."""
        super().__init__(id=id)
        self._tabs = list(tabs)
        self._hover: str | None = None
        """Id of the tab under the mouse."""
        self.set_reactive(TabStrip.active, active or (tabs[0][0] if tabs else ""))

    @property
    def tab_ids(self) -> list[str]:
        """The tabs' ids, in order."""
        return [tab for tab, _ in self._tabs]

    def _spans(self) -> list[tuple[str, int, int]]:
        """(id, first cell, cell after the last) of each tab's label with its padding."""
        spans, x = [], 0
        for tab, label in self._tabs:
            width = Text(label).cell_len + 2
            spans.append((tab, x, x + width))
            x += width
        return spans

    def tab_at(self, x: int) -> str | None:
        """The tab drawn at column `x` of the strip (None: past the last label)."""
        return next((tab for tab, start, end in self._spans() if start <= x < end), None)

    def render(self) -> RenderableType:
        labels = Text(no_wrap=True, overflow="crop")
        highlight = (0, 0)
        for (tab, start, end), (_, label) in zip(self._spans(), self._tabs, strict=True):
            if tab == self.active:
                part = "tab-strip--active"
                highlight = (start + 1, end - 1)  # (under the label, not its padding)
            else:
                part = "tab-strip--hover" if tab == self._hover else "tab-strip--tab"
            labels.append(f" {label} ", style=self.get_component_rich_style(part))
        bar = self.get_component_rich_style("tab-strip--bar")
        return Group(labels, Bar(highlight_range=highlight,
                                 highlight_style=Style.from_color(bar.color),
                                 background_style=Style.from_color(bar.bgcolor)))

    def _pick(self, tab: str | None) -> None:
        if tab is not None and tab != self.active:
            self.active = tab
            self.post_message(self.Activated(self, tab))

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self._pick(self.tab_at(event.x))

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._hover_over(self.tab_at(event.x) if event.y == 0 else None)

    def on_leave(self) -> None:
        self._hover_over(None)

    def _hover_over(self, tab: str | None) -> None:
        if tab != self._hover:
            self._hover = tab
            self.refresh()

    def action_previous_tab(self) -> None:
        """Activate the tab on the left (the last one after the first)."""
        self._step(-1)

    def action_next_tab(self) -> None:
        """Activate the tab on the right (the first one after the last)."""
        self._step(1)

    def _step(self, by: int) -> None:
        ids = self.tab_ids
        if ids:
            at = ids.index(self.active) if self.active in ids else 0
            self._pick(ids[(at + by) % len(ids)])
