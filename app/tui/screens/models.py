"""Models: every registered model, and below it the versions of the highlighted one.

A model version records where it came from (`job/V003`), its engine, final metrics and
its artifact (copied under the data folder, or the training output referenced where it
lies). Enter on a version opens its source job; d deletes, after asking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import SystemCommand
from textual.binding import Binding
from textual.widgets import DataTable, Static

from app.formatting import format_value
from app.tui.messages import OpenJob
from app.tui.screens.master_detail import MasterDetailScreen
from app.tui.widgets.formatting import format_time
from app.tui.widgets.gpu_table import SyncRow

if TYPE_CHECKING:
    from app.context import Context
    from app.registry import ModelInfo, ModelVersionInfo

MODEL_COLUMNS: list[tuple[str, str, int | None]] = [
    ("name", "Model", 26), ("versions", "Versions", 8), ("latest", "Latest", 7),
    ("created", "Created", 16), ("description", "Description", 50),
]
VERSION_COLUMNS: list[tuple[str, str, int | None]] = [
    ("version", "Version", 7), ("source", "Source", 20), ("engine", "Engine", 12),
    ("metrics", "Metrics", 44), ("artifact", "Artifact", 9), ("created", "Created", 16),
]
SHOWN_METRICS = 3
"""Metrics per version in the table (the summary line shows them all)."""


def metrics_text(metrics: dict[str, float], limit: int | None = SHOWN_METRICS) -> str:
    """`f1 0.921 · accuracy 0.934 · loss 0.27`, in the usual metric order."""
    from app.metrics import ordered_metric_names

    names = ordered_metric_names(metrics)
    shown = names if limit is None else names[:limit]
    text = " · ".join(f"{name} {format_value(metrics[name])}" for name in shown)
    if limit is not None and len(names) > limit:
        text += f" · +{len(names) - limit}"
    return text or "—"


def read_models(ctx: Context) -> list[ModelInfo]:
    """Every model with all its versions (blocking: call from a worker)."""
    from app.registry import get_model, list_models

    return [get_model(ctx.db, model.name) for model in list_models(ctx.db)]


class ModelsScreen(MasterDetailScreen["ModelInfo", "ModelVersionInfo"]):
    """Models and their versions; tab moves between the two tables."""

    CSS_PATH = "models.tcss"
    AUTO_FOCUS = "#models-table"
    BINDINGS = [
        # Priority: the table's own enter (show=False) would hide this one from the footer.
        Binding("enter", "open", "Open", priority=True, id="models.open"),
        Binding("tab", "switch_table", "Models/versions", id="models.switch"),
        Binding("d", "delete", "Delete", id="models.delete"),
        Binding("escape", "back", "Back", id="models.back"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="models.reload"),
    ]
    NOUN = "model"
    PLURAL = "models"
    MASTER_COLUMNS = MODEL_COLUMNS
    VERSION_COLUMNS = VERSION_COLUMNS
    MASTER_ID = "models-table"
    VERSIONS_ID = "model-versions-table"
    VERSIONS_TITLE_ID = "model-versions-title"
    DETAIL_ID = "model-version-detail"
    EMPTY_ID = "models-empty"
    READ_ON_RESUME = True
    """Back from a job's screen, the versions a model came from may be gone."""

    # -- items and rows --------------------------------------------------------------------

    def read_items(self, ctx: Context) -> list[ModelInfo]:
        return read_models(ctx)

    def item_key(self, item: ModelInfo) -> str:
        return item.name

    def item_versions(self, item: ModelInfo) -> Sequence[ModelVersionInfo]:
        return item.versions

    def version_key(self, version: ModelVersionInfo) -> str:
        return version.version

    def empty_text(self) -> str:
        return ("No models yet — open a job, pick a succeeded version and press M "
                "(or `traindeck models create`)")

    def master_row(self, item: ModelInfo) -> SyncRow:
        created = format_time(item.created)
        texts = (item.name, str(item.version_count), item.latest or "—", created,
                 item.description)
        description = Text(item.description or "—", no_wrap=True, overflow="ellipsis")
        cells = (Text(item.name, style="bold"), *texts[1:4], description)
        return SyncRow(item.name, texts, cells)

    def version_row(self, version: ModelVersionInfo) -> SyncRow:
        source = version.source if version.source_version_id else f"{version.source} (gone)"
        artifact = "copied" if version.copied else "reference"
        texts = (version.version, source, version.engine or "—", metrics_text(version.metrics),
                 artifact, format_time(version.created))
        cells = (Text(version.version, style="bold"), *texts[1:3],
                 Text(texts[3], no_wrap=True, overflow="ellipsis"), *texts[4:])
        return SyncRow(version.version, texts, cells)

    def show_detail(self) -> None:
        version = self.highlighted_version()
        detail = self.query_one("#model-version-detail", Static)
        if version is None:
            detail.update("")
            return
        where = "copied to" if version.copied else "references"
        text = Text(f"{version.model} {version.version}", style="bold")
        text.append(f" {where} {version.artifact}\n")
        text.append(f"metrics: {metrics_text(version.metrics, None)}")
        if version.parameters:
            params = ", ".join(f"{k}={format_value(v)}" for k, v in version.parameters.items())
            text.append(f"  ·  parameters: {params}")
        detail.update(text)

    # -- delete ----------------------------------------------------------------------------

    def delete_question(self, item: ModelInfo, version: ModelVersionInfo | None) -> str:
        if version is not None:
            what = f"version {version.version} of model {item.name}"
        else:
            count = f"{item.version_count} version{'s' if item.version_count != 1 else ''}"
            what = f"model {item.name} and its {count}"
        return (f"Delete {what}? Artifacts copied for it are deleted too; training "
                "outputs it only references stay where they are.")

    def delete_rows(self, ctx: Context, name: str, label: str | None) -> list[str]:
        from app.registry import delete_model

        return delete_model(ctx, name, label)

    # -- open ------------------------------------------------------------------------------

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        """On a model: go to its versions. On a version: open the job it came from."""
        if not self.on_versions():
            if self.highlighted_item() is not None:
                self.versions_table.focus()
            return
        version = self.highlighted_version()
        if version is None:
            return
        if version.source_version_id is None:
            self.notify(f"{version.source} no longer exists", severity="warning")
            return
        job, _, label = version.source.rpartition("/")
        self.post_message(OpenJob(job, select=label))

    def data_changed(self, _job: str | None = None) -> None:
        """A job or version went away: sources may now be gone."""
        self.reload()

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("model: open source job", "Open the job a model version came from",
                            self.action_open)
        yield from super().palette_commands()
