"""The tracking API, run on the embedded SQLite store and on an MLflow server backed by
PostgreSQL (the ``backend`` fixture selects it with MLFLOW_TRACKING_URI)."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

import mlnb
from mlnb.exceptions import InvalidValueError, ModelError, TrackingError


def _client() -> MlflowClient:
    from mlnb.config import get_settings

    return MlflowClient(get_settings().tracking_uri)


def test_first_log_call_starts_a_run_and_metrics_arrive_after_flush(backend: str) -> None:
    assert mlnb.active_run() is None
    mlnb.log_params({"lr": 0.1, "layers": [64, 32]})
    run = mlnb.active_run()
    assert run is not None
    for step in range(250):
        mlnb.log_metric("loss", 1.0 / (step + 1), step=step)
    mlnb.log_metrics({"acc": 0.5, "auc": 0.75}, step=3)
    mlnb.flush()
    client = _client()
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(250))
    assert {m.step: m.value for m in history}[9] == pytest.approx(0.1)
    data = client.get_run(run.info.run_id).data
    assert data.params == {"lr": "0.1", "layers": "[64, 32]"}
    assert data.metrics["acc"] == 0.5 and data.metrics["auc"] == 0.75
    mlnb.end_run()
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert mlnb.active_run() is None


def test_start_run_uses_mlflow_names_and_is_mlflows_active_run(backend: str) -> None:
    active = mlnb.start_run(experiment_name="api", run_name="first", tags={"team": "ds"})
    assert mlflow.active_run().info.run_id == active.info.run_id
    # MLflow's own fluent calls land in the same run.
    mlflow.log_metric("from_mlflow", 1.0)
    mlnb.set_tags({"stage": "dev"})
    mlnb.set_tag("owner", "me")
    mlnb.end_run()
    run = _client().get_run(active.info.run_id)
    assert run.info.run_name == "first"
    assert _client().get_experiment(run.info.experiment_id).name == "api"
    assert run.data.metrics["from_mlflow"] == 1.0
    assert run.data.tags["team"] == "ds"
    assert run.data.tags["stage"] == "dev"
    assert run.data.tags["owner"] == "me"
    assert run.data.tags["mlnb.runner"] == "script"
    assert mlflow.active_run() is None


def test_run_as_context_manager_ends_it(backend: str) -> None:
    with mlnb.start_run(experiment_name="ctx") as active:
        mlnb.log_metric("x", 1)
    assert mlflow.active_run() is None
    # mlflow.ActiveRun.__exit__ ends the run through MLflow; mlnb must not keep it active.
    mlnb.end_run()
    assert _client().get_run(active.info.run_id).info.status == "FINISHED"


def test_a_second_start_run_without_nested_is_refused(backend: str) -> None:
    first = mlnb.start_run(experiment_name="twice")
    with pytest.raises(TrackingError, match="already active"):
        mlnb.start_run()
    mlnb.log_metric("still", 1.0)
    mlnb.end_run()
    assert _client().get_run(first.info.run_id).data.metrics == {"still": 1.0}


def test_nested_run_returns_to_its_parent(backend: str) -> None:
    parent = mlnb.start_run(experiment_name="nested")
    child = mlnb.start_run(run_name="child", nested=True)
    mlnb.log_metric("child_metric", 2.0)
    mlnb.end_run()
    assert mlnb.active_run().info.run_id == parent.info.run_id
    mlnb.log_metric("parent_metric", 1.0)
    mlnb.end_run()
    client = _client()
    child_run = client.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child_run.data.metrics == {"child_metric": 2.0}
    assert client.get_run(parent.info.run_id).data.metrics == {"parent_metric": 1.0}


def test_log_artifact_file_and_folder(backend: str, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("hello")
    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")
    mlnb.log_artifact(report)
    mlnb.log_artifact(folder, artifact_path="figures")
    run_id = mlnb.active_run().info.run_id
    mlnb.end_run()
    client = _client()
    top = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.txt", "figures", "mlnb"} <= top
    assert [a.path for a in client.list_artifacts(run_id, "figures/plots")] == [
        "figures/plots/a.csv"
    ]
    local = client.download_artifacts(run_id, "report.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == "hello"


def test_log_model_registers_and_load_model_returns_the_native_model(backend: str) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    info = mlnb.log_model(model, "model", registered_model_name="bc")
    assert info.flavor == "sklearn"
    assert info.registered_model_version == "1"
    assert any(r.startswith("scikit-learn==") for r in info.pip_requirements)
    run_id = mlnb.active_run().info.run_id
    mlnb.log_model(model, "model", registered_model_name="bc")
    mlnb.end_run()
    client = _client()
    client.set_registered_model_alias("bc", "champion", "1")
    for uri in (info.model_uri, "models:/bc/1", "models:/bc@champion", "models:/bc/latest"):
        loaded = mlnb.load_model(uri)
        assert type(loaded).__name__ == "Pipeline", uri
        assert (loaded.predict(X.head(20)) == model.predict(X.head(20))).all()
    versions = client.search_model_versions("name='bc'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    assert {v.run_id for v in versions} == {run_id}


def test_load_model_with_a_bad_uri_names_the_uri_and_the_forms(backend: str) -> None:
    with pytest.raises(ModelError, match=r"models:/nope/1.*models:/<name>/<version>"):
        mlnb.load_model("models:/nope/1")


def test_log_model_refuses_an_unknown_model_type(backend: str) -> None:
    with pytest.raises(ModelError, match=r"cannot log a builtins\.dict"):
        mlnb.log_model({"not": "a model"}, "model")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (pd.DataFrame({"a": [1, 2]}), "got a DataFrame with shape \\(2, 1\\)"),
        ("0.5", "got a str"),
        ([1, 2], "got a list"),
    ],
)
def test_a_value_that_is_not_a_metric_is_refused_and_the_run_is_intact(
    backend: str, value: object, message: str
) -> None:
    mlnb.log_metric("good", 1.0)
    with pytest.raises(InvalidValueError, match=message):
        mlnb.log_metric("bad", value)
    mlnb.log_metric("after", 2.0)
    run_id = mlnb.active_run().info.run_id
    mlnb.end_run()
    assert _client().get_run(run_id).data.metrics == {"good": 1.0, "after": 2.0}


def test_numpy_scalars_and_nan_are_metrics(backend: str) -> None:
    import numpy as np

    mlnb.log_metrics({"np_float": np.float32(0.25), "np_int": np.int64(3), "nan": math.nan})
    mlnb.log_metric("zero_d", np.array(1.5))
    run_id = mlnb.active_run().info.run_id
    mlnb.end_run()
    metrics = _client().get_run(run_id).data.metrics
    assert metrics["np_float"] == 0.25 and metrics["np_int"] == 3.0
    assert metrics["zero_d"] == 1.5
    assert math.isnan(metrics["nan"])


def test_changing_a_param_is_refused_with_the_fix(backend: str) -> None:
    mlnb.log_param("lr", 0.1)
    mlnb.log_param("lr", 0.1)  # the same value again is fine
    with pytest.raises(InvalidValueError, match=r"'lr' was already logged as '0.1'.*new run"):
        mlnb.log_params({"lr": 0.2})
    run_id = mlnb.active_run().info.run_id
    mlnb.end_run()
    assert _client().get_run(run_id).data.params == {"lr": "0.1"}


def test_bad_names_and_values_are_refused(backend: str) -> None:
    with pytest.raises(InvalidValueError, match="not allowed by MLflow"):
        mlnb.log_metric("bad name!", 1.0)
    with pytest.raises(InvalidValueError, match="params hold short text"):
        mlnb.log_param("frame", pd.DataFrame({"a": [1]}))
    with pytest.raises(InvalidValueError, match="6000"):
        mlnb.log_param("long", "x" * 7000)
    with pytest.raises(InvalidValueError, match="step must be a whole number"):
        mlnb.log_metric("m", 1.0, step=1.5)  # type: ignore[arg-type]


def test_missing_artifact_path_is_a_clear_error(backend: str) -> None:
    with pytest.raises(InvalidValueError, match=r"'missing.csv' does not exist"):
        mlnb.log_artifact("missing.csv")


def test_seed_seeds_libraries_and_is_recorded(backend: str) -> None:
    import random

    import numpy as np

    seeded = mlnb.seed(7)
    assert {"random", "numpy"} <= set(seeded)
    first = (random.random(), np.random.rand())
    mlnb.seed(7)
    assert (random.random(), np.random.rand()) == first
    mlnb.log_metric("m", 1)
    run_id = mlnb.active_run().info.run_id
    mlnb.end_run()
    tags = _client().get_run(run_id).data.tags
    assert tags["mlnb.seed"] == "7"
    assert "numpy" in tags["mlnb.seed.libraries"]


def test_environment_and_git_provenance(backend: str, project: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    (project / "train.py").write_text("print(1)\n")
    subprocess.run(["git", "add", "train.py"], cwd=project, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
        cwd=project,
        check=True,
    )
    (project / "train.py").write_text("print(2)\n")  # a dirty tree
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    mlnb.log_metric("m", 1.0)
    run_id = mlnb.active_run().info.run_id
    mlnb.end_run()
    client = _client()
    tags = client.get_run(run_id).data.tags
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlnb.git.dirty"] == "true"
    assert len(tags["mlnb.packages.hash"]) == 64
    assert tags["mlnb.python.version"].count(".") == 2
    names = {a.path for a in client.list_artifacts(run_id, "mlnb")}
    assert {"mlnb/environment.txt", "mlnb/git_diff.patch", "mlnb/provenance.json"} <= names
    patch = Path(client.download_artifacts(run_id, "mlnb/git_diff.patch", str(project / "d")))
    assert "+print(2)" in patch.read_text()
    env = Path(client.download_artifacts(run_id, "mlnb/environment.txt", str(project / "e")))
    assert "mlflow==" in env.read_text().lower()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("foo://bar", r"could not open the tracking store on foo://bar: .*unsupported URI"),
        ("postgresql://u@127.0.0.1:1/db", r"driver 'psycopg' is not installed.*psycopg2-binary"),
    ],
)
def test_a_wrong_tracking_uri_is_one_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, uri: str, message: str
) -> None:
    from tests.conftest import reset_tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLNB_HTTP_RETRIES", "0")
    reset_tracking()
    with pytest.raises(TrackingError, match=message) as caught:
        mlnb.log_metric("m", 1.0)
    assert "\n" not in str(caught.value)
    assert mlnb.active_run() is None


def test_starting_a_run_leaves_the_seeded_random_stream_alone(backend: str) -> None:
    import random

    mlnb.seed(42)
    expected = [random.random() for _ in range(3)]
    mlnb.seed(42)
    mlnb.log_metric("m", 1.0)  # starts a run (MLflow draws its run name from `random`)
    assert [random.random() for _ in range(3)] == expected
    first = mlnb.active_run().info.run_name
    mlnb.end_run()
    mlnb.seed(42)
    mlnb.log_metric("m", 1.0)
    second = mlnb.active_run().info.run_name
    mlnb.end_run()
    assert first != second  # names are not tied to the user's seed


def test_tracking_leaves_the_environment_alone(project: Path) -> None:
    """MLflow's set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ; mlnb must not
    leave it there, or the first project's store would follow the process everywhere."""
    import os

    mlnb.log_metric("m", 1.0)
    mlnb.end_run()
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri().endswith("/.mlnb/mlflow.db")


