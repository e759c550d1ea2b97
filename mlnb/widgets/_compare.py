"""Comparison of runs: params side by side (those that differ highlighted), latest metrics,
each metric per run (a line chart of its history, or bars when each run logged it once) and
the params that differ against a chosen metric as parallel coordinates."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from mlnb.exceptions import TrackingError
from mlnb.tracking import MetricPoint, RunSummary, get_runs, metric_histories
from mlnb.widgets._base import Panel, Static, headless
from mlnb.widgets._charts import PALETTE, line_chart, parallel_coordinates, value_bars
from mlnb.widgets._render import badge, fmt_duration, fmt_number, fmt_time, table

__all__ = ["CompareView", "Comparison", "compare"]

#: at most this many metric charts (the table still lists every metric)
MAX_CHARTS = 12

Histories = dict[str, dict[str, list[MetricPoint]]]


def compare(
    run_ids: Sequence[str], *, metric: str | None = None, static: bool | None = None
) -> CompareView | Comparison:
    """A comparison of the given runs (ids, or unique run names); the static view where no
    widget frontend runs (see :func:`~mlnb.widgets._base.headless`) or when ``static``. An
    unknown run raises :class:`~mlnb.exceptions.TrackingError` naming it. ``metric`` colours
    the parallel coordinates of the params (default: the first metric by name); a metric
    none of the runs logged raises naming those they did."""
    ids = [r for r in run_ids if r]
    if not ids:
        raise TrackingError("name at least one run to compare, e.g. %mlnb compare RUN_ID RUN_ID.")
    runs = get_runs(ids)
    histories = {r.run_id: metric_histories(r.run_id, r.metrics) for r in runs}
    comparison = Comparison(runs, histories, metric=metric)
    if static or (static is None and headless()):
        return comparison
    return CompareView(comparison)


def _series(points: list[MetricPoint]) -> list[tuple[float, float]]:
    steps = {p.step for p in points}
    if len(points) > 1 and len(steps) == 1:  # logged repeatedly without a step: by order
        return [(float(i), p.value) for i, p in enumerate(points)]
    return [(float(p.step), p.value) for p in points]


def _label(run: RunSummary, runs: Sequence[RunSummary]) -> str:
    if sum(r.name == run.name for r in runs) > 1:
        return f"{run.name} ({run.run_id[:8]})"
    return run.name


class Comparison(Static):
    """Runs side by side; ``differing_params`` lists the params whose values differ."""

    def __init__(
        self, runs: Sequence[RunSummary], histories: Histories, *, metric: str | None = None
    ) -> None:
        self.runs = list(runs)
        self.histories = histories
        keys: set[str] = set()
        for r in self.runs:
            keys |= set(r.params)
        self.param_keys = sorted(keys)
        self.differing_params = [
            k for k in self.param_keys if len({r.params.get(k) for r in self.runs}) > 1
        ]
        metric_keys: set[str] = set()
        for r in self.runs:
            metric_keys |= set(r.metrics)
        self.metric_keys = sorted(metric_keys)
        if metric is not None and metric not in metric_keys:
            logged = ", ".join(self.metric_keys) or "none"
            raise TrackingError(
                f"these runs logged no metric {metric!r}; they logged: {logged}. "
                "Name one of those with --metric."
            )
        self.metric = metric or (self.metric_keys[0] if self.metric_keys else None)

    def table_html(self) -> str:
        labels = [_label(r, self.runs) for r in self.runs]
        rows: list[list[str]] = []
        classes: list[str] = []

        def add(name: str, cells: list[str], cls: str = "") -> None:
            rows.append([name, *cells])
            classes.append(cls)

        add("run id", [f"<code>{escape(r.run_id)}</code>" for r in self.runs])
        add("status", [badge(r.status) for r in self.runs])
        add("start", [fmt_time(r.start_time) for r in self.runs])
        add("duration", [fmt_duration(r.duration) for r in self.runs])
        for key in self.param_keys:
            add(
                f"param <b>{escape(key)}</b>",
                [escape(r.params.get(key, "")) for r in self.runs],
                "mlnb-diff" if key in self.differing_params else "",
            )
        for key in self.metric_keys:
            add(
                f"metric <b>{escape(key)}</b>",
                [fmt_number(r.metrics.get(key)) for r in self.runs],
            )
        return table(["", *labels], rows, row_classes=classes)

    def metric_chart(self, key: str) -> str:
        """Bars when every run logged ``key`` once, else each run's history as a line."""
        labels = [_label(r, self.runs) for r in self.runs]
        points = [self.histories.get(r.run_id, {}).get(key, []) for r in self.runs]
        if all(len(p) <= 1 for p in points):
            values = {
                label: run.metrics[key]
                for label, run in zip(labels, self.runs, strict=True)
                if key in run.metrics
            }
            colors = [
                c
                for c, r in zip(_colors(len(self.runs)), self.runs, strict=True)
                if key in r.metrics
            ]
            return value_bars(key, values, colors=colors)
        series = {label: _series(p) for label, p in zip(labels, points, strict=True)}
        return line_chart(key, series)

    def parallel_html(self) -> str:
        """The differing params (all params when none differ) against :attr:`metric`, one
        line per run; empty with fewer than two runs or no params or metrics."""
        keys = self.differing_params or self.param_keys
        if len(self.runs) < 2 or not keys or self.metric is None:
            return ""
        labels = [_label(r, self.runs) for r in self.runs]
        axes = [(k, [r.params.get(k) for r in self.runs]) for k in keys]
        scores = [r.metrics.get(self.metric) for r in self.runs]
        title = f"params vs {self.metric}"
        chart = parallel_coordinates(title, labels, axes, (self.metric, scores))
        return f'<div class="mlnb-parallel">{chart}</div>'

    def charts_html(self) -> str:
        if not self.metric_keys:
            return "<p>These runs logged no metrics.</p>"
        charts = [self.metric_chart(key) for key in self.metric_keys[:MAX_CHARTS]]
        legend = " ".join(
            f'<span><span style="color:{c}">&#9632;</span> {escape(_label(r, self.runs))}</span>'
            for r, c in zip(self.runs, _colors(len(self.runs)), strict=True)
        )
        more = ""
        if len(self.metric_keys) > MAX_CHARTS:
            more = f"<p>{len(self.metric_keys) - MAX_CHARTS} more metrics in the table above.</p>"
        return (
            f"{self.parallel_html()}"
            f'<div style="font-size:12px;margin:4px 0">{legend}</div>'
            f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(charts)}</div>{more}'
        )

    def to_html(self) -> str:
        diff = (
            f"<p>params that differ: {escape(', '.join(self.differing_params))}</p>"
            if self.differing_params
            else "<p>all params equal.</p>"
        )
        return (
            f"<div><h4>mlnb: {len(self.runs)} runs compared</h4>"
            f"{self.table_html()}{diff}{self.charts_html()}</div>"
        )

    def to_text(self) -> str:
        labels = [_label(r, self.runs) for r in self.runs]
        lines = ["compare  " + "  |  ".join(labels)]
        lines.append("run id   " + "  |  ".join(r.run_id for r in self.runs))
        lines.append("status   " + "  |  ".join(r.status for r in self.runs))
        for key in self.param_keys:
            mark = "*" if key in self.differing_params else " "
            values = "  |  ".join(r.params.get(key, "") for r in self.runs)
            lines.append(f"{mark}param {key}: {values}")
        for key in self.metric_keys:
            values = "  |  ".join(fmt_number(r.metrics.get(key)) for r in self.runs)
            lines.append(f" metric {key}: {values}")
        return "\n".join(lines)


class CompareView(Panel):
    """The live view of a :class:`Comparison` (``view.static``)."""

    static: Comparison

    def __init__(self, comparison: Comparison) -> None:
        self.static = comparison
        super().__init__(
            children=self.html_children(comparison.table_html(), comparison.charts_html())
        )

    @property
    def runs(self) -> list[RunSummary]:
        return self.static.runs


def _colors(n: int) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(n)]
