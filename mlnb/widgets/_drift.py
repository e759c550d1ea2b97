"""Drift report: training against live histograms per feature, with each feature's test.

Takes a :class:`mlnb.monitor.DriftReport`, its dict shape (the body of a service's
``GET /monitor/drift``) or the URL of a running service.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from html import escape
from typing import Any

from mlnb.exceptions import MonitorError
from mlnb.widgets._base import Panel, Static, headless
from mlnb.widgets._render import badge, bar_chart, fmt_number, table

__all__ = ["DriftSummary", "DriftView", "drift_report", "fetch_drift"]

#: seconds to wait for a service's /monitor/drift
TIMEOUT = 10.0


def drift_report(source: Any, *, static: bool | None = None) -> DriftView | DriftSummary:
    """A drift report widget from a DriftReport, its dict (JSON) shape, or a service URL
    (``http://host:port`` or the full ``.../monitor/drift``); the static view where no
    widget frontend runs (see :func:`~mlnb.widgets._base.headless`) or when ``static``."""
    if isinstance(source, str):
        data = fetch_drift(source)
    elif hasattr(source, "to_dict"):
        data = source.to_dict()
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        raise MonitorError(
            f"drift_report takes a DriftReport, its dict or a service URL, not a "
            f"{type(source).__name__}; e.g. drift_report('http://127.0.0.1:8000')."
        )
    from mlnb.monitor import DriftReport

    report = DriftReport.from_dict(data)  # MonitorError naming what is malformed
    summary = DriftSummary(report.to_dict())
    if static or (static is None and headless()):
        return summary
    return DriftView(summary)


def fetch_drift(url: str) -> dict[str, Any]:
    """The body of ``GET <service>/monitor/drift`` (through :mod:`mlnb.monitor`)."""
    from mlnb.monitor import report_from_url

    if not url.startswith(("http://", "https://")):
        raise MonitorError(
            f"{url!r} is not a service URL; give http://host:port of a running `mlnb serve`."
        )
    base = url.rstrip("/")
    if base.endswith("/monitor/drift"):
        base = base[: -len("/monitor/drift")]
    return report_from_url(base, timeout=TIMEOUT).to_dict()


def _short(value: float) -> str:
    return f"{value:.3g}"


def _bin_labels(edges: list[float]) -> list[str]:
    """Labels of the open outer bins and the bins between edges (``len(edges) + 1``)."""
    labels = [f"<{_short(edges[0])}"]
    labels += [f"{_short(a)}..{_short(b)}" for a, b in itertools.pairwise(edges)]
    labels.append(f">{_short(edges[-1])}")
    return labels


def _histogram(feature: Mapping[str, Any]) -> tuple[list[str], list[float], list[float]]:
    expected, observed = feature.get("expected"), feature.get("observed")
    if isinstance(expected, Mapping):
        observed_map = observed if isinstance(observed, Mapping) else {}
        keys = list(expected) + [k for k in observed_map if k not in expected]
        return (
            [str(k) for k in keys],
            [float(expected.get(k, 0.0)) for k in keys],
            [float(observed_map.get(k, 0.0)) for k in keys],
        )
    exp = [float(v) for v in expected or []]
    obs = [float(v) for v in observed or []]
    edges = feature.get("bin_edges") or []
    if len(edges) + 1 == len(exp):
        labels = _bin_labels([float(e) for e in edges])
    elif len(edges) == len(exp) + 1:
        labels = [f"{_short(a)}..{_short(b)}" for a, b in itertools.pairwise(edges)]
    else:
        labels = [str(i) for i in range(len(exp))]
    return labels, exp, obs


class DriftSummary(Static):
    """Summary table (feature, method, statistic, threshold, live values, drifted) and a
    training-vs-live histogram per feature, drifted features first."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.report = dict(report)
        self.features: dict[str, Mapping[str, Any]] = dict(self.report.get("features") or {})
        self.drifted = [k for k, f in self.features.items() if f.get("drifted")]
        self.order = sorted(self.features, key=lambda k: (not self.features[k].get("drifted"), k))

    def _title(self) -> str:
        n = self.report.get("n", 0)
        return (
            f"drift of {n} live rows against profile {self.report.get('profile', '?')}: "
            f"{len(self.drifted)} of {len(self.features)} features drifted"
        )

    def summary_html(self) -> str:
        rows = []
        for name in self.order:
            f = self.features[name]
            rows.append(
                [
                    f"<b>{escape(name)}</b>",
                    escape(str(f.get("method", ""))),
                    fmt_number(f.get("statistic")),
                    fmt_number(f.get("threshold")),
                    fmt_number(f.get("p_value")),
                    str(f.get("n", "")),
                    badge("drifted" if f.get("drifted") else "stable"),
                ]
            )
        absent = self.report.get("absent") or []
        note = (
            f"<p>profiled but not in the live data: {escape(', '.join(map(str, absent)))}</p>"
            if absent
            else ""
        )
        head = ["feature", "method", "statistic", "threshold", "p-value", "live n", ""]
        return f"<b>mlnb</b> {escape(self._title())}{table(head, rows)}{note}"

    def charts_html(self) -> str:
        charts = []
        for name in self.order:
            labels, exp, obs = _histogram(self.features[name])
            title = f"{name} ({self.features[name].get('method', '')})"
            charts.append(bar_chart(title, labels, {"training": exp, "live": obs}))
        return f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(charts)}</div>'

    def to_html(self) -> str:
        return f"<div>{self.summary_html()}{self.charts_html()}</div>"

    def to_text(self) -> str:
        lines = [self._title()]
        for name in self.order:
            f = self.features[name]
            lines.append(
                f"  {name:<24} {f.get('method', ''):<5} {fmt_number(f.get('statistic')):>10}"
                f"  {'DRIFTED' if f.get('drifted') else 'stable'}"
            )
        return "\n".join(lines)


class DriftView(Panel):
    """The live view of a :class:`DriftSummary` (``view.static``)."""

    static: DriftSummary

    def __init__(self, summary: DriftSummary) -> None:
        self.static = summary
        super().__init__(children=self.html_children(summary.summary_html(), summary.charts_html()))

    @property
    def drifted(self) -> list[str]:
        return self.static.drifted

    @property
    def order(self) -> list[str]:
        return self.static.order
