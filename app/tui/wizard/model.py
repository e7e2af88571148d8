"""The create-job wizard's model: the form's fields as plain data, to and from a raw spec.

`FormValues` is what the fields hold at one moment. `form_values` is what a raw spec
shows in them (unknown or odd values kept for the check); `raw_spec` turns the fields back
into one raw spec mapping plus the form's own findings as `FieldError`s (a blank required
field, a dataset with no version, a command that does not split); everything else is left
to the spec check (`checks.py`). The hints are what each field shows while it has no
error. No Textual here: `form.py` moves `FormValues` into and out of the widgets.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import FieldError
from app.specs.spec import EVENTS, ParamValue

RowsRead = tuple[dict[str, ParamValue], dict[int, str]]
"""Rows of `name = value` read: the values, and an error message per row index."""


@dataclass(frozen=True)
class FormValues:
    """What the wizard's fields hold, read at one moment (or what a spec puts in them: a
    field left out of `text`, `selected` or `ticked` is not changed). The radio choices
    are their buttons' keys: `data_kind` `datasets` or `paths`; `algo_kind` `preset`,
    `framework` or `image`; `runtime` `auto`, `docker` or `local`; `arguments` (`default`:
    none given); `log_metrics`, numbers in the log: `default` rules, the user's
    `patterns`, or `off`."""

    text: Mapping[str, str]
    """Input id → its text, stripped."""
    selected: Mapping[str, str]
    """Select id → the value chosen ('' when none)."""
    ticked: Mapping[str, bool]
    """Checkbox id → whether it is ticked."""
    data_kind: str
    algo_kind: str
    runtime: str
    arguments: str
    log_metrics: str
    datasets: Sequence[tuple[str | None, str | None]]
    """The dataset and version of each dataset row (None where not chosen)."""
    paths: Sequence[str]
    """The text of each path row (blank ones included)."""
    patterns: Sequence[str]
    """The text of each log pattern row (blank ones included)."""
    params: RowsRead
    env: RowsRead
    metrics: Any = None
    """The spec's `metrics:` block as filled (its `log_patterns` are replaced)."""
    extra_subscriptions: Sequence[dict[str, Any]] = field(default_factory=list)
    """Subscriptions after the first (the form shows one), kept as filled."""
    default_name: str = ""
    """The job's name when the name field is left blank."""


def filled_rows(texts: Sequence[str]) -> list[int]:
    """The indices of the rows that are not blank (the spec lists only those)."""
    return [i for i, text in enumerate(texts) if text]


def raw_spec(values: FormValues) -> tuple[dict[str, Any], list[FieldError]]:
    """The raw spec the fields describe, and the form's own findings (blank fields)."""
    text = values.text
    errors: list[FieldError] = []
    raw: dict[str, Any] = {"name": text["name"] or values.default_name}
    if text["description"]:
        raw["description"] = text["description"]
    raw["data"] = _data(values, errors)
    raw["algorithm"] = _algorithm(values, errors)
    for key, (params, row_errors) in (("parameters", values.params), ("env", values.env)):
        errors += [FieldError(f"{key}#{i}", message) for i, message in row_errors.items()]
        if params:
            raw[key] = params
    metrics = _metrics(values, errors)
    if metrics is not None:
        raw["metrics"] = metrics
    for key, input_id in (("output", "output"), ("log_dir", "log-dir")):
        if text[input_id]:
            raw[key] = text[input_id]
    raw["resources"] = _resources(values, errors)
    subscriptions = _subscriptions(values, errors)
    if subscriptions:
        raw["subscriptions"] = subscriptions
    if values.ticked.get("save-template"):
        raw["save_as_template"] = {"name": text["template-name"],
                                   "description": text["template-description"]}
        if not text["template-name"]:
            errors.append(FieldError("save_as_template.name", "give the saved job "
                                                              "parameters a name"))
    return raw, errors