def test_pointing_mlflow_at_a_store_never_writes_its_uri_into_the_environment(
    project: Path, monkeypatch: pytest.MonkeyPatch, migrated_store: Path
) -> None:
    """Not even for an instant: a thread that starts a subprocess meanwhile (papermill, a
    pipeline step's kernel) would hand the child this store as the user's own setting, and
    the child's run would land in another project's store."""
    import os
    import shutil

    from mlnb.config import get_settings
    from mlnb.tracking._client import configure_mlflow
    from tests.conftest import reset_tracking

    written: list[str] = []
    environ_type = type(os.environ)
    setitem = environ_type.__setitem__

    def recording(self: object, key: str, value: str) -> None:
        written.append(key)
        setitem(self, key, value)  # type: ignore[arg-type]

    monkeypatch.setattr(environ_type, "__setitem__", recording)
    first = get_settings()
    configure_mlflow(first)
    assert mlflow.get_tracking_uri() == first.tracking_uri
    other = project / "other"
    (other / ".mlnb").mkdir(parents=True)
    shutil.copy(migrated_store, other / ".mlnb" / "mlflow.db")  # a second project's store
    monkeypatch.chdir(other)
    reset_tracking()
    second = get_settings()
    assert second.tracking_uri != first.tracking_uri
    configure_mlflow(second)
    assert mlflow.get_tracking_uri() == second.tracking_uri
    assert "MLFLOW_TRACKING_URI" not in written and "MLFLOW_REGISTRY_URI" not in written
    assert "MLFLOW_TRACKING_URI" not in os.environ
