"""%mlnb runs, %mlnb compare and %mlnb pipeline run in a real IPython shell; the pipeline's
steps run on real kernels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from nbformat.v4 import new_code_cell, new_notebook

from mlnb.pipeline import StepEvent
from mlnb.widgets import PipelineProgress

META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def _shown(ip: Any, line: str) -> list[dict[str, Any]]:
    """The display bundles a magic line shows."""
    with capture_output() as captured:
        ip.run_line_magic("mlnb", line)
    return [out.data for out in captured.outputs]


def test_help_lists_the_widget_subcommands(shell: Any) -> None:
    doc = shell.find_line_magic("mlnb").__doc__
    for expected in ("%mlnb runs", "--experiment", "%mlnb compare", "%mlnb pipeline", "--workers"):
        assert expected in doc


def test_runs_shows_the_panel_with_an_html_fallback(shell: Any, two_runs: list[str]) -> None:
    (bundle,) = _shown(shell, "runs -e widgets")
    assert "application/vnd.jupyter.widget-view+json" in bundle
    for run_id in two_runs:
        assert run_id in bundle["text/html"]
    assert "experiment widgets (2 runs)" in bundle["text/plain"]


def test_runs_without_runs_says_so(shell: Any) -> None:
    # An experiment of its own: the shell's Default experiment holds the run `%load_ext mlnb`
    # starts, which reaches the store whenever the journal's sender gets to it.
    from mlflow import MlflowClient

    from mlnb.config import get_settings

    MlflowClient(get_settings().tracking_uri).create_experiment("empty")
    (bundle,) = _shown(shell, "runs -e empty")
    assert "No runs in experiment" in bundle["text/plain"]


def test_compare_shows_the_table_and_charts(shell: Any, two_runs: list[str]) -> None:
    (bundle,) = _shown(shell, f"compare {two_runs[0]} {two_runs[1]}")
    html = bundle["text/html"]
    assert all(run_id in html for run_id in two_runs)
    assert 'class="mlnb-diff"' in html and "<svg" in html


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("compare", "the following arguments are required: RUN"),
        ("compare 0123abcd", "no run with id or name '0123abcd'"),
        ("runs -e nope", "no experiment named 'nope'"),
        ("runs --max 0", "--max must be at least 1"),
        ("pipeline stop x.yaml", "invalid choice: 'stop'"),
        ("pipeline run missing.yaml", "missing.yaml"),
    ],
)
def test_bad_input_is_one_usage_error(shell: Any, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        shell.run_line_magic("mlnb", line)
    assert "\n" not in str(caught.value)


def _notebook(path: Path, params: str, *cells: str) -> None:
    items = [
        new_code_cell("%load_ext mlnb"),
        new_code_cell(params, metadata={"tags": ["parameters"]}),
        *(new_code_cell(c) for c in cells),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=items, metadata=META), path)


@pytest.fixture
def flow(project: Path) -> Path:
    folder = project / "flow"
    _notebook(folder / "make.ipynb", "n = 3", "open('n.txt', 'w').write(str(n))")
    _notebook(
        folder / "check.ipynb",
        "limit = 10",
        "n = int(open('n.txt').read())\nassert n < limit, f'n={n} is too big'",
    )
    spec = folder / "pipeline.yaml"
    spec.write_text(
        "name: flow\nsteps:\n"
        "  - {name: make, notebook: make.ipynb, params: {n: 3}, outputs: [n.txt]}\n"
        "  - {name: check, notebook: check.ipynb, needs: [make], inputs: [n.txt]}\n"
    )
    return spec


@pytest.mark.usefixtures("kernels")  # the magic runs the pipeline on kernels
def test_pipeline_run_shows_each_step_and_fails_in_one_line(shell: Any, flow: Path) -> None:
    shown = _shown(shell, f"pipeline run {flow} --workers 1")
    final = shown[-1]  # the display is updated with the final state
    assert "pipeline flow: finished" in final["text/plain"]
    html = final["text/html"]
    assert html.count(">done<") == 2, html
    again = _shown(shell, f"pipeline run {flow}")[-1]["text/plain"]
    assert "2 cached" in again

    with (
        capture_output() as captured,
        pytest.raises(UsageError, match="step 'check' failed") as caught,
    ):
        shell.run_line_magic("mlnb", f"pipeline run {flow} -p make.n=50")
    assert "\n" not in str(caught.value)
    text = captured.outputs[-1].data["text/plain"]
    assert "pipeline flow: failed" in text
    assert "check                failed" in text


def test_progress_follows_step_events() -> None:
    progress = PipelineProgress("p", ["a", "b", "c"])
    progress(StepEvent("a", "running", 0.5, "1/3 x = 1", None))
    progress(StepEvent("a", "running", 1.0, "2/3 fit()", None))
    assert "2/3 fit()" in progress.to_html()
    progress(StepEvent("a", "retrying", 2.0, None, "attempt 2 after: boom"))
    progress(StepEvent("a", "running", 2.5, None, None))
    progress(StepEvent("a", "done", 4.0, None, "done in 3.5 s"))
    progress(StepEvent("b", "failed", 5.0, "1/1 raise", "FAILED: boom"))
    progress(StepEvent("d", "cached", 5.0, None, "up to date"))
    progress.finish("step 'b' failed")
    rows = progress.steps
    assert rows["a"].state == "done" and rows["a"].attempts == 2
    assert rows["a"].seconds == pytest.approx(1.5)
    assert rows["b"].cell == "1/1 raise"
    assert rows["c"].state == "skipped" and rows["c"].message == "not selected"
    assert rows["d"].state == "cached"
    assert progress.counts == {"done": 1, "failed": 1, "skipped": 1, "cached": 1}
    assert "failed: step 'b' failed" in progress.to_text()