def _data(values: FormValues, errors: list[FieldError]) -> dict[str, Any]:
    if values.data_kind == "datasets":
        items = []
        for i, (name, version) in enumerate(values.datasets):
            if name is None:
                errors.append(FieldError(f"data.datasets[{i}].name", "choose a dataset"))
            elif version is None:
                errors.append(FieldError(f"data.datasets[{i}].version", "choose a version"))
            items.append({"name": name or "-", "version": version or "V001"})
        if not items:
            errors.append(FieldError("data.datasets", "add a dataset"))
        return {"datasets": items}
    kept = filled_rows(values.paths)
    if not kept:
        errors.append(FieldError("data.paths", "add a data path"))
    return {"paths": [values.paths[i] for i in kept]}


def _metrics(values: FormValues, errors: list[FieldError]) -> Any:
    """The `metrics:` block: as filled, with `log_patterns` as the fields say."""
    filled = values.metrics
    if filled is not None and not isinstance(filled, Mapping):
        return filled  # malformed: kept for the check to say so
    metrics = {k: v for k, v in (filled or {}).items() if k != "log_patterns"}
    if values.log_metrics == "off":
        metrics["log_patterns"] = []
    elif values.log_metrics == "patterns":
        metrics["log_patterns"] = [values.patterns[i] for i in filled_rows(values.patterns)]
        if not metrics["log_patterns"]:
            errors.append(FieldError("metrics.log_patterns",
                                     "add a pattern, or choose default rules or off"))
    return metrics if metrics or filled is not None else None


def _algorithm(values: FormValues, errors: list[FieldError]) -> dict[str, Any]:
    text, selected = values.text, values.selected
    if values.algo_kind == "preset":
        name = selected["preset"]
        if not name:
            errors.append(FieldError("algorithm.preset.name", "choose a preset algorithm"))
        algo: dict[str, Any] = {"preset": {"name": name or "-"}}
    elif values.algo_kind == "image":
        image: dict[str, Any] = {"name": text["image-name"]}
        if not image["name"]:
            errors.append(FieldError("algorithm.image.name", "required"))
        command = _split(text["image-command"], "algorithm.image.command", errors)
        if command:
            image["command"] = command
        if text["image-code-dir"]:
            image["code_dir"] = text["image-code-dir"]
        algo = {"image": image}
    else:
        framework: dict[str, Any] = {
            "engine": selected["engine"], "engine_version": selected["engine-version"],
            "code_dir": text["code-dir"]}
        command = _split(text["command"], "algorithm.framework.command", errors)
        if command:
            framework["command"] = command
        else:
            framework["boot_file"] = text["boot-file"]
        for key, message in (("engine", "choose an engine"), ("engine_version", "choose a "
                             "version"), ("code_dir", "required"),
                             ("boot_file", "required (or give a command)")):
            if key in framework and not framework[key]:
                errors.append(FieldError(f"algorithm.framework.{key}", message))
        algo = {"framework": framework}
    if values.algo_kind != "preset" and values.arguments != "default":
        next(iter(algo.values()))["arguments"] = values.arguments
    if values.ticked.get("compat-moxing"):
        algo["compat"] = "moxing"
    if values.ticked.get("requirements-ignore"):
        algo["requirements"] = "ignore"
    return algo


def _split(command: str, field: str, errors: list[FieldError]) -> list[str]:
    """A command field split like a shell would (a finding when it does not split)."""
    try:
        return shlex.split(command)
    except ValueError as exc:
        errors.append(FieldError(field, f"cannot split it: {exc}"))
        return []


