"""Drift reports: from an exported service folder (profile + audit log) or a running
service (``GET /monitor/drift``), rendered as one self-contained HTML page."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb._text import first_line
from mlnb.exceptions import MonitorError
from mlnb.monitor._defaults import DEFAULT_MIN_SAMPLES
from mlnb.monitor._drift import DriftReport, FeatureDrift, drift_report
from mlnb.monitor._profile import Profile

__all__ = [
    "AuditRecords",
    "describe_drift",
    "load_audit_records",
    "render_html",
    "report_from_dir",
    "report_from_source",
    "report_from_url",
]

PROFILE_FILE = "profile.json"
AUDIT_DIR = "audit"


@dataclass
class AuditRecords:
    """Input records read from a service's audit log, and the lines that could not be."""

    records: list[dict[str, Any]]
    files: int
    skipped: int


def load_audit_records(folder: str | Path, last: int | None = None) -> AuditRecords:
    """The input records in ``folder/audit/*.jsonl`` (also ``*.jsonl.gz``; ``folder`` may be
    the audit folder itself; ``feedback*`` files are not predictions), oldest first.

    Each line is a JSON object whose ``inputs`` is a list of records (dicts), one record, or
    ``{"records": [...]}``. Lines that are not JSON or have no inputs are skipped and counted
    (a service killed mid-write leaves a partial last line); lines of another ``kind`` than
    ``"prediction"`` (shadow answers, feedback) are left out. ``last`` keeps the newest N.
    """
    import gzip

    audit = Path(folder) / AUDIT_DIR
    audit = audit if audit.is_dir() else Path(folder)
    files = (
        sorted(
            [
                p
                for p in [*audit.glob("*.jsonl"), *audit.glob("*.jsonl.gz")]
                if not p.name.startswith("feedback")
            ],
            key=lambda p: (p.stat().st_mtime, p.name),
        )
        if audit.is_dir()
        else []
    )
    records: list[dict[str, Any]] = []
    skipped = 0
    for path in files:
        opener: Any = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.strip():
                        continue
                    found = _inputs(line)
                    if found is None:
                        skipped += 1
                    else:
                        records.extend(found)
        except (OSError, EOFError):
            skipped += 1
    if last is not None:
        records = records[-last:]
    return AuditRecords(records, len(files), skipped)


def _inputs(line: str) -> list[dict[str, Any]] | None:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(entry, Mapping):
        return None
    if entry.get("kind", "prediction") != "prediction":
        return []  # a shadow answer, feedback...: the same inputs were logged once already
    inputs = entry.get("inputs")
    if isinstance(inputs, Mapping) and isinstance(inputs.get("records"), list):
        inputs = inputs["records"]
    if isinstance(inputs, Mapping):
        return [dict(inputs)]
    if isinstance(inputs, list) and all(isinstance(r, Mapping) for r in inputs):
        return [dict(r) for r in inputs]
    return None


