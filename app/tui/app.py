"""The Traindeck application: global keys, theme variables, the palette, the job list first.

Start-up is ordered for speed: the job list draws its first page straight from the SQLite
file (stdlib only), and only then does a worker open the core (settings, SQLModel,
migrations). Once it is open the app greets with "since you left" when something
happened, watches subscribed events (bell, OSC 9, a toast) and loads the user's themes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import get_current_worker

from app.tui.early_keys import EarlyKeys
from app.tui.messages import (
    ActionDone,
    ActionFailed,
    ContextFailed,
    ContextReady,
    JobsChanged,
    OpenJob,
    VersionCreated,
)
from app.tui.screens.jobs import JobsScreen
from app.tui.widgets.status import theme_variable_defaults

FOCUS_ACTIONS = frozenset({"app.focus_next", "app.focus_previous", "focus_next",
                           "focus_previous"})
"""Tab bindings that only move the focus (any other tab binding is left its key)."""

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel
    from textual.theme import Theme

    from app.context import Context
    from app.jobs import VersionRef
    from app.notify import Alert
    from app.readmodels import VersionInfo
    from app.since import Summary
    from app.tui.wizard.choices import TemplateChoice

ALERT_POLL_SECONDS = 2.0
"""How often subscribed events are looked for while the TUI is open."""
THEME_SETTLE_SECONDS = 1.0
"""A theme chosen stays this long before it is written into the config file."""
CORE_FALLBACK_SECONDS = 1.0
"""Open the core after this long even if the job list never asked (it normally does)."""

REPLACED_COMMANDS = frozenset({"Theme", "Quit", "Keys"})
"""Textual's palette commands that `app: theme …`, `app: quit` and `app: help` replace."""

VIEWS: dict[str, tuple[str, str, str]] = {
    "templates": ("app.tui.screens.templates", "TemplatesScreen",
                  "templates (saved job parameters)"),
    "gpus": ("app.tui.screens.gpus", "GpusScreen", "GPUs and queue"),
    "datasets": ("app.tui.screens.datasets", "DatasetsScreen", "datasets"),
    "models": ("app.tui.screens.models", "ModelsScreen", "models"),
}
"""The secondary screens: name → (module, class, palette name after `view: `)."""


