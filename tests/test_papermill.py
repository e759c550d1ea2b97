"""Plain ``papermill`` runs (as from cron) are tracked like interactive ones: real kernels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from nbformat.v4 import new_code_cell, new_notebook

from mlnb.config import get_settings
from tests.conftest import NOTEBOOKS, settle_journal

PAPERMILL = str(Path(sys.executable).with_name("papermill"))


def _client() -> MlflowClient:
    return MlflowClient(get_settings().tracking_uri)


def _notebook(path: Path, *cells: tuple[str, list[str]]) -> Path:
    nb = new_notebook(
        cells=[new_code_cell(src, metadata={"tags": tags}) for src, tags in cells],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _papermill(project: Path, notebook: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [PAPERMILL, str(notebook), str(project / "out.ipynb"), "--log-level", "WARNING", *args],
        cwd=project,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    settle_journal(project)
    return done


def _only_run(experiment: str) -> object:
    client = _client()
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def _text(run_id: str, path: str, dst: Path) -> str:
    return Path(_client().download_artifacts(run_id, path, str(dst))).read_text()


def test_train_notebook_under_plain_papermill_records_the_injected_value(project: Path) -> None:
    notebook = project / "notebooks" / "train.ipynb"
    notebook.parent.mkdir()
    shutil.copy(NOTEBOOKS / "train.ipynb", notebook)
    done = _papermill(project, notebook, "-p", "C", "0.5")
    assert done.returncode == 0, done.stderr[-3000:]

    run = _only_run("train")
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["C"] == "0.5"  # the injected value wins over the cell's 1.0
    assert params["max_iter"] == "500" and params["test_size"] == "0.25"
    tags = run.data.tags
    assert tags["mlnb.params.injected"] == "C"
    assert tags["mlnb.runner"] == "papermill"
    assert tags["mlflow.source.name"] == "notebooks/train.ipynb"
    assert tags["mlnb.execution.out_of_order"] == "false"
    assert tags["mlnb.seed"] == "42"
    assert set(run.data.metrics) == {"accuracy", "f1", "roc_auc"}
    assert 0.9 < run.data.metrics["accuracy"] <= 1.0
    versions = _client().search_model_versions("name='breast-cancer-classifier'")
    assert [v.run_id for v in versions] == [run_id]
    assert len(versions[0].tags["mlnb.hash"]) == 64  # the model's files, by content
    (dataset,) = [d.dataset for d in _client().get_run(run_id).inputs.dataset_inputs]
    assert dataset.name == "breast-cancer"
    assert json.loads(dataset.profile)["num_rows"] == 569

    code = _text(run_id, "mlnb/code.py", project / "a")
    assert "C = 0.5" in code and code.count("(papermill injected parameters)") == 1
    assert code.index("C = 1.0") < code.index("C = 0.5") < code.index("model.fit")
    snapshot = nbformat.reads(_text(run_id, "mlnb/notebook.ipynb", project / "b"), as_version=4)
    assert [c.cell_type for c in snapshot.cells][:2] == ["markdown", "code"]
    tags_in_order = [c.metadata.get("tags", []) for c in snapshot.cells]
    after_parameters = tags_in_order[tags_in_order.index(["parameters"]) + 1]
    assert after_parameters == ["injected-parameters"]  # where papermill puts it
    assert "scikit-learn==" in _text(run_id, "mlnb/environment.txt", project / "c")


def test_a_failing_cell_ends_the_run_failed_and_keeps_what_was_logged(project: Path) -> None:
    notebook = _notebook(
        project / "broken.ipynb",
        ("%load_ext mlnb", []),
        ("threshold = 1", ["parameters"]),
        ("before = 0.75\n%mlnb metrics before", []),
        ("raise RuntimeError('the data went missing')", []),
        ("after = 1.0\n%mlnb metrics after", []),
    )
    done = _papermill(project, notebook, "-p", "threshold", "2")
    assert done.returncode != 0
    assert "the data went missing" in done.stderr
    run = _only_run("broken")
    assert run.info.status == "FAILED"
    assert run.data.metrics == {"before": 0.75}
    assert run.data.params == {"threshold": "2"}
    assert run.data.tags["mlnb.execution.errors"] == "1"
    code = _text(run.info.run_id, "mlnb/code.py", project / "a")
    assert "ERROR RuntimeError: the data went missing" in code
    assert "after = 1.0" not in code


def test_extension_loaded_after_the_parameters_cell_still_finds_them(project: Path) -> None:
    notebook = _notebook(
        project / "late.ipynb",
        ("rate = 0.1\nname = 'x'", ["parameters"]),
        ("import math", []),
        ("%load_ext mlnb", []),
        ("value = rate * 10\n%mlnb metrics value", []),
    )
    done = _papermill(project, notebook, "-p", "rate", "0.2")
    assert done.returncode == 0, done.stderr[-3000:]
    run = _only_run("late")
    assert run.data.params == {"rate": "0.2", "name": "x"}
    assert run.data.metrics == {"value": 2.0}
    code = _text(run.info.run_id, "mlnb/code.py", project / "a")
    assert "(ran before mlnb was loaded)" in code


def test_a_parameterized_notebook_that_logs_nothing_is_still_recorded(project: Path) -> None:
    notebook = _notebook(
        project / "quiet.ipynb",
        ("%load_ext mlnb", []),
        ("size = 3", ["parameters"]),
        ("total = sum(range(size))", []),
    )
    done = _papermill(project, notebook, "-p", "size", "5")
    assert done.returncode == 0, done.stderr[-3000:]
    run = _only_run("quiet")
    assert run.info.status == "FINISHED"
    assert run.data.params == {"size": "5"}
    assert "total = sum(range(size))" in _text(run.info.run_id, "mlnb/code.py", project / "a")


def test_papermill_python_api_tracks_the_same_way(project: Path) -> None:
    import papermill

    notebook = _notebook(
        project / "api.ipynb",
        ("%load_ext mlnb", []),
        ("k = 1", ["parameters"]),
        ("square = k * k\n%mlnb metrics square", []),
    )
    papermill.execute_notebook(
        str(notebook),
        str(project / "api-out.ipynb"),
        parameters={"k": 3},
        progress_bar=False,
        cwd=str(project),
    )
    settle_journal(project)
    runs = _client().search_runs(
        [e.experiment_id for e in _client().search_experiments()],
        filter_string="params.k = '3'",
    )
    assert len(runs) == 1
    assert runs[0].data.metrics == {"square": 9.0}
    assert runs[0].data.tags["mlnb.params.injected"] == "k"


@pytest.mark.parametrize("notebook", ["train.ipynb"])
def test_example_notebooks_are_valid(notebook: str) -> None:
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    nbformat.validate(nb)
    tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
    assert tags.count("parameters") == 1
    assert any(c.source.strip() == "%load_ext mlnb" for c in nb.cells)
    assert all(c.cell_type != "code" or not c.outputs for c in nb.cells), "commit without outputs"


def test_the_serve_notebook_is_tagged_for_export() -> None:
    nb = nbformat.read(NOTEBOOKS / "serve.ipynb", as_version=4)
    nbformat.validate(nb)
    tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
    assert tags.count("mlnb:example") == 1 and tags.count("mlnb:skip") == 1
    assert tags.count("mlnb:export") == 4  # imports, the model, the endpoints, the fallback
    assert any("@mlnb.fallback" in c.source for c in nb.cells)
    assert all(c.cell_type != "code" or not c.outputs for c in nb.cells), "commit without outputs"
