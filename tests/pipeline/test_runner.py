# ruff: noqa: E501  (pipeline specs and expected messages read best on one line)
"""Pipelines of real notebooks: real kernels under papermill, a real MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from nbformat.v4 import new_code_cell, new_notebook

from mlnb.config import get_settings
from mlnb.pipeline import (
    PipelineError,
    PipelineFailed,
    StepEvent,
    load_pipeline,
    pipeline_status,
    run_pipeline,
)

META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def _notebook(path: Path, params: str | None, *cells: str) -> None:
    items = [new_code_cell("%load_ext mlnb")]
    if params is not None:
        items.append(new_code_cell(params, metadata={"tags": ["parameters"]}))
    items += [new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=items, metadata=META), path)


def _write(project: Path, spec: str) -> Path:
    path = project / "flow" / "pipeline.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec)
    return path


@pytest.fixture
def chain(project: Path) -> Path:
    """make -> double -> report, each writing a file the next one reads."""
    flow = project / "flow"
    _notebook(
        flow / "make.ipynb", "n = 3", "open('numbers.txt', 'w').write(','.join(map(str, range(n))))"
    )
    _notebook(
        flow / "double.ipynb",
        "factor = 2",
        "values = [int(v) * factor for v in open('numbers.txt').read().split(',')]\n"
        "open('doubled.txt', 'w').write(','.join(map(str, values)))\n"
        "total = sum(values)\n%mlnb metrics total",
    )
    _notebook(
        flow / "report.ipynb", None, "open('report.txt', 'w').write(open('doubled.txt').read())"
    )
    return _write(
        project,
        "name: chain\nsteps:\n"
        "  - {name: make, notebook: make.ipynb, params: {n: 4}, outputs: [numbers.txt]}\n"
        "  - {name: double, notebook: double.ipynb, needs: [make], inputs: [numbers.txt], outputs: [doubled.txt]}\n"
        "  - {name: report, notebook: report.ipynb, needs: [double], inputs: [doubled.txt], outputs: [report.txt]}\n",
    )


def _statuses(result: object) -> dict[str, str]:
    return {n: s.status for n, s in result.steps.items()}  # type: ignore[attr-defined]


def test_run_caches_and_reruns_only_what_changed(chain: Path, project: Path) -> None:
    lines: list[str] = []
    first = run_pipeline(chain, report=lines.append)
    assert _statuses(first) == {"make": "ok", "double": "ok", "report": "ok"}
    assert (chain.parent / "report.txt").read_text() == "0,2,4,6"
    client = MlflowClient(get_settings().tracking_uri)
    parent = client.get_run(first.run_id)
    assert parent.data.tags["mlnb.step.double"].startswith("ok ")
    double = client.get_run(first.steps["double"].run_id)
    assert double.data.tags["mlflow.parentRunId"] == first.run_id
    assert double.data.metrics == {"total": 12.0}
    assert double.data.params == {"factor": "2"}  # logged by the kernel's mlnb
    assert json.loads(double.data.tags["mlnb.step.upstream_runs"]) == {
        "make": first.steps["make"].run_id
    }
    assert "mlnb/double.ipynb" in {
        a.path for a in client.list_artifacts(double.info.run_id, "mlnb")
    }
    assert (first.folder / "double.ipynb").is_file()

    again = run_pipeline(chain, report=lines.append)
    assert _statuses(again) == {"make": "cached", "double": "cached", "report": "cached"}
    assert again.run_id is None  # nothing ran: no new MLflow run

    notebook = chain.parent / "double.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[-1].source += "\n# a comment does not count"
    nb.cells.append(nbformat.v4.new_markdown_cell("neither does markdown"))
    nbformat.write(nb, notebook)
    assert _statuses(run_pipeline(chain, report=lines.append))["double"] == "cached"

    nb.cells[-2].source += "\nextra = 1"
    nbformat.write(nb, notebook)
    status = {r["step"]: r["reasons"] for r in pipeline_status(chain)}
    assert status == {
        "make": [],
        "double": ["code changed"],
        "report": ["upstream changed: double"],
    }
    third = run_pipeline(chain, report=lines.append)
    assert _statuses(third) == {"make": "cached", "double": "ok", "report": "ok"}

    changed = run_pipeline(chain, {"make": {"n": 2}}, report=lines.append)
    assert _statuses(changed) == {"make": "ok", "double": "ok", "report": "ok"}
    assert (chain.parent / "report.txt").read_text() == "0,2"
    (chain.parent / "report.txt").unlink()
    assert pipeline_status(chain, {"make": {"n": 2}})[2]["reasons"] == [
        "outputs missing or changed: report.txt"
    ]


def test_a_failing_step_keeps_its_notebook_skips_descendants_and_resumes(project: Path) -> None:
    flow = project / "flow"
    _notebook(flow / "ok.ipynb", "x = 1", "open(f'ok{x}.txt', 'w').write('ok')")
    _notebook(
        flow / "flaky.ipynb",
        "fail = True",
        "if fail:\n    raise ValueError('bad batch 7')\nopen('flaky.txt', 'w').write('ok')",
    )
    _notebook(flow / "after.ipynb", None, "open('after.txt', 'w').write(open('flaky.txt').read())")
    spec = _write(
        project,
        "name: failing\nsteps:\n"
        "  - {name: base, notebook: ok.ipynb, outputs: [ok1.txt]}\n"
        "  - {name: flaky, notebook: flaky.ipynb, needs: [base], outputs: [flaky.txt]}\n"
        "  - {name: after, notebook: after.ipynb, needs: [flaky], outputs: [after.txt]}\n"
        "  - {name: side, notebook: ok.ipynb, params: {x: 2}, outputs: [ok2.txt]}\n",
    )
    with pytest.raises(
        PipelineFailed, match=r"step 'flaky' failed: .*In \[3\].*ValueError: bad batch 7"
    ) as caught:
        run_pipeline(spec, report=lambda _: None)
    result = caught.value.result
    assert _statuses(result) == {"base": "ok", "flaky": "failed", "after": "skipped", "side": "ok"}
    kept = nbformat.read(result.steps["flaky"].notebook, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in kept.cells for o in c.get("outputs", []))
    run = MlflowClient(get_settings().tracking_uri).get_run(result.steps["flaky"].run_id)
    assert run.info.status == "FAILED"

    done = subprocess.run(
        [sys.executable, "-m", "mlnb", "pipeline", "resume", str(spec), "-p", "flaky.fail=False"],
        cwd=project, env=dict(os.environ), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "base             up to date" in done.stdout
        and "side             up to date" in done.stdout
    )
    assert "flaky            done" in done.stdout and "after            done" in done.stdout
    assert (flow / "after.txt").read_text() == "ok"


def test_independent_steps_run_in_parallel(project: Path) -> None:
    flow = project / "flow"
    _notebook(
        flow / "sleep.ipynb",
        "name = 'a'",
        "import time\ntime.sleep(2)\nopen(f'{name}.txt', 'w').write(name)",
    )
    spec = _write(
        project,
        "name: wide\nsteps:\n"
        "  - {name: a, notebook: sleep.ipynb, params: {name: a}, outputs: [a.txt]}\n"
        "  - {name: b, notebook: sleep.ipynb, params: {name: b}, outputs: [b.txt]}\n",
    )
    lines: list[str] = []
    run_pipeline(spec, workers=2, report=lines.append)
    events = [line.split("]", 1)[1].split()[:2] for line in lines]
    assert events[:2] == [["a", "running"], ["b", "running"]]  # b started before a finished


def test_a_killed_kernel_and_a_timeout_are_failures_not_hangs(project: Path) -> None:
    flow = project / "flow"
    _notebook(flow / "die.ipynb", None, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    _notebook(flow / "slow.ipynb", None, "import time\ntime.sleep(60)")
    spec = _write(
        project,
        "name: broken\nsteps:\n"
        "  - {name: die, notebook: die.ipynb}\n"
        "  - {name: slow, notebook: slow.ipynb, timeout: 8, retries: 0}\n",
    )
    with pytest.raises(PipelineFailed) as caught:
        run_pipeline(spec, workers=2, report=lambda _: None)
    steps = caught.value.result.steps
    assert "the kernel died" in (steps["die"].error or "")
    assert steps["slow"].error == "timed out after 8 s"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "name: x\nsteps:\n  - {name: a, notebook: n.ipynb, needs: [b]}\n  - {name: b, notebook: n.ipynb, needs: [a]}\n",
            r"form a cycle: a -> b -> a",
        ),
        (
            "name: x\nsteps:\n  - {name: a, notebook: missing.ipynb}\n",
            r"notebook 'missing.ipynb' does not exist",
        ),
        (
            "name: x\nsteps:\n  - {name: a, notebook: n.ipynb, needs: [zzz]}\n",
            r"needs 'zzz', which is not a step",
        ),
        (
            "name: x\nsteps:\n  - name: a\n    notebook: n.ipynb\n    retries: many\n",
            r"line 5: steps\[a\]\.retries: Input should be a valid integer",
        ),
        (
            "name: x\nsteps:\n  - {name: a, notebook: n.ipynb, colour: red}\n",
            r"line 3: steps\[a\]\.colour: Extra inputs are not permitted",
        ),
        ("name: x\nsteps: [\n", r"is not valid YAML"),
        (
            "name: x\nschedule: 'every day'\nsteps:\n  - {name: a, notebook: n.ipynb}\n",
            r"every day",
        ),
    ],
)
def test_bad_specs_are_refused_before_anything_runs(project: Path, spec: str, message: str) -> None:
    _notebook(project / "flow" / "n.ipynb", "k = 1", "k")
    path = _write(project, spec)
    with pytest.raises(PipelineError, match=message):
        load_pipeline(path)
    assert not (project / ".mlnb" / "runs").exists()


def test_params_must_exist_in_the_parameters_cell(project: Path) -> None:
    flow = project / "flow"
    _notebook(flow / "with.ipynb", "k = 1", "k")
    _notebook(flow / "without.ipynb", None, "1")
    spec = _write(
        project,
        "name: p\nsteps:\n  - {name: a, notebook: with.ipynb, params: {k: 2}}\n  - {name: b, notebook: without.ipynb}\n",
    )
    with pytest.raises(
        PipelineError, match=r"'q' is not a parameter of with.ipynb \(its parameters cell sets k\)"
    ):
        run_pipeline(spec, {"a": {"q": 1}}, report=lambda _: None)
    with pytest.raises(
        PipelineError,
        match=r"step 'b' gives params \(k\) but without.ipynb has no cell tagged `parameters`",
    ):
        run_pipeline(spec, {"b": {"k": 1}}, report=lambda _: None)
    with pytest.raises(PipelineError, match="names the step 'c'"):
        run_pipeline(spec, {"c": {"k": 1}}, report=lambda _: None)
    assert not (project / ".mlnb" / "runs").exists()


def test_a_grid_fans_a_step_out_and_its_dependents_wait_for_all(project: Path) -> None:
    flow = project / "flow"
    _notebook(
        flow / "fit.ipynb",
        "C = 1.0",
        "open(f'fit-{C}.txt', 'w').write(str(C * 10))\nscore = C\n%mlnb metrics score",
    )
    _notebook(
        flow / "pick.ipynb",
        None,
        "import glob\nbest = max(float(open(p).read()) for p in glob.glob('fit-*.txt'))\nopen('best.txt', 'w').write(str(best))",
    )
    spec = _write(
        project,
        "name: sweep\nsteps:\n"
        "  - {name: fit, notebook: fit.ipynb, grid: {C: [0.5, 1.0, 2.0]}, outputs: ['fit-{C}.txt']}\n"
        "  - {name: pick, notebook: pick.ipynb, needs: [fit], outputs: [best.txt]}\n",
    )
    result = run_pipeline(spec, workers=2, report=lambda _: None)
    assert sorted(result.steps) == ["fit[C=0.5]", "fit[C=1.0]", "fit[C=2.0]", "pick"]
    assert (flow / "best.txt").read_text() == "20.0"
    scores = sorted(
        MlflowClient(get_settings().tracking_uri)
        .get_run(result.steps[n].run_id)
        .data.metrics["score"]
        for n in result.steps
        if n.startswith("fit")
    )
    assert scores == [0.5, 1.0, 2.0]
    bad = _write(
        project,
        "name: clash\nsteps:\n  - {name: fit, notebook: fit.ipynb, grid: {C: [1, 2]}, outputs: [same.txt]}\n",
    )
    with pytest.raises(
        PipelineError,
        match=r"writes 'same.txt' in every combination; put a grid parameter in the path, e.g. \{C\}",
    ):
        load_pipeline(bad)


def test_progress_events_name_the_running_cell_and_kernels_never_carry_state(
    project: Path,
) -> None:
    """Kernels are started ahead (warm) but each runs one step: nothing leaks between steps."""
    flow = project / "flow"
    _notebook(
        flow / "first.ipynb",
        "value = 1",
        "import json\nleaked = 'from first'\nimport os\nos.environ['MLNB_TEST_LEAK'] = 'yes'",
        "open('first.txt', 'w').write(str(value))",
    )
    _notebook(
        flow / "second.ipynb",
        None,
        "import os\nseen = {'global': 'leaked' in globals(), 'env': 'MLNB_TEST_LEAK' in os.environ}\n"
        "open('second.txt', 'w').write(json.dumps(seen) if 'json' in globals() else repr(seen))",
    )
    spec = _write(
        project,
        "name: events\nsteps:\n"
        "  - {name: first, notebook: first.ipynb, params: {value: 2}, outputs: [first.txt]}\n"
        "  - {name: second, notebook: second.ipynb, needs: [first], outputs: [second.txt]}\n",
    )
    events: list[StepEvent] = []
    result = run_pipeline(spec, on_event=events.append, warm_kernels=True)
    assert (flow / "second.txt").read_text() == "{'global': False, 'env': False}"
    assert result.steps["second"].warm_kernel  # started while `first` ran
    cells = [e.cell for e in events if e.step == "first" and e.state == "running" and e.cell]
    assert cells == [
        "1/5 %load_ext mlnb",
        "2/5 value = 1",
        "3/5 # Parameters",
        "4/5 import json",
        "5/5 open('first.txt', 'w').write(str(value))",
    ]
    states = [(e.step, e.state) for e in events if e.cell is None]
    assert states == [
        ("first", "running"),
        ("first", "done"),
        ("second", "running"),
        ("second", "done"),
    ]
    # The kernel's mlnb finished the step run before the step counted as done.
    client = MlflowClient(get_settings().tracking_uri)
    run = client.get_run(result.steps["first"].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"value": "2"}  # injected, logged by the kernel's mlnb
    assert (flow / "first.txt").read_text() == "2"


def test_kernels_on_demand_and_an_unknown_kernel(project: Path) -> None:
    flow = project / "flow"
    _notebook(flow / "a.ipynb", None, "open('a.txt', 'w').write('a')")
    spec = _write(
        project,
        "name: cold\nsteps:\n"
        "  - {name: a, notebook: a.ipynb, outputs: [a.txt]}\n"
        "  - {name: b, notebook: a.ipynb, kernel: no-such-kernel, retries: 0}\n",
    )
    with pytest.raises(PipelineFailed, match="no Jupyter kernel named 'no-such-kernel'") as caught:
        run_pipeline(spec, report=lambda _: None, warm_kernels=False)
    steps = caught.value.result.steps
    assert steps["a"].status == "ok" and not steps["a"].warm_kernel
    assert (flow / "a.txt").read_text() == "a"


def test_a_dotted_override_sets_one_key_of_a_dict_param_and_mlflow_calls_land_in_the_step(
    project: Path,
) -> None:
    from mlnb.pipeline import parse_overrides

    flow = project / "flow"
    _notebook(
        flow / "train.ipynb",
        "params = {'n_estimators': 100, 'max_depth': 3}",
        "import mlflow\nmlflow.log_metric('trees', params['n_estimators'])",
    )
    spec = _write(project, "name: dotted\nsteps:\n  - name: train\n    notebook: train.ipynb\n")
    result = run_pipeline(spec, parse_overrides(["train.params.n_estimators=50"]))
    assert result.ok, result.steps
    client = MlflowClient(get_settings().tracking_uri)
    step = client.get_run(result.steps["train"].run_id)
    assert step.data.params == {"params.n_estimators": "50", "params.max_depth": "3"}
    assert step.data.metrics == {"trees": 50.0}  # MLflow's own call, in the step's run
    default = client.get_experiment_by_name("Default")
    assert default is None or not client.search_runs([default.experiment_id])
    with pytest.raises(PipelineError, match=r"'max_depth' is not a dict parameter|not a dict"):
        run_pipeline(spec, parse_overrides(["train.params.max_depth.x=1"]))
