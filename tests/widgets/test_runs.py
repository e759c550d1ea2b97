"""The run panel and the comparison on a real MLflow store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import mlnb
from mlnb.exceptions import TrackingError
from mlnb.widgets import CompareView, Comparison, RunsPanel, RunsTable, compare, runs_panel
from tests.widgets.conftest import make_run

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for something a background thread does (no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def test_panel_lists_runs_newest_first_with_params_and_metrics(two_runs: list[str]) -> None:
    panel = runs_panel("widgets")
    assert [r.run_id for r in panel.runs] == list(reversed(two_runs))
    fast = panel.runs[0]
    assert fast.name == "fast" and fast.status == "FINISHED"
    assert fast.params == {"lr": "0.5", "batch": "32"}
    assert fast.metrics == {"loss": 0.1}
    assert not panel.polling  # no run of this process is going
    bundle = panel._repr_mimebundle_()
    assert WIDGET_VIEW in bundle
    html = bundle["text/html"]
    for run_id in two_runs:
        assert run_id in html
        assert run_id in bundle["text/plain"]
    assert "lr=0.5" in html and "loss=0.1" in html and "FINISHED" in html
    # the live widget holds one checkbox per run
    assert len(panel._rows) == 2
    panel.close()


def test_panel_without_runs_says_so(project: Path) -> None:
    panel = runs_panel()  # the active experiment: nothing recorded yet
    assert panel.runs == []
    assert "No runs in experiment 'Default' (MLflow's default) yet" in panel.to_html()
    assert "No runs in experiment 'Default' (MLflow's default) yet" in panel.message.value
    assert "No runs" in panel.to_text()


def test_panel_of_a_missing_experiment_names_it_and_the_existing_ones(
    two_runs: list[str],
) -> None:
    with pytest.raises(TrackingError, match=r"no experiment named 'nope'.*widgets"):
        runs_panel("nope")


def test_panel_follows_the_active_run_then_stops(project: Path) -> None:
    mlnb.start_run(experiment_name="live", run_name="going")
    panel = RunsPanel(interval=0.05)
    assert panel.experiment == "live"
    assert panel.polling
    assert panel.live_run_id == panel.runs[0].run_id
    assert "live: refreshing" in panel.header.value
    mlnb.log_metric("acc", 0.5, step=0)
    mlnb.log_metric("acc", 0.75, step=1)
    mlnb.flush()
    _eventually(lambda: panel.runs[0].metrics.get("acc") == 0.75, "the new metric shown")
    _eventually(lambda: "<polyline" in panel.live.value, "the live chart of acc")
    assert "RUNNING" in panel.to_html()
    mlnb.end_run()
    _eventually(lambda: not panel.polling, "following stopped when the run ended")
    assert panel.runs[0].status == "FINISHED"
    assert "live: refreshing" not in panel.header.value


def test_the_live_banner_goes_when_the_cell_ends(project: Path) -> None:
    """An interactive run stays open between cells (until its idle timeout): the panel is
    live only while a cell runs (the kernel's cell hooks, as %load_ext mlnb calls them)."""
    from mlnb.tracking import session

    current = session()
    current.before_cell()  # the cell that runs the training loop
    try:
        mlnb.start_run(experiment_name="loop", run_name="epochs")
        panel = RunsPanel(interval=0.05)
        assert panel.polling and "live: refreshing" in panel.header.value
        mlnb.log_metric("loss", 0.3, step=0)
        mlnb.flush()
        _eventually(lambda: "<polyline" in panel.live.value or "loss" in panel.live.value, "live")
        current.after_cell(None)  # the loop's cell ended; the run is still open
        _eventually(lambda: not panel.polling, "the banner gone after the cell")
        assert "live: refreshing" not in panel.header.value
        assert "loss" in panel.live.value  # the last charts stay
        assert mlnb.active_run() is not None  # the run itself is still open
        current.before_cell()  # the next cell: live again while it runs
        _eventually(lambda: panel.polling, "live again in the next cell")
    finally:
        current.after_cell(None)
        current.in_cell = None
        mlnb.end_run()
    panel.close()


def test_panel_picks_up_a_run_started_after_it(project: Path) -> None:
    first = make_run("later", "before", {}, {})
    panel = RunsPanel("later", interval=0.05)
    assert not panel.polling and len(panel.runs) == 1
    active = mlnb.start_run(experiment_name="later", run_name="after")
    _eventually(lambda: panel.polling, "the new run followed")
    assert panel.live_run_id == active.info.run_id
    mlnb.log_metric("loss", 0.1)
    mlnb.flush()
    _eventually(lambda: "loss=0.1" in panel.to_html(), "its metric shown")
    assert [r.run_id for r in panel.runs] == [active.info.run_id, first]
    mlnb.end_run()
    _eventually(lambda: not panel.polling, "following stopped when the run ended")


def test_closing_the_panel_stops_following(project: Path) -> None:
    from mlnb.widgets._runs import _FOLLOWER

    mlnb.start_run(experiment_name="live")
    panel = RunsPanel(interval=0.05)
    assert panel.polling and panel in _FOLLOWER.panels
    panel.close()
    assert not panel.polling and panel not in _FOLLOWER.panels
    _eventually(lambda: _FOLLOWER.thread is None, "the follower thread ended (no panel open)")
    mlnb.end_run()


def test_compare_highlights_differing_params_and_plots_each_history(
    two_runs: list[str],
) -> None:
    view = compare(two_runs)
    assert isinstance(view, CompareView)
    assert view.static.differing_params == ["lr"]
    assert view.static.param_keys == ["batch", "lr"]
    slow = view.static.histories[two_runs[0]]["loss"]
    assert [(p.step, p.value) for p in slow] == [(0, 0.9), (1, 0.5), (2, 0.3)]
    html = view.to_html()
    assert html.count('class="mlnb-diff"') == 1
    assert '<tr class="mlnb-diff"><td>param <b>lr</b></td><td>0.1</td><td>0.5</td>' in html
    assert view.static.metric_chart("loss").count("<polyline") == 2  # one line per run
    assert html.count("<polyline") == 4  # and one per run in the params' parallel coordinates
    assert "params that differ: lr" in html
    assert "*param lr: 0.1  |  0.5" in view.to_text()


def test_compare_finds_a_run_by_its_unique_name(two_runs: list[str]) -> None:
    view = compare(["fast"])
    assert [r.run_id for r in view.runs] == [two_runs[1]]


def test_compare_an_unknown_run_names_it(two_runs: list[str]) -> None:
    with pytest.raises(TrackingError, match="no run with id or name 'deadbeef'"):
        compare([two_runs[0], "deadbeef"])


def test_selection_in_the_panel_compares_the_chosen_runs(two_runs: list[str]) -> None:
    panel = runs_panel("widgets")
    assert panel.compare_button.disabled
    panel.compare_selected()
    assert "Select one or more runs" in panel.message.value
    panel.select(two_runs)
    assert not panel.compare_button.disabled
    assert panel.selected == list(reversed(two_runs))
    panel.compare_button.click()
    (view,) = panel.comparison.children
    assert isinstance(view, CompareView)
    assert {r.run_id for r in view.runs} == set(two_runs)
    panel.close()


def test_without_a_widget_frontend_the_views_are_static(
    two_runs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLNB_WIDGETS", "0")
    table = runs_panel("widgets")
    assert isinstance(table, RunsTable)
    bundle = table._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    assert all(run_id in bundle["text/html"] for run_id in two_runs)
    comparison = compare(two_runs)
    assert isinstance(comparison, Comparison)
    assert comparison.differing_params == ["lr"]
    monkeypatch.setenv("MLNB_WIDGETS", "1")
    monkeypatch.setenv("MLNB_RUN_ID", "x")  # a pipeline step, but widgets were asked for
    panel = runs_panel("widgets")
    assert isinstance(panel, RunsPanel)
    panel.close()
    monkeypatch.delenv("MLNB_WIDGETS")
    assert isinstance(runs_panel("widgets"), RunsTable)  # a pipeline step: static
