"""Datasets: every dataset, and below it the versions of the highlighted one.

A version is a local folder or an object-storage prefix with the file count and size taken
when it was made. `c` checks the highlighted version against what is there now (files
added, removed or changed since); d deletes, after asking (refused while a running job
reads it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from app.tui.widgets.formatting import format_time
from app.tui.widgets.gpu_table import GpuTable, SyncRow

if TYPE_CHECKING:
    from app.context import Context
    from app.datasets import DatasetInfo, DatasetVersionInfo

DATASET_COLUMNS: list[tuple[str, str, int | None]] = [
    ("name", "Dataset", 24), ("versions", "Versions", 8), ("latest", "Latest", 7),
    ("files", "Files", 9), ("size", "Size", 11), ("created", "Created", 16),
    ("description", "Description", 30),
]
VERSION_COLUMNS: list[tuple[str, str, int | None]] = [
    ("version", "Version", 7), ("location", "Location", 48), ("files", "Files", 9),
    ("size", "Size", 11), ("created", "Created", 16), ("description", "Description", 16),
]


def human_size(count: int) -> str:
    """`1.5 GiB`, `12.0 KiB`, `0 B` (as the CLI and the core's messages write sizes)."""
    # Imported here: the storage package is loaded by the worker that read the datasets.
    from app.storage import human_bytes

    return human_bytes(count)


@dataclass(frozen=True)
class DatasetView:
    """A dataset with all its versions, oldest first (what the screen shows)."""

    info: DatasetInfo

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.info.name

    @property
    def latest(self) -> DatasetVersionInfo | None:
        """Its newest version."""
        return self.info.versions[-1] if self.info.versions else None


def read_datasets(ctx: Context) -> list[DatasetView]:
    """Every dataset with all its versions (blocking: call from a worker)."""
    from app.datasets import get_dataset, list_datasets

    return [DatasetView(get_dataset(ctx.db, summary.name)) for summary in list_datasets(ctx.db)]


class DatasetsScreen(Screen[None]):
    """Datasets and their versions; tab moves between the two tables."""

    CSS_PATH = "datasets.tcss"
    AUTO_FOCUS = "#datasets-table"
    BINDINGS = [
        Binding("tab", "switch_table", "Datasets/versions", id="datasets.switch"),
        Binding("c", "check", "Check changes", id="datasets.check"),
        Binding("d", "delete", "Delete", id="datasets.delete"),
        Binding("escape", "back", "Back", id="datasets.back"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="datasets.reload"),
    ]

    datasets: reactive[list[DatasetView] | None] = reactive(None, init=False,
                                                            always_update=True)
    """Every dataset with its versions; None until the first read comes back."""

    class Loaded(Message):
        """The datasets and their versions, read by a worker (or why not)."""

        def __init__(self, datasets: list[DatasetView], error: str = "") -> None:
            super().__init__()
            self.datasets = datasets
            self.error = error

    class Checked(Message):
        """What changed in a dataset version since it was made (or why it is unknown)."""

        def __init__(self, lines: list[str], error: str = "") -> None:
            super().__init__()
            self.lines = lines
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

    def compose(self) -> ComposeResult:
        yield Header()
        yield GpuTable(DATASET_COLUMNS, id="datasets-table")
        yield Static("Versions", id="dataset-versions-title", classes="section-title")
        yield GpuTable(VERSION_COLUMNS, id="dataset-versions-table")
        yield Static("", id="dataset-detail")
        yield Static("Reading datasets…", id="datasets-empty", classes="empty-state")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "datasets"
        self._set_body_display(False)
        self._read(self.ctx)

    def _set_body_display(self, shown: bool) -> None:
        for selector in ("#datasets-table", "#dataset-versions-title",
                         "#dataset-versions-table", "#dataset-detail"):
            self.query_one(selector).display = shown
        self.query_one("#datasets-empty").display = not shown

    # -- reading ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="datasets-read")
    def _read(self, ctx: Context) -> None:
        """Read every dataset and its versions."""
        from app.errors import TraindeckError

        try:
            datasets = read_datasets(ctx)
        except TraindeckError as exc:
            self.post_message(self.Loaded([], str(exc)))
            return
        self.post_message(self.Loaded(datasets))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.error:
            self.notify(message.error, title="Cannot read datasets", severity="error")
        self.datasets = message.datasets

    def watch_datasets(self, datasets: list[DatasetView] | None) -> None:
        if datasets is None:
            return
        if not datasets:
            self.query_one("#datasets-empty", Static).update(
                "No datasets yet — make one with `traindeck datasets create NAME PATH`")
            self._set_body_display(False)
            return
        self._set_body_display(True)
        self.query_one("#datasets-table", GpuTable).sync(
            [self._dataset_row(d) for d in datasets])
        self._shown_versions_of = None
        self._show_versions()
        if self.focused is None:
            self.query_one("#datasets-table", GpuTable).focus()

    def _dataset_row(self, dataset: DatasetView) -> SyncRow:
        info, latest = dataset.info, dataset.latest
        texts = (info.name, str(len(info.versions)), latest.version if latest else "—",
                 f"{latest.file_count:,}" if latest else "—",
                 human_size(latest.total_bytes) if latest else "—", format_time(info.created),
                 info.description)
        description = Text(info.description or "—", no_wrap=True, overflow="ellipsis")
        cells = (Text(info.name, style="bold"), *texts[1:6], description)
        return SyncRow(info.name, texts, cells)

    def _version_row(self, version: DatasetVersionInfo) -> SyncRow:
        texts = (version.version, version.uri, f"{version.file_count:,}",
                 human_size(version.total_bytes), format_time(version.created),
                 version.description)
        cells = (Text(version.version, style="bold"),
                 Text(version.uri, no_wrap=True, overflow="ellipsis"), *texts[2:5],
                 Text(version.description or "—", no_wrap=True, overflow="ellipsis"))
        return SyncRow(version.version, texts, cells)

    # -- the highlighted dataset and version -------------------------------------------------

    def highlighted_dataset(self) -> DatasetView | None:
        """The dataset under the cursor of the upper table."""
        key = self.query_one("#datasets-table", GpuTable).highlighted_key()
        return next((d for d in self.datasets or [] if d.name == key), None)

    def highlighted_version(self) -> DatasetVersionInfo | None:
        """The version under the cursor of the lower table."""
        dataset = self.highlighted_dataset()
        key = self.query_one("#dataset-versions-table", GpuTable).highlighted_key()
        if dataset is None:
            return None
        return next((v for v in dataset.info.versions if v.version == key), None)

    def _show_versions(self) -> None:
        dataset = self.highlighted_dataset()
        table = self.query_one("#dataset-versions-table", GpuTable)
        title = self.query_one("#dataset-versions-title", Static)
        if dataset is None:
            table.sync([])
            title.update("Versions")
        else:
            switched = dataset.name != self._shown_versions_of
            table.sync([self._version_row(v) for v in reversed(dataset.info.versions)],
                       force=switched)
            if switched:
                table.move_cursor(row=0, animate=False)  # another dataset: its newest first
            title.update(f"Versions of {dataset.name}")
        self._shown_versions_of = dataset.name if dataset else None
        self._show_detail()

    def _show_detail(self, extra: str = "") -> None:
        version = self.highlighted_version()
        detail = self.query_one("#dataset-detail", Static)
        if version is None:
            detail.update("")
            return
        text = Text(f"{version.dataset} {version.version}", style="bold")
        where = "object storage" if version.remote else "local folder"
        text.append(f"  {where} {version.uri}  ·  {version.file_count:,} files, "
                    f"{human_size(version.total_bytes)}")
        if extra:
            text.append(f"\n{extra}")
        detail.update(text)

    @on(DataTable.RowHighlighted, "#datasets-table")
    def _dataset_highlighted(self) -> None:
        self._show_versions()

    @on(DataTable.RowHighlighted, "#dataset-versions-table")
    def _version_highlighted(self) -> None:
        self._show_detail()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if not self._on_versions():
            self.query_one("#dataset-versions-table", GpuTable).focus()

    # -- actions ---------------------------------------------------------------------------

    def _on_versions(self) -> bool:
        focused = self.focused
        return isinstance(focused, GpuTable) and focused.id == "dataset-versions-table"

    def action_switch_table(self) -> None:
        """Move between the datasets and the versions."""
        target = "#datasets-table" if self._on_versions() else "#dataset-versions-table"
        self.query_one(target, GpuTable).focus()

    def action_check(self) -> None:
        """Compare the highlighted version (the latest, from the upper table) with now."""
        dataset = self.highlighted_dataset()
        if dataset is None:
            return
        version = self.highlighted_version() if self._on_versions() else dataset.latest
        if version is None:
            return
        self.notify(f"Checking {dataset.name} {version.version}…", timeout=3)
        self._check(self.ctx, dataset.name, version.version)

    @work(thread=True, exclusive=True, exit_on_error=False, group="datasets-check")
    def _check(self, ctx: Context, name: str, label: str) -> None:
        """List the files again and compare them with the version's manifest."""
        from app.datasets import check_changes
        from app.errors import TraindeckError

        try:
            drifts = check_changes(ctx, name, label)
        except TraindeckError as exc:
            self.post_message(self.Checked([], str(exc)))
            return
        # Each line starts with "<dataset> <version>", which the detail line already says.
        lines = [drift.describe().removeprefix(f"{name} {drift.version}").strip()
                 for drift in drifts]
        self.post_message(self.Checked(lines))

    @on(Checked)
    def _checked(self, message: Checked) -> None:
        if message.error:
            self.notify(message.error, title="Cannot check", severity="error")
            return
        self._show_detail("  ".join(message.lines))

    def action_delete(self) -> None:
        """Delete the highlighted dataset (or, in the lower table, one version), after asking."""
        dataset = self.highlighted_dataset()
        if dataset is None:
            return
        label = None
        if self._on_versions():
            version = self.highlighted_version()
            if version is None:
                return
            label = version.version
            what = f"version {label} of dataset {dataset.name}"
        else:
            count = len(dataset.info.versions)
            what = f"dataset {dataset.name} and its {count} version{'s' if count != 1 else ''}"
        question = (f"Delete {what} from Traindeck? The files themselves stay where they are; "
                    "jobs that used it keep their records.")
        from app.tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(self.ctx, dataset.name, label)

        self.app.push_screen(ConfirmScreen(question, title="Delete dataset", yes="Delete"),
                             answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="datasets-write")
    def _delete(self, ctx: Context, name: str, label: str | None) -> None:
        """Delete the rows (refused while an active version reads the dataset)."""
        from app.datasets import delete_dataset
        from app.errors import TraindeckError

        try:
            labels = delete_dataset(ctx, name, label)
        except TraindeckError as exc:
            self.post_message(self.Deleted(name, str(exc)))
            return
        self.post_message(self.Deleted(f"{name} {', '.join(labels)}".strip()))

    @on(Deleted)
    def _deleted(self, message: Deleted) -> None:
        if message.error:
            self.notify(message.error, title="Not deleted", severity="error")
        else:
            self.notify(f"Deleted dataset {message.what}")
        self._read(self.ctx)

    def action_reload(self) -> None:
        """Read the datasets again."""
        self._read(self.ctx)

    def action_back(self) -> None:
        """Go back to the previous screen."""
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("dataset: check changes", "Compare a version with its files now",
                            self.action_check)
        yield SystemCommand("dataset: delete", "Delete the highlighted dataset or version",
                            self.action_delete)
        yield SystemCommand("view: reload datasets", "Read the datasets again",
                            self.action_reload)