def _resources(values: FormValues, errors: list[FieldError]) -> dict[str, Any]:
    text = values.text
    resources: dict[str, Any] = {"pool": values.selected["pool"]}
    for key in ("gpus", "nodes"):
        try:
            resources[key] = int(text[key])
        except ValueError:
            errors.append(FieldError(f"resources.{key}", "must be a whole number"))
    processes = text["processes"]
    if processes:
        resources["processes_per_node"] = int(processes) if processes.isdigit() else processes
    cpus = text["cpus"]
    if cpus:
        try:
            resources["cpus"] = int(cpus) if cpus.isdigit() else float(cpus)
        except ValueError:
            errors.append(FieldError("resources.cpus", "must be a number, e.g. 4 or 0.5"))
    if text["memory"]:
        resources["memory"] = text["memory"]
    if values.selected["network"]:
        resources["network"] = values.selected["network"]
    if values.runtime in ("docker", "local"):
        resources["runtime"] = values.runtime
    return resources


def _subscriptions(values: FormValues, errors: list[FieldError]) -> list[dict[str, Any]]:
    """The one subscription the form shows (no topic set up: no topic field, none), and
    the others as filled."""
    topic = values.selected.get("topic", "")
    events = [e for e in EVENTS if values.ticked.get(f"event-{e}")]
    subs: list[dict[str, Any]] = []
    if topic and not events:
        errors.append(FieldError("subscriptions[0].events", "tick at least one event"))
    elif events and not topic:
        errors.append(FieldError("subscriptions[0].topic", "choose a topic for the events"))
    elif topic:
        subs.append({"topic": topic, "events": events})
    return subs + list(values.extra_subscriptions)


def form_values(raw: Mapping[str, Any], *, has_datasets: bool, public_pool: str) -> FormValues:
    """What the fields show of a raw spec. `has_datasets`: whether any dataset is registered
    (a spec with no data then starts on datasets); `public_pool`: the pool when none is
    named."""
    data, algo = mapping_of(raw.get("data")), mapping_of(raw.get("algorithm"))
    text = {"name": text_of(raw.get("name")), "description": text_of(raw.get("description"))}
    selected: dict[str, str] = {}
    datasets = [(text_of(mapping_of(d).get("name")) or None,
                 text_of(mapping_of(d).get("version")) or None) for d in _list(data, "datasets")]
    paths = [text_of(p) for p in _list(data, "paths")]
    if "preset" in algo:
        algo_kind, arguments = "preset", None
        selected["preset"] = text_of(mapping_of(algo["preset"]).get("name"))
    elif "image" in algo:
        algo_kind, image = "image", mapping_of(algo["image"])
        text |= {"image-name": text_of(image.get("name")),
                 "image-command": _command_text(image.get("command")),
                 "image-code-dir": text_of(image.get("code_dir"))}
        arguments = image.get("arguments")
    else:
        algo_kind, framework = "framework", mapping_of(algo.get("framework"))
        selected |= {"engine": text_of(framework.get("engine")),
                     "engine-version": text_of(framework.get("engine_version"))}
        text |= {"code-dir": text_of(framework.get("code_dir")),
                 "boot-file": text_of(framework.get("boot_file")),
                 "command": _command_text(framework.get("command"))}
        arguments = framework.get("arguments")
    metrics = raw.get("metrics")
    patterns = mapping_of(metrics).get("log_patterns")
    resources = mapping_of(raw.get("resources"))
    text |= {"output": text_of(raw.get("output")), "log-dir": text_of(raw.get("log_dir")),
             "gpus": text_of(resources.get("gpus", 0)), "nodes": text_of(resources.get("nodes", 1)),
             "processes": text_of(resources.get("processes_per_node")),
             "cpus": text_of(resources.get("cpus")), "memory": text_of(resources.get("memory"))}
    selected |= {"pool": text_of(resources.get("pool")) or public_pool,
                 "network": text_of(resources.get("network"))}
    runtime = text_of(resources.get("runtime"))
    subs = [dict(s) for s in _list(raw, "subscriptions") if isinstance(s, Mapping)]
    first = subs[0] if subs else {}
    selected["topic"] = text_of(first.get("topic"))
    events = _list(first, "events")
    save = mapping_of(raw.get("save_as_template"))
    text |= {"template-name": text_of(save.get("name")),
             "template-description": text_of(save.get("description"))}
    return FormValues(
        text=text, selected=selected,
        ticked={"compat-moxing": algo.get("compat") == "moxing",
                "requirements-ignore": algo.get("requirements") == "ignore",
                "save-template": bool(save), **{f"event-{e}": e in events for e in EVENTS}},
        data_kind="datasets" if datasets or (not paths and has_datasets) else "paths",
        algo_kind=algo_kind, runtime=runtime if runtime in ("docker", "local") else "auto",
        arguments=(arguments if algo_kind != "preset" and arguments in ARGUMENT_HINTS
                   else "default"),
        log_metrics="default" if patterns is None else "off" if patterns == [] else "patterns",
        datasets=datasets, paths=paths,
        patterns=[text_of(p) for p in patterns] if isinstance(patterns, list)
        else [text_of(patterns)],
        params=(_param_values(raw.get("parameters")), {}),
        env=(_param_values(raw.get("env")), {}), metrics=metrics, extra_subscriptions=subs[1:])


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _command_text(command: Any) -> str:
    """A spec's command as its field shows it (a list joined as a shell would split it)."""
    return shlex.join(map(str, command)) if isinstance(command, list) else text_of(command)


