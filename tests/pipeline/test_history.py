"""The history of a pipeline's runs (``pipeline_history``) and the run id and executed
notebook its step events carry: real notebooks, real kernels, a real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlnb.config import get_settings
from mlnb.pipeline import PipelineFailed, StepEvent, pipeline_history, pipeline_status, run_pipeline
from tests.pipeline.test_runner import _notebook, _write


def _spec(project: Path, fails: bool = False) -> Path:
    flow = project / "flow"
    _notebook(flow / "make.ipynb", "n = 2", "open('n.txt', 'w').write(str(n))")
    body = "raise ValueError('no good')" if fails else "open('out.txt', 'w').write('ok')"
    _notebook(flow / "use.ipynb", None, body)
    return _write(
        project,
        "name: hist\nsteps:\n"
        "  - {name: make, notebook: make.ipynb, outputs: [n.txt]}\n"
        "  - {name: use, notebook: use.ipynb, needs: [make], inputs: [n.txt]}\n",
    )


def test_history_tells_ran_from_cached_and_events_carry_run_ids(project: Path) -> None:
    spec = _spec(project)
    assert pipeline_history(spec) == []
    events: list[StepEvent] = []
    first = run_pipeline(spec, on_event=events.append)
    running = {e.step: e.run_id for e in events if e.state == "running" and e.cell is None}
    done = {e.step: (e.run_id, e.notebook) for e in events if e.state == "done"}
    assert running == {n: s.run_id for n, s in first.steps.items()}
    assert done == {n: (s.run_id, s.notebook) for n, s in first.steps.items()}
    assert all(Path(nb).is_file() for _, nb in done.values() if nb)

    cached: list[StepEvent] = []
    run_pipeline(spec, on_event=cached.append)
    assert [(e.state, e.run_id) for e in cached] == [
        ("cached", first.steps["make"].run_id),
        ("cached", first.steps["use"].run_id),
    ]
    assert cached[0].notebook == first.steps["make"].notebook

    newest, oldest = pipeline_history(spec)
    assert oldest["run_id"] == first.run_id and oldest["status"] == "succeeded"
    assert [(s["name"], s["status"]) for s in oldest["steps"]] == [("make", "ok"), ("use", "ok")]
    assert oldest["steps"][1]["run_id"] == first.steps["use"].run_id
    assert oldest["started_at"] <= oldest["finished_at"] <= newest["started_at"]
    assert newest["run_id"] is None
    assert [s["status"] for s in newest["steps"]] == ["cached", "cached"]
    assert pipeline_history(spec, limit=1) == [newest]
    rows = pipeline_status(spec)
    assert rows[1]["last_notebook"] == first.steps["use"].notebook
    assert rows[1]["last_finished_at"] >= oldest["started_at"]


def test_a_failed_run_is_in_the_history_and_a_damaged_line_is_skipped(project: Path) -> None:
    spec = _spec(project, fails=True)
    with pytest.raises(PipelineFailed):
        run_pipeline(spec, report=lambda line: None)
    history = get_settings().home / "pipelines" / "hist.history.jsonl"
    with history.open("a", encoding="utf-8") as fh:
        fh.write('{"cut short by a cra')  # a crash mid-line
    (run,) = pipeline_history(spec)
    assert run["status"] == "failed"
    assert [s["status"] for s in run["steps"]] == ["ok", "failed"]
    assert "no good" in run["steps"][1]["error"]
    # another pipeline file of the same name has a history of its own
    other = project / "other" / "pipeline.yaml"
    other.parent.mkdir()
    other.write_text(spec.read_text().replace("notebook: ", f"notebook: {spec.parent}/"))
    assert pipeline_history(other) == []
    assert json.loads(history.read_text().splitlines()[0])["pipeline"] == str(spec.resolve())
