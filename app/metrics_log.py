"""Metrics printed to a rank's log: ``loss: 0.31``, ``acc=0.98``, ``epoch 3 | val_loss 0.2``.

Many scripts only print their numbers. ``LogMetricsReader`` follows a rank's log file (lines
stamped ``2026-11-23T13:45:00.123Z <text>``, see ``app.logs``) and turns those numbers into
``MetricPoint``s, a bounded amount per call. Traindeck's own lines (``[traindeck] ...``) are
never read. ``RankMetricsReader`` joins it with the rank's JSON-lines file, which wins.

The default rules are deliberately conservative; a spec's ``metrics.log_patterns`` (regular
expressions with named groups) replaces them, and ``metrics.log_patterns: []`` turns log
metrics off. Part of the core: never import textual.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from app.logs import LogFollower, split_timestamp
from app.metrics import JsonlMetricsReader, MetricPoint

OWN_PREFIX = "[traindeck] "
"""Lines of Traindeck's own in a rank's log start with this after the stamp (the
supervisor's ``SUPERVISOR_PREFIX``, not imported: the runtime is no import of the core's)."""
MAX_LINE_CHARS = 4096
"""Longer lines (a dumped tensor, a progress bar gone wild) are not searched for numbers."""
MAX_NAMES = 1000
"""Distinct metric names one log may give; later new names are ignored (``dropped``)."""

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_](?:[\w./-]*\w)?"
# What may follow a value: the end, a separator or closing bracket, or a sentence's full
# stop. So `1.5s`, `1.2.3`, `12:30`, `2026-11-23`, `9842/10000` and `cuda:0` give nothing.
_VALUE_END = r"(?=$|[\s,;|)\]}'\"]|\.(?:\s|$))"
# `name=value` (spaces allowed around `=`) or `name: value` (with no space after the colon
# see `_TIGHT`: `host:8080` is no pair); the name may be quoted as a printed dict has it
# (`{'loss': 0.31}`). A name glued to `/`, `\`, `.`, `-`, `=` or a word is part of a
# path, a file name or a flag (`/runs/lr=0.1`, `C:\runs\lr=0.1`, `epoch=3-step=9.ckpt`,
# `--lr=0.01`): not a pair.
# A word before the name qualifies it (`test loss: 0.2` is `test_loss`, not `loss`), an
# owner too (LightGBM's `valid_0's l1: 0.43` is `valid_0_l1`).
_QUALIFIER = r"(?:(?P<qual>[A-Za-z]+|[A-Za-z][\w-]*(?='s))(?:'s)?[ \t](?=[A-Za-z_]))?"
# With no space after the colon (XGBoost's `train-error:0.0213`, its cv's mean
# `test-error:0.0012+0.0001`) only a decimal or an exponent is a value, and it must end
# there: `cuda:0`, `host:8080`, `12:30:45.5` and `version:1.2.3` give nothing.
_TIGHT = r"[-+]?(?:\d*\.\d+|\d+\.\d*|\d+(?=[eE]))(?:[eE][-+]?\d+)?(?=$|[\s+])"
_PAIR = re.compile(
    rf"(?<![\w./\\=-]){_QUALIFIER}(?P<quote>['\"]?)(?P<name>{_NAME})(?P=quote)"
    rf"(?:(?:\s*=\s*|\s*:\s+)(?P<value>{_NUMBER})(?P<percent>%)?{_VALUE_END}"
    rf"|:(?P<tight>{_TIGHT}))"
)
# Between `|` bars a bare `name value` is a pair too (`epoch 3 | val_loss 0.2`).
_BARRED = re.compile(
    rf"\s*{_QUALIFIER}(?P<name>{_NAME})\s+(?P<value>{_NUMBER})(?P<percent>%)?\s*")
# A step written as words (`Epoch 3/10`, `[iter 200]`, `Step #5:`).
_STEP_WORDS = re.compile(r"(?<![\w-])(?i:(step|iteration|iter|epoch))\s+\[?#?(\d+)(?![\w.])")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S*")
# A call's repr: a capitalised name glued to `(` (`Namespace(lr=0.1)`, `BatchNorm2d(64,
# eps=1e-05)`, `Trainer(limit_train_batches=1)`) holds set-up, not results.
_CALL = re.compile(r"\b[A-Z]\w*\(")
_PARENS = re.compile(r"[()]")
_STEP_KEYS = {"step": 0, "global_step": 0, "iteration": 1, "iter": 1, "epoch": 2}
"""Names that give the step, finest first: with `epoch` and `step` on one line, step wins."""
_NOT_METRICS = frozenset({
    "version", "pid", "port", "rank", "local_rank", "node_rank", "world_size",
    "local_world_size", "seed", "master_port", "exitcode", "exit_code", "returncode",
    "group_rank", "role_rank", "nproc_per_node", "nnodes", "steps", "epochs", "iters",
    "iterations", "batch_size", "workers", "num_workers", "signal",
})
"""Numbers scripts print that are set-up, not results."""
# A value followed by a word that is not the next name (`data: 500 rows`, `took: 3 s`)
# counts things in a unit: not a metric. A word that starts a phrase is no unit (`Loss:
# 0.0009 after 198 batches`, `loss: 0.3 at step 5`), nor one that starts the next name,
# qualified or owned (`Last reward: 13.0\tAverage reward: 18.7`, `valid_0's l2: 0.19`).
_COUNTED = re.compile(r"[ \t]+(?!(?:after|at|and|before|by|for|from|in|of|on|or|over|per|"
                      r"to|vs|when|while|with)\b)[A-Za-z][\w-]*"
                      r"(?![\w-]*(?:'s)?(?:[ \t]+[A-Za-z][\w-]*)?\s*[:=])", re.IGNORECASE)
_VERBS = frozenset({"is", "are", "was", "were", "be", "been"})
"""A verb before the colon names nothing (`The RMSE of prediction is: 0.445`)."""
_NOT_QUALIFIERS = frozenset({
    "a", "an", "the", "and", "or", "of", "is", "at", "on", "in", "to", "for", "with", "by",
    "my", "our", "your", "it", "its", "this", "that", "new", "set", "got", "info", "debug",
    "warning", "error", "root",
})
"""Words before a name that do not qualify it (`the loss: 0.3` is `loss`)."""


def _metric_name(match: re.Match[str]) -> str:
    """A pair's name with its qualifying word, if any (`test loss` → `test_loss`)."""
    qualifier = match["qual"]
    if qualifier and qualifier.lower() not in _NOT_QUALIFIERS \
            and qualifier.lower() not in _STEP_KEYS and match["name"].lower() not in _STEP_KEYS:
        return f"{qualifier}_{match['name']}"
    return match["name"]