def report_from_dir(
    folder: str | Path, last: int | None = None, profile: str | Path | None = None
) -> tuple[DriftReport, Profile]:
    """Drift of the inputs in an exported service folder's audit log against its profile
    (``profile`` instead of ``folder/profile.json`` when given; then ``folder`` may also be
    an audit folder kept elsewhere, ``MLNB_AUDIT_DIR``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MonitorError(
            f"{str(folder)!r} is not a folder; give an exported service folder (mlnb export) "
            "or the URL of a running service."
        )
    profile_path = Path(profile) if profile is not None else folder / PROFILE_FILE
    if profile is None and not profile_path.exists():
        raise MonitorError(
            f"{folder} has no {PROFILE_FILE}: record a profile of the training data in the run "
            "that logs the model (mlnb.profile(X_train) or %mlnb profile X_train) and export "
            "again, or pass one with mlnb export --profile PATH."
        )
    training = Profile.load(profile_path)
    audit = load_audit_records(folder, last)
    if not audit.records:
        raise MonitorError(
            f"no predictions in {folder / AUDIT_DIR} ({audit.files} audit file(s), "
            f"{audit.skipped} unreadable line(s)); serve the folder with the audit log on "
            "and send requests first."
        )
    return drift_report(training, audit.records), training


def report_from_url(url: str, timeout: float = 10.0) -> DriftReport:
    """The drift a running service reports at ``GET <url>/monitor/drift``."""
    import urllib.error
    import urllib.request

    target = url.rstrip("/") + "/monitor/drift"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise MonitorError(
            f"{target} answered {exc.code} {exc.reason}; is this an mlnb service with a "
            "profile (export it with one)?"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MonitorError(
            f"cannot reach {target}: {reason}; start the service (mlnb serve DIR) or check the URL."
        ) from None
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        raise MonitorError(f"{target} did not answer JSON; is this an mlnb service?") from None
    if not isinstance(data, Mapping):
        raise MonitorError(f"{target} answered {type(data).__name__}, not a drift report.")
    if not data.get("features") and data.get("detail"):
        raise MonitorError(f"{target} has no drift to report: {data['detail']}")
    return DriftReport.from_dict(data)


# -- HTML --------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin:1.5em 0 .3em}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;
text-align:left}th{background:#f4f4f4}.drift{color:#b00020;font-weight:600}.ok{color:#256029}
.feature{display:inline-block;vertical-align:top;margin:0 1.5em 1.5em 0}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
small{color:#666}
"""
_TRAIN = "#4c78a8"
_LIVE = "#f58518"


def render_html(
    report: DriftReport | Mapping[str, Any],
    profile: Profile | None = None,
    title: str = "mlnb drift report",
) -> str:
    """A self-contained HTML page: a summary table and, per feature, bars of the training
    share (blue) beside the live share (orange) for each bin or category (inline SVG)."""
    if not isinstance(report, DriftReport):
        report = DriftReport.from_dict(report)
    esc = html.escape
    rows = []
    for name, drift in report.features.items():
        state = (
            '<span class="drift">drifted</span>'
            if drift.drifted
            else f"too few values (&lt; {DEFAULT_MIN_SAMPLES})"
            if drift.n < DEFAULT_MIN_SAMPLES
            else '<span class="ok">ok</span>'
        )
        p = "" if drift.p_value is None else f"{drift.p_value:.3g}"
        rows.append(
            f"<tr><td>{esc(name)}</td><td>{drift.method}</td><td>{drift.statistic:.4g}</td>"
            f"<td>{p}</td><td>{drift.threshold:.3g}</td><td>{drift.n}</td><td>{state}</td></tr>"
        )
    charts = []
    for name, drift in report.features.items():
        stats = _stats_line(profile, name)
        verdict = (
            "drifted"
            if drift.drifted
            else "too few values"
            if drift.n < DEFAULT_MIN_SAMPLES
            else "no drift"
        )
        charts.append(
            f'<div class="feature"><h2>{esc(name)} <small>{drift.method} '
            f"{drift.statistic:.3g} ({verdict})</small></h2>{_svg(drift)}"
            f"{f'<div><small>{esc(stats)}</small></div>' if stats else ''}</div>"
        )
    drifted = ", ".join(esc(d) for d in report.drifted) or "none"
    absent = (
        f"<p>Not in the live data (filled with defaults): {esc(', '.join(report.absent))}</p>"
        if report.absent
        else ""
    )
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<p>Profile <b>{esc(report.profile)}</b>, {report.n} live rows, made {created}. "
        f"Drifted: <b>{drifted}</b>.</p>{absent}"
        '<p class="legend"><span style="background:' + _TRAIN + '"></span>training'
        '<span style="background:' + _LIVE + '"></span>live</p>'
        "<table><tr><th>feature</th><th>method</th><th>statistic</th><th>p-value</th>"
        f"<th>threshold</th><th>n</th><th>state</th></tr>{''.join(rows)}</table>"
        f"{''.join(charts)}</body></html>\n"
    )


