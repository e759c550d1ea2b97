"""What the gates found: each check, the whole report, its text form and its record.

The report goes to the candidate model version's run as ``mlnb/gates/<time>.json`` with
metrics ``gates.*``, and the version gets the tag ``mlnb.gates=passed|failed``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlnb.exceptions import GatesFailed

__all__ = ["Check", "GateReport"]

PASSED, FAILED, WARNING, SKIPPED = "passed", "failed", "warning", "skipped"
_MARK = {PASSED: "PASS", FAILED: "FAIL", WARNING: "WARN", SKIPPED: "SKIP"}
#: details that are thresholds, not measurements: in the report, not in the metrics
_SETTINGS = {"tolerance", "threshold", "max_flip_rate", "noise", "max_gap"}


@dataclass
class Check:
    """One gate: ``hard`` gates decide the result; the others only warn."""

    name: str
    status: str  # passed, failed, warning, skipped
    summary: str
    hard: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.hard and self.status == FAILED


@dataclass
class GateReport:
    candidate: str
    against: str | None  # the champion's URI, resolved to a version when it is one
    data: str
    target: str
    rows: int
    task: str
    metric: str
    created: str  # UTC, ISO 8601
    checks: list[Check] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    candidate_version: dict[str, Any] | None = None  # {name, version, run_id}
    champion_version: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    artifact: str | None = None  # where the report was written, when it was

    @property
    def passed(self) -> bool:
        """True when no hard gate failed."""
        return not any(check.failed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.failed]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.status == WARNING]

    def check(self, name: str) -> Check:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["passed"] = self.passed
        finite: dict[str, Any] = _finite(doc)
        return finite

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

    def raise_if_failed(self) -> None:
        """Raise :class:`~mlnb.exceptions.GatesFailed` naming the failed gates."""
        if not self.passed:
            names = "; ".join(f"{c.name}: {c.summary}" for c in self.failures)
            raise GatesFailed(f"gates failed for {self.candidate}: {names}", self)

    def metrics(self) -> dict[str, float]:
        """The numbers recorded on the run as ``gates.*`` metrics."""
        found: dict[str, float] = {"gates.passed": 1.0 if self.passed else 0.0}
        for item in self.checks:
            for key, value in item.details.items():
                if (
                    key not in _SETTINGS
                    and isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                ):
                    found[f"gates.{item.name}.{key}"] = float(value)
        return found

    def render(self) -> str:
        """The report as a person reads it in a terminal."""
        lines = [f"gates for {self.candidate}"]
        lines.append(f"  against   {self.against or '(nothing: no champion to compare with)'}")
        if self.rows:
            lines.append(
                f"  holdout   {self.data}: {self.rows} rows, target {self.target!r}, "
                f"{self.task}, metric {self.metric}"
            )
        else:
            lines.append("  holdout   (none)")
        lines.append("")
        for item in self.checks:
            suffix = "" if item.hard or item.status != WARNING else "  (warning only)"
            lines.append(f"  {_MARK[item.status]}  {item.name:<12} {item.summary}{suffix}")
        if self.slices:
            lines.append("")
            lines.extend(self._slice_table())
        lines.append("")
        verdict = "PASSED" if self.passed else "FAILED"
        if not self.passed:
            verdict += " (" + ", ".join(c.name for c in self.failures) + ")"
        lines.append(f"result: {verdict}")
        if self.artifact:
            lines.append(f"report: {self.artifact}")
        return "\n".join(lines)

    def _slice_table(self) -> list[str]:
        has_champion = any(row.get("champion") is not None for row in self.slices)
        head = f"  {'slice':<32} {'rows':>6} {'candidate':>10}"
        head += f" {'champion':>10} {'drop':>8}" if has_champion else ""
        lines = [f"  {self.metric} by slice", head]
        for row in self.slices:
            label = f"{row['column']}={row['value']}"
            line = f"  {label[:32]:<32} {row['rows']:>6} {_num(row['candidate']):>10}"
            if has_champion:
                line += f" {_num(row.get('champion')):>10} {_num(row.get('drop')):>8}"
            if row.get("small"):
                line += "  (too few rows to gate)"
            lines.append(line)
        return lines


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"


def _finite(value: Any) -> Any:
    """NaN and infinities as None, so the JSON is valid everywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