def _without_calls(text: str) -> str:
    """The line with each call's repr cut out, nested ones with it (an unclosed one runs
    to the end of the line)."""
    kept, end = [], 0
    for call in _CALL.finditer(text):
        if call.start() < end:
            continue  # inside the one cut out
        kept.append(text[end:call.start()])
        depth, end = 0, len(text)
        for paren in _PARENS.finditer(text, call.end() - 1):
            depth += 1 if paren[0] == "(" else -1
            if depth == 0:
                end = paren.end()
                break
    return " ".join([*kept, text[end:]])


def compile_log_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """The patterns of ``metrics.log_patterns``, compiled; raises ValueError for a bad one
    with its index (``log_patterns[1]: ...``). See ``check_log_pattern`` for the rules."""
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(check_log_pattern(pattern))
        except ValueError as exc:
            raise ValueError(f"log_patterns[{index}]: {exc}") from None
    return compiled


def check_log_pattern(pattern: str) -> re.Pattern[str]:
    """A ``metrics.log_patterns`` item compiled, or ValueError saying what is wrong.

    Either groups ``(?P<name>...)`` and ``(?P<value>...)`` (the metric's name and value),
    or groups named after metrics (``loss=(?P<loss>\\S+)``); ``(?P<step>...)`` is optional
    in both forms.
    """
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    groups = set(compiled.groupindex)
    if ("name" in groups) != ("value" in groups):
        raise ValueError("needs both (?P<name>...) and (?P<value>...), or metric-named groups")
    if not groups - {"step"}:
        raise ValueError("has no named group: use (?P<name>...) and (?P<value>...), "
                         "or name a group after its metric, e.g. (?P<loss>...)")
    return compiled


