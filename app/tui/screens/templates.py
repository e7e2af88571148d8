"""Saved job parameters (templates): list, read the spec, use one in the wizard, edit one
in the wizard, delete.

Each template is checked against the catalog in the same worker that reads the list, so a
template whose engine, dataset, pool or topic has gone away is marked with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import DataTable, Header, Static

from app.tui.screens.first_show import FirstShow
from app.tui.themes import theme_colour
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.formatting import format_time
from app.tui.widgets.gpu_table import GpuTable, SyncRow
from app.tui.widgets.template_spec import TemplateSpec, TemplateView

if TYPE_CHECKING:
    from app.context import Context

COLUMNS: list[tuple[str, str, int | None]] = [
    ("name", "Name", 22), ("description", "Description", 24), ("engine", "Engine", 14),
    ("updated", "Updated", 16), ("check", "Check", 32),
]


@dataclass(frozen=True)
class TemplateRow:
    """One template as the screen shows it."""

    name: str
    description: str
    engine: str
    updated: datetime
    problem: str
    """Why it cannot be used as it is ('' when it can)."""
    spec: dict[str, Any]
    yaml: str

    @property
    def view(self) -> TemplateView:
        """What the spec panel shows."""
        return TemplateView(self.name, self.description, self.problem, self.yaml)


def read_templates(ctx: Context) -> list[TemplateRow]:
    """Every template with its catalog check (blocking: call from a worker)."""
    from app.templates import list_templates, template_problem

    catalog = ctx.catalog
    return [
        TemplateRow(info.name, info.description, info.engine, info.updated,
                    template_problem(catalog, info.spec), info.spec, info.to_yaml())
        for info in list_templates(ctx)
    ]


class TemplatesScreen(FirstShow, Screen[None]):
    """Saved job parameters: enter shows the spec, enter again or u fills the wizard, e edits
    them in the wizard."""

    CSS_PATH = "templates.tcss"
    AUTO_FOCUS = "#templates-table"
    BINDINGS = [
        # Priority: the table's own enter (show=False) would hide this one from the footer.
        Binding("enter", "open", "Spec / use", priority=True, id="templates.open"),
        Binding("u", "use", "Use", id="templates.use"),
        Binding("e", "edit", "Edit", id="templates.edit"),
        Binding("d", "delete", "Delete", id="templates.delete"),
        Binding("escape", "back", "Back", id="templates.back"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="templates.reload"),
    ]

    panel_open: reactive[bool] = reactive(False, init=False)
    """True while the spec panel is shown beside the list."""
    loaded: reactive[bool] = reactive(False, init=False)
    """True once the first read came back (the empty state waits for it)."""

    class Loaded(Message):
        """The templates and their checks, read by a worker."""

        def __init__(self, rows: list[TemplateRow], error: str = "") -> None:
            super().__init__()
            self.rows = rows
            self.error = error

    class Deleted(Message):
        """A delete finished (`error` is empty when it worked)."""

        def __init__(self, name: str, error: str = "") -> None:
            super().__init__()
            self.name = name
            self.error = error

    class UseTemplate(Message):
        """The user wants a new job from these parameters: the app opens the wizard with
        `WizardScreen(ctx, initial=spec)`. Bubbles from the screen to the app."""

        def __init__(self, name: str, spec: dict[str, Any], problem: str) -> None:
            super().__init__()
            self.name = name
            self.spec = spec
            self.problem = problem

    class EditTemplate(Message):
        """The user wants to change these job parameters: the app opens the wizard in its
        edit mode. Bubbles from the screen to the app."""

        def __init__(self, name: str, description: str, spec: dict[str, Any],
                     problem: str) -> None:
            super().__init__()
            self.name = name
            self.description = description
            self.spec = spec
            self.problem = problem

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self._rows: dict[str, TemplateRow] = {}
        self._select: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="templates-body"):
            yield GpuTable(COLUMNS, id="templates-table")
            yield TemplateSpec(id="templates-spec")
        yield Static("Reading job parameters…", id="templates-empty", classes="empty-state")
        yield Static("", id="templates-summary")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "job parameters"
        self.query_one("#templates-body").display = False
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self._read(self.ctx)

    # -- reading ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="templates-read")
    def _read(self, ctx: Context) -> None:
        """Read the templates and check each against the catalog."""
        from app.errors import TraindeckError

        try:
            rows = read_templates(ctx)
        except TraindeckError as exc:
            self.post_message(self.Loaded([], str(exc)))
            return
        self.post_message(self.Loaded(rows))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.error:
            self.notify(message.error, title="Cannot read job parameters", severity="error")
        self._rows = {row.name: row for row in message.rows}
        self._show_rows()
        self.loaded = True
        table = self.query_one(GpuTable)
        if self._select in table.row_keys:
            table.move_cursor(row=table.row_keys.index(self._select), animate=False)
            self._update_details()
        self._select = None

    def _show_rows(self, force: bool = False) -> None:
        table = self.query_one(GpuTable)
        table.sync([self._sync_row(row) for row in self._rows.values()], force=force)
        self._update_details()
        self.watch_loaded(self.loaded)

    def _sync_row(self, row: TemplateRow) -> SyncRow:
        updated = format_time(row.updated)
        if row.problem:
            warning = theme_colour(self.app, "warning", "yellow")
            name = Text(f"⚠ {row.name}", style=f"bold {warning}")
            check = Text(row.problem, style=warning, no_wrap=True, overflow="ellipsis")
        else:
            success = theme_colour(self.app, "success", "green")
            name = Text(row.name, style="bold")
            check = Text("✔ ready", style=success)
        texts = (row.name, row.description, row.engine, updated, row.problem or "ready")
        description = Text(row.description or "—", no_wrap=True, overflow="ellipsis")
        cells = (name, description, row.engine, updated, check)
        return SyncRow(row.name, texts, cells)

    def watch_loaded(self, loaded: bool) -> None:
        empty = self.query_one("#templates-empty", Static)
        body = self.query_one("#templates-body")
        has_rows = bool(self._rows)
        if loaded and not has_rows:
            empty.update("No saved job parameters yet — save them from a version with p "
                         "in a job's screen, or tick “save as job parameters” in the wizard")
        empty.display = not has_rows
        body.display = has_rows
        self.query_one("#templates-summary").display = has_rows
        if has_rows and self.focused is None:
            self.query_one(GpuTable).focus()

    def _theme_changed(self, _theme: Theme) -> None:
        self._show_rows(force=True)
        self.query_one(TemplateSpec).refresh_colours()

    # -- showing ---------------------------------------------------------------------------

    def highlighted(self) -> TemplateRow | None:
        """The template under the cursor."""
        key = self.query_one(GpuTable).highlighted_key()
        return self._rows.get(key) if key is not None else None

    def _update_details(self) -> None:
        row = self.highlighted()
        summary = self.query_one("#templates-summary", Static)
        if row is None:
            summary.update("")
            return
        text = Text(row.name, style="bold")
        if row.description:
            text.append(f" — {row.description}")
        if row.problem:
            text.append(f"  ·  ⚠ {row.problem}", style=theme_colour(self.app, "warning",
                                                                     "yellow"))
        summary.update(text)
        if self.panel_open:
            self.query_one(TemplateSpec).template = row.view

    def watch_panel_open(self, open_: bool) -> None:
        panel = self.query_one(TemplateSpec)
        panel.display = open_
        if open_:
            row = self.highlighted()
            panel.template = row.view if row else None

    @on(DataTable.RowHighlighted, "#templates-table")
    def _row_highlighted(self) -> None:
        self._update_details()

    @on(DataTable.RowSelected, "#templates-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    # -- actions ---------------------------------------------------------------------------

    def action_open(self) -> None:
        """Show the highlighted template's spec; when it is already shown, use it."""
        row = self.highlighted()
        if row is None:
            return
        panel = self.query_one(TemplateSpec)
        if self.panel_open and panel.template is not None and panel.template.name == row.name:
            self.action_use()
            return
        self.panel_open = True
        panel.template = row.view

    def action_use(self) -> None:
        """Start a new job from the highlighted template (the app opens the wizard)."""
        row = self.highlighted()
        if row is None:
            return
        if row.problem:
            self.notify(f"{row.problem}: fix it in the wizard", title=f"{row.name} needs a change",
                        severity="warning")
        self.post_message(self.UseTemplate(row.name, dict(row.spec), row.problem))

    def action_edit(self) -> None:
        """Change the highlighted template in the wizard (the app opens it)."""
        row = self.highlighted()
        if row is None:
            return
        self.post_message(self.EditTemplate(row.name, row.description, dict(row.spec),
                                            row.problem))

    def action_delete(self) -> None:
        """Delete the highlighted template, after asking."""
        row = self.highlighted()
        if row is None:
            return
        from app.tui.screens.confirm import ConfirmScreen

        question = (f"Delete the job parameters {row.name}? Jobs and versions made from "
                    "them are not affected.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(self.ctx, row.name)

        self.app.push_screen(ConfirmScreen(question, title="Delete job parameters",
                                           yes="Delete"), answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="templates-write")
    def _delete(self, ctx: Context, name: str) -> None:
        """Remove one template."""
        from app.errors import TraindeckError
        from app.templates import delete_template

        try:
            delete_template(ctx, name)
        except TraindeckError as exc:
            self.post_message(self.Deleted(name, str(exc)))
            return
        self.post_message(self.Deleted(name))

    @on(Deleted)
    def _deleted(self, message: Deleted) -> None:
        if message.error:
            self.notify(message.error, title="Not deleted", severity="error")
        else:
            self.notify(f"Deleted job parameters {message.name}")
        self._read(self.ctx)

    def action_reload(self) -> None:
        """Read the list again."""
        self._read(self.ctx)

    def action_back(self) -> None:
        """Close the spec panel, or go back."""
        if self.panel_open:
            self.panel_open = False
            return
        if len(self.app.screen_stack) > 1:
            self.dismiss(None)

    def template_saved(self, name: str) -> None:
        """Job parameters were saved (perhaps under a new name): read the list again and
        put the cursor on them."""
        self._select = name
        self._read(self.ctx)

    def data_changed(self, _job: str | None = None) -> None:
        """Templates may have been saved elsewhere in the app: read them again."""
        self._read(self.ctx)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("template: show spec", "Show the highlighted job parameters",
                            self.action_open)
        yield SystemCommand("template: use", "Create a job from the highlighted job parameters",
                            self.action_use)
        yield SystemCommand("template: edit", "Change the highlighted job parameters in the "
                            "wizard", self.action_edit)
        yield SystemCommand("template: delete", "Delete the highlighted job parameters",
                            self.action_delete)
        yield SystemCommand("view: reload job parameters", "Read the list again",
                            self.action_reload)
