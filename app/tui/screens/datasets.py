"""Datasets: every dataset, and below it the versions of the highlighted one.

A version is a local folder or an object-storage prefix with the file count and size taken
when it was made. `n` makes a new dataset and `a` adds a version to the highlighted one
(both list the files in a worker: an `s3://` prefix is listed over the network); `c`
checks the highlighted version against what is there now (files added, removed or
changed since); `d` deletes, after asking (refused while a running job reads it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from app.formatting import human_bytes
from app.tui.screens.master_detail import MasterDetailScreen
from app.tui.widgets.formatting import format_time
from app.tui.widgets.gpu_table import SyncRow

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


def files(count: int) -> str:
    """`1 file`, `1,204 files`."""
    return f"{count:,} file{'' if count == 1 else 's'}"


def latest(dataset: DatasetInfo) -> DatasetVersionInfo | None:
    """A dataset's newest version."""
    return dataset.versions[-1] if dataset.versions else None


def read_datasets(ctx: Context) -> list[DatasetInfo]:
    """Every dataset with all its versions (blocking: call from a worker)."""
    from app.datasets import get_dataset, list_datasets

    return [get_dataset(ctx.db, summary.name) for summary in list_datasets(ctx.db)]


class DatasetsScreen(MasterDetailScreen["DatasetInfo", "DatasetVersionInfo"]):
    """Datasets and their versions; tab moves between the two tables."""

    CSS_PATH = "datasets.tcss"
    AUTO_FOCUS = "#datasets-table"
    # The most used first: an 80-column footer cuts the last ones off.
    BINDINGS = [
        Binding("n", "create", "New dataset", id="datasets.create"),
        Binding("a", "add_version", "Add version", id="datasets.add-version"),
        Binding("d", "delete", "Delete", id="datasets.delete"),
        Binding("c", "check", "Check changes", id="datasets.check"),
        Binding("escape", "back", "Back", id="datasets.back"),
        Binding("tab", "switch_table", "Datasets/versions", id="datasets.switch"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="datasets.reload"),
    ]
    NOUN = "dataset"
    PLURAL = "datasets"
    MASTER_COLUMNS = DATASET_COLUMNS
    VERSION_COLUMNS = VERSION_COLUMNS
    MASTER_ID = "datasets-table"
    VERSIONS_ID = "dataset-versions-table"
    VERSIONS_TITLE_ID = "dataset-versions-title"
    DETAIL_ID = "dataset-detail"
    EMPTY_ID = "datasets-empty"
    NEEDS_ITEM = frozenset({"delete", "add_version", "check"})

    class Checked(Message):
        """What changed in a dataset version since it was made (or why it is unknown)."""

        def __init__(self, lines: list[str], error: str = "") -> None:
            super().__init__()
            self.lines = lines
            self.error = error

    # -- items and rows --------------------------------------------------------------------

    def read_items(self, ctx: Context) -> list[DatasetInfo]:
        return read_datasets(ctx)

    def item_key(self, item: DatasetInfo) -> str:
        return item.name

    def item_versions(self, item: DatasetInfo) -> Sequence[DatasetVersionInfo]:
        return item.versions

    def version_key(self, version: DatasetVersionInfo) -> str:
        return version.version

    def empty_text(self) -> str:
        return ("No datasets yet — press n to make one from a local folder or an "
                "s3://bucket/prefix (or `traindeck datasets create NAME --path P`)")

    def master_row(self, item: DatasetInfo) -> SyncRow:
        newest = latest(item)
        texts = (item.name, str(len(item.versions)), newest.version if newest else "—",
                 f"{newest.file_count:,}" if newest else "—",
                 human_bytes(newest.total_bytes) if newest else "—", format_time(item.created),
                 item.description)
        description = Text(item.description or "—", no_wrap=True, overflow="ellipsis")
        cells = (Text(item.name, style="bold"), *texts[1:6], description)
        return SyncRow(item.name, texts, cells)

    def version_row(self, version: DatasetVersionInfo) -> SyncRow:
        texts = (version.version, version.uri, f"{version.file_count:,}",
                 human_bytes(version.total_bytes), format_time(version.created),
                 version.description)
        cells = (Text(version.version, style="bold"),
                 Text(version.uri, no_wrap=True, overflow="ellipsis"), *texts[2:5],
                 Text(version.description or "—", no_wrap=True, overflow="ellipsis"))
        return SyncRow(version.version, texts, cells)

    def show_detail(self, extra: str = "") -> None:
        version = self.highlighted_version()
        detail = self.query_one("#dataset-detail", Static)
        if version is None:
            detail.update("")
            return
        text = Text(f"{version.dataset} {version.version}", style="bold")
        where = "object storage" if version.remote else "local folder"
        text.append(f"  {where} {version.uri}  ·  {files(version.file_count)}, "
                    f"{human_bytes(version.total_bytes)}")
        if extra:
            text.append(f"\n{extra}")
        detail.update(text)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if not self.on_versions():
            self.versions_table.focus()

    # -- create and add a version ----------------------------------------------------------

    def action_create(self) -> None:
        """Make a new dataset (its first version from a local folder or s3:// prefix)."""
        from app.tui.screens.dataset_form import DatasetFormScreen

        self.app.push_screen(DatasetFormScreen(self.ctx),
                             lambda info: self._made(info, "Created dataset"))

    def action_add_version(self) -> None:
        """Add the next version of the highlighted dataset."""
        dataset = self.highlighted_item()
        if not self.allowed("add_version") or dataset is None:
            return
        from app.tui.screens.dataset_form import DatasetFormScreen

        newest = latest(dataset)
        self.app.push_screen(
            DatasetFormScreen(self.ctx, dataset=dataset.name,
                              source=newest.uri if newest else ""),
            lambda info: self._made(info, "Added"))

    def _made(self, info: DatasetVersionInfo | None, what: str) -> None:
        """A dataset or version was made: read again and put the cursor on it."""
        if info is None:
            return
        self.notify(f"{what} {info.dataset} {info.version}: {files(info.file_count)}, "
                    f"{human_bytes(info.total_bytes)}")
        for line in info.warnings:
            self.notify(line, title="Files training will skip", severity="warning",
                        timeout=15)
        self.reload(select=(info.dataset, info.version))

    # -- check changes ---------------------------------------------------------------------

    def action_check(self) -> None:
        """Compare the highlighted version (the latest, from the upper table) with now."""
        dataset = self.highlighted_item()
        if not self.allowed("check") or dataset is None:
            return
        version = self.highlighted_version() if self.on_versions() else latest(dataset)
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
        self.show_detail("  ".join(message.lines))

    # -- delete ----------------------------------------------------------------------------

    def delete_question(self, item: DatasetInfo, version: DatasetVersionInfo | None) -> str:
        if version is not None:
            what = f"version {version.version} of dataset {item.name}"
        else:
            count = len(item.versions)
            what = f"dataset {item.name} and its {count} version{'s' if count != 1 else ''}"
        return (f"Delete {what} from Traindeck? The files themselves stay where they are; "
                "jobs that used it keep their records.")

    def delete_rows(self, ctx: Context, name: str, label: str | None) -> list[str]:
        from app.datasets import delete_dataset

        return delete_dataset(ctx, name, label)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("dataset: create", "Make a new dataset from a folder or s3:// "
                            "prefix", self.action_create)
        yield SystemCommand("dataset: add version", "Add a version to the highlighted "
                            "dataset", self.action_add_version)
        yield SystemCommand("dataset: check changes", "Compare a version with its files now",
                            self.action_check)
        yield from super().palette_commands()