def _value(text: str) -> float | None:
    """A printed number as a finite float (``98.5%`` is 98.5, as printed), else None."""
    try:
        number = float(text.strip().removesuffix("%"))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _step(text: str | None) -> int | None:
    number = _value(text) if text is not None else None
    return int(number) if number is not None and number.is_integer() else None


def default_pairs(text: str) -> tuple[list[tuple[str, float]], int | None]:
    """The metrics of one line of output by the default rules, and its step if it has one.

    ``name=value`` and ``name: value`` pairs anywhere, and ``name value`` between ``|``
    bars. A percentage counts as the number printed (``acc: 98.5%`` is 98.5). The step is
    the value of ``step``/``global_step``, ``iteration``/``iter`` or ``epoch`` (finest
    first), as a pair or as words (``Epoch 3/10``); it is not a metric itself. Nothing
    comes from URLs, paths, flags, times, dates, versions, values with units, set-up
    numbers (``rank``, ``pid``, ``seed``, ...) or a call's repr (an argparse
    ``Namespace(...)`` echo, ``BatchNorm2d(64, eps=1e-05)``), wherever it is in the line.
    """
    if "=" not in text and ":" not in text and "|" not in text:
        return [], None
    if "://" in text:
        text = _URL.sub(" ", text)
    if "(" in text:
        text = _without_calls(text)
    found = [(_metric_name(m), m["value"] or m["tight"]) for m in _PAIR.finditer(text)
             if m["name"].lower() not in _VERBS and not _COUNTED.match(text, m.end())]
    if "|" in text:
        found += [(_metric_name(m), m["value"]) for piece in text.split("|")
                  if (m := _BARRED.fullmatch(piece))]
    pairs: list[tuple[str, float]] = []
    step, step_rank = None, len(_STEP_KEYS)
    for name, raw in found:
        lowered = name.lower()
        if lowered in _STEP_KEYS:
            value = _step(raw)
            if value is not None and _STEP_KEYS[lowered] < step_rank:
                step, step_rank = value, _STEP_KEYS[lowered]
        elif lowered not in _NOT_METRICS and (number := _value(raw)) is not None:
            pairs.append((name, number))
    if not pairs:
        return [], None
    if step is None:
        words = sorted((_STEP_KEYS[m[1].lower()], int(m[2])) for m in _STEP_WORDS.finditer(text))
        step = words[0][1] if words else None
    return pairs, step


def pattern_pairs(
    text: str, patterns: Sequence[re.Pattern[str]]
) -> tuple[list[tuple[str, float]], int | None]:
    """The metrics of one line by user patterns (see ``check_log_pattern``), and its step."""
    pairs: list[tuple[str, float]] = []
    step = None
    for pattern in patterns:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            found_step = _step(groups.pop("step", None))
            step = step if found_step is None else found_step
            if "name" in groups:
                groups = {groups["name"] or "": groups["value"]}
            for name, raw in groups.items():
                number = _value(raw) if name and raw is not None else None
                if number is not None:
                    pairs.append((name, number))
    return pairs, step


