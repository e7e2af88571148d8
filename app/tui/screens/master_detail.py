"""The shape of the datasets and models screens: named items above, the versions of the
highlighted one below, a detail line, and delete after asking.

A screen built on this says how to read its items (blocking, run in a worker), how to
draw an item and a version as table rows, what its detail line shows and how to delete
an item or one version. The reading, the highlighted item and version, tab between the
tables, the confirm → delete → reload flow and "select this one after the next read"
live here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from app.tui.screens.explained import Explained
from app.tui.screens.first_show import FirstShow
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.gpu_table import GpuTable, SyncRow

if TYPE_CHECKING:
    from app.context import Context

ItemT = TypeVar("ItemT")
VersionT = TypeVar("VersionT")
Columns = list[tuple[str, str, "int | None"]]


class MasterDetailScreen(FirstShow, Explained, Screen[None], Generic[ItemT, VersionT]):
    """Items and their versions; tab moves between the two tables."""

    NOUN: ClassVar[str] = "item"
    """What an item is called in messages ("dataset")."""
    PLURAL: ClassVar[str] = "items"
    MASTER_COLUMNS: ClassVar[Columns] = []
    VERSION_COLUMNS: ClassVar[Columns] = []
    MASTER_ID: ClassVar[str] = "items-table"
    VERSIONS_ID: ClassVar[str] = "item-versions-table"
    VERSIONS_TITLE_ID: ClassVar[str] = "item-versions-title"
    DETAIL_ID: ClassVar[str] = "item-detail"
    EMPTY_ID: ClassVar[str] = "items-empty"
    READ_ON_RESUME: ClassVar[bool] = False
    """Read again each time the screen comes back (else once, when it is mounted)."""
    NEEDS_ITEM: ClassVar[frozenset[str]] = frozenset({"delete"})
    """Actions that need a highlighted item (dimmed, and explained, without one)."""

    items: reactive[list[ItemT] | None] = reactive(None, init=False, always_update=True)
    """Every item with its versions; None until the first read comes back."""

    class Loaded(Message):
        """The items and their versions, read by a worker (or why not)."""

        def __init__(self, items: list[object], error: str = "") -> None:
            super().__init__()
            self.items = items
            self.error = error

    class Deleted(Message):
        """A delete finished: what went, or why nothing did."""

        def __init__(self, what: str, error: str = "") -> None:
            super().__init__()
            self.what = what
            self.error = error

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self._shown_versions_of: str | None = None
        self._select_next: tuple[str, str | None] | None = None
        """An item (and version) to put the cursor on once the next read comes back."""

    # -- what a screen built on this provides -------------------------------------------------

    def read_items(self, ctx: Context) -> list[ItemT]:
        """Every item with all its versions (blocking: runs in a worker)."""
        raise NotImplementedError

    def item_key(self, item: ItemT) -> str:
        """An item's name (its row key)."""
        raise NotImplementedError

    def item_versions(self, item: ItemT) -> Sequence[VersionT]:
        """An item's versions, oldest first."""
        raise NotImplementedError

    def version_key(self, version: VersionT) -> str:
        """A version's label (its row key)."""
        raise NotImplementedError

    def master_row(self, item: ItemT) -> SyncRow:
        """An item as a row of the upper table."""
        raise NotImplementedError

    def version_row(self, version: VersionT) -> SyncRow:
        """A version as a row of the lower table."""
        raise NotImplementedError

    def show_detail(self) -> None:
        """Fill the detail line for the highlighted version."""
        raise NotImplementedError

    def empty_text(self) -> str:
        """What the screen says when there is no item at all."""
        raise NotImplementedError

    def delete_rows(self, ctx: Context, name: str, label: str | None) -> list[str]:
        """Delete an item (label None) or one version; the labels deleted (blocking)."""
        raise NotImplementedError

    def delete_question(self, item: ItemT, version: VersionT | None) -> str:
        """The confirmation question, naming exactly what goes."""
        raise NotImplementedError

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield GpuTable(self.MASTER_COLUMNS, id=self.MASTER_ID)
        yield Static("Versions", id=self.VERSIONS_TITLE_ID, classes="section-title")
        yield GpuTable(self.VERSION_COLUMNS, id=self.VERSIONS_ID)
        yield Static("", id=self.DETAIL_ID)
        yield Static(f"Reading {self.PLURAL}…", id=self.EMPTY_ID, classes="empty-state")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = self.PLURAL
        self._set_body_display(False)
        if not self.READ_ON_RESUME:
            self.reload()  # otherwise on ScreenResume, which follows the first mount

    def on_screen_resume(self) -> None:
        if self.READ_ON_RESUME:
            self.reload()

    def _set_body_display(self, shown: bool) -> None:
        for widget_id in (self.MASTER_ID, self.VERSIONS_TITLE_ID, self.VERSIONS_ID,
                          self.DETAIL_ID):
            self.query_one(f"#{widget_id}").display = shown
        self.query_one(f"#{self.EMPTY_ID}").display = not shown

    @property
    def master_table(self) -> GpuTable:
        """The upper table (the items)."""
        return self.query_one(f"#{self.MASTER_ID}", GpuTable)

    @property
    def versions_table(self) -> GpuTable:
        """The lower table (the highlighted item's versions, newest first)."""
        return self.query_one(f"#{self.VERSIONS_ID}", GpuTable)

    # -- reading ---------------------------------------------------------------------------

    def reload(self, select: tuple[str, str | None] | None = None) -> None:
        """Read the items again; with `select`, then put the cursor on that item (and
        version, whose table then takes the focus)."""
        if select is not None:
            self._select_next = select
        self._read(self.ctx)

    @work(thread=True, exclusive=True, exit_on_error=False, group="master-detail-read")
    def _read(self, ctx: Context) -> None:
        """Read every item and its versions."""
        from app.errors import TraindeckError

        try:
            items = self.read_items(ctx)
        except TraindeckError as exc:
            self.post_message(self.Loaded([], str(exc)))
            return
        self.post_message(self.Loaded(list(items)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.error:
            self.notify(message.error, title=f"Cannot read {self.PLURAL}", severity="error")
        self.items = message.items  # type: ignore[assignment]

    def watch_items(self, items: list[ItemT] | None) -> None:
        if items is None:
            return
        self.refresh_bindings()
        if not items:
            self.query_one(f"#{self.EMPTY_ID}", Static).update(self.empty_text())
            self._set_body_display(False)
            return
        self._set_body_display(True)
        self.master_table.sync([self.master_row(item) for item in items])
        self._shown_versions_of = None
        select, self._select_next = self._select_next, None
        if select is not None:
            self._move_to(select[0])
        self._show_versions()
        if select is not None and select[1] is not None:
            self._move_to_version(select[1])
            self.versions_table.focus()
        elif select is not None or self.focused is None:
            self.master_table.focus()

    def _move_to(self, key: str) -> None:
        keys = self.master_table.row_keys
        if key in keys:
            self.master_table.move_cursor(row=keys.index(key), animate=False)

    def _move_to_version(self, label: str) -> None:
        keys = self.versions_table.row_keys
        if label in keys:
            self.versions_table.move_cursor(row=keys.index(label), animate=False)
            self.show_detail()

    # -- the highlighted item and version ----------------------------------------------------

    def highlighted_item(self) -> ItemT | None:
        """The item under the cursor of the upper table."""
        key = self.master_table.highlighted_key()
        return next((i for i in self.items or [] if self.item_key(i) == key), None)

    def highlighted_version(self) -> VersionT | None:
        """The version under the cursor of the lower table."""
        item = self.highlighted_item()
        key = self.versions_table.highlighted_key()
        if item is None:
            return None
        return next((v for v in self.item_versions(item) if self.version_key(v) == key), None)

    def _show_versions(self) -> None:
        item = self.highlighted_item()
        table = self.versions_table
        title = self.query_one(f"#{self.VERSIONS_TITLE_ID}", Static)
        if item is None:
            table.sync([])
            title.update("Versions")
        else:
            name = self.item_key(item)
            switched = name != self._shown_versions_of
            # Newest first: the version people look for is usually the last one made.
            table.sync([self.version_row(v) for v in reversed(self.item_versions(item))],
                       force=switched)
            if switched:
                table.move_cursor(row=0, animate=False)
            title.update(f"Versions of {name}")
        self._shown_versions_of = self.item_key(item) if item is not None else None
        self.show_detail()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == self.MASTER_ID:
            self._show_versions()
            self.refresh_bindings()
        elif event.data_table.id == self.VERSIONS_ID:
            self.show_detail()

    def on_versions(self) -> bool:
        """True while the lower table (the versions) has the focus."""
        focused = self.focused
        return isinstance(focused, GpuTable) and focused.id == self.VERSIONS_ID

    # -- what is allowed, and why not --------------------------------------------------------

    def disabled_reason(self, action: str) -> str | None:
        """Why `action` cannot run now (None: it can)."""
        if action in self.NEEDS_ITEM and self.highlighted_item() is None:
            return f"{action.replace('_', ' ')}: no {self.NOUN} yet"
        return None

    # -- actions ---------------------------------------------------------------------------

    def action_switch_table(self) -> None:
        """Move between the items and the versions."""
        target = self.master_table if self.on_versions() else self.versions_table
        target.focus()

    def action_delete(self) -> None:
        """Delete the highlighted item (or, in the lower table, one version), after asking."""
        item = self.highlighted_item()
        if not self.allowed("delete") or item is None:
            return
        version = None
        if self.on_versions():
            version = self.highlighted_version()
            if version is None:
                return
        name = self.item_key(item)
        label = self.version_key(version) if version is not None else None
        from app.tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(self.ctx, name, label)

        self.app.push_screen(ConfirmScreen(self.delete_question(item, version),
                                           title=f"Delete {self.NOUN}", yes="Delete"),
                             answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="master-detail-write")
    def _delete(self, ctx: Context, name: str, label: str | None) -> None:
        """Delete the rows (the core refuses with a reason the user reads)."""
        from app.errors import TraindeckError

        try:
            labels = self.delete_rows(ctx, name, label)
        except TraindeckError as exc:
            self.post_message(self.Deleted(name, str(exc)))
            return
        self.post_message(self.Deleted(f"{name} {', '.join(labels)}".strip()))

    @on(Deleted)
    def _deleted(self, message: Deleted) -> None:
        if message.error:
            self.notify(message.error, title="Not deleted", severity="error", timeout=10)
        else:
            self.notify(f"Deleted {self.NOUN} {message.what}")
        self.reload()

    def action_reload(self) -> None:
        """Read the items again."""
        self.reload()

    def action_back(self) -> None:
        """Go back to the previous screen."""
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """The actions every such screen has, for the command palette."""
        yield SystemCommand(f"{self.NOUN}: delete",
                            f"Delete the highlighted {self.NOUN} or version",
                            self.action_delete)
        yield SystemCommand(f"view: reload {self.PLURAL}", f"Read the {self.PLURAL} again",
                            self.action_reload)
