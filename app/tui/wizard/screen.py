"""The create-job wizard: ModelArts' "create training job" steps, checked as you type.

Steps: basic info, job parameters, resources, subscriptions & save, confirm. The fields
(`JobForm`) make one raw spec mapping that is checked with the CLI's own rules in a
debounced thread worker; the errors come back as a message and stand beside their
fields. Modify is the same screen started from a parent version: its confirm page shows
the changes from the parent above the spec, before launching. Editing saved job
parameters is the same screen again: its last step saves them instead of creating a job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Input, Label, RadioSet, Select, Static

from app.context import Context
from app.errors import FieldError, SpecError, TraindeckError
from app.jobs import Launcher, VersionRef, create_version, modified_spec, submit
from app.templates import TemplateInfo, update_template
from app.tui.screens.confirm import ConfirmScreen
from app.tui.screens.first_show import FirstShow
from app.tui.widgets.footer import KeyFooter
from app.tui.wizard.checks import (
    SpecCheck,
    as_field_error,
    check_raw_spec,
    left_out_fields,
    locate,
    short_message,
)
from app.tui.wizard.choices import TemplateChoice, WizardChoices, load_choices
from app.tui.wizard.form import JobForm
from app.tui.wizard.rows import EditableRows
from app.tui.wizard.steps import StepIndicator

STEPS = ("Basic info", "Job parameters", "Resources", "Subscriptions & save", "Confirm")
CHECK_DELAY_S = 0.3
"""Typing pauses this long before the fields are checked again."""

WizardResult = VersionRef | TemplateInfo | None
"""What the wizard dismisses with: the version created, the job parameters saved (when
editing them), or None when cancelled."""


# ---------------------------------------------------------------- the screen


class WizardScreen(FirstShow, Screen[WizardResult]):
    """Create a training job (or a new version of one, or edit saved job parameters)
    step by step.

    Dismisses with the created `VersionRef` (or the saved `TemplateInfo`), or None when
    cancelled.
    """

    CSS_PATH = "screen.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    """Below 110 columns each field's note goes under it (see screen.tcss)."""

    BINDINGS = [
        Binding("ctrl+n", "next_step", "Next", id="wizard.next"),
        Binding("ctrl+b,ctrl+p", "previous_step", "Back", id="wizard.back"),
        Binding("ctrl+s", "create", "Create now", id="wizard.create"),
        Binding("ctrl+s", "save_template", "Save", id="wizard.save-template"),
        Binding("escape", "cancel", "Cancel", id="wizard.cancel"),
        # `q` quits the app elsewhere; here it must not drop what was typed without asking.
        Binding("q", "cancel", "Cancel", show=False, id="wizard.q"),
    ]

    step: reactive[int] = reactive(1, init=False)
    """The step shown, 1 (basic info) to 5 (confirm)."""
    creating: reactive[bool] = reactive(False, init=False)
    """True while the version is being created."""

    class ChoicesLoaded(Message):
        """Templates, datasets, presets (and the parent spec) were read."""

        def __init__(self, choices: WizardChoices | None, error: str = "") -> None:
            super().__init__()
            self.choices = choices
            self.error = error

    class Checked(Message):
        """The fields were checked."""

        def __init__(self, generation: int, result: SpecCheck) -> None:
            super().__init__()
            self.generation = generation
            self.result = result

    class Created(Message):
        """The version was created (or creating it failed, with the errors)."""

        def __init__(self, ref: VersionRef | TemplateInfo | None,
                     errors: list[FieldError]) -> None:
            super().__init__()
            self.ref = ref
            self.errors = errors

    def __init__(
        self, ctx: Context, *, initial: Mapping[str, Any] | None = None,
        modify_from: tuple[str, str] | None = None, base_dir: Path | None = None,
        launcher: Launcher | None = None, edit_template: TemplateChoice | None = None,
        source: str | None = None,
    ) -> None:
        """`initial` is a raw spec to start from (read from the file `source`, if any);
        `modify_from` is `(job, version label)`; `edit_template` the saved job parameters
        to edit (their spec is the one shown).

        `launcher` is passed on to `submit`/`create_version` (tests pass a no-op).
        """
        super().__init__()
        self.ctx = ctx
        self.edit_template = edit_template
        if edit_template is not None:
            initial = {**edit_template.spec, "save_as_template": {
                "name": edit_template.name, "description": edit_template.description}}
        self.initial = dict(initial) if initial is not None else None
        self.source = source
        self.modify_from = modify_from
        self.base_dir = (base_dir or Path.cwd()).resolve()
        self.launcher = launcher
        self.choices = WizardChoices()
        self.result: SpecCheck | None = None
        """The last full check: what "Create now" will create."""
        self._loaded = False
        self._show_all = False
        self._touched: set[str] = set()
        self._attempted: set[int] = set()
        self._errors: list[FieldError] = []
        self._generation = 0
        self._timer: Timer | None = None
        self._pending_step: int | None = None
        self._baseline: dict[str, Any] = {}

    @property
    def form(self) -> JobForm:
        """The fields of steps 1-4."""
        return self.query_one(JobForm)

    def compose(self) -> ComposeResult:
        self.take_width_class()
        if self.modify_from:
            title = f"Modify {self.modify_from[0]}: a new version from {self.modify_from[1]}"
        elif self.edit_template is not None:
            title = (f"Edit job parameters {self.edit_template.name} "
                     "(saved settings: no job is created)")
        elif self.source:
            title = f"Create training job from {self.source}"
        else:
            title = "Create training job"
        yield Label(title, id="wizard-title", markup=False)
        yield StepIndicator(STEPS[:-1] + (("Confirm & save",) if self.edit_template else
                                           STEPS[-1:]), id="steps")
        yield JobForm(self.ctx.settings, self.base_dir,
                      job_name=self.modify_from[0] if self.modify_from else None,
                      template_mode=self.edit_template is not None, id="form")
        with VerticalScroll(id="step-5", classes="step"):
            yield Static("", id="confirm-intro", markup=False)
            yield Static("", id="confirm-diff")
            yield Static("", id="confirm-spec")
        yield Static("", id="wizard-error", markup=False)
        with Horizontal(id="wizard-buttons"):
            yield Button("Cancel", id="cancel", compact=True)
            yield Static("", id="button-gap")
            yield Button("Back", id="back", compact=True)
            yield Button("Next", id="next", variant="primary", compact=True)
            yield Button("Save" if self.edit_template else "Create now", id="create",
                         variant="success", compact=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#step-5").display = False
        self.watch_step(self.step)
        self._load()

    # -- loading

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-load")
    def _load(self) -> None:
        try:
            choices = load_choices(self.ctx, self.modify_from)
        except Exception as exc:  # shown in the wizard; the worker must not die silently
            self.post_message(self.ChoicesLoaded(None, str(exc)))
            return
        self.post_message(self.ChoicesLoaded(choices))

    async def on_wizard_screen_choices_loaded(self, message: ChoicesLoaded) -> None:
        if message.choices is None:
            self.query_one("#wizard-error", Static).update(
                f"Could not read the database: {message.error}")
            return
        self.choices = message.choices
        self.form.set_choices(self.choices)
        raw = self.choices.parent_spec if self.modify_from else self.initial
        # A new job starts from defaults that run here as they are (see `_starter`).
        await self.form.fill(self.choices.starter if raw is None else raw,
                             keep_typed=raw is None)
        self._show_all = raw is not None
        self.call_after_refresh(self._settle)

    def _settle(self) -> None:
        self._baseline = self.form.collect()[0]
        self._loaded = True
        # A Next pressed while the choices were loading is answered by this check.
        self._check_now(full=self._pending_step == 4)
        if self.source and self.initial is not None:
            left_out = left_out_fields(self.initial, self._baseline)
            if left_out:
                self.notify(f"Left out (the wizard has no field for them): "
                            f"{', '.join(left_out)}", title=f"From {self.source}",
                            severity="warning", timeout=20)

    # -- checking

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(RadioSet.Changed)
    @on(EditableRows.Changed)
    @on(JobForm.Filled)
    def _field_changed(self, event: Message) -> None:
        if not self._loaded:
            return
        if isinstance(event, JobForm.Filled):
            self._show_all = True
            if event.problem:
                self.notify(f"{event.problem}: the field is marked; fix it to go on.",
                            title=f"Filled from {event.template}", severity="warning",
                            timeout=10)
            else:
                self.notify(f"Every field filled from job parameters {event.template!r}.")
        else:
            control = getattr(event, "control", None)
            target = self.form.target_of(control) if control is not None else None
            if target:
                self._touched.add(target)
        self._schedule_check()

    @on(Input.Submitted)
    def _field_submitted(self) -> None:
        """Enter in a field moves on to the next one, as in a form."""
        self.focus_next()

    def _schedule_check(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(CHECK_DELAY_S, self._check_now)

    def _check_now(self, full: bool = False) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._generation += 1
        raw, local = self.form.collect()
        self._check(self._generation, raw, local, full)

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-check")
    def _check(self, generation: int, raw: dict[str, Any], local: list[FieldError],
               full: bool) -> None:
        try:
            result = check_raw_spec(
                self.ctx, raw, self.base_dir, local_errors=local, modify_from=self.modify_from,
                template=self.edit_template.name if self.edit_template else None, full=full)
        except Exception as exc:  # shown in the wizard; the worker must not die silently
            result = SpecCheck([FieldError("", f"could not check the spec: {exc}")])
        self.post_message(self.Checked(generation, result))

    def on_wizard_screen_checked(self, message: Checked) -> None:
        if message.generation != self._generation:
            return  # the fields changed since; a newer check is on its way
        self._errors = message.result.errors
        self._render_errors()
        pending, self._pending_step = self._pending_step, None
        if pending is None or pending != self.step:
            return
        steps_at_fault = sorted({locate(e.field).step for e in self._errors})
        if pending < 4:
            if pending in steps_at_fault:
                self._refuse(pending)
            else:
                self.step = pending + 1
        elif steps_at_fault:
            field_steps = [step for step in steps_at_fault if step]
            self._attempted.update(field_steps)
            if field_steps:  # otherwise the bar already shows the errors of no field
                self.step = field_steps[0]
                self._refuse(self.step)
        elif message.result.spec is None:
            self._pending_step = pending
            self._check_now(full=True)
        else:
            self.result = message.result
            self._show_confirm(message.result)
            self.step = 5

    def _render_errors(self) -> None:
        located = []
        for error in self._errors:
            loc = locate(error.field)
            if (self._show_all or loc.step == 0 or loc.step in self._attempted
                    or loc.target in self._touched):
                message = short_message(error.message, self.base_dir)
                if loc.step == 0 and error.field:
                    message = f"{error.field}: {message}"
                located.append((loc, message))
        leftover = self.form.show_errors(located)
        self.query_one("#wizard-error", Static).update("\n".join(leftover))

    def _refuse(self, step: int) -> None:
        self._attempted.add(step)
        self._render_errors()
        count = sum(1 for e in self._errors if locate(e.field).step == step)
        bar = self.query_one("#wizard-error", Static)
        bar.update(f"Fix the {count} marked field{'s' if count != 1 else ''} to go on.")
        self._focus_first_error(step)

    def _focus_first_error(self, step: int) -> None:
        """Put the cursor in the first field of `step` that has an error."""
        first = next((e for e in self._errors if locate(e.field).step == step), None)
        if first is not None:
            target = locate(first.field).target
            for widget in self.form.query(f"#{target}").results():
                focusable = [w for w in [widget, *widget.query("*")] if w.focusable]
                if focusable:
                    focusable[0].focus()
                break

    # -- steps

    def watch_step(self, step: int) -> None:
        self.query_one(StepIndicator).current = step
        form = self.form
        form.display = step < 5
        self.query_one("#step-5").display = step == 5
        if step < 5:
            form.current = f"step-{step}"
        self.query_one("#back", Button).disabled = step == 1
        self.query_one("#next", Button).display = step < 5
        self.query_one("#create", Button).display = step == 5
        if step < 5:
            self.query_one("#wizard-error", Static).update("")
            self._render_errors()
        self.call_after_refresh(self._focus_step)
        self.refresh_bindings()

    def _focus_step(self) -> None:
        if self.step == 5:
            self.query_one("#create", Button).focus()
            return
        container = self.query_one(f"#step-{self.step}")
        first = next((w for w in self.focus_chain if container in w.ancestors), None)
        if first is not None:
            first.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_step":
            return self.step < 5
        if action == "previous_step":
            return self.step > 1
        if action == "create":
            return self.step == 5 and self.edit_template is None
        if action == "save_template":
            return self.step == 5 and self.edit_template is not None
        return True

    def action_next_step(self) -> None:
        """Check this step's fields and go on when they are valid."""
        if self.creating or self.step >= 5:
            return
        self._pending_step = self.step
        if not self._loaded:
            return  # the fields are still being filled: `_settle` checks them, then moves
        if self.step == 4:
            self.query_one("#wizard-error", Static).update("Checking the whole spec…")
        self._check_now(full=self.step == 4)

    def action_previous_step(self) -> None:
        """Go back one step (nothing is lost)."""
        if self.step > 1 and not self.creating:
            self._pending_step = None
            self.step -= 1

    @on(Button.Pressed, "#wizard-buttons Button")
    def _button_pressed(self, event: Button.Pressed) -> None:
        {"cancel": self.action_cancel, "back": self.action_previous_step,
         "next": self.action_next_step, "create": self.action_create}[str(event.button.id)]()

    # -- confirm and create

    def _show_confirm(self, result: SpecCheck) -> None:
        assert result.spec is not None
        spec = result.spec
        if self.modify_from:
            job, parent = self.modify_from
            intro = (f"Start {job} {self.choices.version} from {parent} now. Its spec, with the "
                     f"changes from {parent} first:")
            changes = Group(Text(f"Changes from {parent}", style="bold"),
                            diff_table(result.diff, parent, self.choices.version), Text(""))
            self.query_one("#confirm-diff", Static).update(changes)
        elif self.edit_template is not None and spec.save_as_template is not None:
            save = spec.save_as_template
            renamed = ("" if save.name == self.edit_template.name
                       else f" (renamed from {self.edit_template.name})")
            intro = (f"Save job parameters {save.name}{renamed} with this spec. No job is "
                     "created: the wizard fills a new job from them in one step.")
            spec = spec.model_copy(update={"save_as_template": None})
        else:
            intro = f"Create job {spec.name} and start {self.choices.version} now, with this spec:"
        self.query_one("#confirm-diff").display = bool(self.modify_from)
        self.query_one("#confirm-intro", Static).update(intro)
        # Not wrapped: a long path folded mid-word reads as two; the page scrolls sideways.
        self.query_one("#confirm-spec", Static).update(
            Syntax(spec.to_yaml(), "yaml", theme="ansi_dark", background_color="default"))

    def action_save_template(self) -> None:
        """Save the edited job parameters (nothing is created or started)."""
        self.action_create()

    def action_create(self) -> None:
        """Create the job (or version) and start it."""
        if self.step != 5 or self.creating or self.result is None:
            return  # (a modify's changes are on the confirm page, above its spec)
        self.creating = True
        self.query_one("#wizard-error", Static).update(
            "Saving…" if self.edit_template else "Creating…")
        self._create(self.form.collect()[0], self.form.fresh_code)

    @work(thread=True, exclusive=True, exit_on_error=False, group="wizard-create")
    def _create(self, raw: dict[str, Any], fresh_code: bool = False) -> None:
        ref: VersionRef | TemplateInfo
        try:
            if self.edit_template is not None:
                ref = self._save_template(raw)
            elif self.modify_from:
                job, label = self.modify_from
                _, spec, parent_id = modified_spec(self.ctx, job, label, raw=raw,
                                                   base_dir=self.base_dir)
                ref = create_version(self.ctx, job, spec, parent_id, launcher=self.launcher,
                                     fresh_code=fresh_code)
            else:
                ref = submit(self.ctx, raw, self.base_dir, launcher=self.launcher)
        except SpecError as exc:
            self.post_message(self.Created(None, exc.errors))
        except TraindeckError as exc:
            error = as_field_error(exc)
            if self.edit_template is not None and error.field in ("name", "description"):
                # Raised by the update itself: about the saved parameters' own name.
                error = FieldError(f"save_as_template.{error.field}", error.message)
            self.post_message(self.Created(None, [error]))
        except Exception as exc:  # shown in the wizard; the worker must not die silently
            self.post_message(self.Created(None, [FieldError("", f"could not create: {exc}")]))
        else:
            self.post_message(self.Created(ref, []))

    def _save_template(self, raw: dict[str, Any]) -> TemplateInfo:
        """Save the edited job parameters: the save block names them, the rest is the spec."""
        assert self.edit_template is not None
        body = dict(raw)
        save = body.pop("save_as_template", None) or {}
        return update_template(self.ctx, self.edit_template.name,
                               new_name=str(save.get("name", "")),
                               description=str(save.get("description", "")), body=body,
                               base_dir=self.base_dir)

    def on_wizard_screen_created(self, message: Created) -> None:
        if message.ref is not None:
            self.dismiss(message.ref)
            return
        self.creating = False
        self._errors = message.errors
        self._show_all = True
        steps = sorted({locate(e.field).step for e in self._errors} - {0})
        if steps:
            self.step = steps[0]
            # After the step's own focus (its first field): the field that was refused.
            self.call_after_refresh(self._focus_first_error, steps[0])
        self._render_errors()
        general = [e for e in self._errors if locate(e.field).step == 0]
        if general or not steps:
            self.query_one("#wizard-error", Static).update(
                "\n".join(short_message(str(e), self.base_dir) for e in self._errors))

    def watch_creating(self, creating: bool) -> None:
        for button in self.query("#wizard-buttons Button").results(Button):
            button.disabled = creating or (button.id == "back" and self.step == 1)

    # -- cancel

    def action_cancel(self) -> None:
        """Leave the wizard; asks first when something was typed."""
        if self.creating:
            return
        if not self._loaded or self.form.collect()[0] == self._baseline:
            self.dismiss(None)
            return
        what = ("new version" if self.modify_from else
                f"job parameters {self.edit_template.name}" if self.edit_template else "job")
        self.app.push_screen(
            ConfirmScreen(f"Leave the wizard and discard what you typed for this {what}?",
                          title="Discard changes", yes="Discard"),
            self._discard_answered)

    def _discard_answered(self, discard: bool | None) -> None:
        if discard:
            self.dismiss(None)


def _diff_value(value: Any) -> Text:
    """A spec value for the diff: missing as a dim dash, lists and mappings as JSON."""
    if value is None:
        return Text("—", style="dim")
    if isinstance(value, bool):
        return Text("true" if value else "false")
    if value == "":
        return Text('""', style="dim")
    if isinstance(value, list | dict):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def diff_table(diff: Sequence[tuple[str, Any, Any]], old_label: str,
               new_label: str) -> Table | Text:
    """What a modify changes against its parent (`(dotted.field, parent value, new value)`
    as `app.jobs.spec_diff` returns them) as a table, run parameters first; or a line
    saying that nothing changed."""
    if not diff:
        return Text(f"No field differs from {old_label}: {new_label} runs the same spec.",
                    style="italic")
    table = Table(expand=True, box=None, padding=(0, 2, 0, 0), show_edge=False)
    table.add_column("Field", style="bold", ratio=2, overflow="fold")
    table.add_column(old_label, style="red", ratio=3, overflow="fold")
    table.add_column(new_label, style="green", ratio=3, overflow="fold")
    rows = sorted(diff, key=lambda row: (not row[0].startswith("parameters."), row[0]))
    for path, old, new in rows:
        table.add_row(path, _diff_value(old), _diff_value(new))
    return table
