"""``%mlnb version`` of numpy arrays in notebooks run by plain ``papermill -p``: real kernels.

The scikit-learn gallery's idiom, ``X, y = load_*(return_X_y=True)``, then ``%mlnb version X``
and ``%mlnb version y``; and a value that cannot be versioned, which stops the run with one
clear line and keeps what the run recorded before it.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient

from mlnb.config import get_settings
from mlnb.exceptions import VersionNotFoundError
from mlnb.tracking import lineage, versions
from mlnb.versioning import load
from tests.conftest import run_mlnb
from tests.test_papermill import _notebook, _only_run, _papermill

LOAD = "from sklearn.datasets import load_breast_cancer\nX, y = load_breast_cancer(return_X_y=True)"


def test_gallery_arrays_are_versioned_as_the_runs_inputs(project: Path) -> None:
    notebook = _notebook(
        project / "gallery.ipynb",
        ("%load_ext mlnb", []),
        ("C = 1.0\nmax_iter = 200", ["parameters"]),
        (LOAD, []),
        ("%mlnb version X\n%mlnb version y", []),
        (
            "from sklearn.linear_model import LogisticRegression\n"
            "from sklearn.pipeline import make_pipeline\n"
            "from sklearn.preprocessing import StandardScaler\n"
            "model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))\n"
            "accuracy = model.fit(X, y).score(X, y)\n"
            "%mlnb metrics accuracy",
            [],
        ),
        ("pred = model.predict(X)\n%mlnb version pred --output", []),
    )
    done = _papermill(project, notebook, "-p", "C", "0.5")
    assert done.returncode == 0, done.stderr[-3000:]

    run = _only_run("gallery")
    assert run.info.status == "FINISHED"  # type: ignore[attr-defined]
    assert run.data.params == {"C": "0.5", "max_iter": "200"}  # type: ignore[attr-defined]
    assert 0.9 < run.data.metrics["accuracy"] <= 1.0  # type: ignore[attr-defined]
    run_id = run.info.run_id  # type: ignore[attr-defined]
    x_record, y_record = versions("X")[0], versions("y")[0]
    assert (x_record.kind, x_record.schema) == (
        "array",
        {"type": "ndarray", "dtype": "float64", "shape": [569, 30], "rows": 569},
    )
    assert x_record.run_id == y_record.run_id == run_id

    inputs = MlflowClient(get_settings().tracking_uri).get_run(run_id).inputs.dataset_inputs
    datasets = {d.dataset.name: d.dataset for d in inputs}
    assert set(datasets) == {"X", "y"}
    for name, record in (("X", x_record), ("y", y_record)):
        assert datasets[name].digest == record.hash[:36]
        profile = json.loads(datasets[name].profile)
        assert (profile["kind"], profile["num_rows"], profile["hash"]) == (
            "array",
            569,
            record.hash,
        )
    tags = run.data.tags  # type: ignore[attr-defined]
    assert tags["mlnb.input.X"] == f"1 {x_record.hash}"
    assert tags["mlnb.output.pred"] == f"1 {versions('pred')[0].hash}"

    listed = run_mlnb(project, "versions", "X")
    assert listed.returncode == 0, listed.stderr
    assert x_record.hash[:16] in listed.stdout and "array" in listed.stdout
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    assert (load("X") == X).all() and load("X").dtype == X.dtype
    assert (load("y") == y).all() and load("y").dtype == y.dtype
    (reader,) = lineage("X")["downstream"]
    assert (reader["run_id"], [w["name"] for w in reader["wrote"]]) == (run_id, ["pred"])


def test_a_value_that_cannot_be_versioned_stops_the_run_clearly_and_loses_nothing(
    project: Path,
) -> None:
    notebook = _notebook(
        project / "dates.ipynb",
        ("%load_ext mlnb", []),
        ("n = 3", ["parameters"]),
        (f"{LOAD}\nbefore = 1.0\n%mlnb metrics before\n%mlnb version y", []),
        (
            "import datetime\nimport numpy as np\n"
            "when = np.array([datetime.datetime(2024, 1, n)], dtype=object)\n"
            "%mlnb version when",
            [],
        ),
        ("after = 2.0\n%mlnb metrics after", []),
    )
    done = _papermill(project, notebook, "-p", "n", "5")
    assert done.returncode != 0
    message = "element (0,) of 'when' is a datetime.datetime"
    assert f"UsageError: {message}" in done.stderr  # papermill says why it stopped

    out = nbformat.read(project / "out.ipynb", as_version=4)
    (error,) = [o for c in out.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert error.ename == "MlnbUsageError" and error.evalue.startswith(message)
    assert error.traceback == [f"UsageError: {error.evalue}"]
    assert "\n" not in error.evalue  # one line, no traceback of mlnb's code

    run = _only_run("dates")
    assert run.info.status == "FAILED"  # type: ignore[attr-defined]
    assert run.data.metrics == {"before": 1.0}  # type: ignore[attr-defined]
    assert run.data.params == {"n": "5"}  # type: ignore[attr-defined]
    run_id = run.info.run_id  # type: ignore[attr-defined]
    inputs = MlflowClient(get_settings().tracking_uri).get_run(run_id).inputs.dataset_inputs
    assert [d.dataset.name for d in inputs] == ["y"]
    assert versions("y")[0].run_id == run_id
    with pytest.raises(VersionNotFoundError):
        versions("when")