def _param_values(params: Any) -> dict[str, ParamValue]:
    """A spec's `parameters:` or `env:` as rows show them (odd values as their text)."""
    return {str(k): v if isinstance(v, bool | int | float | str) else str(v)
            for k, v in mapping_of(params).items()}


def text_of(value: Any) -> str:
    """A raw spec value as field text (None is empty)."""
    return "" if value is None else str(value)


def mapping_of(value: Any) -> Mapping[str, Any]:
    """A raw spec value as a mapping (anything else is empty)."""
    return value if isinstance(value, Mapping) else {}


HINTS = {
    # What each field shows beside it while it has no error.
    "name": "letters, digits, - or _; starts with a letter",
    "version": "generated; cannot be changed",
    "engine": "the framework your code is written for",
    "code-dir": "a requirements.txt here is installed first",
    "boot-file": "run with --data_url and --train_url",
    "image-command": "split like a shell would; no shell runs it",
    "command": "instead of a boot file; {data_url}, {train_url}, {param}",
    "arguments": "modelarts with a boot file, none with a command",
    "compat-moxing": "import moxing works on local and s3:// paths",
    "requirements-ignore": "run on the engine's packages alone",
    "fresh-code": "off: the new version runs its parent's code snapshot",
    "image-code-dir": "optional; mounted read-only",
    "output": "empty dir, not the data dir; blank: default",
    "log-dir": "blank: a folder under the runs folder",
    "gpus": "0 = CPU spec",
    "nodes": "1 = single machine, more = distributed",
    "processes": "a number, or gpus: one process per GPU",
    "cpus": "cores, e.g. 4 or 0.5",
    "memory": "e.g. 16g or 512m",
    "network": "Docker network of a single-node version",
    "runtime": "docker: in a container; local: a process",
    "topic": "this job's events are sent to the topic",
    "events": "running, succeeded, failed",
    "template-name": "how the saved job parameters are named",
}

LOG_METRICS_HINTS = {
    # What each choice of numbers-from-the-log does.
    "default": "name=value and name: value pairs on a line",
    "patterns": "your regexes replace the default rules",
    "off": "no metrics are read from the log",
}

ARGUMENT_HINTS = {
    # What each `arguments:` choice appends to the command.
    "default": HINTS["arguments"],
    "modelarts": "appends --data_url=… --train_url=… --name=value",
    "plain": "appends --name=value per parameter only",
    "none": "appends nothing: use {placeholders}",
}

TEMPLATE_MODE_HINTS = {
    # Editing saved job parameters: what the fields mean there.
    "name": "the job name they fill in",
    "version": "each job made from them gets its own versions",
    "template-name": "their name; a new one must be free",
    "template-description": "shown in the list and in the wizard's picker",
}