def _stats_line(profile: Profile | None, name: str) -> str:
    if profile is None or name not in profile.features:
        return ""
    f = profile.features[name]
    parts = [f"training: {f.count} values", f"missing {f.missing_rate:.1%}"]
    if f.kind == "number" and f.min is not None:
        parts.append(f"range [{f.min:.4g}, {f.max:.4g}], mean {f.mean:.4g}, std {f.std:.4g}")
    return ", ".join(parts)


def _labels(drift: FeatureDrift) -> tuple[list[str], list[float], list[float]]:
    if isinstance(drift.expected, Mapping) and isinstance(drift.observed, Mapping):
        keys = list(drift.expected) + [k for k in drift.observed if k not in drift.expected]
        return (
            keys,
            [float(drift.expected.get(k, 0.0)) for k in keys],
            [float(drift.observed.get(k, 0.0)) for k in keys],
        )
    expected = [float(v) for v in drift.expected] if isinstance(drift.expected, list) else []
    observed = [float(v) for v in drift.observed] if isinstance(drift.observed, list) else []
    edges = drift.bin_edges or []
    if len(edges) + 1 == len(expected):
        labels = [f"< {edges[0]:.3g}"]
        labels += [f"≤ {edges[i]:.3g}" for i in range(1, len(edges))]
        labels.append(f"> {edges[-1]:.3g}")
    else:
        labels = [str(i) for i in range(len(expected))]
    return labels, expected, observed


def _svg(drift: FeatureDrift) -> str:
    labels, expected, observed = _labels(drift)
    labels, expected, observed = labels[:30], expected[:30], observed[:30]
    height, bar, gap, left, bottom = 160, 9, 6, 30, 70
    width = left + len(labels) * (2 * bar + gap) + 10
    top = max([*expected, *observed, 1e-9])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom}" '
        f'role="img" aria-label="{html.escape(drift.feature)}: training vs live">',
        f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>',
        f'<text x="0" y="12" font-size="10">{top:.0%}</text>',
    ]
    for i, (label, e, o) in enumerate(zip(labels, expected, observed, strict=True)):
        x = left + i * (2 * bar + gap)
        he, ho = e / top * (height - 15), o / top * (height - 15)
        parts.append(
            f'<rect x="{x}" y="{height - he:.1f}" width="{bar}" height="{he:.1f}" fill="{_TRAIN}">'
            f"<title>training {e:.1%}</title></rect>"
            f'<rect x="{x + bar}" y="{height - ho:.1f}" width="{bar}" height="{ho:.1f}" '
            f'fill="{_LIVE}"><title>live {o:.1%}</title></rect>'
            f'<text x="{x + bar}" y="{height + 8}" font-size="9" text-anchor="end" '
            f'transform="rotate(-55 {x + bar} {height + 8})">{html.escape(label[:18])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def describe_drift(report: DriftReport) -> list[str]:
    """One line per drifted feature, for the command line."""
    lines = []
    for name in report.drifted:
        drift = report.features[name]
        if drift.method == "chi2":
            detail = f"chi2 {drift.statistic:.1f}, p {drift.p_value:.2g} < {drift.threshold:g}"
        else:
            detail = f"{drift.method} {drift.statistic:.3f} > {drift.threshold:g}"
        lines.append(f"drifted: {name} ({detail}, n={drift.n})")
    return lines


def report_from_source(
    source: str, last: int | None = None, profile: str | Path | None = None
) -> tuple[DriftReport, Profile | None]:
    """A report from a service folder or a service URL (``http://`` / ``https://``)."""
    if source.startswith(("http://", "https://")):
        return report_from_url(source), Profile.load(profile) if profile else None
    try:
        return report_from_dir(source, last, profile)
    except MonitorError:
        raise
    except (OSError, ValueError) as exc:
        raise MonitorError(f"cannot read {source!r}: {first_line(exc)}.") from exc
