"""Metrics from any training script: JSON lines, a summary file, TensorBoard scalars.

A script reports metrics in whichever of these ways it likes:

* appending JSON objects, one a line, to a metrics file (read incrementally while it runs);
* printing them (``loss: 0.31``; read from the log by ``app.metrics_log``);
* writing ``metrics.json`` (or ModelArts' ``metric.json``) with its final numbers;
* writing TensorBoard event files anywhere under the output or working folder.

This module turns all of them into ``MetricPoint``s and final values, and knows how the
comparison page orders metrics and which direction of each is better.

Where several sources give a metric of the same name: the summary files give its final
value (the script's own last word); its points come from the first source that gave the
name, live ones first (JSON lines, then the log, see ``RankMetricsReader``), then
TensorBoard files read at the end (``read_final_metrics``), so a curve shown while the
run went on is not replaced by another one after it ended.

This module is part of the core: it must never import textual. TensorBoard is optional;
it is imported only when event files are read.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from app.logs import LogFollower
from app.readmodels import Comparison, VersionInfo, leaf_fields

log = logging.getLogger(__name__)

SUMMARY_FILE = "metrics.json"
MODELARTS_SUMMARY_FILE = "metric.json"
"""ModelArts' file: ``{"total_metric": {"total_metric_values": {"accuracy": 0.9}}}``."""
MAX_EVENT_FILES = 200
MAX_EVENT_BYTES = 512 * 1024 * 1024
"""How many TensorBoard files, and bytes of them, are read under one folder at most."""
MAX_SCANNED_ENTRIES = 100_000
"""Folder entries looked at when searching a folder for TensorBoard files."""
_UNSEARCHED = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})
"""Folders (besides hidden ones such as ``.git``) never searched for TensorBoard files."""
Goal = Literal["max", "min"]


@dataclass(frozen=True)
class MetricPoint:
    """One value of one metric at one step; ``wall_time`` is Unix seconds when known."""

    name: str
    step: int
    value: float
    wall_time: float | None


def _number(value: object) -> float | None:
    """The value as a finite float, or None for bools, non-numbers, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def flatten_numbers(data: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Finite numbers of a (nested) dict, nested keys joined with ``/``; others dropped."""
    flat: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_numbers(value, name + "/"))
            continue
        number = _number(value)
        if number is not None:
            flat[name] = number
    return flat


class JsonlMetricsReader:
    """Read metric records appended to a JSON-lines file, a bit more on every call.

    Each line is one JSON object, such as ``{"step": 10, "accuracy": 0.91, "loss": 0.3}``.
    ``step`` gives the step (records without one get 0, 1, 2, ... counted by this reader);
    ``time`` or ``wall_time`` gives the Unix time. Every other finite number, not a bool, is
    a metric; nested objects are flattened (``{"val": {"loss": 1}}`` gives ``val/loss``).

    Malformed lines are skipped; nothing here raises for bad content. A final line
    without its newline waits until it completes. A missing file reads as empty; a file
    that shrinks or is replaced is read again from the start.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lines = LogFollower(self.path, untrusted=True)  # the job writes it
        self._next_auto_step = 0

    def read_new(self, max_bytes: int = 8 * 1024 * 1024) -> list[MetricPoint]:
        """Points from the lines completed since the last call (reads at most max_bytes)."""
        restarts = self._lines.restarts
        lines = self._lines.read_new(max_bytes)
        if self._lines.restarts != restarts:
            # A new file is a new run: its records without a step count from 0 again.
            self._next_auto_step = 0
        points: list[MetricPoint] = []
        for line in lines:
            points.extend(self._parse_line(line))
        return points

    def _parse_line(self, line: str) -> list[MetricPoint]:
        if not line.strip():
            return []
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            return []
        if not isinstance(record, dict):
            return []
        step_value = record.pop("step", None)
        if step_value is None:
            step = self._next_auto_step
            self._next_auto_step += 1
        else:
            number = _number(step_value)
            if number is None or not number.is_integer():
                return []
            step = int(number)
        # Both keys are taken out of the metrics; wall_time wins when both are numbers.
        wall_time = _number(record.pop("wall_time", None))
        fallback_time = _number(record.pop("time", None))
        if wall_time is None:
            wall_time = fallback_time
        values = flatten_numbers(record)
        return [MetricPoint(name, step, value, wall_time) for name, value in values.items()]


def _json_object(path: Path) -> tuple[dict[str, Any], str | None]:
    """The JSON object in a file and what went wrong; an absent file is no problem."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"cannot read {path}: {exc.strerror or exc}"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return {}, f"{path} is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return {}, f"{path} holds a JSON {type(data).__name__}, not an object"
    return data, None


