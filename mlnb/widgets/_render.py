"""HTML for the widgets: tables, status badges and number, time and duration formats
(the charts are in :mod:`mlnb.widgets._charts`).

Pure functions of plain data, no ipywidgets: the same markup fills the live widgets and the
``text/html`` fallback that papermill and nbconvert keep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape

__all__ = [
    "badge",
    "fmt_duration",
    "fmt_number",
    "fmt_time",
    "table",
]

STYLE = (
    "<style>"
    ".mlnb-t{border-collapse:collapse;font-size:12px;font-family:var(--jp-ui-font-family,"
    "sans-serif)}"
    ".mlnb-t th,.mlnb-t td{border-bottom:1px solid var(--jp-border-color2,rgba(127,127,127,.3));"
    "padding:2px 8px;text-align:left;vertical-align:top}"
    ".mlnb-t th{background:rgba(127,127,127,.12)}"
    ".mlnb-diff{background:rgba(255,200,0,.3)}"
    ".mlnb-b{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:11px}"
    "</style>"
)

#: badge backgrounds under white text, each at least 4.5:1 against it (WCAG AA)
_STATUS_COLORS = {
    "RUNNING": "#1f77b4",
    "SCHEDULED": "#636363",
    "FINISHED": "#1a7f37",
    "FAILED": "#c4161c",
    "KILLED": "#8c564b",
    "queued": "#636363",
    "running": "#1f77b4",
    "cached": "#0b7a83",
    "done": "#1a7f37",
    "failed": "#c4161c",
    "skipped": "#767600",
    "retrying": "#b35000",
    "drifted": "#c4161c",
    "stable": "#1a7f37",
}
_UNKNOWN_STATUS = "#636363"


def badge(text: str) -> str:
    color = _STATUS_COLORS.get(text, _UNKNOWN_STATUS)
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
