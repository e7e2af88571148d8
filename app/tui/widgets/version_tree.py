"""A job's versions as a lineage tree: a version made by modifying V001 sits under V001."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
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
        super().__init__("versions", id=id)
        self.show_root = False
        self.guide_depth = 3
        self._by_label: dict[str, TreeNode[str]] = {}
        self._shape: tuple[tuple[str, str | None], ...] = ()

    def show(self, versions: list[VersionInfo], marked: set[str], select: str | None) -> None:
        """Show `versions` (already filtered), rebuilding only when the lineage changed."""
        shape = tuple((v.version, v.parent) for v in versions)
        if shape != self._shape:
            self._rebuild(versions)
            self._shape = shape
        for info in versions:
            node = self._by_label.get(info.version)
            if node is not None:
                label = self._label(info, info.version in marked)
                if label != node.label:
                    node.set_label(label)
        if select is not None:
            self.select_label(select)

    def _rebuild(self, versions: list[VersionInfo]) -> None:
        shown = {v.version for v in versions}
        children: dict[str | None, list[VersionInfo]] = {}
        for info in versions:
            parent = info.parent if info.parent in shown else None
            children.setdefault(parent, []).append(info)
        self.clear()
        self._by_label = {}

        def add(parent_node: TreeNode[str], key: str | None) -> None:
            for info in children.get(key, []):
                node = parent_node.add(info.version, data=info.version, expand=True,
                                       allow_expand=bool(children.get(info.version)))
                self._by_label[info.version] = node
                add(node, info.version)

        add(self.root, None)
        self.root.expand()

    def _label(self, info: VersionInfo, marked: bool) -> Text:
        text = Text()
        text.append(info.version, style="bold")
        text.append("  ")
        text.append_text(status_text(self.app, info.status))
        if marked:
            text.append("  ✓ compare", style="bold")
        return text

    def select_label(self, label: str) -> None:
        """Move the cursor to version `label` if it is shown."""
        node = self._by_label.get(label)
        if node is not None and self.cursor_node is not node:
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
