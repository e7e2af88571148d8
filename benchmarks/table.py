"""The figures of one benchmark run and the table they are printed as.

Every case hands back `Row`s holding the raw figure of each run (ours, and the
baseline's when it has one) and its target from the quality bars; medians, ratios and
whether a target is met are worked out here, in one place, so that every row reads alike.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TargetKind = Literal["ratio", "over", "below", "equal"]


@dataclass(frozen=True)
class Target:
    """What a row must reach.

    * `ratio` — median(ours) / median(baseline) ≤ limit;
    * `over` — median(ours) - median(baseline) ≤ limit (in the row's unit);
    * `below` — the statistic `stat` of ours < limit;
    * `equal` — every figure of ours == limit (a count of violations, say).
    """

    kind: TargetKind
    limit: float
    stat: Literal["median", "max"] = "median"


@dataclass
class Row:
    """One line of the table: a case's figures over every run."""

    case: str
    unit: str
    """`s`, `%`, `B/s`, `MB`, `lines/s` or `` (a count)."""
    ours: list[float]
    baseline: list[float] = field(default_factory=list)
    target: Target | None = None
    """None: shown for information."""
    baseline_unit: str | None = None
    """The baseline's unit when it differs (the writer's rate beside a lag)."""
    note: str = ""
    error: str = ""
    """Why the case could not be measured (then the figures are empty)."""
    shown_as: str | None = None
    """How an information row (no target) shows its figure: a target kind (`over`)."""

    @property
    def ours_median(self) -> float:
        """Median of ours (NaN without figures)."""
        return median(self.ours)

    @property
    def baseline_median(self) -> float:
        """Median of the baseline (NaN without one)."""
        return median(self.baseline)

    def _stat(self) -> float:
        if self.target is not None and self.target.stat == "max":
            return max(self.ours) if self.ours else math.nan
        return self.ours_median

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None for information rows and unmeasured ones."""
        target = self.target
        if target is None or self.error or not self.ours:
            return None
        if target.kind == "ratio":
            return self.ours_median / self.baseline_median <= target.limit
        if target.kind == "over":
            return self.ours_median - self.baseline_median <= target.limit
        if target.kind == "below":
            return self._stat() < target.limit
        return all(value == target.limit for value in self.ours)

    def figure(self) -> str:
        """The ratio, the difference or the statistic the target is about."""
        if self.error or not self.ours:
            return "—"
        kind = self.target.kind if self.target else self.shown_as
        same_unit = self.baseline and self.baseline_unit in (None, self.unit)
        if kind == "over":
            return f"+{fmt(self.ours_median - self.baseline_median, self.unit)}"
        if kind == "below" and self.target is not None and self.target.stat == "max":
            p95 = percentile(self.ours, 95)
            return f"p95 {fmt(p95, self.unit)}, max {fmt(max(self.ours), self.unit)}"
        if kind == "equal":
            return f"max {fmt(max(self.ours), self.unit)}"
        if same_unit and self.baseline_median > 0:
            return f"{self.ours_median / self.baseline_median:.2f}×"
        return "—"

    def target_text(self) -> str:
        """The target in words (`≤ 1.5x`, `< 300 ms`, ...)."""
        target = self.target
        if target is None:
            return "(info)"
        if target.kind == "ratio":
            return f"≤ {target.limit:g}×"
        if target.kind == "over":
            return f"≤ +{fmt(target.limit, self.unit)}"
        if target.kind == "below":
            prefix = "max " if target.stat == "max" else ""
            return f"{prefix}< {fmt(target.limit, self.unit)}"
        return f"= {fmt(target.limit, self.unit)}"

    def cells(self) -> tuple[str, str, str, str, str, str]:
        """The row as the table prints it."""
        met = self.met
        verdict = ("not measured" if self.error else "—" if met is None
                   else "met" if met else "NOT MET")
        ours = "—" if self.error or not self.ours else fmt(self.ours_median, self.unit)
        baseline = ("—" if not self.baseline
                    else fmt(self.baseline_median, self.baseline_unit or self.unit))
        return (self.case, ours, baseline, self.figure(), self.target_text(), verdict)

    def to_dict(self) -> dict[str, Any]:
        """The raw figures and the verdict, for `--json`."""
        data = asdict(self)
        data.update(ours_median=nan_none(self.ours_median),
                    baseline_median=nan_none(self.baseline_median),
                    figure=self.figure(), target_text=self.target_text(), met=self.met)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """A row written by `to_dict` (a case's child process hands its rows back so)."""
        target = data.get("target")
        return cls(case=data["case"], unit=data["unit"], ours=list(data["ours"]),
                   baseline=list(data.get("baseline") or []),
                   target=Target(**target) if target else None,
                   baseline_unit=data.get("baseline_unit"), note=data.get("note", ""),
                   error=data.get("error", ""), shown_as=data.get("shown_as"))


def median(values: list[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def percentile(values: list[float], pct: float) -> float:
    """The `pct`th percentile (nearest rank), NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def nan_none(value: float) -> float | None:
    """JSON has no NaN."""
    return None if math.isnan(value) else value


def fmt(value: float, unit: str) -> str:
    """A figure in its unit, at a precision that suits it."""
    if math.isnan(value):
        return "—"
    if unit == "s":
        if abs(value) < 0.01:
            return f"{value * 1000:.1f} ms"
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "B/s":
        return f"{value:,.0f} B/s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "lines/s":
        return f"{value:,.0f} lines/s"
    return f"{value:g}"


def render(rows: list[Row]) -> str:
    """The table, then a numbered note under it for each row that has one."""
    header = ("case", "ours (median)", "baseline (median)", "ratio or figure", "target", "met")
    body = [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    lines = []
    for line in (header, tuple("-" * w for w in widths), *body):
        lines.append(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip())
    notes = [f"  {row.case}: {row.error or row.note}" for row in rows if row.error or row.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)
