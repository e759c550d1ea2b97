"""Drift against a profile: PSI for numbers, chi-square (or JS) for categories, the rolling
window a service keeps, and the HTML report."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest

from mlnb.exceptions import MonitorError
from mlnb.monitor import (
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_WINDOW,
    DriftMonitor,
    DriftReport,
    Profile,
    drift_report,
    feature_drift,
    profile,
    render_html,
)


def _training(seed: int = 1, rows: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(0, 1, rows),
            "y": rng.normal(5, 2, rows),
            "color": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
        }
    )


def _live(seed: int, rows: int = DEFAULT_WINDOW, shift: float = 0.0) -> pd.DataFrame:
    live = _training(seed, rows)
    live["x"] += shift
    return live


@pytest.fixture(scope="module")
def prof() -> Profile:
    return profile(_training(), "training", log=False)


def test_psi_flags_a_half_sigma_shift(prof: Profile) -> None:
    for seed in range(10, 20):
        drift = feature_drift(prof.features["x"], _live(seed, shift=0.5)["x"])
        assert drift.method == "psi" and drift.n == DEFAULT_WINDOW
        assert drift.drifted, (seed, drift.statistic, drift.p_value)
        assert drift.statistic > DEFAULT_PSI_THRESHOLD and drift.p_value is not None
        assert drift.p_value < 1e-5
        assert len(drift.observed) == len(drift.expected) == len(prof.features["x"].bin_edges) + 1
        assert isinstance(drift.observed, list) and sum(drift.observed) == pytest.approx(1.0)


def test_psi_does_not_flag_the_same_distribution(prof: Profile) -> None:
    for seed in range(20, 40):
        report = drift_report(prof, _live(seed))
        assert report.drifted == [], {k: f.statistic for k, f in report.features.items()}
        assert report.features["x"].statistic < DEFAULT_PSI_THRESHOLD


def test_values_beyond_the_training_range_land_in_the_open_bins(prof: Profile) -> None:
    drift = feature_drift(prof.features["x"], [100.0] * 200 + [-100.0] * 200)
    assert drift.drifted and isinstance(drift.observed, list)
    assert isinstance(drift.expected, list)
    assert drift.observed[0] == drift.observed[-1] == 0.5
    assert drift.expected[0] == pytest.approx(1 / 1001)


def test_few_values_are_never_flagged(prof: Profile) -> None:
    drift = feature_drift(prof.features["x"], [100.0] * 20)
    assert drift.statistic > 1 and not drift.drifted
    empty = feature_drift(prof.features["x"], [None, float("nan"), "n/a"])
    assert (empty.n, empty.drifted) == (0, False)


def test_chi2_for_categories(prof: Profile) -> None:
    same = feature_drift(prof.features["color"], _live(50)["color"])
    assert same.method == "chi2" and not same.drifted and same.p_value is not None
    assert same.p_value > 1e-3
    rng = np.random.default_rng(51)
    moved = rng.choice(["red", "green", "blue"], 500, p=[0.3, 0.3, 0.4])
    drift = feature_drift(prof.features["color"], list(moved))
    assert drift.drifted and drift.p_value is not None and drift.p_value < 1e-10
    assert isinstance(drift.observed, dict) and drift.observed["blue"] == pytest.approx(
        0.4, abs=0.05
    )
    unseen = feature_drift(prof.features["color"], ["red"] * 300 + ["purple"] * 200)
    assert unseen.drifted and isinstance(unseen.expected, dict)
    assert isinstance(unseen.observed, dict)
    assert unseen.expected["purple"] == 0.0 and unseen.observed["purple"] == 0.4


def test_jensen_shannon_without_scipy(prof: Profile, monkeypatch: pytest.MonkeyPatch) -> None:
    # scipy is installed here; a None entry in sys.modules makes `import scipy` fail as it
    # would on a service installed without it.
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.special", None)
    same = feature_drift(prof.features["color"], _live(52)["color"])
    assert same.method == "js" and same.p_value is None and not same.drifted
    moved = feature_drift(prof.features["color"], ["blue"] * 400 + ["red"] * 100)
    assert moved.method == "js" and moved.drifted and 0.1 < moved.statistic <= 1
    # PSI's p-value then comes from the Wilson-Hilferty approximation
    shifted = feature_drift(prof.features["x"], _live(53, shift=0.5)["x"])
    assert shifted.drifted and shifted.p_value is not None and shifted.p_value < 1e-5
    calm = feature_drift(prof.features["x"], _live(54)["x"])
    assert not calm.drifted and calm.p_value is not None and calm.p_value > 1e-3


def test_report_of_records_round_trips_as_json(prof: Profile) -> None:
    live = _live(60, shift=1.0)
    records = live.drop(columns=["y"]).to_dict("records")
    report = drift_report(prof, records)
    assert report.n == DEFAULT_WINDOW and report.drifted == ["x"]
    assert report.absent == ["y"]
    body = json.loads(json.dumps(report.to_dict()))
    assert set(body) >= {"profile", "n", "features", "drifted"}
    assert DriftReport.from_dict(body) == report


def test_report_of_data_that_does_not_match_the_profile(prof: Profile) -> None:
    with pytest.raises(MonitorError, match=r"match none of profile 'training'.s features"):
        drift_report(prof, {"a": [1, 2], "b": [3, 4]})
    with pytest.raises(MonitorError, match=r"not a drift report"):
        DriftReport.from_dict({"profile": "p", "features": {"x": {"method": "psi"}}})


def test_monitor_checks_every_n_inputs_and_reports_changes(prof: Profile) -> None:
    monitor = DriftMonitor(prof, check_every=100, check_seconds=3600)
    calm = _live(70, 600).to_dict("records")
    reports = [monitor.observe_and_check([r]) for r in calm]
    made = [r for r in reports if r is not None]
    assert len(made) == 6 and all(r.drifted == [] for r in made)
    assert made[-1].n == DEFAULT_WINDOW and made[-1].features["x"].n == DEFAULT_WINDOW
    for record in _live(71, 500, shift=1.0).to_dict("records"):
        if monitor.observe_and_check([record]) is not None and monitor.newly_drifted:
            break
    assert monitor.newly_drifted == ["x"] and monitor.last is not None
    seen = monitor.seen
    assert 600 < seen <= 1100
    monitor.observe(_live(72, 500).to_dict("records"))
    assert monitor.due()
    assert monitor.check().drifted == [] and monitor.recovered == ["x"]
    monitor.observe([{"x": "not a number", "color": None}, {}])
    assert monitor.seen == seen + 502 and len(monitor._values["x"]) == DEFAULT_WINDOW


def test_render_html_has_a_plot_for_every_feature(prof: Profile) -> None:
    frame = _training(3)
    frame["<b>odd</b>"] = 1.0
    odd = profile(frame, log=False)
    report = drift_report(odd, _live(80, shift=0.5).assign(**{"<b>odd</b>": 1.0}))
    page = render_html(report, odd, title="drift & co")
    assert page.startswith("<!doctype html>") and "<title>drift &amp; co</title>" in page
    assert len(re.findall(r"<svg ", page)) == len(report.features) == 4
    for name in ("x", "y", "color"):
        assert f"<h2>{name} <small>" in page
    assert "&lt;b&gt;odd&lt;/b&gt;" in page and "<b>odd</b>" not in page
    assert '<span class="drift">drifted</span>' in page and "Drifted: <b>x</b>" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert render_html(report.to_dict()).count("<svg ") == 4  # from the JSON body too
    small = render_html(drift_report(prof, _live(81, 20, shift=3.0)))
    assert small.count("too few values (&lt; 100)") == 3 and "Drifted: <b>none</b>" in small


def test_monitor_thresholds_keep_their_meaning_per_kind(prof: Profile) -> None:
    """``threshold`` is the PSI of numbers only, ``p_value`` the chi-square p-value of
    categories only: a p-value given to numbers (or a PSI to categories) would be nonsense."""
    moved = _live(90, shift=0.5)
    moved["color"] = np.where(np.arange(len(moved)) % 3 == 0, "blue", moved["color"])
    records = moved.to_dict("records")
    default = DriftMonitor(prof, check_every=10**9, check_seconds=3600)
    default.observe(records)
    base = default.check()
    assert {"x", "color"} <= set(base.drifted)
    strict = DriftMonitor(prof, threshold=5.0, p_value=1e-300, check_every=10**9)
    strict.observe(records)
    report = strict.check()
    assert report.features["x"].threshold == 5.0 and "x" not in report.drifted
    assert report.features["color"].method == "chi2"
    assert report.features["color"].threshold == 1e-300 and "color" not in report.drifted
    assert report.features["y"].threshold == 5.0  # numbers: PSI, never the p-value
    loose = DriftMonitor(prof, p_value=0.5, check_every=10**9)
    loose.observe(records)
    assert loose.check().features["x"].threshold == DEFAULT_PSI_THRESHOLD


def test_monitor_watches_a_subset_and_lists_what_had_no_value(prof: Profile) -> None:
    monitor = DriftMonitor(prof, features=["x", "color"], check_every=10**9)
    monitor.observe([{"x": 1.0, "y": 2.0}] * 3)
    report = monitor.check()
    assert list(report.features) == ["x"] and report.absent == ["color"] and report.n == 3
    with pytest.raises(ValueError, match=r"features not in profile 'training': z"):
        DriftMonitor(prof, features=["x", "z"])


def test_monitor_checks_in_the_background_when_due(prof: Profile) -> None:
    import threading

    reports: list[DriftReport] = []
    done = threading.Event()

    def on_check(report: DriftReport) -> None:
        reports.append(report)
        done.set()

    monitor = DriftMonitor(prof, check_every=50, check_seconds=3600, min_seconds=0.0)
    monitor.start(on_check)
    try:
        monitor.observe(_live(91, 60).to_dict("records"))
        assert done.wait(60), "no check within 60 s of 60 inputs (check_every=50)"
    finally:
        monitor.close()
    assert reports[0].n == 60 and monitor.last is reports[0]
