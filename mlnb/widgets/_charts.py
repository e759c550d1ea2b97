"""Inline SVG charts for the widgets: metric histories, single values as bars, histograms,
parallel coordinates of params against a metric.

Pure functions of plain data. Every text, axis and grid line is drawn in ``currentColor``
and the ``<svg>`` takes its colour from JupyterLab's theme (``--jp-ui-font-color1``), so the
charts read in the light and the dark theme; outside JupyterLab (nbconvert HTML, a papermill
output opened elsewhere) the variable is unset and the SVG inherits the page's text colour.
Only data marks (lines, bars, dots) carry a palette colour. Each mark has a ``<title>``
(the tooltip on hover) naming the run, the metric, the step and the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Literal

__all__ = [
    "PALETTE",
    "Direction",
    "bar_chart",
    "better",
    "line_chart",
    "nice_ticks",
    "parallel_coordinates",
    "tick_label",
    "value_bars",
]

#: series colours (Tableau 10): each reads on a white and on a near-black background
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
#: parallel coordinates: lines from the worst (first) to the best (last) value
RAMP = ("#9e9ac8", "#6a51a3", "#3182bd", "#31a354", "#e6a817")
#: the SVG's own colour: JupyterLab's text colour, else the page's
SVG_STYLE = (
    "color:var(--jp-ui-font-color1,currentColor);"
    "font:11px var(--jp-ui-font-family,system-ui,sans-serif)"
)
INK = 'fill="currentColor"'
GRID = 'stroke="currentColor" stroke-opacity="0.15"'
AXIS = 'stroke="currentColor" stroke-opacity="0.6"'
CHAR = 6.2  # px per character of 11px text, to size margins
#: parallel coordinates: a param axis is logarithmic when its largest value is this many
#: times its smallest (all positive)
LOG_RATIO = 50

Direction = Literal["min", "max"]

_LOWER = {"loss", "error", "err", "rmse", "mae", "mse", "mape", "smape", "logloss"}
_LOWER |= {"perplexity", "latency", "brier", "wer", "cer", "regret", "nll", "cost"}


def better(metric: str) -> Direction:
    """Which end of ``metric`` is better, inferred from its name: ``"min"`` for losses and
    errors (``loss``, ``val_loss``, ``rmse``, ``mae``, ``mse``, ``error``, ...), ``"max"``
    otherwise; scikit-learn's ``neg_*`` scores (negated errors) are ``"max"``."""
    words = [w for w in re.split(r"[^a-z0-9]+", metric.lower()) if w]
    if "neg" in words:
        return "max"
    if any(w in _LOWER or w.endswith(("loss", "error")) for w in words):
        return "min"
    return "max"


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """About ``count`` round tick values (1, 2, 2.5 or 5 times a power of ten apart) whose
    first is at most ``low`` and last at least ``high``: the axis spans them, so no value
    and no tick label falls outside. ``integer`` keeps the step a whole number (steps)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, not {low!r}..{high!r}")
    if low > high:
        low, high = high, low
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
        if integer:
            low, high = math.floor(low), math.ceil(high)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    if integer:
        step = max(1.0, float(round(step)))
    start, stop = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    digits = _digits(step)
    return [round(i * step, digits) + 0.0 for i in range(start, stop + 1)]


def _digits(step: float) -> int:
    """Decimals needed to tell ticks ``step`` apart."""
    if step >= 1 and float(step).is_integer():
        return 0
    return max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if _mantissa(step) == 2.5 else 0)


def _mantissa(step: float) -> float:
    return round(step / 10.0 ** math.floor(math.log10(step) + 1e-9), 6)


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """``value`` with as many decimals as its ``ticks`` need (``0.95``, ``1000``, ``2.5e+06``)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    if max(abs(t) for t in ticks) >= 1e6 or (step < 1e-4 and value != 0):
        return f"{value:.3g}"
    return f"{value:.{_digits(step)}f}"


def _value(value: float) -> str:
    return f"{value:.6g}"


