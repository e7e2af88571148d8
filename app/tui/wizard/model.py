"""The create-job form's fields → spec half: `JobFormCollect.collect`, mixed into `JobForm`.

It reads every step's fields into one raw spec mapping, and notes as `FieldError`s what
the form itself can tell is missing or malformed (a blank required field, a dataset with
no version, a command that does not split); everything else is left to the spec check.
It only reads the fields: filling them, and showing the errors, stay in `JobForm`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from textual.widgets import Checkbox

from app.errors import FieldError
from app.spec import EVENTS
from app.tui.wizard.rows import DatasetRows, ParamRows, PathRows, PatternRows

if TYPE_CHECKING:
    from textual.reactive import reactive
    from textual.widgets import ContentSwitcher

    from app.config import Settings
    from app.tui.wizard.checks import WizardChoices

    _FormBase = ContentSwitcher
else:
    _FormBase = object  # a plain mixin at run time; typed as the widget it is mixed into


class JobFormCollect(_FormBase):
    """Mixin for `JobForm` (put it before `ContentSwitcher` among the bases): `collect`."""

    if TYPE_CHECKING:  # JobForm's
        settings: Settings
        choices: WizardChoices
        job_name: str | None
        template_mode: bool
        data_kind: reactive[str]
        algo_kind: reactive[str]
        runtime: str
        arguments: str
        log_metrics: str
        _metrics: Any
        _path_index: list[int]
        _pattern_index: list[int]
        _extra_subscriptions: list[dict[str, Any]]

        def _value(self, input_id: str) -> str: ...
        def _selected(self, select_id: str) -> str: ...

    def collect(self) -> tuple[dict[str, Any], list[FieldError]]:
        """The raw spec the fields describe, and the form's own findings (blank fields)."""
        errors: list[FieldError] = []
        name = self._value("name") or (self.choices.default_name if not self.template_mode
                                       and self.job_name is None else "")
        raw: dict[str, Any] = {"name": name}
        if self._value("description"):
            raw["description"] = self._value("description")
        raw["data"] = self._collect_data(errors)
        raw["algorithm"] = self._collect_algorithm(errors)
        params, row_errors = self.query_one("#params", ParamRows).collect()
        errors += [FieldError(f"parameters#{i}", message) for i, message in row_errors.items()]
        if params:
            raw["parameters"] = params
        env, row_errors = self.query_one("#env", ParamRows).collect()
        errors += [FieldError(f"env#{i}", message) for i, message in row_errors.items()]
        if env:
            raw["env"] = env
        metrics = self._collect_metrics(errors)
        if metrics is not None:
            raw["metrics"] = metrics
        for key, input_id in (("output", "output"), ("log_dir", "log-dir")):
            if self._value(input_id):
                raw[key] = self._value(input_id)
        raw["resources"] = self._collect_resources(errors)
        subscriptions = self._collect_subscriptions(errors)
        if subscriptions:
            raw["subscriptions"] = subscriptions
        if self.query_one("#save-template", Checkbox).value:
            raw["save_as_template"] = {"name": self._value("template-name"),
                                       "description": self._value("template-description")}
            if not raw["save_as_template"]["name"]:
                errors.append(FieldError("save_as_template.name", "give the saved job "
                                                                  "parameters a name"))
        return raw, errors

    def _collect_data(self, errors: list[FieldError]) -> dict[str, Any]:
        if self.data_kind == "datasets":
            items = []
            for i, (name, version) in enumerate(self.query_one(DatasetRows).refs()):
                if name is None:
                    errors.append(FieldError(f"data.datasets[{i}].name", "choose a dataset"))
                elif version is None:
                    errors.append(FieldError(f"data.datasets[{i}].version", "choose a version"))
                items.append({"name": name or "-", "version": version or "V001"})
            if not items:
                errors.append(FieldError("data.datasets", "add a dataset"))
            return {"datasets": items}
        paths = self.query_one(PathRows).paths()
        self._path_index = [i for i, path in enumerate(paths) if path]
        if not self._path_index:
            errors.append(FieldError("data.paths", "add a data path"))
        return {"paths": [paths[i] for i in self._path_index]}

    def _collect_metrics(self, errors: list[FieldError]) -> Any:
        """The `metrics:` block: as filled, with `log_patterns` as the fields say."""
        if self._metrics is not None and not isinstance(self._metrics, Mapping):
            return self._metrics  # malformed: kept for the check to say so
        metrics = {k: v for k, v in (self._metrics or {}).items() if k != "log_patterns"}
        if self.log_metrics == "off":
            metrics["log_patterns"] = []
        elif self.log_metrics == "patterns":
            texts = self.query_one(PatternRows).paths()
            self._pattern_index = [i for i, text in enumerate(texts) if text]
            metrics["log_patterns"] = [texts[i] for i in self._pattern_index]
            if not self._pattern_index:
                errors.append(FieldError("metrics.log_patterns",
                                         "add a pattern, or choose default rules or off"))
        return metrics if metrics or self._metrics is not None else None

    def _collect_algorithm(self, errors: list[FieldError]) -> dict[str, Any]:
        if self.algo_kind == "preset":
            name = self._selected("preset")
            if not name:
                errors.append(FieldError("algorithm.preset.name", "choose a preset algorithm"))
            algo: dict[str, Any] = {"preset": {"name": name or "-"}}
        elif self.algo_kind == "image":
            image: dict[str, Any] = {"name": self._value("image-name")}
            if not image["name"]:
                errors.append(FieldError("algorithm.image.name", "required"))
            command = self._split("image-command", "algorithm.image.command", errors)
            if command:
                image["command"] = command
            if self._value("image-code-dir"):
                image["code_dir"] = self._value("image-code-dir")
            algo = {"image": image}
        else:
            framework: dict[str, Any] = {
                "engine": self._selected("engine"),
                "engine_version": self._selected("engine-version"),
                "code_dir": self._value("code-dir")}
            command = self._split("command", "algorithm.framework.command", errors)
            if command:
                framework["command"] = command
            else:
                framework["boot_file"] = self._value("boot-file")
            for key, message in (("engine", "choose an engine"), ("engine_version", "choose a "
                                 "version"), ("code_dir", "required"),
                                 ("boot_file", "required (or give a command)")):
                if key in framework and not framework[key]:
                    errors.append(FieldError(f"algorithm.framework.{key}", message))
            algo = {"framework": framework}
        if self.algo_kind != "preset" and self.arguments != "default":
            next(iter(algo.values()))["arguments"] = self.arguments
        if self.query_one("#compat-moxing", Checkbox).value:
            algo["compat"] = "moxing"
        if self.query_one("#requirements-ignore", Checkbox).value:
            algo["requirements"] = "ignore"
        return algo

    def _split(self, input_id: str, field: str, errors: list[FieldError]) -> list[str]:
        """A command field split like a shell would (a finding when it does not split)."""
        try:
            return shlex.split(self._value(input_id))
        except ValueError as exc:
            errors.append(FieldError(field, f"cannot split it: {exc}"))
            return []

    def _collect_resources(self, errors: list[FieldError]) -> dict[str, Any]:
        resources: dict[str, Any] = {"pool": self._selected("pool")}
        for key in ("gpus", "nodes"):
            text = self._value(key)
            try:
                resources[key] = int(text)
            except ValueError:
                errors.append(FieldError(f"resources.{key}", "must be a whole number"))
        processes = self._value("processes")
        if processes:
            resources["processes_per_node"] = (
                int(processes) if processes.isdigit() else processes)
        cpus = self._value("cpus")
        if cpus:
            try:
                resources["cpus"] = int(cpus) if cpus.isdigit() else float(cpus)
            except ValueError:
                errors.append(FieldError("resources.cpus", "must be a number, e.g. 4 or 0.5"))
        if self._value("memory"):
            resources["memory"] = self._value("memory")
        if self._selected("network"):
            resources["network"] = self._selected("network")
        if self.runtime in ("docker", "local"):
            resources["runtime"] = self.runtime
        return resources

    @property
    def fresh_code(self) -> bool:
        """Modify: take the code folder as it is now rather than the parent's snapshot."""
        return self.query_one("#fresh-code", Checkbox).value

    def _collect_subscriptions(self, errors: list[FieldError]) -> list[dict[str, Any]]:
        if not self.settings.topics:
            return []
        topic = self._selected("topic")
        events = [e for e in EVENTS if self.query_one(f"#event-{e}", Checkbox).value]
        subs: list[dict[str, Any]] = []
        if topic and not events:
            errors.append(FieldError("subscriptions[0].events", "tick at least one event"))
        elif events and not topic:
            errors.append(FieldError("subscriptions[0].topic", "choose a topic for the events"))
        elif topic:
            subs.append({"topic": topic, "events": events})
        return subs + self._extra_subscriptions
