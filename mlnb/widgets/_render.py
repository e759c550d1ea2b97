"""HTML and inline SVG for the widgets: tables, line charts and histograms.

Pure functions of plain data, no ipywidgets: the same markup fills the live widgets and the
``text/html`` fallback that papermill and nbconvert keep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from html import escape

__all__ = [
    "PALETTE",
    "badge",
    "bar_chart",
    "fmt_duration",
    "fmt_number",
    "fmt_time",
    "line_chart",
    "table",
]

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")

STYLE = (
    "<style>"
    ".mlnb-t{border-collapse:collapse;font-size:12px;font-family:var(--jp-ui-font-family,"
    "sans-serif)}"
    ".mlnb-t th,.mlnb-t td{border-bottom:1px solid #ddd;padding:2px 8px;text-align:left;"
    "vertical-align:top}"
    ".mlnb-t th{background:rgba(127,127,127,.12)}"
    ".mlnb-diff{background:rgba(255,200,0,.3)}"
    ".mlnb-b{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:11px}"
    "</style>"
)

_STATUS_COLORS = {
    "RUNNING": "#1f77b4",
    "SCHEDULED": "#7f7f7f",
    "FINISHED": "#2ca02c",
    "FAILED": "#d62728",
    "KILLED": "#8c564b",
    "queued": "#7f7f7f",
    "running": "#1f77b4",
    "cached": "#17becf",
    "done": "#2ca02c",
    "failed": "#d62728",
    "skipped": "#bcbd22",
    "retrying": "#ff7f0e",
    "drifted": "#d62728",
    "stable": "#2ca02c",
}


def badge(text: str) -> str:
    color = _STATUS_COLORS.get(text, "#7f7f7f")
    return f'<span class="mlnb-b" style="background:{color}">{escape(text)}</span>'


def fmt_number(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.6g}"


def fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    row_classes: Sequence[str] | None = None,
    raw: bool = True,
) -> str:
    """An HTML table; cells are already-escaped HTML when ``raw`` (else escaped here)."""
    cell = (lambda s: s) if raw else escape
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>")
    return (
        f'<table class="mlnb-t"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _ticks(low: float, high: float) -> tuple[float, float]:
    if low == high:
        pad = abs(low) * 0.05 or 1.0
        return low - pad, high + pad
    return low, high


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    width: int = 320,
    height: int = 180,
    x_label: str = "step",
) -> str:
    """An inline SVG line chart: one polyline (a dot when one point) per series."""
    points = [p for pts in series.values() for p in pts]
    left, right, top, bottom = 48, 8, 20, 22
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="font:10px sans-serif">',
        f'<text x="{left}" y="13" font-weight="bold">{escape(title)}</text>',
    ]
    if not points:
        out.append(f'<text x="{left}" y="{height // 2}">no values</text></svg>')
        return "".join(out)
    x0, x1 = _ticks(min(p[0] for p in points), max(p[0] for p in points))
    y0, y1 = _ticks(min(p[1] for p in points), max(p[1] for p in points))
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    out.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>'
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{fmt_number(y1)}</text>'
        f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">{fmt_number(y0)}</text>'
        f'<text x="{left}" y="{height - 8}">{fmt_number(x0)}</text>'
        f'<text x="{left + pw}" y="{height - 8}" text-anchor="end">{fmt_number(x1)}</text>'
        f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>'
    )
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        label = f"<title>{escape(name)}</title>"
        if len(pts) == 1:
            x, y = pts[0]
            out.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}">{label}</circle>'
            )
        elif pts:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" '
                f'stroke-width="1.5">{label}</polyline>'
            )
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    title: str,
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    width: int = 360,
    height: int = 180,
) -> str:
    """An inline SVG grouped bar chart: for each label one bar per group (e.g. training and
    live fractions of a histogram bin)."""
    left, right, top, bottom = 40, 8, 20, 34
    pw, ph = width - left - right, height - top - bottom
    values = [v for vs in groups.values() for v in vs]
    high = max(values, default=0.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="font:10px sans-serif">',
        f'<text x="{left}" y="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{fmt_number(high)}</text>',
        f'<text x="{left - 4}" y="{top + ph}" text-anchor="end">0</text>',
    ]
    n = max(len(labels), 1)
    slot = pw / n
    k = max(len(groups), 1)
    bar = max(slot * 0.8 / k, 1.0)
    for i, (name, vs) in enumerate(groups.items()):
        color = PALETTE[i % len(PALETTE)]
        for j, v in enumerate(vs[:n]):
            h = (v / high) * ph if high else 0.0
            x = left + j * slot + slot * 0.1 + i * bar
            label = labels[j] if j < len(labels) else ""
            out.append(
                f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}" fill-opacity="0.75"><title>{escape(name)} {escape(label)}: '
                f"{fmt_number(v)}</title></rect>"
            )
    if labels:
        step = max(1, len(labels) // 6)
        for j in range(0, len(labels), step):
            x = left + j * slot + slot / 2
            out.append(
                f'<text x="{x:.1f}" y="{top + ph + 12}" text-anchor="middle">'
                f"{escape(labels[j][:10])}</text>"
            )
    legend_x = left
    for i, name in enumerate(groups):
        color = PALETTE[i % len(PALETTE)]
        out.append(
            f'<rect x="{legend_x}" y="{height - 11}" width="10" height="8" fill="{color}"/>'
            f'<text x="{legend_x + 13}" y="{height - 4}">{escape(name)}</text>'
        )
        legend_x += 14 + 7 * len(name) + 10
    out.append("</svg>")
    return "".join(out)