def _svg(width: float, height: float, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="mlnb-chart" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{escape(label)}" style="{SVG_STYLE}">'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    anchor_attr = f' text-anchor="{anchor}"' if anchor != "start" else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{anchor_attr} {INK}{extra}>{escape(text)}</text>'


def _title(x: float, text: str, note: str = "") -> str:
    out = _text(x, 14, text, extra=' font-weight="bold" font-size="12"')
    if note:
        out += _text(x + 7.6 * len(text) + 12, 14, note, extra=' class="mlnb-best-note"')
    return out


def _y_axis(ticks: Sequence[float], sy: Callable[[float], float], left: float, right: float) -> str:
    """Horizontal grid lines and labels at each y tick (``sy`` maps a value to a y)."""
    out = []
    for t in ticks:
        y = sy(t)
        out.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" {GRID}/>')
        out.append(_text(left - 5, y + 4, tick_label(t, ticks), "end"))
    return "".join(out)


def _x_axis(ticks: Sequence[float], sx: Callable[[float], float], top: float, bottom: float) -> str:
    """Vertical grid lines and labels under the plot at each x tick."""
    out = []
    for t in ticks:
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" {GRID}/>')
        out.append(_text(x, bottom + 14, tick_label(t, ticks), "middle"))
    return "".join(out)


def _best(values: Sequence[tuple[str, float]], direction: Direction) -> tuple[str, float] | None:
    finite = [(name, v) for name, v in values if math.isfinite(v)]
    if not finite:
        return None
    pick = min if direction == "min" else max
    return pick(finite, key=lambda item: item[1])


def _best_note(best: tuple[str, float] | None, direction: Direction) -> str:
    if best is None:
        return ""
    arrow = "lowest" if direction == "min" else "highest"
    return f"best ({arrow}) {_value(best[1])}: {best[0]}"


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    width: int = 480,
    height: int = 260,
    x_label: str = "step",
    direction: Direction | None = None,
    colors: Sequence[str] = PALETTE,
) -> str:
    """A metric's history per run: a line (and a dot per point) per series, ticks on both
    axes, a tooltip per point ("run · metric · step: value") and the best point ringed
    (lowest or highest by ``direction``, default inferred from the title by :func:`better`)."""
    direction = direction or better(title)
    points = [p for pts in series.values() for p in pts if math.isfinite(p[1])]
    if not points:
        return f"{_svg(width, 60, title)}{_title(8, title)}{_text(8, 40, 'no values')}</svg>"
    integer = all(float(x).is_integer() for x, _ in points)
    xt = nice_ticks(min(p[0] for p in points), max(p[0] for p in points), 6, integer=integer)
    yt = nice_ticks(min(p[1] for p in points), max(p[1] for p in points), 5)
    label_width = max(len(tick_label(t, yt)) for t in yt) * CHAR
    left, right, top, bottom = 14 + label_width, width - 14, 26, height - 34
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def sy(y: float) -> float:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    best = _best([(n, v) for n, pts in series.items() for _, v in pts], direction)
    out = [_svg(width, height, title), _title(left, title, _best_note(best, direction))]
    out.append(_y_axis(yt, sy, left, right) + _x_axis(xt, sx, top, bottom))
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" {AXIS}/>')
    out.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" {AXIS}/>')
    out.append(_text((left + right) / 2, height - 4, x_label, "middle"))
    dots = sum(len(p) for p in series.values()) <= 400
    for i, (name, pts) in enumerate(series.items()):
        color = colors[i % len(colors)]
        shown = [(x, y) for x, y in pts if math.isfinite(y)]
        if len(shown) > 1:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in shown)
            last = f"{escape(name)} · {escape(title)}: last {_value(shown[-1][1])}"
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2">'
                f"<title>{last}</title></polyline>"
            )
        for x, y in shown if dots or len(shown) == 1 else ():
            tip = f"{name} · {title} · {x_label} {_value(x)}: {_value(y)}"
            out.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{3 if len(shown) > 1 else 4}" '
                f'fill="{color}"><title>{escape(tip)}</title></circle>'
            )
    if best is not None:
        name, value = best
        x = next(x for x, y in series[name] if y == value)
        out.append(
            f'<circle class="mlnb-best" data-run="{escape(name)}" cx="{sx(x):.1f}" '
            f'cy="{sy(value):.1f}" r="7" fill="none" stroke="currentColor" stroke-width="1.5">'
            f"<title>best {escape(title)}: {_value(value)} ({escape(name)}, {x_label} "
            f"{_value(x)})</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def value_bars(
    title: str,
    values: Mapping[str, float],
    *,
    width: int = 480,
    direction: Direction | None = None,
    colors: Sequence[str] = PALETTE,
) -> str:
    """A metric logged once per run: a horizontal bar per run from 0 (the axis always holds
    0, so 0.979 against 0.972 shows as nearly equal bars), its value written at its end, a
    tooltip ("run · metric: value") and the best run marked (``direction`` as in
    :func:`line_chart`)."""
    direction = direction or better(title)
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    if not finite:
        return f"{_svg(width, 60, title)}{_title(8, title)}{_text(8, 40, 'no values')}</svg>"
    ticks = nice_ticks(min(0.0, *finite.values()), max(0.0, *finite.values()), 5)
    names = [k[:28] for k in values]
    row = 24
    left = 14 + max(len(n) for n in names) * CHAR
    right = width - 14 - 12 * CHAR  # room for the value and the best mark
    top, bottom = 26, 26 + row * len(values)
    height = bottom + 22
    x0, x1 = ticks[0], ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    best = _best(list(finite.items()), direction)
    out = [_svg(width, height, title), _title(8, title, _best_note(best, direction))]
    out.append(_x_axis(ticks, sx, top, bottom))
    for i, (name, value) in enumerate(values.items()):
        y = top + i * row
        color = colors[i % len(colors)]
        is_best = best is not None and best[0] == name
        cls = "mlnb-bar mlnb-best" if is_best else "mlnb-bar"
        out.append(f'<g class="{cls}" data-run="{escape(name)}">')
        out.append(_text(left - 6, y + row / 2 + 4, names[i], "end"))
        if math.isfinite(value):
            a, b = sorted((sx(0.0), sx(value)))
            stroke = ' stroke="currentColor" stroke-width="1.5"' if is_best else ""
            out.append(
                f'<rect x="{a:.1f}" y="{y + 4}" width="{max(b - a, 1):.1f}" height="{row - 8}" '
                f'fill="{color}"{stroke}><title>{escape(f"{name} · {title}: {_value(value)}")}'
                "</title></rect>"
            )
            mark = " ★ best" if is_best else ""
            out.append(_text(b + 5, y + row / 2 + 4, f"{_value(value)}{mark}"))
        out.append("</g>")
    out.append(f'<line x1="{sx(0.0):.1f}" x2="{sx(0.0):.1f}" y1="{top}" y2="{bottom}" {AXIS}/>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    title: str,
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    width: int = 440,
    height: int = 220,
    percent: bool = False,
    colors: Sequence[str] = PALETTE,
) -> str:
    """Grouped bars: for each label one bar per group (e.g. the training and the live share
    of a histogram bin), y ticks from 0, a legend, a tooltip per bar ("group label: value";
    shares as percentages when ``percent``)."""
    values = [v for vs in groups.values() for v in vs if math.isfinite(v)]
    ticks = nice_ticks(0.0, max(values, default=0.0) or 1.0, 4)
    if percent:
        tick_text = [f"{t * 100:.{max(_digits(ticks[1] * 100), 0)}f}%" for t in ticks]
    else:
        tick_text = [tick_label(t, ticks) for t in ticks]
    left = 14 + max(len(t) for t in tick_text) * CHAR
    right, top, bottom = width - 8, 26, height - 40
    high = ticks[-1]

    def sy(y: float) -> float:
        return bottom - y / high * (bottom - top)

    out = [_svg(width, height, title), _title(left, title)]
    for t, text in zip(ticks, tick_text, strict=True):
        out.append(f'<line x1="{left}" x2="{right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" {GRID}/>')
        out.append(_text(left - 5, sy(t) + 4, text, "end"))
    n = max(len(labels), 1)
    slot = (right - left) / n
    bar = max(slot * 0.8 / max(len(groups), 1), 1.0)
    for i, (name, vs) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        for j, v in enumerate(vs[:n]):
            v = v if math.isfinite(v) else 0.0
            x = left + j * slot + slot * 0.1 + i * bar
            label = labels[j] if j < len(labels) else ""
            shown = f"{v * 100:.1f}%" if percent else _value(v)
            out.append(
                f'<rect x="{x:.1f}" y="{sy(v):.1f}" width="{bar:.1f}" '
                f'height="{bottom - sy(v):.1f}" fill="{color}"><title>{escape(name)} '
                f"{escape(label)}: {shown}</title></rect>"
            )
    out.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" {AXIS}/>')
    every = max(1, math.ceil(len(labels) * 8 * CHAR / (right - left)))  # no overlap
    for j in range(0, len(labels), every):
        text = labels[j] if len(labels[j]) <= 12 else labels[j][:11] + "…"
        out.append(_text(left + j * slot + slot / 2, bottom + 14, text, "middle"))
    x = left
    for i, name in enumerate(groups):
        out.append(
            f'<rect x="{x:.1f}" y="{height - 14}" width="10" height="10" '
            f'fill="{colors[i % len(colors)]}"/>' + _text(x + 14, height - 5, name)
        )
        x += 14 + CHAR * len(name) + 14
    out.append("</svg>")
    return "".join(out)