class TraindeckApp(EarlyKeys):
    """Jobs, versions, logs and comparisons of this workstation, in one terminal."""

    CSS_PATH = [Path(__file__).parent / "app.tcss",
                Path(__file__).parent / "screens" / "jobs.tcss",
                Path(__file__).parent / "screens" / "job_detail.tcss"]
    """Absolute, so that subclasses elsewhere (benchmarks, tests) find it too. The job
    list's layout is read here with the app's own: a screen's CSS_PATH is read when the
    screen is first shown, which costs the whole stylesheet a second parse at start-up."""
    TITLE = "Traindeck"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("f1", "help", "Help", show=False, id="app.help-f1"),
        Binding("T", "open_view('templates')", "Job parameters (templates)", show=False,
                id="app.templates"),
        Binding("U", "open_view('gpus')", "GPUs and queue", show=False, id="app.gpus"),
        Binding("D", "open_view('datasets')", "Datasets", show=False, id="app.datasets"),
        Binding("O", "open_view('models')", "Models", show=False, id="app.store.models"),
    ]

    ctx: var[Context | None] = var(None, init=False)
    """The open settings + database; None until the start-up worker has opened them."""
    context_error: var[str] = var("", init=False)
    """Why the database could not be opened (empty when all is well)."""

    def __init__(self, ctx: Context | None = None, *, create: str | None = None) -> None:
        """`ctx` is given by tests; otherwise the app opens its own after the first frame.

        `create` opens the create wizard once the database is open: empty for `""`,
        filled from that spec file for a path (`traindeck create [--from FILE]`).
        """
        super().__init__()
        self._given_ctx = ctx
        self._create = create
        self._context_requested = False
        self._themes_applied = False
        self._alert_cursor: int | None = None
        self._alert_timer: Timer | None = None
        self._theme_timer: Timer | None = None

    @property
    def fast_start(self) -> bool:
        """True when the job list may draw its first page before the core is open."""
        return self._given_ctx is None

    def get_default_screen(self) -> Screen[Any]:
        """The job list: the first screen, and the one every other screen returns to."""
        return JobsScreen()

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults()

    class ThemesLoaded(Message):
        """User and shipped theme files, read by a worker (with one line per bad file)."""

        def __init__(self, themes: list[Theme], errors: list[str]) -> None:
            super().__init__()
            self.themes = themes
            self.errors = errors

    class SinceRead(Message):
        """What happened while the TUI was closed (None: nothing worth a word)."""

        def __init__(self, summary: Summary | None) -> None:
            super().__init__()
            self.summary = summary

    class AlertsRead(Message):
        """Subscribed status changes after event `after`, and the cursor to read from next."""

        def __init__(self, after: int | None, alerts: list[Alert], cursor: int) -> None:
            super().__init__()
            self.after = after
            self.alerts = alerts
            self.cursor = cursor

    class JobRead(Message):
        """A job's versions, read before its screen opens (None: the screen reads them)."""

        def __init__(self, ctx: Context, job: str, select: str | None,
                     versions: list[VersionInfo] | None) -> None:
            super().__init__()
            self.ctx = ctx
            self.job = job
            self.select = select
            self.versions = versions

    # -- start-up ----------------------------------------------------------------------------

    def on_mount(self) -> None:
        # Workers (database reads) hand the interpreter back to the UI thread, and get it
        # back, every millisecond rather than every 5: a read that runs while the screen
        # draws is not stretched tenfold by waiting for its turn.
        sys.setswitchinterval(0.001)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self._given_ctx is not None:
            self.ctx = self._given_ctx
            self._context_requested = True
            self._load_themes()
            self._after_context(self._given_ctx)
        else:
            self.set_timer(CORE_FALLBACK_SECONDS, self.open_context)

    def open_context(self) -> None:
        """Open the core in a worker (once; the job list calls this after its first page)."""
        if self._context_requested:
            return
        self._context_requested = True
        self._open_context()

    @work(thread=True, exclusive=True, exit_on_error=False, group="context")
    def _open_context(self) -> None:
        """Open settings + database (migrations included) off the UI thread."""
        from app.context import Context
        from app.errors import TraindeckError

        try:
            ctx = Context.open()
        except TraindeckError as exc:
            self.post_message(ContextFailed(str(exc)))
            return
        ctx.db.checkpoint_in_background()  # no write of the UI's waits for one
        self.post_message(ContextReady(ctx))
        self._read_theme_files()
        self._reconcile(ctx)
        from app.procs import settle_heap

        settle_heap()  # start-up is over: later collections skip what it made

    def _reconcile(self, ctx: Context) -> None:
        """Settle versions whose supervisor is gone, as every start of the CLI does."""
        from app.errors import TraindeckError
        from app.runtime.reconcile import reconcile

        try:
            actions = reconcile(ctx)
        except TraindeckError as exc:
            self.call_from_thread(self.notify, f"reconciling runs: {exc}", title="Runs",
                                  severity="warning", timeout=15)
            return
        for action in actions:
            self.call_from_thread(self.notify, action, title="Runs", timeout=8)

    @work(thread=True, exclusive=True, exit_on_error=False, group="themes")
    def _load_themes(self) -> None:
        """Read the theme files off the UI thread."""
        self._read_theme_files()

    def _read_theme_files(self) -> None:
        from app.tui.themes import load_user_themes, theme_dirs

        themes, errors = load_user_themes(theme_dirs())
        self.post_message(self.ThemesLoaded(themes, errors))

    def on_context_ready(self, message: ContextReady) -> None:
        self.ctx = message.ctx
        self._after_context(message.ctx)

    def _after_context(self, ctx: Context) -> None:
        """What needs the database: the "since you left" report and the event watch (or,
        when started to create a job, the wizard instead of the report)."""
        if self._create is not None:
            path, self._create = self._create, None
            if path:
                self.action_create_from_file(path)
            else:
                self.open_wizard()
        else:
            self._read_since(ctx)
        self._read_alerts(ctx, None)
        if self._alert_timer is None:
            self._alert_timer = self.set_interval(ALERT_POLL_SECONDS, self._poll_alerts)

    def on_traindeck_app_themes_loaded(self, message: ThemesLoaded) -> None:
        from app.tui.themes import apply_theme, install_themes

        install_themes(self, message.themes)
        errors = list(message.errors)
        if self.ctx is not None:
            error = apply_theme(self, self.ctx.settings.theme)
            if error:
                errors.append(error)
        self._themes_applied = True
        for error in errors:
            self.notify(error, title="Theme", severity="warning", timeout=10)

    def on_context_failed(self, message: ContextFailed) -> None:
        self.context_error = message.error
        self.notify(message.error, title="Cannot open the database", severity="error",
                    timeout=30)

    # -- since you left --------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="since")
    def _read_since(self, ctx: Context) -> None:
        """Summarise what changed since the TUI was last open, and mark now as seen."""
        from app.errors import TraindeckError
        from app.since import since_last_seen
        from app.tui import clock

        try:
            summary = since_last_seen(ctx.db, clock.now())
        except TraindeckError:
            return  # a greeting is not worth an error popup
        self.post_message(self.SinceRead(summary))

    def on_traindeck_app_since_read(self, message: SinceRead) -> None:
        if message.summary is not None:
            from app.tui.screens.since import SinceScreen

            self.push_screen(SinceScreen(message.summary))

    def leave(self) -> None:
        """After the app has closed: remember this moment as seen, let notifications finish."""
        if self.ctx is not None:
            from app.errors import TraindeckError
            from app.since import mark_seen
            from app.tui import clock

            # On failure the next start merely reports a little more than needed.
            with contextlib.suppress(TraindeckError):
                mark_seen(self.ctx.db, clock.now())
        from app.notify import wait_for_notifications

        wait_for_notifications()

    # -- subscribed events: bell, OSC 9, toast ---------------------------------------------

    def _poll_alerts(self) -> None:
        if self.ctx is not None:
            self._read_alerts(self.ctx, self._alert_cursor)

    @work(thread=True, exclusive=True, exit_on_error=False, group="alerts")
    def _read_alerts(self, ctx: Context, after: int | None) -> None:
        """Status changes that versions subscribed to, since event `after` (None: start)."""
        from app import notify
        from app.errors import TraindeckError

        try:
            alerts: list[Alert] = []
            if after is None:
                cursor = notify.latest_event_id(ctx.db)
            else:
                alerts, cursor = notify.subscribed_events_since(ctx.db, after)
        except TraindeckError:
            return  # tried again at the next poll
        if cursor != after and not get_current_worker().is_cancelled:
            self.post_message(self.AlertsRead(after, alerts, cursor))

    def on_traindeck_app_alerts_read(self, message: AlertsRead) -> None:
        if message.after != self._alert_cursor:
            return  # an older read that a newer one overtook
        self._alert_cursor = message.cursor
        for alert in message.alerts:
            self.ring(alert)

    def ring(self, alert: Alert) -> None:
        """Tell the user about `alert`: the bell, a desktop notification (OSC 9), a toast."""
        from app.notify import osc9

        self.bell()
        self.write_escape(osc9(alert.text))
        severity: SeverityLevel = "error" if alert.status == "failed" else "information"
        self.notify(alert.text, title=f"Job {alert.status}", severity=severity, timeout=8)

    def write_escape(self, sequence: str) -> None:
        """Send a raw escape sequence to the terminal (nothing when headless).

        Textual has no public call for this; its own OSC 52 clipboard and bell write
        through the driver the same way.
        """
        driver = self._driver
        if driver is not None and not self.is_headless:
            driver.write(sequence)

    # -- themes ----------------------------------------------------------------------------

    def _theme_changed(self, _theme: Theme) -> None:
        # The theme picker previews each theme it passes: write once the choice settles.
        if self._theme_timer is not None:
            self._theme_timer.stop()
        self._theme_timer = self.set_timer(THEME_SETTLE_SECONDS, self._theme_settled)

    def _theme_settled(self) -> None:
        ctx = self.ctx
        if ctx is None or not self._themes_applied or self.theme == ctx.settings.theme:
            return
        ctx.settings.theme = self.theme
        self._remember_theme(self.theme)

    @work(thread=True, exclusive=True, exit_on_error=False, group="theme-write")
    def _remember_theme(self, name: str) -> None:
        """Write the chosen theme into the config file."""
        from app.errors import TraindeckError
        from app.tui.themes import remember_theme

        try:
            remember_theme(name)
        except TraindeckError as exc:
            self.post_message(ActionFailed("Theme not remembered", str(exc)))

    # -- messages from screens -------------------------------------------------------------

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text)

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(message.error, title=message.what, severity="error", timeout=10)

    def on_jobs_changed(self, message: JobsChanged) -> None:
        for screen in self.screen_stack:
            hook = getattr(screen, "data_changed", None)
            if callable(hook):
                hook(message.job)

    def on_version_created(self, message: VersionCreated) -> None:
        self.notify(f"Created {message.ref.job} {message.ref.version}")
        for screen in self.screen_stack:
            hook = getattr(screen, "version_created", None)
            if callable(hook):
                hook(message.ref)

    def on_templates_screen_use_template(self, message: Any) -> None:
        """A template's "use": the wizard, filled with its spec."""
        self.open_wizard(initial=message.spec)

    def on_templates_screen_edit_template(self, message: Any) -> None:
        """A template's "edit": the wizard in its edit mode, filled with the template."""
        from app.tui.wizard.choices import TemplateChoice

        self.open_wizard(edit_template=TemplateChoice(message.name, message.description,
                                                      message.spec, message.problem))

    # -- navigation ------------------------------------------------------------------------

    def open_wizard(self, modify_from: tuple[str, str] | None = None,
                    initial: dict[str, Any] | None = None, *, base_dir: Path | None = None,
                    source: str | None = None, edit_template: TemplateChoice | None = None,
                    ) -> None:
        """Open the create wizard: a new job (from `initial`, a template's spec or the spec
        file `source` whose paths resolve against `base_dir`, when given), a new version
        made from `modify_from`, or saved job parameters to edit."""
        if self.ctx is None:
            self.notify("The database is still opening.", severity="warning")
            return
        from app.templates import TemplateInfo
        from app.tui.wizard.screen import WizardScreen

        def created(ref: VersionRef | TemplateInfo | None) -> None:
            if isinstance(ref, TemplateInfo):
                self.notify(f"Saved job parameters {ref.name}")
                for screen in self.screen_stack:
                    hook = getattr(screen, "template_saved", None)
                    if callable(hook):
                        hook(ref.name)
            elif ref is not None:
                self.post_message(VersionCreated(ref))

        self.push_screen(WizardScreen(self.ctx, modify_from=modify_from, initial=initial,
                                      base_dir=base_dir, source=source,
                                      edit_template=edit_template), created)

    def open_job(self, job: str, select: str | None = None) -> None:
        """Open a job's screen on version `select` (None: the latest).

        Its versions are read first, off the UI thread, so that the screen is composed
        with them and drawn once, rather than drawn empty and then again."""
        if self.ctx is None:
            self.notify("The database is still opening.", severity="warning")
            return
        self.hold_keys()  # (typed before the screen is there: for the screen)
        self._read_job(self.ctx, job, select)

    @work(thread=True, exclusive=True, exit_on_error=False, group="open-job")
    def _read_job(self, ctx: Context, job: str, select: str | None) -> None:
        """Read the versions of the job to open (and load its screen's code meanwhile)."""
        import app.tui.screens.job_detail  # noqa: F401  (its code loads off the UI thread)
        from app import queries
        from app.errors import TraindeckError

        try:
            versions: list[VersionInfo] | None = queries.job_versions(ctx.db, job)
        except TraindeckError:
            versions = None  # the screen reads them again, and says what is wrong
        if not get_current_worker().is_cancelled:
            self.post_message(self.JobRead(ctx, job, select, versions))

    def on_open_job(self, message: OpenJob) -> None:
        self.open_job(message.job, message.select)

    def on_traindeck_app_job_read(self, message: JobRead) -> None:
        from app.tui.screens.job_detail import JobDetailScreen

        self.push_screen(JobDetailScreen(message.ctx, message.job, select=message.select,
                                         versions=message.versions))
        self.call_after_refresh(self.release_keys)

    def action_create_from_file(self, path: str = "") -> None:
        """Ask for a spec file (`path` tried at once when given), then open the wizard
        filled from it, with its errors beside the fields."""
        if self.ctx is None:
            self.notify("The database is still opening.", severity="warning")
            return
        from app.tui.screens.spec_file import LoadedSpec, SpecFileScreen

        def loaded(spec: LoadedSpec | None) -> None:
            if spec is not None:
                self.open_wizard(initial=spec.raw, base_dir=spec.base_dir, source=spec.source)

        self.push_screen(SpecFileScreen(path=path, open_at_once=bool(path)), loaded)

    def action_open_view(self, view: str) -> None:
        """Open one of the secondary screens (templates, GPUs, datasets, models)."""
        if view not in VIEWS:
            return
        if self.ctx is None:
            self.notify("The database is still opening.", severity="warning")
            return
        import importlib

        module, name, _title = VIEWS[view]
        screen_class = getattr(importlib.import_module(module), name)
        if isinstance(self.screen, screen_class):
            return
        self.push_screen(screen_class(self.ctx))

    def action_jobs(self) -> None:
        """Back to the job list, closing every screen above it."""
        while len(self.screen_stack) > 1:
            self.pop_screen()

    async def on_event(self, event: events.Event) -> None:
        # Tab moves the focus as soon as the key is read, not when the focused widget
        # gets to it: keys that arrive in one burst (a paste, a slow SSH link catching
        # up) then land in the field they were typed for. A screen or widget with a tab
        # key of its own (switching tables, completing a path) keeps it.
        if (isinstance(event, events.Key) and not event.is_forwarded
                and event.key in ("tab", "shift+tab") and self._tab_only_moves_focus(event.key)):
            if event.key == "tab":
                self.screen.focus_next()
            else:
                self.screen.focus_previous()
            return
        await super().on_event(event)

    def _tab_only_moves_focus(self, key: str) -> bool:
        return all(binding.action in FOCUS_ACTIONS
                   for _namespace, bindings in self.screen._modal_binding_chain
                   for binding in bindings.key_to_bindings.get(key, ()))

    def action_help(self) -> None:
        """Show the keys of the current screen."""
        from app.tui.screens.help import HelpScreen, collect_help

        if isinstance(self.screen, HelpScreen):
            return
        title = f"Keys — {self.screen.sub_title or self.screen.title or 'Traindeck'}"
        self.push_screen(HelpScreen(collect_help(self.screen), title))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        # Textual's own Theme, Quit and Keys would stand beside ours that do the same.
        yield from (command for command in super().get_system_commands(screen)
                    if command.title not in REPLACED_COMMANDS)
        yield SystemCommand("app: help", "Show the keys of this screen", self.action_help)
        yield SystemCommand("app: quit", "Leave Traindeck (running jobs go on)", self.exit)
        yield SystemCommand("app: theme …", "Pick a theme (remembered in the config file)",
                            self.action_change_theme)
        yield SystemCommand("view: jobs", "Back to the job list", self.action_jobs)
        yield SystemCommand("job: create from spec file…",
                            "Open the create wizard filled from a spec YAML file",
                            self.action_create_from_file)
        for view, (_module, _name, title) in VIEWS.items():
            yield SystemCommand(f"view: {title}", f"Open the {title} screen",
                                lambda view=view: self.action_open_view(view))
        commands = getattr(screen, "palette_commands", None)
        if callable(commands):
            yield from commands()


def run(create: str | None = None) -> None:
    """Open the TUI (what `traindeck` with no arguments does); `create` opens the create
    wizard at once, filled from that spec file when it is a path."""
    app = TraindeckApp(create=create)
    app.run()
    app.leave()


if __name__ == "__main__":
    run()