class LogMetricsReader:
    """Numbers printed in one rank's log, read a bounded amount per call.

    ``patterns`` None applies the default rules (``default_pairs``); a list of patterns
    replaces them (``pattern_pairs``); an empty list reads nothing. A line without a step
    gets, per metric, the count of such points before it (0, 1, 2, ...). Like
    ``JsonlMetricsReader``, it keeps its offset, waits for a final line's newline, and
    starts over when the file is replaced. Raises ValueError for a bad pattern.
    """

    def __init__(self, path: Path, patterns: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self._patterns = None if patterns is None else compile_log_patterns(patterns)
        self._lines = LogFollower(self.path)
        self._auto_steps: dict[str, int] = {}
        self._last_step: int | None = None
        self._seconds: dict[str, float] = {}
        self.dropped = 0
        """Points not kept because the log already gave ``MAX_NAMES`` names."""

    def read_new(self, max_bytes: int = 2 * 1024 * 1024) -> list[MetricPoint]:
        """Points from the lines completed since the last call (reads at most max_bytes)."""
        if self._patterns == []:
            return []
        restarts = self._lines.restarts
        lines = self._lines.read_new(max_bytes)
        if self._lines.restarts != restarts:
            self._auto_steps.clear()  # a new file is a new run
            self._last_step = None
        return list(self._points(lines))

    def _points(self, lines: list[str]) -> Iterator[MetricPoint]:
        for line in lines:
            stamp, text = split_timestamp(line)
            if text.startswith(OWN_PREFIX) or len(text) > MAX_LINE_CHARS:
                continue
            if self._patterns is None:
                pairs, step = default_pairs(text)
            else:
                pairs, step = pattern_pairs(text, self._patterns)
            wall_time = self._wall_time(stamp) if pairs else None
            if step is not None:
                self._last_step = step
            elif self._last_step is not None:
                # After stepped lines, a line without a step (a final summary, a test
                # loss) belongs to the last step: it must not sort before it.
                step = self._last_step
            for name, value in pairs:
                if name not in self._auto_steps:
                    if len(self._auto_steps) >= MAX_NAMES:
                        self.dropped += 1
                        continue
                    self._auto_steps[name] = 0
                at = step
                if at is None:
                    at = self._auto_steps[name]
                    self._auto_steps[name] = at + 1
                yield MetricPoint(name, at, value, wall_time)

    def _wall_time(self, stamp: str | None) -> float | None:
        """Unix time of a line's stamp; one date conversion per second of stamps."""
        if stamp is None:
            return None
        second = self._seconds.get(stamp[:19])
        if second is None:
            if len(self._seconds) > 4096:
                self._seconds.clear()
            try:
                second = datetime.fromisoformat(stamp[:19] + "+00:00").timestamp()
            except ValueError:
                return None
            self._seconds[stamp[:19]] = second
        fraction = stamp[19:-1]
        return second + (float(fraction) if len(fraction) > 1 else 0.0)


class RankMetricsReader:
    """One rank's metrics while it runs: its JSON-lines file, then numbers in its log.

    Where both give a metric of the same name, the JSON-lines file wins: from the moment
    it gives a name, the log's points of that name are dropped, because a record the
    script wrote on purpose, with its own step, says more than a number found in text.
    ``log_path`` None (e.g. ranks other than 0, which mostly print the same) or
    ``patterns == []`` reads the JSON-lines file only.
    """

    def __init__(self, metrics_file: Path, log_path: Path | None,
                 patterns: Sequence[str] | None = None,
                 settings: Iterable[str] = ()) -> None:
        self.jsonl = JsonlMetricsReader(metrics_file)
        self.log = None if log_path is None or patterns == [] else (
            LogMetricsReader(log_path, patterns))
        self._structured: set[str] = set()
        self._settings = frozenset(settings)
        """Run parameter names: a script echoing its settings (`lr=0.1`) prints no result."""

    def read_new(self) -> list[MetricPoint]:
        """New points of both sources since the last call."""
        points = self.jsonl.read_new()
        self._structured.update(p.name for p in points)
        if self.log is not None:
            points += [p for p in self.log.read_new()
                       if p.name not in self._structured and p.name not in self._settings]
        return points