Axis = tuple[str, Sequence[str | float | None]]


def _number(value: str | float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


Scale = tuple[list[float], list[tuple[float, str]], bool]


def _scale(values: Sequence[str | float | None]) -> Scale:
    """Each value's position in [0, 1] on its axis and the axis's labelled ticks: a number
    axis when every value is a number (logarithmic when they span :data:`LOG_RATIO` or more,
    as regularization strengths and learning rates do), else one evenly spaced position per
    category (in numeric order where they are numbers), a missing value shown as "(none)"."""
    numbers = [_number(v) for v in values]
    if all(n is not None for n in numbers) and len({*numbers}) > 1:
        nums = [n for n in numbers if n is not None]
        if min(nums) > 0 and max(nums) / min(nums) >= LOG_RATIO:  # C, lr: powers of ten
            low, high = math.floor(math.log10(min(nums))), math.ceil(math.log10(max(nums)))
            positions = [(math.log10(n) - low) / (high - low) for n in nums]
            marks = [((k - low) / (high - low), f"{10.0**k:g}") for k in range(low, high + 1)]
            return positions, marks, True
        ticks = nice_ticks(min(nums), max(nums), 4)
        span = ticks[-1] - ticks[0]
        marks = [((t - ticks[0]) / span, tick_label(t, ticks)) for t in ticks]
        return [(n - ticks[0]) / span for n in nums], marks, False
    names = ["(none)" if v is None else str(v) for v in values]
    cats = sorted(set(names), key=lambda c: (_number(c) is None, _number(c) or 0.0, c))
    spot = {c: (i + 0.5) / len(cats) for i, c in enumerate(cats)}
    marks = [(spot[c], c if len(c) <= 14 else c[:13] + "…") for c in cats]
    return [spot[c] for c in names], marks, False


def _ramp(fraction: float) -> str:
    """The colour at ``fraction`` (0 worst .. 1 best) of :data:`RAMP`."""
    f = min(max(fraction, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(f), len(RAMP) - 2)
    a, b = RAMP[i], RAMP[i + 1]
    mix = [
        round(int(a[k : k + 2], 16) * (1 - (f - i)) + int(b[k : k + 2], 16) * (f - i))
        for k in (1, 3, 5)
    ]
    return "#" + "".join(f"{c:02x}" for c in mix)


def parallel_coordinates(
    title: str,
    runs: Sequence[str],
    axes: Sequence[Axis],
    metric: tuple[str, Sequence[float | None]],
    *,
    height: int = 300,
    direction: Direction | None = None,
) -> str:
    """Params against a metric: one vertical axis per param (numbers on a scale with ticks,
    other values as categories) and the metric last; one line per run through its values,
    coloured from worst to best by the metric (:data:`RAMP`, ``direction`` as in
    :func:`line_chart`), the best run drawn thickest, a tooltip per line listing the run's
    values. A run without the metric is a dashed grey line."""
    name, scores = metric
    direction = direction or better(name)
    columns = [*axes, (name, list(scores))]
    for axis, values in columns:
        if len(values) != len(runs):
            raise ValueError(f"axis {axis!r} has {len(values)} values for {len(runs)} runs")
    width = max(480, 150 * len(columns))
    left, right, top, bottom = 40, width - 90, 44, height - 30
    gap = (right - left) / max(len(columns) - 1, 1)
    scaled = [_scale(values) for _, values in columns]
    numbers = [_number(s) for s in scores]
    known = [n for n in numbers if n is not None]
    low, high = (min(known), max(known)) if known else (0.0, 1.0)
    best = _best([(r, n) for r, n in zip(runs, numbers, strict=True) if n is not None], direction)
    out = [_svg(width, height, title), _title(8, title, _best_note(best, direction))]
    out.append(_ramp_key(8, 30, name, direction))
    for k, ((axis, _), (_, ticks, log)) in enumerate(zip(columns, scaled, strict=True)):
        x = left + k * gap
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}" {AXIS}/>')
        short = (axis if len(axis) <= 18 else axis[:17] + "…") + (" (log)" if log else "")
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle" {INK} '
            f'font-weight="bold">{escape(short)}<title>{escape(axis)}</title></text>'
        )
        every = max(1, math.ceil(len(ticks) / 10))
        for pos, label in ticks[::every]:
            y = bottom - pos * (bottom - top)
            out.append(
                f'<line x1="{x - 3:.1f}" x2="{x + 3:.1f}" y1="{y:.1f}" y2="{y:.1f}" {AXIS}/>'
            )
            out.append(_text(x + 6, y + 4, label))
    order = sorted(range(len(runs)), key=lambda i: runs[i] == (best or ("",))[0])
    for i in order:  # the best run last, on top
        coords = " ".join(
            f"{left + k * gap:.1f},{bottom - pos[i] * (bottom - top):.1f}"
            for k, (pos, _, _) in enumerate(scaled)
        )
        score = numbers[i]
        tip = f"{runs[i]}: " + ", ".join(
            f"{axis}={_value(v) if isinstance(v, float) else v}" for axis, v in _row(columns, i)
        )
        if score is None:
            style = 'stroke="#888888" stroke-dasharray="4 3" stroke-width="1.5"'
        else:
            fraction = (score - low) / (high - low) if high > low else 1.0
            fraction = fraction if direction == "max" else 1 - fraction
            is_best = best is not None and best[0] == runs[i]
            style = f'stroke="{_ramp(fraction)}" stroke-width="{4 if is_best else 2}"'
            style += ' class="mlnb-best"' if is_best else ""
        out.append(
            f'<polyline data-run="{escape(runs[i])}" points="{coords}" fill="none" {style} '
            f'stroke-opacity="0.9"><title>{escape(tip)}</title></polyline>'
        )
    out.append("</svg>")
    return "".join(out)


def _row(columns: Sequence[Axis], i: int) -> list[tuple[str, str | float | None]]:
    return [(axis, "(none)" if values[i] is None else values[i]) for axis, values in columns]


def _ramp_key(x: float, y: float, metric: str, direction: Direction) -> str:
    """ "colour: METRIC worst [swatches] best (lower is better)" on one line."""
    head = f"colour: {metric}  worst"
    out = [_text(x, y, head)]
    x += CHAR * len(head) + 6
    for k in range(len(RAMP)):
        out.append(
            f'<rect x="{x + 12 * k:.1f}" y="{y - 9}" width="12" height="10" '
            f'fill="{_ramp(k / (len(RAMP) - 1))}"/>'
        )
    tail = "best" + (" (lower is better)" if direction == "min" else " (higher is better)")
    out.append(_text(x + 12 * len(RAMP) + 6, y, tail))
    return "".join(out)
