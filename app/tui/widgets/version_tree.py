"""A job's versions as a lineage tree: a version made by modifying V001 sits under V001."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text, TextType
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from app.tui.widgets.status import status_text

if TYPE_CHECKING:
    from app.readmodels import VersionInfo


@lru_cache(maxsize=32)
def _status_plain(status: str) -> str:
    """`✖ failed`: a status as its label shows it."""
    return status_text(None, status).plain


class VersionTree(Tree[str]):
    """Versions by lineage; each node's data is its label (`V003`)."""

    HELP_GROUP = "Versions"
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="versions.down"),
        Binding("k", "cursor_up", "Up", show=False, id="versions.up"),
        Binding("space", "toggle_mark", "Mark for compare", show=False, id="versions.mark"),
    ]

    class MarkToggled(Message):
        """The user marked or unmarked a version for comparison."""

        def __init__(self, label: str) -> None:
            super().__init__()
            self.label = label

    def __init__(self, *, id: str | None = None) -> None:
        self._adding = False  # (read by `_invalidate`, which the Tree calls while it starts)
        super().__init__("versions", id=id)
        self.show_root = False
        self.guide_depth = 3
        self._by_label: dict[str, TreeNode[str]] = {}
        self._shape: tuple[tuple[str, str | None], ...] = ()
        self._infos: dict[str, VersionInfo] = {}
        """The versions shown, by label (what the lines are styled from)."""
        self._marked: set[str] = set()

    def show(self, versions: list[VersionInfo], marked: set[str], select: str | None) -> None:
        """Show `versions` (already filtered), rebuilding only when the lineage changed."""
        self._infos = {v.version: v for v in versions}
        self._marked = marked
        shape = tuple((v.version, v.parent) for v in versions)
        if shape != self._shape:
            self._rebuild(versions, marked)
            self._shape = shape
        else:
            for info in versions:
                node = self._by_label.get(info.version)
                if node is not None:
                    label = self._plain_label(info, info.version in marked)
                    if label != str(node.label):
                        node.set_label(Text(label))
        if select is not None:
            self.select_label(select)

    def _rebuild(self, versions: list[VersionInfo], marked: set[str]) -> None:
        shown = {v.version for v in versions}
        children: dict[str | None, list[VersionInfo]] = {}
        for info in versions:
            parent = info.parent if info.parent in shown else None
            children.setdefault(parent, []).append(info)
        self.clear()
        self._by_label = {}

        def add(parent_node: TreeNode[str], key: str | None) -> None:
            for info in children.get(key, []):
                label = Text(self._plain_label(info, info.version in marked))
                node = parent_node.add(label, data=info.version, expand=True,
                                       allow_expand=bool(children.get(info.version)))
                self._by_label[info.version] = node
                add(node, info.version)

        # Each added node would invalidate (and repaint) the whole tree: once will do.
        self._adding = True
        try:
            add(self.root, None)
        finally:
            self._adding = False
        self.root.expand()

    def _invalidate(self) -> None:
        if not self._adding:
            super()._invalidate()

    # A new size or a new style changes how the lines look, not which lines there are.
    # The Tree would drop its lines, walk every node and lay the screen out again; with
    # a thousand versions that is a rebuild per focus change, and two when a screen opens.

    def _on_resize(self, event: events.Resize) -> None:
        event.prevent_default()  # (instead of the Tree's own)
        self._line_cache.grow(event.size.height)
        self._line_cache.clear()  # (the rendered lines; the Tree's method drops all lines)
        self.refresh()

    def notify_style_update(self) -> None:
        super(Tree, self).notify_style_update()  # (skipping the Tree's rebuild)
        self._line_cache.clear()
        self.refresh()

    def process_label(self, label: TextType) -> Text:
        """Labels made here are single lines already (the Tree would split each one)."""
        return label if isinstance(label, Text) else super().process_label(label)

    def get_label_width(self, node: TreeNode[str]) -> int:
        """The label's width without rendering it (the Tree measures every line on each
        layout: a thousand versions would each be styled and copied)."""
        width = node.label.cell_len if isinstance(node.label, Text) else cell_len(node.label)
        if node.allow_expand:
            width += cell_len(self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE)
        return width

    # A node's label is plain text; the lines drawn are styled as they are drawn (a few
    # dozen on screen, where styling a thousand labels up front made most of a rebuild).

    @staticmethod
    def _plain_label(info: VersionInfo, marked: bool) -> str:
        """`V003  ✖ failed  ✓ compare`."""
        mark = "  ✓ compare" if marked else ""
        return f"{info.version}  {_status_plain(info.status)}{mark}"

    def render_label(self, node: TreeNode[str], base_style: Style, style: Style) -> Text:
        """The label in bold, its status in the status colour (under the line's own style:
        the cursor, say)."""
        text = super().render_label(node, base_style, style)
        info = self._infos.get(node.data) if node.data is not None else None
        if info is None:
            return text
        start = len(text.plain) - len(str(node.label))  # (after the expand icon)
        badge_start = start + len(info.version) + 2
        badge = status_text(self.app, info.status)
        text.stylize_before("bold", start, start + len(info.version))
        text.stylize_before(badge.style, badge_start, badge_start + len(badge.plain))
        if info.version in self._marked:
            text.stylize_before("bold", badge_start + len(badge.plain), len(text.plain))
        return text

    def select_label(self, label: str) -> None:
        """Move the cursor to version `label` if it is shown."""
        node = self._by_label.get(label)
        if node is None or self.cursor_node is node:
            return
        if node.line < 0:
            # Nodes added since the last layout have no line yet; reading `last_line`
            # lays the lines out (once) so that the cursor lands on this node.
            self.last_line  # noqa: B018
        self.move_cursor(node, animate=False)

    @property
    def highlighted_label(self) -> str | None:
        """The label under the cursor."""
        node = self.cursor_node
        return node.data if node is not None else None

    def action_toggle_mark(self) -> None:
        """Mark or unmark the version under the cursor for comparison."""
        label = self.highlighted_label
        if label is not None:
            self.post_message(self.MarkToggled(label))
