"""Drift report: each feature's test and the rule that decided it, drifted features first
with their training-vs-live histograms open, the stable ones folded away; with no live
traffic yet, what to do instead.

Takes a :class:`mlnb.monitor.DriftReport`, its dict shape (the body of a service's
``GET /monitor/drift``) or the URL of a running service.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from html import escape
from typing import Any

from mlnb.exceptions import MonitorError
from mlnb.widgets._base import Panel, Static, headless
from mlnb.widgets._charts import bar_chart
from mlnb.widgets._render import badge, fmt_number, table

__all__ = ["DriftSummary", "DriftView", "drift_report", "fetch_drift"]

#: seconds to wait for a service's /monitor/drift
TIMEOUT = 10.0
#: what a service's GET /monitor/drift adds to the report's own fields
_SERVICE_KEYS = ("window", "seen", "checked_at", "detail")


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
    extra = {k: data[k] for k in _SERVICE_KEYS if data.get(k) is not None}
    summary = DriftSummary(
        {**report.to_dict(), **extra}, source=source if isinstance(source, str) else None
    )
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


def decision(feature: Mapping[str, Any]) -> str:
    """How the feature's test decided, from the rules of :mod:`mlnb.monitor` (numbers: PSI
    above the threshold and a significant shift, p < DEFAULT_P_VALUE; categories: the
    chi-square p-value below the threshold and a Jensen-Shannon distance of at least
    MIN_EFFECT_JS; without scipy, the JS distance above the threshold; never with fewer
    than DEFAULT_MIN_SAMPLES live values)."""
    from mlnb.monitor import DEFAULT_MIN_SAMPLES, DEFAULT_P_VALUE, MIN_EFFECT_JS

    method, drifted = feature.get("method"), bool(feature.get("drifted"))
    statistic, limit = feature.get("statistic"), float(feature.get("threshold") or 0.0)
    p, n = feature.get("p_value"), int(feature.get("n") or 0)
    if not drifted and n < DEFAULT_MIN_SAMPLES:
        return f"{n} live values < {DEFAULT_MIN_SAMPLES}: not tested until there are more"
    if method == "psi":
        psi = math.inf if statistic is None else float(statistic)
        above = psi > limit
        text = f"PSI {_short(psi)} {'>' if above else '≤'} {limit:g}"
        if p is None or not above:
            return text
        significant = p < DEFAULT_P_VALUE
        text += f" and p {p:.2g} {'<' if significant else '≥'} {DEFAULT_P_VALUE:g}"
        return text if significant else f"{text}: the shift is not significant"
    if method == "chi2":
        below = p is not None and p < limit
        text = f"chi-square p {_p(p)} {'<' if below else '≥'} {limit:g}"
        if below and not drifted:
            return f"{text} but the change is small (JS distance < {MIN_EFFECT_JS:g})"
        return f"{text} and JS distance ≥ {MIN_EFFECT_JS:g}" if drifted else text
    js = math.inf if statistic is None else float(statistic)
    return f"JS distance {_short(js)} {'>' if js > limit else '≤'} {limit:g}"


def _p(value: float | None) -> str:
    return "?" if value is None else f"{value:.2g}"


def rules_html() -> str:
    """The decision rules, once above the table."""
    from mlnb.monitor import DEFAULT_MIN_SAMPLES, DEFAULT_P_VALUE, MIN_EFFECT_JS

    return (
        '<p class="mlnb-drift-rules" style="font-size:12px">A number drifted when its PSI is '
        f"above its threshold and the shift is significant (p &lt; {DEFAULT_P_VALUE:g}); a "
        "category when the chi-square p-value is below its threshold and the Jensen-Shannon "
        f"distance is at least {MIN_EFFECT_JS:g} (without scipy: the JS distance above its "
        f"threshold). Features with fewer than {DEFAULT_MIN_SAMPLES} live values are not "
        "flagged.</p>"
    )


class DriftSummary(Static):
    """Summary table (feature, method, statistic, threshold, p-value, live n, the decision
    and its rule) and a training-vs-live histogram per feature: drifted features first and
    open, stable ones folded in a ``<details>``. With no live rows, :meth:`empty_message`."""

    def __init__(self, report: Mapping[str, Any], *, source: str | None = None) -> None:
        self.report = dict(report)
        self.source = source
        self.features: dict[str, Mapping[str, Any]] = dict(self.report.get("features") or {})
        self.drifted = [k for k, f in self.features.items() if f.get("drifted")]
        self.order = sorted(self.features, key=lambda k: (not self.features[k].get("drifted"), k))
        self.stable = [k for k in self.order if not self.features[k].get("drifted")]

    @property
    def empty(self) -> bool:
        """No live rows checked yet (or no feature to check)."""
        return not self.features or not self.report.get("n")

    def empty_message(self) -> str:
        from mlnb.monitor import DEFAULT_CHECK_EVERY, DEFAULT_CHECK_SECONDS, DEFAULT_WINDOW

        window = self.report.get("window") or DEFAULT_WINDOW
        where = f"the service at {self.source}" if self.source else "the service"
        detail = self.report.get("detail")
        if detail:
            return f"No drift to show: {detail}."
        seen = self.report.get("seen")
        heard = f" ({seen} inputs received so far)" if seen else ""
        return (
            f"No live traffic checked yet{heard}. Drift is computed over the last {window} "
            f"inputs that {where} receives (every {DEFAULT_CHECK_EVERY} requests or "
            f"{DEFAULT_CHECK_SECONDS:g} s): send requests to its POST /predict (its /docs page "
            "has a form), then show this report again."
        )

    def _title(self) -> str:
        profile = self.report.get("profile", "?")
        if self.empty:
            return f"drift against profile {profile}: no live data yet"
        return (
            f"drift of {self.report.get('n', 0)} live rows against profile {profile}: "
            f"{len(self.drifted)} of {len(self.features)} features drifted"
        )

    def summary_html(self) -> str:
        title = f"<b>mlnb</b> {escape(self._title())}"
        if self.empty:
            message = escape(self.empty_message(), quote=False)
            return f'{title}<p class="mlnb-drift-empty">{message}</p>'
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
                    f'<span class="mlnb-decision">{escape(decision(f))}</span>',
                ]
            )
        absent = self.report.get("absent") or []
        note = (
            f"<p>profiled but not in the live data: {escape(', '.join(map(str, absent)))}</p>"
            if absent
            else ""
        )
        head = ["feature", "method", "statistic", "threshold", "p-value", "live n", "", "rule"]
        return f"{title}{rules_html()}{table(head, rows)}{note}"

    def _chart(self, name: str) -> str:
        labels, exp, obs = _histogram(self.features[name])
        title = f"{name} ({self.features[name].get('method', '')})"
        return bar_chart(title, labels, {"training": exp, "live": obs}, percent=True)

    def charts_html(self) -> str:
        if self.empty:
            return ""
        flex = '<div style="display:flex;flex-wrap:wrap;gap:8px">'
        drifted = "".join(self._chart(name) for name in self.drifted_first)
        stable = ""
        if self.stable:
            charts = "".join(self._chart(name) for name in self.stable)
            stable = (
                f'<details class="mlnb-stable"><summary>{len(self.stable)} stable '
                f"feature{'s' if len(self.stable) != 1 else ''}: histograms</summary>"
                f"{flex}{charts}</div></details>"
            )
        return f"{flex}{drifted}</div>{stable}" if drifted else stable

    @property
    def drifted_first(self) -> list[str]:
        return [k for k in self.order if self.features[k].get("drifted")]

    def to_html(self) -> str:
        return f"<div>{self.summary_html()}{self.charts_html()}</div>"

    def to_text(self) -> str:
        lines = [self._title()]
        if self.empty:
            return "\n".join([*lines, self.empty_message()])
        for name in self.order:
            f = self.features[name]
            lines.append(
                f"  {name:<24} {f.get('method', ''):<5} {fmt_number(f.get('statistic')):>10}"
                f"  {'DRIFTED' if f.get('drifted') else 'stable':<8} {decision(f)}"
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
