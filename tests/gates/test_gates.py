"""The gates, promote and rollback from Python, on a real MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

import mlnb
from mlnb import gates
from mlnb.config import get_settings
from mlnb.exceptions import GateError, GatesFailed, MlnbError
from tests.gates.conftest import (
    NAME,
    Split,
    bad_model,
    champion,
    good_model,
    register,
    write_holdout,
)


def _client() -> MlflowClient:
    return MlflowClient(get_settings().tracking_uri)


def test_public_names() -> None:
    assert set(gates.__all__) == {
        "HISTORY_TAG",
        "METRICS",
        "Check",
        "GateReport",
        "PromotionResult",
        "champion_history",
        "promote",
        "rollback",
        "run_gates",
    }
    assert issubclass(GatesFailed, GateError) and issubclass(GateError, MlnbError)
    assert GatesFailed.exit_code not in (0, 1, GateError.exit_code)


def test_a_candidate_as_good_as_the_champion_passes_and_the_report_is_recorded(
    project: Path, split: Split
) -> None:
    register(good_model(split))
    v2 = register(good_model(split, C=0.5))
    gates.promote(NAME, 1)  # first champion: no holdout needed, the model only has to load
    holdout = write_holdout(split, project)

    report = gates.run_gates(f"models:/{NAME}/{v2}", data=holdout, target="target")

    assert report.passed, report.render()
    regression = report.check("regression")
    assert regression.status == "passed"
    assert regression.details["candidate"] > 0.9 and regression.details["champion"] > 0.9
    assert report.task == "classification" and report.metric == "accuracy"
    assert report.rows == len(split.holdout)
    assert report.champion_version is not None
    assert (report.champion_version["name"], report.champion_version["version"]) == (NAME, "1")
    text = report.render()
    assert "PASS  regression" in text and "result: PASSED" in text
    # written to the candidate's run and tagged on its registry version
    version = _client().get_model_version(NAME, v2)
    assert version.tags["mlnb.gates"] == "passed"
    assert version.tags["mlnb.gates.against"] == f"models:/{NAME}/1"
    assert report.artifact is not None and report.artifact.startswith(f"runs:/{version.run_id}/")
    path = report.artifact.split("/", 2)[2]
    assert path.startswith("mlnb/gates/") and path.endswith(".json")
    local = _client().download_artifacts(version.run_id, path, str(project))
    doc = json.loads(Path(local).read_text())
    assert doc["passed"] is True and doc["candidate_version"]["version"] == v2
    metrics = _client().get_run(version.run_id).data.metrics
    assert metrics["gates.passed"] == 1.0
    assert "gates.noise.flip_rate" in metrics and "gates.regression.tolerance" not in metrics
    assert metrics["gates.regression.candidate"] == pytest.approx(regression.details["candidate"])


def test_a_worse_candidate_fails_the_regression_gate_and_the_worst_slice_is_named(
    project: Path, split: Split
) -> None:
    register(good_model(split))
    v2 = register(bad_model(split))
    gates.promote(NAME, 1)

    report = gates.run_gates(
        f"models:/{NAME}/{v2}",
        data=write_holdout(split, project),
        target="target",
        slices=["mean radius", "site"],
    )

    assert not report.passed
    regression = report.check("regression")
    assert regression.status == "failed"
    assert regression.details["candidate"] < regression.details["champion"] - 0.1
    # mean radius is cut into 4 quantile bins; the weak model misses the large tumours
    radius = [row for row in report.slices if row["column"] == "mean radius"]
    assert len(radius) == 4 and sum(row["rows"] for row in radius) == len(split.holdout)
    worst = max(radius, key=lambda row: row["drop"])
    slices = report.check("slices")
    assert slices.status == "failed"
    assert slices.details["worst_column"] == "mean radius"
    assert slices.details["worst_value"] == worst["value"] == radius[-1]["value"]
    gap = report.check("slice_gap")
    assert gap.status == "failed" and gap.details["worst_value"] == radius[-1]["value"]
    site = {row["value"] for row in report.slices if row["column"] == "site"}
    assert site == {"north", "south"}  # a column no model uses still slices the holdout
    assert _client().get_model_version(NAME, v2).tags["mlnb.gates"] == "failed"
    with pytest.raises(GatesFailed, match="regression") as caught:
        report.raise_if_failed()
    assert caught.value.report is report
    assert "FAIL  regression" in report.render()


def test_noise_stability_fails_a_model_that_memorised_noise(project: Path, split: Split) -> None:
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    random_labels = np.random.default_rng(0).integers(0, 2, len(split.y))
    brittle = register(
        DecisionTreeClassifier(random_state=0).fit(split.X, random_labels),
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    stable = register(good_model(split))
    holdout = write_holdout(split, project)
    options = {"data": holdout, "target": "target", "against": None, "noise": 0.1}

    unstable = gates.run_gates(f"models:/{NAME}/{brittle}", **options)  # type: ignore[arg-type]
    steady = gates.run_gates(f"models:/{NAME}/{stable}", **options)  # type: ignore[arg-type]

    assert unstable.check("noise").status == "failed"
    assert unstable.check("noise").details["flip_rate"] > 0.05
    assert steady.check("noise").status == "passed"
    assert steady.check("noise").details["flip_rate"] <= 0.02
    assert unstable.check("regression").status == "skipped"  # against=None: no comparison


def test_a_leaky_feature_is_hinted_as_a_warning(project: Path, split: Split) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    train = split.X.assign(leak=split.y + rng.normal(0, 0.05, len(split.y)))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    leaky = register(model.fit(train, split.y))
    holdout = split.holdout.assign(leak=split.holdout["target"] + rng.normal(0, 0.05, 171))
    holdout.to_csv(project / "leaky.csv", index=False)

    report = gates.run_gates(
        f"models:/{NAME}/{leaky}", data=project / "leaky.csv", target="target", against=None
    )

    leakage = report.check("leakage")
    assert leakage.status == "warning" and not leakage.hard
    assert leakage.details["leaky"] == ["leak"]
    assert "'leak'" in leakage.summary
    assert report.passed  # a hint, not a failure
    clean = gates.run_gates(
        f"models:/{NAME}/{register(good_model(split))}",
        data=write_holdout(split, project),
        target="target",
        against=None,
    )
    assert clean.check("leakage").status == "passed"


def test_regression_models_are_gated_with_lower_is_better_metrics(project: Path) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import Ridge

    frame = load_diabetes(as_frame=True).frame
    train, holdout = frame.iloc[:300], frame.iloc[300:]
    X, y = train.drop(columns="target"), train["target"]
    good = register(Ridge(alpha=0.1).fit(X, y), name="dia")
    dummy = register(DummyRegressor().fit(X, y), name="dia")
    gates.promote("dia", good)
    holdout.to_csv(project / "dia.csv", index=False)

    report = gates.run_gates(
        f"models:/dia/{dummy}", data=project / "dia.csv", target="target", metric="rmse"
    )

    assert report.task == "regression" and report.metric == "rmse"
    regression = report.check("regression")
    assert regression.status == "failed"
    assert regression.details["candidate"] > regression.details["champion"]  # higher rmse
    same = gates.run_gates(
        f"models:/dia/{good}", data=project / "dia.csv", target="target", record=False
    )
    assert same.metric == "r2" and same.passed, same.render()
    by_uri = gates.run_gates(
        f"models:/dia/{dummy}",
        against=f"models:/dia/{good}",  # any model URI, not only an alias
        data=project / "dia.csv",
        target="target",
        record=False,
    )
    assert by_uri.champion_version is not None and by_uri.champion_version["version"] == good
    assert by_uri.check("regression").status == "failed"


def test_a_versioned_holdout_is_read_by_name(project: Path, split: Split) -> None:
    version = register(good_model(split))
    mlnb.version(split.holdout, name="holdout")

    report = gates.run_gates(
        f"models:/{NAME}/{version}", data="holdout", target="target", against=None
    )

    assert report.rows == len(split.holdout) and report.data == "holdout"
    frame = gates.run_gates(
        f"models:/{NAME}/{version}", data=split.holdout, target="target", against=None
    )
    assert (
        frame.data == "DataFrame"
        and frame.check("regression").details["candidate"]
        == (report.check("regression").details["candidate"])
    )


def test_bad_input_is_named_with_the_fix(project: Path, split: Split) -> None:
    version = register(good_model(split))
    uri = f"models:/{NAME}/{version}"
    holdout = write_holdout(split, project)
    split.holdout.drop(columns=["mean radius"]).to_csv(project / "short.csv", index=False)

    cases = [
        ({"data": None, "target": "target"}, "--data HOLDOUT"),
        ({"data": project / "nope.csv", "target": "target"}, "neither a file nor a versioned"),
        ({"data": holdout, "target": "label"}, "no target column 'label'.*--target"),
        ({"data": holdout, "target": "target", "slices": ["zone"]}, "no slice column 'zone'"),
        ({"data": holdout, "target": "target", "metric": "auc"}, "unknown metric 'auc'"),
        ({"data": holdout, "target": "target", "tolerance": -1}, "tolerance must be"),
        ({"data": project / "short.csv", "target": "target"}, "lacks 1 column.*'mean radius'"),
        ({"data": holdout, "target": "target", "against": "challenger"}, "no alias 'challenger'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(GateError, match=message):
            gates.run_gates(uri, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(MlnbError, match="not in the registry"):
        gates.run_gates(f"models:/{NAME}/99", data=holdout, target="target")
    assert "mlnb.gates" not in _client().get_model_version(NAME, version).tags  # nothing written


def test_promote_moves_the_alias_and_rollback_walks_back(project: Path, split: Split) -> None:
    v1 = register(good_model(split))
    v2 = register(bad_model(split))
    v3 = register(good_model(split, C=0.5))
    holdout = write_holdout(split, project)

    with pytest.raises(GateError, match="has no champion; nothing to roll back"):
        gates.rollback(NAME)
    first = gates.promote(NAME, v1)
    assert first.changed and first.previous is None and champion() == v1
    assert first.report is not None and first.report.check("loads").status == "passed"

    with pytest.raises(GateError, match=r"pass --data HOLDOUT --target COLUMN.*--skip-gates"):
        gates.promote(NAME, v3)
    with pytest.raises(GatesFailed, match="regression"):
        gates.promote(NAME, v2, data=holdout, target="target")
    assert champion() == v1  # failing gates move nothing

    asked: list[str] = []
    no = gates.promote(
        NAME, v3, data=holdout, target="target", confirm=lambda q, r: asked.append(q) or False
    )
    assert not no.changed and champion() == v1
    assert asked == [f"Promote {NAME} version {v3} to champion (replacing version {v1})?"]

    done = gates.promote(NAME, v3, data=holdout, target="target")
    assert done.changed and done.previous == v1 and champion() == v3
    assert done.report is not None and done.report.passed
    with pytest.raises(GateError, match="already the champion"):
        gates.promote(NAME, v3, skip_gates=True)

    back = gates.rollback(NAME)
    assert (back.previous, back.version) == (v3, v1) and champion() == v1
    with pytest.raises(GateError, match="no previous champion"):
        gates.rollback(NAME)
    assert champion() == v1

    history = gates.champion_history(NAME)
    assert [(e["action"], e["version"], e["previous"]) for e in history] == [
        ("promote", v1, None),
        ("promote", v3, v1),
        ("rollback", v1, v3),
    ]
    assert all(e["time"] and e["user"] for e in history)


def test_rollback_walks_back_through_several_champions(project: Path, split: Split) -> None:
    versions = [register(good_model(split, C=c)) for c in (1.0, 0.9, 0.8)]
    for version in versions:
        gates.promote(NAME, version, skip_gates=True)
    assert champion() == versions[2]
    gates.rollback(NAME)
    assert champion() == versions[1]
    gates.rollback(NAME)
    assert champion() == versions[0]
    # moved by hand (the MLflow UI): rollback returns to the last champion mlnb recorded
    _client().set_registered_model_alias(NAME, "champion", versions[2])
    gates.rollback(NAME)
    assert champion() == versions[0]


def test_promote_names_an_unknown_model_or_version(project: Path, split: Split) -> None:
    register(good_model(split))
    with pytest.raises(GateError, match="no registered model 'nope'"):
        gates.promote("nope", 1)
    with pytest.raises(GateError, match="has no version '7'"):
        gates.promote(NAME, 7)
    assert champion() is None


def test_report_json_is_valid_without_nan(project: Path, split: Split) -> None:
    version = register(good_model(split))
    tiny = split.holdout.assign(site=["a"] * 170 + ["b"])  # slice b: 1 row, one class
    tiny.to_csv(project / "tiny.csv", index=False)
    report = gates.run_gates(
        f"models:/{NAME}/{version}",
        data=project / "tiny.csv",
        target="target",
        slices=["site"],
        metric="roc_auc",
        against=None,
    )
    doc = json.loads(report.to_json())
    rows = {row["value"]: row for row in doc["slices"]}
    assert rows["b"]["small"] is True and rows["b"]["candidate"] is None  # AUC undefined
    assert report.check("slice_gap").status == "skipped"
    assert isinstance(pd.DataFrame(doc["slices"]), pd.DataFrame)


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlnb.gates; heavy = {'mlflow', 'pandas', 'sklearn', 'numpy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
