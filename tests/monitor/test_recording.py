"""Profiles recorded on real runs (embedded MLflow store), found again, and copied into an
exported service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

import mlnb
from mlnb.config import get_settings
from mlnb.exceptions import MonitorError
from mlnb.export import ExportResult, export_notebook
from mlnb.monitor import Profile, find_profile
from tests.serving import MODEL_NAME, SERVE_CELLS, project_at, write_notebook


def _client() -> MlflowClient:
    return MlflowClient(get_settings().tracking_uri)


def _train_and_register(profile_name: str | None) -> str:
    """Train the example model in a run, profile its data under ``profile_name`` (unless
    None), register it as `bc`; returns the run id."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    run = mlnb.start_run(experiment_name="train")
    if profile_name is not None:
        mlnb.profile(X, name=profile_name)
    mlnb.log_model(model, "model", registered_model_name=MODEL_NAME)
    mlnb.end_run()
    return str(run.info.run_id)


def test_profile_is_recorded_on_the_active_run_and_found_again(project: Path) -> None:
    X = load_breast_cancer(as_frame=True).frame
    active = mlnb.start_run()
    run_id = active.info.run_id
    prof = mlnb.profile(X, name="breast cancer", target="target")
    assert prof.run_id == run_id and "target" not in prof.features
    mlnb.end_run()
    run = _client().get_run(run_id)
    assert run.data.tags["mlnb.profile.breast-cancer"] == "mlnb/profiles/breast-cancer.json"
    listed = [a.path for a in _client().list_artifacts(run_id, "mlnb/profiles")]
    assert listed == ["mlnb/profiles/breast-cancer.json"]
    found = find_profile(run_id)
    assert found is not None and found.name == "breast-cancer.json"
    assert Profile.load(found) == prof
    from mlnb.tracking import versions

    (record,) = versions("profiles/breast-cancer")
    assert record.run_id == run_id and record.kind == "config"


def test_without_a_run_nothing_starts(project: Path) -> None:
    prof = mlnb.profile({"a": [1.0, 2.0, 3.0]})
    assert prof.run_id is None and mlnb.active_run() is None
    assert not (project / ".mlnb" / "profiles").exists()


def test_find_profile_of_a_run_without_one(project: Path) -> None:
    active = mlnb.start_run()
    mlnb.log_param("a", 1)
    mlnb.end_run()
    assert find_profile(active.info.run_id) is None
    with pytest.raises(MonitorError, match=r"cannot list the profiles of run 'nope'"):
        find_profile("nope")


def test_find_profile_prefers_the_one_named_like_the_model(project: Path) -> None:
    active = mlnb.start_run()
    mlnb.profile({"a": [1.0, 2.0]}, name="aaa")
    mlnb.profile({"b": [1.0, 2.0]}, name="bc")
    mlnb.end_run()
    first = find_profile(active.info.run_id, dst=project / "first")
    named = find_profile(active.info.run_id, "bc", dst=project / "named")
    assert first is not None and first.name == "aaa.json"
    assert named is not None and list(Profile.load(named).features) == ["b"]


@dataclass
class Profiled:
    root: Path  # the project
    result: ExportResult  # of `serve.ipynb` exported to root / "svc"


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Profiled]:
    """A project whose model `bc` was trained in a run that recorded the profile "bc", and
    the service exported from it (without the verified start): trained and exported once
    for the tests that only read them."""
    with project_at(tmp_path_factory.mktemp("profiled") / "project") as root:
        _train_and_register("bc")
        notebook = write_notebook(root / "serve.ipynb", *SERVE_CELLS)
        yield Profiled(root, export_notebook(notebook, root / "svc", verify=False))


def test_export_copies_the_model_runs_profile(profiled: Profiled) -> None:
    project, result = profiled.root, profiled.result
    assert result.metadata["profile"] == "profile.json"
    meta = json.loads((project / "svc" / "mlnb-service.json").read_text())
    assert meta["profile"] == "profile.json"
    copied = Profile.load(project / "svc" / "profile.json")
    assert copied.name == "bc" and len(copied.features) == 30


def test_export_without_a_profile_and_with_an_explicit_one(project: Path) -> None:
    _train_and_register(None)
    notebook = write_notebook(project / "serve.ipynb", *SERVE_CELLS)
    result = export_notebook(notebook, project / "svc", verify=False)
    assert result.metadata["profile"] is None
    assert not (project / "svc" / "profile.json").exists()
    X = load_breast_cancer(as_frame=True).data
    given = mlnb.profile(X, name="given", log=False).save(project / "given.json")
    result = export_notebook(notebook, project / "svc", force=True, verify=False, profile=given)
    assert result.metadata["profile"] == "profile.json"
    assert Profile.load(project / "svc" / "profile.json").name == "given"
    bad = project / "bad.json"
    bad.write_text("not json")
    before = (project / "svc" / "mlnb-service.json").read_text()
    with pytest.raises(MonitorError, match=r"bad.json' is not JSON"):
        export_notebook(notebook, project / "svc", force=True, verify=False, profile=bad)
    assert (project / "svc" / "mlnb-service.json").read_text() == before  # nothing lost
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".svc-")) == []


def test_profile_magic_records_the_variable(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["train_df"] = load_breast_cancer(as_frame=True).frame
    shell.run_line_magic("mlnb", "profile train_df --target target")
    out = capsys.readouterr().out
    assert "mlnb: profile 'train_df' of 569 rows, 30 numeric and 0 categorical" in out
    run_id = mlnb.active_run().info.run_id
    mlnb.end_run()
    found = find_profile(run_id, "train_df")
    assert found is not None and Profile.load(found).target == "target"
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"name 'nothing' is not defined"):
        shell.run_line_magic("mlnb", "profile nothing")
    shell.user_ns["text"] = "train.csv"
    with pytest.raises(UsageError, match=r"is a str, not a table"):
        shell.run_line_magic("mlnb", "profile text --name t")
    assert mlnb.active_run() is None  # bad input starts no run
    assert "%mlnb profile" in shell.find_line_magic("mlnb").__doc__


def test_report_of_a_real_service_fed_shifted_inputs(profiled: Profiled) -> None:
    import time

    from tests.conftest import run_mlnb
    from tests.serving import running_service

    project = profiled.root
    X = load_breast_cancer(as_frame=True).data
    env = {"MLNB_DRIFT_EVERY": "50", "MLNB_DRIFT_SECONDS": "0.5"}
    with running_service(project / "svc", project / "serve.log", **env) as service:
        with service.client() as client:
            for i in range(15):  # 300 rows, "mean radius" moved by 1.5 standard deviations
                rows = X.sample(20, random_state=i)
                rows = rows.assign(**{"mean radius": rows["mean radius"] + 1.5 * 3.52})
                answer = client.post("/predict", json={"records": rows.to_dict("records")})
                assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 60
            while "mean radius" not in client.get("/monitor/drift").json()["drifted"]:
                assert time.monotonic() < deadline, client.get("/monitor/drift").json()
                time.sleep(0.2)
        done = run_mlnb(project, "monitor", "report", service.url, "-o", "live.html")
    assert done.returncode == 0, done.stderr
    assert "drifted: mean radius (psi " in done.stdout
    assert (project / "live.html").read_text().count("<svg ") == 30
    done = run_mlnb(project, "monitor", "report", "svc", "-o", "audit.html")
    assert done.returncode == 0, done.stderr  # the audit log, written by the service
    assert "300 live row(s) against profile 'bc'" in done.stdout
    assert "drifted: mean radius (psi " in done.stdout
