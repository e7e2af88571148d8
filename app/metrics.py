"""Metrics from any training script: JSON lines, a summary file, TensorBoard scalars.

A script reports metrics in whichever of these ways it likes:

* appending JSON objects, one a line, to a metrics file (read incrementally while it runs);
* writing ``metrics.json`` with its final numbers into the output folder;
* writing TensorBoard event files anywhere under the output folder.

This module turns all of them into ``MetricPoint``s and final values, and knows how the
comparison page orders metrics and which direction of each is better.

This module is part of the core: it must never import textual. TensorBoard is optional;
it is imported only when event files are read.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from app.logs import LogFollower

log = logging.getLogger(__name__)

SUMMARY_FILE = "metrics.json"
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

    Malformed lines are skipped and counted in ``bad_lines``; nothing here raises for bad
    content. A final line without its newline waits until it completes. A missing file
    reads as empty; a file that shrinks or is replaced is read again from the start.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.bad_lines = 0
        self._lines = LogFollower(self.path)
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
            self.bad_lines += 1
            return []
        if not isinstance(record, dict):
            self.bad_lines += 1
            return []
        step_value = record.pop("step", None)
        if step_value is None:
            step = self._next_auto_step
            self._next_auto_step += 1
        else:
            number = _number(step_value)
            if number is None or not number.is_integer():
                self.bad_lines += 1
                return []
            step = int(number)
        # Both keys are taken out of the metrics; wall_time wins when both are numbers.
        wall_time = _number(record.pop("wall_time", None))
        fallback_time = _number(record.pop("time", None))
        if wall_time is None:
            wall_time = fallback_time
        values = flatten_numbers(record)
        return [MetricPoint(name, step, value, wall_time) for name, value in values.items()]


def read_summary_file_checked(output_dir: Path) -> tuple[dict[str, float], str | None]:
    """Final metrics from ``<output_dir>/metrics.json`` and what went wrong, if anything.

    Returns ``(values, problem)``. ``problem`` is None when the file was read or is simply
    absent (many scripts write none); otherwise it says why nothing (or less) was read.
    Nested objects are flattened with ``/``; values that are not finite numbers are ignored.
    """
    path = Path(output_dir) / SUMMARY_FILE
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
    return flatten_numbers(data), None


def read_summary_file(output_dir: Path) -> dict[str, float]:
    """Final metrics from ``metrics.json`` in the output folder; ``{}`` if absent or corrupt.

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
    the user why (``pip install 'traindeck[tensorboard]'``).
    """
    try:
        from tensorboard.backend.event_processing import event_file_loader  # noqa: F401
    except ImportError:
        return False
    return True


def _event_files(output_dir: Path) -> list[Path]:
    root = Path(output_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("events.out.tfevents.*") if p.is_file())


def read_tensorboard_scalars(output_dir: Path) -> list[MetricPoint]:
    """Scalar summaries of every ``events.out.tfevents.*`` file under the output folder.

    Reads both the legacy ``simple_value`` form and the TF2 form (a scalar tensor with the
    scalars plugin). When the event files sit in more than one folder (TensorBoard's
    "runs", e.g. ``tb/train`` and ``tb/eval``), each tag gets its folder relative to the
    folders' common parent as a prefix (``train/loss``, ``eval/loss``) so runs do not
    collide; files all in one folder keep their tags as they are. Files that cannot be
    read are logged and skipped. Returns ``[]`` when TensorBoard is not installed (see
    ``tensorboard_available``).
    """
    files = _event_files(output_dir)
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
    {"loss", "error", "err", "mse", "rmse", "mae", "perplexity", "wer", "cer", "time", "latency"}
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