def read_summary_file_checked(output_dir: Path) -> tuple[dict[str, float], str | None]:
    """Final metrics from ``metrics.json`` and ``metric.json`` in a folder, and what went wrong.

    Returns ``(values, problem)``. ``problem`` is None when the files were read or are
    simply absent (many scripts write none); otherwise it says why nothing (or less) was
    read. Nested objects are flattened with ``/``; values that are not finite numbers are
    ignored. ModelArts' ``metric.json`` gives the numbers of its
    ``total_metric.total_metric_values`` under their own names (any other shape is read
    like ``metrics.json``); where both files name a metric, ``metrics.json`` wins.
    """
    modelarts, problem = _json_object(Path(output_dir) / MODELARTS_SUMMARY_FILE)
    total = modelarts.get("total_metric")
    if isinstance(total, dict) and isinstance(total.get("total_metric_values"), dict):
        modelarts = total["total_metric_values"]
    own, own_problem = _json_object(Path(output_dir) / SUMMARY_FILE)
    problems = [p for p in (own_problem, problem) if p]
    return flatten_numbers(modelarts) | flatten_numbers(own), "; ".join(problems) or None


def read_summary_file(output_dir: Path) -> dict[str, float]:
    """Final metrics from ``metrics.json``/``metric.json`` in a folder; ``{}`` if absent.

    Never raises for a bad file: the problem is logged as a warning on this module's
    logger. Use ``read_summary_file_checked`` to show the problem to the user instead.
    """
    values, problem = read_summary_file_checked(output_dir)
    if problem is not None:
        log.warning("ignoring summary metrics: %s", problem)
    return values


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package is installed, which reading event files needs.

    Without it ``read_tensorboard_scalars`` returns no points; a caller can use this to tell
    the user why (it is one of Traindeck's dependencies: ``pip install tensorboard``).
    """
    try:
        from tensorboard.backend.event_processing import event_file_loader  # noqa: F401
    except ImportError:
        return False
    return True


def _event_files(root: Path, skip: Collection[str] = ()) -> list[Path]:
    """TensorBoard event files at any depth under a folder, within the module's bounds.

    Hidden folders, caches, virtual environments and the folders in ``skip`` (absolute
    paths) are not searched, links to folders are not followed; past
    ``MAX_SCANNED_ENTRIES`` entries, ``MAX_EVENT_FILES`` files or ``MAX_EVENT_BYTES``
    bytes (files taken in path order) the rest is left unread.
    """
    found: list[Path] = []
    entries = 0
    for folder, dirs, files in os.walk(os.path.abspath(root)):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _UNSEARCHED
                         and os.path.join(folder, d) not in skip)
        entries += len(dirs) + len(files)
        found += [Path(folder, f) for f in files if f.startswith("events.out.tfevents.")]
        if entries > MAX_SCANNED_ENTRIES:
            log.warning("searched only the first %d entries under %s for TensorBoard files",
                        MAX_SCANNED_ENTRIES, root)
            break
    kept: list[Path] = []
    total = 0
    for path in sorted(found):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if len(kept) >= MAX_EVENT_FILES or total + size > MAX_EVENT_BYTES:
            log.warning("read %d of %d TensorBoard files under %s (at most %d files, %d MiB)",
                        len(kept), len(found), root, MAX_EVENT_FILES, MAX_EVENT_BYTES >> 20)
            break
        kept.append(path)
        total += size
    return kept


def read_tensorboard_scalars(output_dir: Path, skip: Collection[str] = ()) -> list[MetricPoint]:
    """Scalar summaries of every ``events.out.tfevents.*`` file at any depth under a folder.

    Reads both the legacy ``simple_value`` form and the TF2 form (a scalar tensor with the
    scalars plugin). When the event files sit in more than one folder (TensorBoard's
    "runs", e.g. ``tb/train`` and ``tb/eval``), each tag gets its folder relative to the
    folders' common parent as a prefix (``train/loss``, ``eval/loss``) so runs do not
    collide; files all in one folder (``runs/Dec06_12-00-00_host/`` as ``SummaryWriter()``
    makes it) keep their tags as they are. Files that cannot be read are logged and
    skipped; the search is bounded (see ``_event_files``). Returns ``[]`` when TensorBoard
    is not installed (see ``tensorboard_available``).
    """
    files = _event_files(Path(output_dir), skip)
    if not files or not tensorboard_available():
        return []
    common = Path(os.path.commonpath([f.parent for f in files]))
    points: list[MetricPoint] = []
    for file in files:
        relative = file.parent.relative_to(common).as_posix()
        prefix = "" if relative == "." else relative + "/"
        try:
            points.extend(_read_event_file(file, prefix))
        except Exception as exc:  # a corrupt file must not hide the other files' metrics
            log.warning("skipping TensorBoard file %s: %s", file, exc)
    return points


def read_final_metrics(
    folders: Iterable[Path | None],
) -> tuple[list[MetricPoint], dict[str, float]]:
    """What a finished version left in its folders: TensorBoard points and summary values.

    ``folders`` in order of precedence (the output folder, then the working folder);
    None and missing folders are skipped; a folder given twice, or inside an earlier one,
    is read once. A metric name given by an earlier folder is not taken from a later one,
    in either result.
    """
    points: list[MetricPoint] = []
    summary: dict[str, float] = {}
    done: list[str] = []
    for folder in (os.path.abspath(f) for f in folders if f is not None):
        if folder in done or not os.path.isdir(folder):
            continue
        summary = read_summary_file(Path(folder)) | summary
        names = {p.name for p in points}
        points += [p for p in read_tensorboard_scalars(Path(folder), done) if p.name not in names]
        done.append(folder)
    return points, summary


def _shortest(scalar: Any) -> float:
    """A numpy scalar as the float its own precision prints as.

    TensorBoard stores float32, so 1/3 comes back as 0.3333333432674408; going through the
    float32 repr gives 0.33333334, which compares and displays like what the script logged.
    """
    return float(str(scalar)) if scalar.dtype.kind == "f" else float(scalar)


def _read_event_file(path: Path, prefix: str) -> Iterator[MetricPoint]:
    import numpy as np
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    # The loader migrates legacy simple_value summaries to the tensor form, but only the
    # first event of a tag carries its metadata, so remember each tag's plugin.
    plugins: dict[str, str] = {}
    for event in EventFileLoader(str(path)).Load():
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            plugin = value.metadata.plugin_data.plugin_name
            if plugin:
                plugins.setdefault(value.tag, plugin)
            if plugins.get(value.tag, "scalars") != "scalars":
                continue
            number: float | None = None
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number = _number(_shortest(np.float32(value.simple_value)))
            elif kind == "tensor" and not value.tensor.tensor_shape.dim:
                array = tensor_util.make_ndarray(value.tensor)
                if array.dtype.kind in "fiu":
                    number = _number(_shortest(array[()]))
            if number is not None:
                yield MetricPoint(prefix + value.tag, int(event.step), number, event.wall_time)


def final_values(points: Iterable[MetricPoint], summary: dict[str, float]) -> dict[str, float]:
    """Final value of each metric: the summary file's if it has one, else the last step's.

    Among points of the same metric at the same (highest) step, the one read last wins.
    """
    latest: dict[str, tuple[int, float]] = {}
    for point in points:
        seen = latest.get(point.name)
        if seen is None or point.step >= seen[0]:
            latest[point.name] = (point.step, point.value)
    finals = {name: value for name, (_, value) in latest.items()}
    finals.update(summary)
    return finals


# Unambiguous words count anywhere in a name ("trainloss"); short ones only as a whole word
# part, so that "answer" is not taken for "wer" nor "cancer" for "cer".
_MIN_SUBSTRINGS = ("loss", "error", "perplexity", "latency")
_MIN_PARTS = frozenset(
    {"loss", "error", "err", "mse", "rmse", "mae", "perplexity", "ppl", "wer", "cer", "time",
     "latency"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PART_SPLIT = re.compile(r"[^a-z0-9]+")


def _word_parts(name: str) -> list[str]:
    return [p for p in _PART_SPLIT.split(_CAMEL.sub("_", name).lower()) if p]


def metric_goal(name: str) -> Goal:
    """Whether a metric is better high (``"max"``) or low (``"min"``), from its name.

    Losses, errors, perplexity, WER/CER, times and latencies are minimised, matched on word
    parts (``val_loss``, ``train/loss``, ``valLoss``); everything else (accuracy, f1,
    recall, precision, auc, ...) is maximised.
    """
    lowered = name.lower()
    if any(word in lowered for word in _MIN_SUBSTRINGS):
        return "min"
    return "min" if any(part in _MIN_PARTS for part in _word_parts(name)) else "max"


def best_indices(values: Sequence[float | None], goal: Goal) -> tuple[int, ...]:
    """Indices of the best value — every one of them when several tie; None and NaN are
    skipped. Empty when there is nothing to choose between: no usable value, or every
    usable value the same (a star on each would say nothing).
    """
    usable = [v for v in values if v is not None and not math.isnan(v)]
    if len(set(usable)) < 2:
        return ()
    target = max(usable) if goal == "max" else min(usable)
    return tuple(i for i, v in enumerate(values) if v == target)


# The comparison page leads with these, in this order; aliases sort with their metric.
_LEADING = ("f1", "recall", "precision", "accuracy")
_ALIASES = {
    "f1": "f1",
    "f1_score": "f1",
    "f1score": "f1",
    "f1-score": "f1",
    "recall": "recall",
    "precision": "precision",
    "accuracy": "accuracy",
    "acc": "accuracy",
}


def ordered_metric_names(names: Iterable[str]) -> list[str]:
    """Metric names in display order: f1, recall, precision, accuracy, then the rest A-Z.

    Aliases (``f1_score``, ``acc``) take their metric's place; matching is
    case-insensitive. Duplicates are removed.
    """

    def key(name: str) -> tuple[int, str, str]:
        canonical = _ALIASES.get(name.lower())
        rank = _LEADING.index(canonical) if canonical else len(_LEADING)
        return rank, name.lower(), name

    return sorted(set(names), key=key)


def compare_versions(job_name: str, versions: list[VersionInfo]) -> Comparison:
    """`versions` of a job side by side (`app.queries.compare` reads them from the core,
    `traindeck compare` cold from the file), each metric's best value marked."""
    param_names = sorted({name for v in versions for name in v.parameters})
    parameters = {name: [v.parameters.get(name) for v in versions] for name in param_names}
    differing = [n for n in param_names if len({json.dumps(x) for x in parameters[n]}) > 1]
    # A script that echoes a run parameter among its metrics (`train_steps`) reports a
    # setting, not a result: it is compared once, as a parameter.
    metric_names = ordered_metric_names(
        {name for v in versions for name in v.metrics} - set(param_names))
    metrics = {name: [v.metrics.get(name) for v in versions] for name in metric_names}
    goals: dict[str, str] = {name: metric_goal(name) for name in metric_names}
    best = {name: best_indices(metrics[name], metric_goal(name)) for name in metric_names}
    specs = [leaf_fields({k: x for k, x in v.spec.items() if k != "parameters"})
             for v in versions]
    fields = {path: [spec.get(path) for spec in specs]
              for path in sorted({path for spec in specs for path in spec})}
    spec_changes = {path: values for path, values in fields.items()
                    if len({json.dumps(x, default=str) for x in values}) > 1}
    return Comparison(
        job=job_name, versions=[v.version for v in versions], version_ids=[v.id for v in versions],
        statuses=[v.status for v in versions], parameter_names=param_names, differing=differing,
        parameters=parameters, metric_names=metric_names, metrics=metrics, best=best,
        goals=goals, reasons=[v.reason for v in versions], spec_changes=spec_changes,
    )
