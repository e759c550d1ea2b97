"""The SVG charts as markup: ticks, bars for single values, best marks, parallel
coordinates, theme colours (no hard-coded colour on any text), tooltips."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mlnb.exceptions import TrackingError
from mlnb.widgets import Comparison, compare
from mlnb.widgets._charts import (
    bar_chart,
    better,
    line_chart,
    nice_ticks,
    parallel_coordinates,
    tick_label,
    value_bars,
)
from tests.widgets.conftest import make_run

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # well-formed XML, or this raises


def texts(svg: ET.Element) -> list[ET.Element]:
    return list(svg.iter(f"{SVG}text"))


def assert_themed(svg: ET.Element) -> None:
    """Text, axes and grid in currentColor; the SVG's colour from JupyterLab's theme."""
    assert "var(--jp-ui-font-color1,currentColor)" in svg.get("style", "")
    for text in texts(svg):
        assert text.get("fill") == "currentColor", ET.tostring(text)
        assert "fill:" not in (text.get("style") or "")
    for line in svg.iter(f"{SVG}line"):
        assert line.get("stroke") == "currentColor"


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0.972, 0.979, [0.972, 0.974, 0.976, 0.978, 0.98]),
        (0.0, 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]),
        (0.19, 0.92, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (3.0, 3.0, [2.6, 2.8, 3.0, 3.2, 3.4]),
        (-7.0, 12.0, [-10.0, -5.0, 0.0, 5.0, 10.0, 15.0]),
    ],
)
def test_nice_ticks_are_round_and_span_the_values(
    low: float, high: float, ticks: list[float]
) -> None:
    assert nice_ticks(low, high) == ticks
    assert ticks[0] <= low and ticks[-1] >= high


def test_integer_ticks_for_steps_and_labels_with_the_decimals_they_need() -> None:
    assert nice_ticks(0, 3, 6, integer=True) == [0.0, 1.0, 2.0, 3.0]
    assert nice_ticks(0, 0, integer=True) == [-1.0, 0.0, 1.0]
    ticks = nice_ticks(0.0, 1.0)
    assert [tick_label(t, ticks) for t in ticks] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    assert tick_label(2000.0, [0.0, 1000.0, 2000.0]) == "2000"
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0.0, float("inf"))


def test_direction_from_the_metric_name() -> None:
    lower = ["loss", "val_loss", "rmse", "test/mae", "MSE", "error_rate", "logloss"]
    assert all(better(m) == "min" for m in lower)
    higher = ["accuracy", "f1", "roc_auc", "neg_mean_squared_error", "r2"]
    assert all(better(m) == "max" for m in higher)


def test_line_chart_has_ticks_tooltips_and_the_best_point_of_the_right_run() -> None:
    series = {
        "slow": [(0.0, 0.9), (1.0, 0.5), (2.0, 0.3)],
        "fast": [(0.0, 0.8), (1.0, 0.2), (2.0, 0.1)],
    }
    svg = parse(line_chart("val_loss", series))
    assert_themed(svg)
    assert int(svg.get("width", 0)) > 320 and int(svg.get("height", 0)) > 180
    labels = [t.text for t in texts(svg)]
    assert {"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"} <= set(labels)  # y ticks, not min/max
    assert {"0", "1", "2"} <= set(labels)  # whole steps
    tips = [t.text for t in svg.iter(f"{SVG}title")]
    assert "fast · val_loss · step 1: 0.2" in tips
    (best,) = [c for c in svg.iter(f"{SVG}circle") if c.get("class") == "mlnb-best"]
    assert best.get("data-run") == "fast"  # lowest loss
    assert "best (lowest) 0.1: fast" in labels
    # accuracy: the highest is best
    svg = parse(line_chart("accuracy", {"a": [(0, 0.7), (1, 0.9)], "b": [(0, 0.8), (1, 0.85)]}))
    (best,) = [c for c in svg.iter(f"{SVG}circle") if c.get("class") == "mlnb-best"]
    assert best.get("data-run") == "a"


def test_no_tick_label_falls_outside_the_chart() -> None:
    svg = parse(line_chart("loss", {"r": [(0.0, 0.972), (1.0, 0.979)]}))
    width, height = float(svg.get("width", 0)), float(svg.get("height", 0))
    for text in texts(svg):
        x, y = float(text.get("x", 0)), float(text.get("y", 0))
        assert 0 <= x <= width and 0 < y <= height, ET.tostring(text)


def test_single_values_are_bars_from_zero_with_the_best_run_marked() -> None:
    svg = parse(value_bars("accuracy", {"C=0.1": 0.951, "C=1": 0.979, "C=10": 0.972}))
    assert_themed(svg)
    bars = [g for g in svg.iter(f"{SVG}g") if "mlnb-bar" in (g.get("class") or "")]
    assert [g.get("data-run") for g in bars] == ["C=0.1", "C=1", "C=10"]
    assert [g.get("data-run") for g in bars if "mlnb-best" in (g.get("class") or "")] == ["C=1"]
    widths = [float(next(g.iter(f"{SVG}rect")).get("width", 0)) for g in bars]
    assert min(widths) / max(widths) > 0.95  # 0.951 and 0.979 nearly equal: the axis holds 0
    labels = [t.text for t in texts(svg)]
    assert "0.00" in labels and "0.979 ★ best" in labels
    assert "C=10 · accuracy: 0.972" in [t.text for t in svg.iter(f"{SVG}title")]
    lower = parse(value_bars("rmse", {"a": 3.0, "b": 2.0}))
    (best,) = [g for g in lower.iter(f"{SVG}g") if "mlnb-best" in (g.get("class") or "")]
    assert best.get("data-run") == "b"


def test_compare_draws_single_value_metrics_as_bars_not_dots(project: Path) -> None:
    ids = [
        make_run("bars", "low", {"C": 0.1, "solver": "saga"}, {"accuracy": [0.951]}),
        make_run("bars", "high", {"C": 10, "solver": "lbfgs"}, {"accuracy": [0.979]}),
    ]
    comparison = compare(ids, metric="accuracy", static=True)
    assert isinstance(comparison, Comparison)
    chart = comparison.metric_chart("accuracy")
    assert 'class="mlnb-bar mlnb-best" data-run="high"' in chart
    assert "<circle" not in chart and "<polyline" not in chart  # no dots on a -1..1 step axis
    parallel = comparison.parallel_html()
    assert parallel.count("<polyline") == 2 and "params vs accuracy" in parallel
    with pytest.raises(TrackingError, match=r"no metric 'f1'.*logged: accuracy.*--metric"):
        compare(ids, metric="f1", static=True)


def test_parallel_coordinates_take_numeric_and_categorical_params() -> None:
    runs = ["r1", "r2", "r3"]
    axes = [
        ("C", ["0.1", "1.0", "10.0"]),  # numbers spanning 100x: a log axis
        ("solver", ["saga", "lbfgs", None]),  # categories, one missing
        ("batch", ["32", "64", "128"]),
    ]
    svg = parse(parallel_coordinates("params vs f1", runs, axes, ("f1", [0.7, 0.9, None])))
    assert_themed(svg)
    lines = list(svg.iter(f"{SVG}polyline"))
    assert [p.get("data-run") for p in lines][-1] == "r2"  # the best drawn last, on top
    (best,) = [p for p in lines if p.get("class") == "mlnb-best"]
    assert best.get("data-run") == "r2"
    missing = next(p for p in lines if p.get("data-run") == "r3")
    assert missing.get("stroke-dasharray")  # no f1: dashed
    labels = [t.text for t in texts(svg)]
    assert {"0.1", "1", "10"} <= set(labels)  # powers of ten on C
    assert {"lbfgs", "saga", "(none)"} <= set(labels)
    assert {"C (log)", "solver", "batch", "f1"} <= set(labels)
    tips = [t.text for t in svg.iter(f"{SVG}title")]
    assert "r2: C=1.0, solver=lbfgs, batch=64, f1=0.9" in tips
    ys = [float(pt.split(",")[1]) for pt in best.get("points", "").split()]
    assert len(ys) == 4
    with pytest.raises(ValueError, match="axis 'C' has 2 values for 3 runs"):
        parallel_coordinates("x", runs, [("C", ["1", "2"])], ("f1", [1.0, 2.0, 3.0]))


def test_histogram_bars_have_percent_ticks_a_legend_and_themed_text() -> None:
    labels = [f"{i}..{i + 1}" for i in range(12)]
    svg = parse(
        bar_chart(
            "age (psi)",
            labels,
            {"training": [1 / 12] * 12, "live": [0.5, *([0.5 / 11] * 11)]},
            percent=True,
        )
    )
    assert_themed(svg)
    shown = [t.text or "" for t in texts(svg)]
    assert {"0%", "20%", "40%", "60%"} <= set(shown)
    assert "training" in shown and "live" in shown
    assert sum(bool(re.fullmatch(r"\d+\.\.\d+", s)) for s in shown) < len(labels)  # thinned
    assert "live 0..1: 50.0%" in [t.text for t in svg.iter(f"{SVG}title")]


def test_no_text_carries_a_hard_coded_colour() -> None:
    charts = [
        line_chart("loss", {"a": [(0, 1.0), (1, 0.5)]}),
        line_chart("empty", {}),
        value_bars("acc", {"a": 0.5}),
        bar_chart("h", ["a", "b"], {"training": [0.5, 0.5]}),
        parallel_coordinates("p", ["a", "b"], [("k", ["x", "y"])], ("acc", [0.1, 0.2])),
    ]
    for markup in charts:
        assert not re.search(r"<text[^>]*fill=\"#", markup)
        assert_themed(parse(markup))


def _luminance(color: str) -> float:
    channels = [int(color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize(
    "status",
    [
        "RUNNING",
        "SCHEDULED",
        "FINISHED",
        "FAILED",
        "KILLED",
        "queued",
        "running",
        "cached",
        "done",
        "failed",
        "skipped",
        "retrying",
        "drifted",
        "stable",
        "some-new-state",
    ],
)
def test_status_badges_keep_their_white_text_at_wcag_aa(status: str) -> None:
    from mlnb.widgets._render import STYLE, badge

    assert re.search(r"\.mlnb-b\{[^}]*color:#fff", STYLE)  # the badges' text is white
    markup = badge(status)
    background = re.search(r"background:(#[0-9a-fA-F]{6})", markup)
    assert background, markup
    ratio = (1.0 + 0.05) / (_luminance(background.group(1)) + 0.05)
    assert ratio >= 4.5, f"{status}: white on {background.group(1)} is {ratio:.2f}:1"
