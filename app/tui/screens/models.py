"""Models: every registered model, and below it the versions of the highlighted one.

A model version records where it came from (`job/V003`), its engine, final metrics and
its artifact (copied under the data folder, or the training output referenced where it
lies). Enter on a version opens its source job; d deletes, after asking.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from app.tui.widgets.formatting import format_time, format_value
from app.tui.widgets.gpu_table import GpuTable, SyncRow

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


class ModelsScreen(Screen[None]):
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

    models: reactive[list[ModelInfo] | None] = reactive(None, init=False, always_update=True)
    """Every model with its versions; None until the first read comes back."""

    class Loaded(Message):
        """The models and their versions, read by a worker (or why not)."""

        def __init__(self, models: list[ModelInfo], error: str = "") -> None:
            super().__init__()
            self.models = models
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
        yield GpuTable(MODEL_COLUMNS, id="models-table")
        yield Static("Versions", id="model-versions-title", classes="section-title")
        yield GpuTable(VERSION_COLUMNS, id="model-versions-table")
        yield Static("", id="model-version-detail")
        yield Static("Reading models…", id="models-empty", classes="empty-state")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "models"
        self._set_body_display(False)  # read on ScreenResume, which follows the first mount

    def _set_body_display(self, shown: bool) -> None:
        for selector in ("#models-table", "#model-versions-title", "#model-versions-table",
                         "#model-version-detail"):
            self.query_one(selector).display = shown
        self.query_one("#models-empty").display = not shown

    # -- reading ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-read")
    def _read(self, ctx: Context) -> None:
        """Read every model and its versions."""
        from app.errors import TraindeckError

        try:
            models = read_models(ctx)
        except TraindeckError as exc:
            self.post_message(self.Loaded([], str(exc)))
            return
        self.post_message(self.Loaded(models))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.error:
            self.notify(message.error, title="Cannot read models", severity="error")
        self.models = message.models

    def watch_models(self, models: list[ModelInfo] | None) -> None:
        if models is None:
            return
        if not models:
            self.query_one("#models-empty", Static).update(
                "No models yet — open a job, pick a succeeded version and press M "
                "(or `traindeck models create`)")
            self._set_body_display(False)
            return
        self._set_body_display(True)
        self.query_one("#models-table", GpuTable).sync([self._model_row(m) for m in models])
        self._shown_versions_of = None
        self._show_versions()
        if self.focused is None:
            self.query_one("#models-table", GpuTable).focus()

    def _model_row(self, model: ModelInfo) -> SyncRow:
        created = format_time(model.created)
        texts = (model.name, str(model.version_count), model.latest or "—", created,
                 model.description)
        description = Text(model.description or "—", no_wrap=True, overflow="ellipsis")
        cells = (Text(model.name, style="bold"), *texts[1:4], description)
        return SyncRow(model.name, texts, cells)

    def _version_row(self, version: ModelVersionInfo) -> SyncRow:
        source = version.source if version.source_version_id else f"{version.source} (gone)"
        artifact = "copied" if version.copied else "reference"
        texts = (version.version, source, version.engine or "—", metrics_text(version.metrics),
                 artifact, format_time(version.created))
        cells = (Text(version.version, style="bold"), *texts[1:3],
                 Text(texts[3], no_wrap=True, overflow="ellipsis"), *texts[4:])
        return SyncRow(version.version, texts, cells)

    # -- the highlighted model and version ---------------------------------------------------

    def highlighted_model(self) -> ModelInfo | None:
        """The model under the cursor of the upper table."""
        key = self.query_one("#models-table", GpuTable).highlighted_key()
        return next((m for m in self.models or [] if m.name == key), None)

    def highlighted_version(self) -> ModelVersionInfo | None:
        """The version under the cursor of the lower table."""
        model = self.highlighted_model()
        key = self.query_one("#model-versions-table", GpuTable).highlighted_key()
        if model is None:
            return None
        return next((v for v in model.versions if v.version == key), None)

    def _show_versions(self) -> None:
        model = self.highlighted_model()
        table = self.query_one("#model-versions-table", GpuTable)
        title = self.query_one("#model-versions-title", Static)
        if model is None:
            table.sync([])
            title.update("Versions")
        else:
            switched = model.name != self._shown_versions_of
            # Newest first: the version people look for is usually the last one made.
            table.sync([self._version_row(v) for v in reversed(model.versions)],
                       force=switched)
            if switched:
                table.move_cursor(row=0, animate=False)
            title.update(f"Versions of {model.name}")
        self._shown_versions_of = model.name if model else None
        self._show_version_detail()

    def _show_version_detail(self) -> None:
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

    @on(DataTable.RowHighlighted, "#models-table")
    def _model_highlighted(self) -> None:
        self._show_versions()

    @on(DataTable.RowHighlighted, "#model-versions-table")
    def _version_highlighted(self) -> None:
        self._show_version_detail()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    # -- actions ---------------------------------------------------------------------------

    def _on_versions(self) -> bool:
        focused = self.focused
        return isinstance(focused, GpuTable) and focused.id == "model-versions-table"

    def action_open(self) -> None:
        """On a model: go to its versions. On a version: open the job it came from."""
        if not self._on_versions():
            if self.highlighted_model() is not None:
                self.query_one("#model-versions-table", GpuTable).focus()
            return
        version = self.highlighted_version()
        if version is None:
            return
        if version.source_version_id is None:
            self.notify(f"{version.source} no longer exists", severity="warning")
            return
        from app.tui.screens.job_detail import JobDetailScreen

        job, _, label = version.source.rpartition("/")
        self.app.push_screen(JobDetailScreen(self.ctx, job, select=label))

    def action_switch_table(self) -> None:
        """Move between the models and the versions."""
        target = "#models-table" if self._on_versions() else "#model-versions-table"
        self.query_one(target, GpuTable).focus()

    def action_delete(self) -> None:
        """Delete the highlighted model (or, in the lower table, one version), after asking."""
        model = self.highlighted_model()
        if model is None:
            return
        label = None
        if self._on_versions():
            version = self.highlighted_version()
            if version is None:
                return
            label = version.version
            what = f"version {label} of model {model.name}"
        else:
            count = f"{model.version_count} version{'s' if model.version_count != 1 else ''}"
            what = f"model {model.name} and its {count}"
        question = (f"Delete {what}? Artifacts copied for it are deleted too; training "
                    "outputs it only references stay where they are.")
        from app.tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(self.ctx, model.name, label)

        self.app.push_screen(ConfirmScreen(question, title="Delete model", yes="Delete"),
                             answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="models-write")
    def _delete(self, ctx: Context, name: str, label: str | None) -> None:
        """Delete the rows and the copied artifacts."""
        from app.errors import TraindeckError
        from app.registry import delete_model

        try:
            labels = delete_model(ctx, name, label)
        except TraindeckError as exc:
            self.post_message(self.Deleted(name, str(exc)))
            return
        self.post_message(self.Deleted(f"{name} {', '.join(labels)}".strip()))

    @on(Deleted)
    def _deleted(self, message: Deleted) -> None:
        if message.error:
            self.notify(message.error, title="Not deleted", severity="error")
        else:
            self.notify(f"Deleted model {message.what}")
        self._read(self.ctx)

    def action_reload(self) -> None:
        """Read the models again."""
        self._read(self.ctx)

    def action_back(self) -> None:
        """Go back to the previous screen."""
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)

    def on_screen_resume(self) -> None:
        self._read(self.ctx)

    def data_changed(self, _job: str | None = None) -> None:
        """A job or version went away: sources may now be gone."""
        self._read(self.ctx)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("model: open source job", "Open the job a model version came from",
                            self.action_open)
        yield SystemCommand("model: delete", "Delete the highlighted model or version",
                            self.action_delete)
        yield SystemCommand("view: reload models", "Read the models again", self.action_reload)
