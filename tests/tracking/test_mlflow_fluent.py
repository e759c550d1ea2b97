"""Notebooks that already call MLflow, run with plain papermill: their calls land in the mlnb
run (one run per notebook run, in the notebook's experiment, with mlnb's provenance), and the
injected params are the ones recorded whatever ran before the `parameters` cell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
from mlflow import MlflowClient
from nbformat.v4 import new_code_cell, new_notebook

from mlnb.config import get_settings
from tests.conftest import settle_journal

PAPERMILL = str(Path(sys.executable).with_name("papermill"))
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _run(project: Path, name: str, cells: list[tuple[str, list[str]]], *args: str) -> list[Any]:
    nb = new_notebook(
        cells=[new_code_cell(src, metadata={"tags": tags}) for src, tags in cells],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = project / f"{name}.ipynb"
    nbformat.write(nb, path)
    done = subprocess.run(
        [PAPERMILL, str(path), str(project / "out.ipynb"), "--log-level", "WARNING", *args],
        cwd=project,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    settle_journal(project)
    client = MlflowClient(get_settings().tracking_uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    stray = client.search_runs([experiments["Default"]]) if "Default" in experiments else []
    assert not stray, "MLflow's calls opened a run of their own in 'Default'"
    return list(client.search_runs([experiments[name]]))


def test_fluent_calls_before_and_after_the_parameters_cell_land_in_one_run(
    project: Path,
) -> None:
    runs = _run(
        project,
        "layout",
        [
            ("%load_ext mlnb", []),
            ("import mlnb\nmlnb.log_metric('rows', 10.0)", []),  # an mlnb call comes first
            ("C = 1.0\nparams = {'n_estimators': 100, 'max_depth': 3}", ["parameters"]),
            ("import mlflow\nmlflow.log_param('C', C)\nmlflow.log_metric('score', C * 2)", []),
        ],
        "-p",
        "C",
        "0.25",
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["C"] == "0.25"
    assert run.data.params["params.n_estimators"] == "100"
    assert run.data.params["params.max_depth"] == "3"
    assert run.data.metrics == {"rows": 10.0, "score": 0.5}
    assert run.data.tags["mlnb.params.injected"] == "C"
    assert run.info.status == "FINISHED"


def test_autolog_and_a_start_run_block_are_the_mlnb_run(project: Path) -> None:
    runs = _run(
        project,
        "autolog",
        [
            ("%load_ext mlnb", []),
            ("max_iter = 200", ["parameters"]),
            (
                "import mlflow\n"
                "from sklearn.datasets import load_iris\n"
                "from sklearn.linear_model import LogisticRegression\n"
                "mlflow.sklearn.autolog(log_models=False, log_datasets=False)\n"
                "X, y = load_iris(return_X_y=True)\n"
                "with mlflow.start_run(run_name='mine'):\n"
                "    LogisticRegression(max_iter=max_iter).fit(X, y)\n"
                "    mlflow.log_metric('after_fit', 1.0)\n",
                [],
            ),
            ("mlflow.log_metric('after_block', 2.0)", []),
        ],
        "-p",
        "max_iter",
        "300",
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "mine"
    assert run.data.params["max_iter"] == "300"  # autolog's and mlnb's agree
    assert "training_score" in run.data.metrics
    assert run.data.metrics["after_block"] == 2.0
    assert run.data.tags["mlnb.runner"] == "papermill"
    assert run.info.status == "FINISHED"


def test_a_loop_of_start_run_blocks_gives_one_run_each(project: Path) -> None:
    runs = _run(
        project,
        "sweep",
        [
            ("%load_ext mlnb", []),
            (
                "import mlflow\n"
                "for c in [0.1, 1.0, 10.0]:\n"
                "    with mlflow.start_run():\n"
                "        mlflow.log_param('c', c)\n"
                "        mlflow.log_metric('score', c)\n",
                [],
            ),
        ],
    )
    assert sorted(r.data.params["c"] for r in runs) == ["0.1", "1.0", "10.0"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags.get("mlnb.runner") == "papermill" for r in runs)


def test_set_tracking_uri_in_the_notebook_is_followed(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    cells = [
        ("%load_ext mlnb", []),
        (f"import mlflow\nmlflow.set_tracking_uri('sqlite:///{elsewhere}')", []),
        ("import mlnb\nmlnb.log_metric('m', 1.0)\nmlflow.log_metric('n', 2.0)", []),
    ]
    nb = new_notebook(
        cells=[new_code_cell(src, metadata={"tags": tags}) for src, tags in cells],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = project / "moved.ipynb"
    nbformat.write(nb, path)
    done = subprocess.run(
        [PAPERMILL, str(path), str(project / "out.ipynb"), "--log-level", "WARNING"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    settle_journal(project)
    out = nbformat.read(project / "out.ipynb", as_version=4)
    said = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert said.count("this kernel's runs go there now") == 1
    client = MlflowClient(f"sqlite:///{elsewhere}")
    experiment = client.get_experiment_by_name("moved")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics == {"m": 1.0, "n": 2.0}
    here = MlflowClient(get_settings().tracking_uri)
    assert all(not here.search_runs([e.experiment_id]) for e in here.search_experiments()), (
        "the empty automatic run was left in the project's store"
    )
