"""The create-job wizard's form: steps 1-4 as one widget that fills from and reads a spec.

`JobForm.fill` shows a raw spec mapping in the fields; `JobForm.collect` reads the fields
into `FormValues` and turns them back into a raw spec mapping plus the form's own findings
(`model.raw_spec`); `JobForm.show_errors` puts the errors it is handed beside their
fields. It reads nothing from the database: the screen hands it `WizardChoices`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import (
    Checkbox,
    ContentSwitcher,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
)

from app.config import EngineSettings, Settings, config_file
from app.errors import FieldError
from app.specs.spec import EVENTS
from app.tui.widgets.toggles import Check, Radio
from app.tui.wizard.checks import LIST_TARGETS, Location
from app.tui.wizard.choices import PresetChoice, WizardChoices, pool_label, template_label
from app.tui.wizard.model import (
    ARGUMENT_HINTS,
    HINTS,
    LOG_METRICS_HINTS,
    TEMPLATE_MODE_HINTS,
    FormValues,
    filled_rows,
    form_values,
    raw_spec,
    text_of,
)
from app.tui.wizard.rows import DatasetRows, EditableRows, EnvRows, ParamRows, PathRows, PatternRows

_FIELD_CHANGES = (Input.Changed, Select.Changed, Checkbox.Changed, EditableRows.Changed)


def field_row(label: str, control: Widget, target: str, *, row_id: str | None = None) -> Widget:
    """A labelled field: the label, the control, and a note showing its hint or error."""
    return Horizontal(Label(label, classes="field-label"), control,
                      Static("", id=f"{target}-note", classes="field-note", markup=False),
                      id=row_id, classes="field")


def list_field(label: str, rows: Widget, row_id: str) -> Widget:
    """A labelled row list (its rows show their own errors)."""
    return Horizontal(Label(label, classes="field-label"), rows, id=row_id,
                      classes="field list-field")


class JobForm(ContentSwitcher):
    """Steps 1-4 of the wizard (one container each) holding every field of a job spec."""

    data_kind: reactive[str] = reactive("paths", init=False)
    """Data source shown: `datasets` or `paths`."""
    algo_kind: reactive[str] = reactive("framework", init=False)
    """Algorithm source shown: `preset`, `framework` or `image`."""

    class Filled(Message):
        """Every field was filled from saved job parameters (`problem`: what in them is
        broken, '' when nothing)."""

        def __init__(self, template: str, problem: str = "") -> None:
            super().__init__()
            self.template = template
            self.problem = problem

    def __init__(self, settings: Settings, base_dir: Path, *, job_name: str | None = None,
                 template_mode: bool = False, id: str | None = None) -> None:
        """`job_name` fixes the name (modify: a new version of that job). `template_mode`
        edits saved job parameters: their name and description are asked for on step 4
        (and there is no picker of other saved ones)."""
        super().__init__(initial="step-1", id=id)
        self.settings = settings
        self.base_dir = base_dir
        self.job_name = job_name
        self.template_mode = template_mode
        self.choices = WizardChoices()
        self.runtime = "auto"
        self.arguments = "default"
        """The `arguments:` choice shown (`default`: none given)."""
        self.log_metrics = "default"
        """Numbers in the log: `default` rules, the user's `patterns`, or `off`."""
        self._metrics: Any = None
        """The spec's `metrics:` block as filled (its `log_patterns` are shown)."""
        self._options: dict[str, list[tuple[str | Text, str]]] = {}
        self._hints = dict(HINTS)
        if job_name is not None:
            self._hints["name"] = "a new version keeps the job's name"
        if template_mode:
            self._hints.update(TEMPLATE_MODE_HINTS)
        self._errors: dict[str, str] = {}
        self._last: FormValues | None = None
        """What the fields held at the last `collect` (its rows number its check's errors)."""
        self._extra_subscriptions: list[dict[str, Any]] = []
        self._notes: dict[str, Static] = {}
        self._preset_defaults: dict[str, Any] = {}
        self._shown: dict[str, tuple[str, bool]] = {}

    # -- layout

    def compose(self) -> ComposeResult:
        field, ask = self._input_field, self._select_field
        self._options["engine"] = [(e, e) for e in dict.fromkeys(
            e.name for e in self.settings.engines)]
        self._options["network"] = [("bridge", "bridge"), ("none: no network", "none"),
                                    ("host", "host")]
        self._options["pool"] = [(f"{p.name} ({p.kind})", p.name) for p in self.settings.pools]
        with VerticalScroll(id="step-1", classes="step"):
            yield field("Name", "name", value=self.job_name or "", max_length=64,
                        disabled=self.job_name is not None)
            yield field("Description", "description", max_length=1000)
            yield field_row("Version", Static("", id="version"), "version")
        with VerticalScroll(id="step-2", classes="step"):
            yield self._select_field("Saved job parameters", "template", "(none)",
                                     row_id="template-field")
            yield Static(f"Relative paths resolve against {self.base_dir}",
                         classes="section-note", markup=False)
            yield self._radio_field("Data source", "data-kind", "paths",
                                    datasets="Datasets", paths="Storage paths")
            yield list_field("  Datasets", DatasetRows(id="datasets"), "datasets-field")
            yield list_field("  Paths", PathRows(id="paths"), "paths-field")
            yield self._radio_field("Algorithm source", "algo-kind", "framework",
                                    preset="Preset algorithm", framework="Common framework",
                                    image="Custom image")
            with Vertical(id="preset-fields", classes="algo-fields"):
                yield ask("  Preset algorithm", "preset", "choose a preset")
            with Vertical(id="framework-fields", classes="algo-fields"):
                yield ask("  AI engine", "engine", "choose an engine")
                yield ask("  Engine version", "engine-version", "choose a version")
                yield field("  Code directory", "code-dir", placeholder="e.g. ./code")
                yield field("  Boot file", "boot-file", placeholder="e.g. train.py")
                yield field("  or Command", "command",
                            placeholder="e.g. torchrun --nproc_per_node=2 train.py")
            with Vertical(id="image-fields", classes="algo-fields"):
                yield field("  Image", "image-name", placeholder="e.g. registry/trainer:1.2")
                yield field("  Command", "image-command", placeholder="e.g. python /app/train.py")
                yield field("  Code directory", "image-code-dir", placeholder="optional")
            with Vertical(id="run-style-fields", classes="algo-fields"):
                yield self._radio_field("  Arguments", "arguments", "default",
                                        default="default", modelarts="modelarts",
                                        plain="plain", none="none")
                yield field_row("  Compatibility", Check(
                    "ModelArts moxing shim", id="compat-moxing", compact=True), "compat-moxing")
                yield field_row("  Requirements", Check(
                    "Ignore requirements.txt", id="requirements-ignore", compact=True),
                    "requirements-ignore")
                yield field_row("  Code", Check(
                    "Take the code folder as it is now", id="fresh-code", compact=True),
                    "fresh-code", row_id="fresh-code-field")
            yield list_field("Run parameters", ParamRows(id="params"), "params-field")
            yield list_field("Environment", EnvRows(id="env"), "env-field")
            yield field("Output location", "output", placeholder="e.g. ./runs/out")
            yield field("Job log path", "log-dir", placeholder="e.g. ./runs/logs")
            yield self._radio_field("Metrics from the log", "log-metrics", "default",
                                    default="default rules", patterns="my patterns", off="off")
            yield list_field("  Patterns", PatternRows(id="log-patterns"), "log-patterns-field")
        with VerticalScroll(id="step-3", classes="step"):
            yield ask("Resource pool", "pool", "", allow_blank=False)
            yield field("GPUs per node", "gpus", value="0", type="integer")
            yield field("Compute nodes", "nodes", value="1", type="integer")
            yield field("Processes per node", "processes", placeholder="1")
            yield field("CPUs per node", "cpus", placeholder="no limit")
            yield field("Memory per node", "memory", placeholder="no limit")
            yield ask("Network", "network", "default (bridge)")
            yield self._radio_field("Runtime", "runtime", "auto",
                                    auto=f"default ({self.settings.default_runtime})",
                                    docker="docker", local="local")
        with VerticalScroll(id="step-4", classes="step"):
            yield from self._compose_subscriptions()
            yield field_row("Save as job parameters", Check(
                "save these settings", id="save-template", compact=True), "save-template",
                row_id="save-template-field")
            indent = "" if self.template_mode else "  "
            yield field(f"{indent}Parameters name", "template-name", disabled=True)
            yield field(f"{indent}Description", "template-description", disabled=True)

    def _input_field(self, label: str, input_id: str, **options: Any) -> Widget:
        return field_row(label, Input(id=input_id, compact=True, **options), input_id)

    def _select_field(self, label: str, select_id: str, prompt: str, *,
                      row_id: str | None = None, **options: Any) -> Widget:
        select = Select(self._options.get(select_id, []), prompt=prompt, id=select_id,
                        compact=True, **options)
        return field_row(label, select, select_id, row_id=row_id)

    def _radio_field(self, label: str, set_id: str, pressed: str, **choices: str) -> Widget:
        buttons = [Radio(text, id=f"{set_id}-{key}", value=key == pressed)
                   for key, text in choices.items()]
        return field_row(label, RadioSet(*buttons, id=set_id, compact=True), set_id,
                         row_id=f"{set_id}-field")

    def _compose_subscriptions(self) -> ComposeResult:
        topics = self.settings.topics
        if not topics:
            yield Static(f"Event subscriptions: no notification topic is set up yet. Add one "
                         f"under `topics:` in {config_file()} (a name and apprise URLs) and "
                         "open the wizard again.", id="no-topics", classes="section-note",
                         markup=False)
            return
        self._options["topic"] = [
            (f"{t.name} — {t.description}" if t.description else t.name, t.name) for t in topics
        ]
        yield self._select_field("Subscription topic", "topic", "no subscription")
        yield field_row("Events", Horizontal(
            *(Check(event, id=f"event-{event}", compact=True) for event in EVENTS),
            id="events"), "events")

    def on_mount(self) -> None:
        self._notes = {(n.id or "").removesuffix("-note"): n
                       for n in self.query(".field-note").results(Static)}
        self.watch_data_kind(self.data_kind)
        self.watch_algo_kind(self.algo_kind)
        self.sync_log_metrics()
        self.hint_for_pool()
        self.query_one("#fresh-code-field").display = self.job_name is not None
        if self.template_mode:
            self.query_one("#template-field").display = False
            self.query_one("#save-template-field").display = False

    # -- choices and dependent fields

    def set_choices(self, choices: WizardChoices) -> None:
        """Offer the templates, presets and datasets read from the database."""
        self.choices = choices
        self.query_one("#version", Static).update("—" if self.template_mode else choices.version)
        if self.job_name is None and not self.template_mode and choices.default_name:
            self.query_one("#name", Input).placeholder = choices.default_name
            self._hints["name"] = f"blank: {choices.default_name}; letters, digits, - or _"
        self._set_options("template", [(template_label(t), t.name) for t in choices.templates])
        self._set_options("preset", [
            (f"{p.name} ({p.info.engine} {p.info.engine_version})", p.name)
            for p in choices.presets
        ])
        datasets = self.query_one(DatasetRows)
        datasets.datasets = dict(choices.datasets)
        datasets.set_hint("a dataset and one of its versions" if choices.datasets
                          else "no dataset is registered yet: use storage paths")
        self._hints["template"] = (
            "fills every field in one step" if choices.templates
            else "none saved yet (see step 4)"
        )
        if choices.slurm:
            chosen = self._selected("pool")
            self._set_options("pool", [(pool_label(p.name, p.kind, choices), p.name)
                                       for p in self.settings.pools])
            self._choose("pool", chosen)
            self.hint_for_pool()
        self._render_notes()

    def _set_options(self, select_id: str, options: list[tuple[str | Text, str]]) -> None:
        self._options[select_id] = options
        self.query_one(f"#{select_id}", Select).set_options(options)

    def _choose(self, select_id: str, value: str) -> None:
        select = self.query_one(f"#{select_id}", Select)
        if not value:
            if not isinstance(select.value, type(Select.NULL)):
                select.clear()
            return
        if value not in (v for _, v in self._options.get(select_id, [])):
            self._set_options(select_id, [*self._options.get(select_id, []),
                                          (f"{value} (unknown)", value)])
        select.value = value

    def _selected(self, select_id: str) -> str:
        select = self.query_one(f"#{select_id}", Select)
        return "" if select.is_blank() else str(select.value)

    def _press(self, set_id: str, choice: str) -> None:
        self.query_one(f"#{set_id}-{choice}", RadioButton).value = True

    def sync_engine_versions(self, prefer: str = "") -> None:
        """Offer the versions of the chosen engine, keeping `prefer` or the current one."""
        engine = self._selected("engine")
        current = prefer or self._selected("engine-version")
        versions = [e.version for e in self.settings.engines if e.name == engine]
        self._set_options("engine-version", [(v, v) for v in versions])
        if current and (current in versions or prefer):
            self._choose("engine-version", current)
        elif versions:
            self._choose("engine-version", versions[0])

    def engine_entry(self) -> EngineSettings | None:
        """The engine the chosen algorithm runs on, if known."""
        if self.algo_kind == "framework":
            return self.settings.engine(self._selected("engine"), self._selected("engine-version"))
        preset = self._chosen_preset()
        return self.settings.engine(preset.info.engine, preset.info.engine_version) if (
            preset is not None) else None

    def _chosen_preset(self) -> PresetChoice | None:
        """The preset chosen (None when the algorithm is not a preset)."""
        name = self._selected("preset") if self.algo_kind == "preset" else None
        return next((p for p in self.choices.presets if p.name == name), None)

    def sync_nodes(self) -> None:
        """Fix the node count at 1, with a note, for a single-node engine."""
        entry = self.engine_entry()
        nodes = self.query_one("#nodes", Input)
        single = entry is not None and entry.single_node
        if single and nodes.value != "1":
            nodes.value = "1"
        nodes.disabled = single
        self._hints["nodes"] = (
            f"{entry.name} {entry.version} runs on one node only: fixed at 1"
            if single and entry else HINTS["nodes"]
        )
        self._render_note("nodes")
        self.sync_unavailable()

    def runs_locally(self) -> bool:
        """Whether the version will run as local processes (as far as the form can tell)."""
        default = self.settings.default_runtime
        return self.runtime == "local" or (self.runtime == "auto" and (
            default == "local" or (default == "auto" and not self.choices.docker_answers)))

    def sync_unavailable(self) -> None:
        """Say beside the engine or preset when it cannot run as local processes here."""
        entry = self.engine_entry()
        reason = (self.choices.unavailable.get((entry.name, entry.version))
                  if entry is not None and self.runs_locally() else None)
        target = "preset" if self.algo_kind == "preset" else "engine"
        for field_id in ("engine", "preset"):
            self._hints[field_id] = (f"⚠ cannot run locally: {reason}"
                                     if reason and field_id == target else HINTS.get(field_id, ""))
            self._render_note(field_id)

    def sync_template_fields(self) -> None:
        """Enable the name and description of saved job parameters only when ticked."""
        ticked = self.query_one("#save-template", Checkbox).value
        self.query_one("#template-name", Input).disabled = not ticked
        self.query_one("#template-description", Input).disabled = not ticked

    def _sync_params_hint(self) -> None:
        rows = self.query_one("#params", ParamRows)
        preset = self._chosen_preset()
        if preset is None:
            rows.set_hint("passed to the code as --name=value")
            return
        names = ", ".join(p.name for p in preset.info.params) or "no parameters"
        rows.set_hint(f"{preset.name} takes: {names}")

    def watch_data_kind(self, kind: str) -> None:
        self.query_one("#datasets-field").display = kind == "datasets"
        self.query_one("#paths-field").display = kind == "paths"
        rows = self.query_one(DatasetRows if kind == "datasets" else PathRows)
        if self.is_mounted and not rows.rows:
            self.call_later(rows.add_row, None, focus=False)

    def sync_log_metrics(self) -> None:
        """Show the pattern rows (with a first, empty one) only when own patterns are chosen."""
        shown = self.log_metrics == "patterns"
        self.query_one("#log-patterns-field").display = shown
        rows = self.query_one(PatternRows)
        rows.set_hint(r"e.g. (?P<name>\w+)=(?P<value>\S+)")
        if shown and self.is_mounted and not rows.rows:
            self.call_later(rows.add_row, None, focus=False)
        self._hints["log-metrics"] = LOG_METRICS_HINTS[self.log_metrics]
        self._render_note("log-metrics")

    def watch_algo_kind(self, kind: str) -> None:
        for name in ("preset", "framework", "image"):
            self.query_one(f"#{name}-fields").display = kind == name
        self.query_one("#arguments-field").display = kind != "preset"
        self.sync_nodes()
        self._sync_params_hint()

    @on(RadioSet.Changed)
    async def _radio_changed(self, event: RadioSet.Changed) -> None:
        set_id = event.radio_set.id or ""
        choice = (event.pressed.id or "").removeprefix(f"{set_id}-")
        if set_id == "data-kind":
            self.data_kind = choice
        elif set_id == "algo-kind":
            self.algo_kind = choice
            await self._offer_preset_defaults()
        elif set_id == "runtime":
            self.runtime = choice
            self.sync_unavailable()
        elif set_id == "log-metrics":
            self.log_metrics = choice
            self.sync_log_metrics()
        elif set_id == "arguments":
            self.arguments = choice
            self._hints["arguments"] = ARGUMENT_HINTS[choice]
            self._render_note("arguments")

    @on(Select.Changed, "#engine")
    def _engine_chosen(self) -> None:
        self.sync_engine_versions()

    @on(Select.Changed, "#engine-version")
    def _engine_version_chosen(self) -> None:
        self.sync_nodes()

    @on(Select.Changed, "#preset")
    async def _preset_chosen(self) -> None:
        self.sync_nodes()
        self._sync_params_hint()
        await self._offer_preset_defaults()

    async def _offer_preset_defaults(self) -> None:
        """Show the chosen preset's default parameters when the rows are empty or still
        hold another preset's defaults (none when the algorithm is not a preset)."""
        rows = self.query_one("#params", ParamRows)
        typed, _ = rows.collect()
        if typed and typed != self._preset_defaults:
            return  # the user's own parameters
        self._preset_defaults = preset.defaults if (preset := self._chosen_preset()) else {}
        if typed != self._preset_defaults:
            await rows.set_params(self._preset_defaults)

    @on(Select.Changed, "#pool")
    def _pool_chosen(self) -> None:
        self.hint_for_pool()

    @on(Checkbox.Changed, "#save-template")
    def _save_toggled(self) -> None:
        self.sync_template_fields()

    @on(Select.Changed, "#template")
    async def _template_chosen(self, event: Select.Changed) -> None:
        name = self._selected("template")
        template = next((t for t in self.choices.templates if t.name == name), None)
        if template is not None:
            await self.fill(template.spec, keep_typed=True)
            self.post_message(self.Filled(template.name, template.problem))

    # -- spec → fields

    async def fill(self, raw: Mapping[str, Any], *, keep_typed: bool = False) -> None:
        """Show a raw spec in the fields (unknown or odd values are kept for the check).

        With `keep_typed` (a template, or defaults), a name and description typed are kept.
        """
        public = next((p.name for p in self.settings.pools if p.kind == "public"), "public")
        values = form_values(raw, has_datasets=bool(self.choices.datasets), public_pool=public)
        with self.prevent(*_FIELD_CHANGES):
            for field in self.query(Input).results(Input):
                kept = (field.id == "name" and self.job_name is not None) or (
                    field.id in ("name", "description") and keep_typed and field.value.strip())
                if field.id in values.text and not kept:
                    field.value = values.text[str(field.id)]
            for select in self.query(Select).results(Select):
                choice = values.selected.get(str(select.id))
                if choice is not None and select.id == "engine-version":
                    self.sync_engine_versions(prefer=choice)
                elif choice is not None:
                    self._choose(str(select.id), choice)
            for box in self.query(Checkbox).results(Checkbox):
                box.value = values.ticked.get(str(box.id), box.value)
            await self.query_one(DatasetRows).set_rows(values.datasets or [None])
            await self.query_one("#paths", PathRows).set_rows(values.paths or [None])
            self._press("data-kind", values.data_kind)
            self.data_kind = values.data_kind
            self._press("algo-kind", values.algo_kind)
            self.algo_kind = values.algo_kind
            self.arguments = values.arguments
            self._press("arguments", self.arguments)
            self._hints["arguments"] = ARGUMENT_HINTS[self.arguments]
            await self.query_one("#params", ParamRows).set_params(values.params[0])
            self._preset_defaults = preset.defaults if (preset := self._chosen_preset()) else {}
            await self.query_one("#env", EnvRows).set_params(values.env[0])
            self._metrics, self.log_metrics = values.metrics, values.log_metrics
            await self.query_one(PatternRows).set_rows(values.patterns)
            self._press("log-metrics", self.log_metrics)
            self.sync_log_metrics()
            self.runtime = values.runtime
            self._press("runtime", self.runtime)
            topics = self.settings.topics
            self._extra_subscriptions = list(values.extra_subscriptions) if topics else []
            dropped = ", ".join([values.selected["topic"],
                                 *(text_of(s.get("topic")) for s in values.extra_subscriptions)])
            if dropped and not topics:
                self.query_one("#no-topics", Static).update(
                    f"Event subscriptions to {dropped} are dropped: no such topic is set up. "
                    f"Add topics under `topics:` in {config_file()}.")
            self.sync_nodes()
        self.sync_template_fields()
        self._sync_params_hint()
        self.hint_for_pool()

    # -- fields → spec

    def collect(self) -> tuple[dict[str, Any], list[FieldError]]:
        """The raw spec the fields describe, and the form's own findings (blank fields)."""
        self._last = self.values()
        return raw_spec(self._last)

    def values(self) -> FormValues:
        """What the fields hold now."""
        return FormValues(
            text={i.id: i.value.strip() for i in self.query(Input).results(Input) if i.id},
            selected={s.id: "" if s.is_blank() else str(s.value)
                      for s in self.query(Select).results(Select) if s.id},
            ticked={c.id: c.value for c in self.query(Checkbox).results(Checkbox) if c.id},
            data_kind=self.data_kind, algo_kind=self.algo_kind, runtime=self.runtime,
            arguments=self.arguments, log_metrics=self.log_metrics,
            datasets=self.query_one(DatasetRows).refs(),
            paths=self.query_one("#paths", PathRows).paths(),
            patterns=self.query_one("#log-patterns", PatternRows).paths(),
            params=self.query_one("#params", ParamRows).collect(),
            env=self.query_one("#env", ParamRows).collect(), metrics=self._metrics,
            extra_subscriptions=self._extra_subscriptions,
            default_name="" if self.template_mode or self.job_name is not None
            else self.choices.default_name)

    @property
    def fresh_code(self) -> bool:
        """Modify: take the code folder as it is now rather than the parent's snapshot."""
        return self.query_one("#fresh-code", Checkbox).value

    # -- errors and hints

    def target_of(self, widget: Widget) -> str | None:
        """The error target a control belongs to (its own id, or its list's / set's id)."""
        node: Any = widget
        while node is not None and node is not self:
            node_id = getattr(node, "id", None)
            if node_id in LIST_TARGETS or node_id in self._notes:
                return str(node_id)
            node = node.parent
        return None

    def show_errors(self, located: Sequence[tuple[Location, str]]) -> list[str]:
        """Show each error beside its field; return those with no field to stand by."""
        notes: dict[str, str] = {}
        rows: dict[str, dict[int, str]] = {t: {} for t in LIST_TARGETS}
        whole: dict[str, str] = dict.fromkeys(LIST_TARGETS, "")
        leftover = []
        for loc, message in located:
            if loc.target in LIST_TARGETS:
                index = self._row_index(loc)
                if index is None:
                    whole[loc.target] = whole[loc.target] or message
                else:
                    rows[loc.target].setdefault(index, message)
            elif loc.target in self._notes:
                notes.setdefault(loc.target, message)
            else:
                leftover.append(message)
        self._errors = notes
        self._render_notes()
        for target in LIST_TARGETS:
            self.query_one(f"#{target}", EditableRows).set_errors(rows[target], whole[target])
        return leftover

    def _row_index(self, loc: Location) -> int | None:
        if isinstance(loc.row, str):  # a parameter or variable name; names may hold dots
            rows, name = self.query_one(f"#{loc.target}", ParamRows), loc.row
            while name and rows.row_of(name) is None:
                name = name.rpartition(".")[0]
            return rows.row_of(name) if name else None
        texts = None if self._last is None else {
            "paths": self._last.paths, "log-patterns": self._last.patterns}.get(loc.target)
        if loc.row is not None and texts is not None:
            index = filled_rows(texts)
            return index[loc.row] if loc.row < len(index) else None
        return loc.row

    def _render_notes(self) -> None:
        for target in self._notes:
            self._render_note(target)

    def _render_note(self, target: str) -> None:
        note = self._notes.get(target)
        if note is None:
            return
        error = self._errors.get(target)
        shown = (error or self._hints.get(target, ""), bool(error))
        if self._shown.get(target) != shown:  # an update costs a layout: only on change
            self._shown[target] = shown
            note.set_class(shown[1], "-error")
            note.set_class(not shown[0], "-empty")
            note.update(shown[0])

    def hint_for_pool(self) -> None:
        """Describe the chosen pool beside it."""
        pool = self.settings.pool(self._selected("pool"))
        slurm = self.choices.slurm.get(pool.name) if pool else None
        self._hints["pool"] = "; ".join(text for text in (
            pool.description if pool else "", slurm.summary if slurm else "",
            slurm.runs if slurm else "") if text)
        self._render_note("pool")

