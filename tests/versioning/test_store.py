"""The versioning store knows nothing of runs or MLflow; tracking attaches versions to runs."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

import mlnb
from mlnb import versioning
from mlnb.config import get_settings
from mlnb.exceptions import InvalidValueError, NoActiveRunError, VersioningError
from mlnb.tracking import _versions
from tests.conftest import REPO


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_versioning_imports_neither_tracking_nor_mlflow() -> None:
    """Anywhere in the package, also inside functions."""
    files = sorted((REPO / "mlnb" / "versioning").glob("*.py"))
    assert len(files) > 5
    for path in files:
        for name in _imported_modules(path):
            assert not name.startswith(("mlnb.tracking", "mlflow")), (path.name, name)
            assert name != "mlnb.tracking", (path.name, name)


def test_add_stores_without_a_run_and_attach_puts_it_on_the_run(project: Path) -> None:
    record = versioning.add({"lr": 0.1}, "config")
    assert (record.number, record.run_id) == (1, None)
    assert mlnb.tracking.session().run is None  # the store started nothing
    with pytest.raises(NoActiveRunError, match=r"no active run to attach config@1"):
        _versions.attach(record, "input")
    with mlnb.start_run(experiment_name="store") as active:
        attached = _versions.attach(record, "input", context="training")
        mlnb.end_run()
    assert attached.run_id == active.info.run_id
    run = MlflowClient(get_settings().tracking_uri).get_run(active.info.run_id)
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "config"
    assert json.loads(dataset_input.dataset.source) == {"mlnb": f"config@{record.hash}"}
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert run.data.tags["mlnb.input.config"] == f"1 {record.hash}"
    assert versioning.versions("config")[0].run_id == active.info.run_id


def test_link_and_version_refuse_an_unknown_role(project: Path) -> None:
    record = versioning.add(np.arange(4), "a")
    with pytest.raises(InvalidValueError, match="role must be 'input' or 'output', not 'read'"):
        versioning.link(record, "some-run", "read")
    with pytest.raises(InvalidValueError, match="role must be 'input' or 'output', not 'x'"):
        mlnb.version(np.arange(4), "a", role="x")


def test_lineage_of_the_store_has_ids_and_tracking_adds_names(project: Path) -> None:
    with mlnb.start_run(experiment_name="store", run_name="fit") as active:
        mlnb.version(np.arange(5), "x")
        mlnb.version(np.arange(3), "out", role="output")
        mlnb.end_run()
    (bare,) = versioning.lineage("x")["downstream"]
    assert (bare["run_id"], bare["run_name"]) == (active.info.run_id, None)
    (named,) = mlnb.lineage("x")["downstream"]
    assert (named["run_id"], named["run_name"]) == (active.info.run_id, "fit")
    assert [w["name"] for w in named["wrote"]] == ["out"]
    seen: list[str] = []

    def name_of(run_id: str) -> str:
        seen.append(run_id)
        return "given"

    (given,) = versioning.lineage("x", run_name=name_of)["downstream"]
    assert (given["run_name"], seen) == ("given", [active.info.run_id])


def test_deprecated_version_still_attaches_to_the_active_run(project: Path) -> None:
    with mlnb.start_run(experiment_name="store") as active:
        with pytest.warns(DeprecationWarning, match=r"mlnb\.versioning\.version is deprecated"):
            record = versioning.version(np.arange(6), "old")
        mlnb.end_run()
    assert record.run_id == active.info.run_id
    run = MlflowClient(get_settings().tracking_uri).get_run(active.info.run_id)
    assert run.data.tags["mlnb.input.old"] == f"1 {record.hash}"


def test_deprecated_record_model_reads_a_folder_and_refuses_mlflow_uris(
    project: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    with pytest.warns(DeprecationWarning, match=r"use mlnb\.tracking\.record_model"):
        record = versioning.record_model(folder.as_uri(), "m", None, "run-1")
    assert record is not None and (record.kind, record.run_id) == ("model", "run-1")
    assert record.meta["model_uri"] == folder.as_uri()
    stored = versioning.store_model(folder, "m", model_uri="elsewhere")
    assert stored.hash == record.hash  # same content, same version
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(VersioningError, match=r"use mlnb\.tracking\.record_model"),
    ):
        versioning.record_model("runs:/abc/model", "m", None, None)
