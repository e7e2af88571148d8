"""A job's versions as a lineage tree: a version made by modifying V001 sits under V001."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text, TextType
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from app.tui.widgets.status import status_text

if TYPE_CHECKING:
    from app.queries import VersionInfo


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

    def show(self, versions: list[VersionInfo], marked: set[str], select: str | None) -> None:
        """Show `versions` (already filtered), rebuilding only when the lineage changed."""
        shape = tuple((v.version, v.parent) for v in versions)
        if shape != self._shape:
            self._rebuild(versions, marked)
            self._shape = shape
        else:
            for info in versions:
                node = self._by_label.get(info.version)
                if node is not None:
                    label = self._label(info, info.version in marked)
                    if label != node.label:
                        node.set_label(label)
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

        badges: dict[str, Text] = {}

        def add(parent_node: TreeNode[str], key: str | None) -> None:
            for info in children.get(key, []):
                badge = badges.get(info.status)
                if badge is None:
                    badge = badges[info.status] = status_text(self.app, info.status)
                label = self._label(info, info.version in marked, badge)
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

    def _label(self, info: VersionInfo, marked: bool, badge: Text | None = None) -> Text:
        text = Text()
        text.append(info.version, style="bold")
        text.append("  ")
        text.append_text(badge if badge is not None else status_text(self.app, info.status))
        if marked:
            text.append("  ✓ compare", style="bold")
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
