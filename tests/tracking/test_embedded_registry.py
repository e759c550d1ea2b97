"""The embedded store's registry read without MLflow answers as MLflow does, and hands
anything else to MLflow: a real SQLite store written by MLflow itself."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlnb.config import get_settings
from mlnb.tracking import (
    download_model_version,
    find_model_version,
    get_client,
    model_version_tags,
    read_mlmodel,
    resolve_model_version,
    run_artifact_folder,
)
from mlnb.tracking._embedded import (
    embedded_logged_model_tags,
    embedded_model_version,
    embedded_run_artifacts,
)
from mlnb.versioning import hash_tree
from tests.conftest import _ENV_KEYS, reset_tracking
from tests.serving import MODEL_NAME, project_at, register_model

pytestmark = pytest.mark.usefixtures("processes")  # logging a model records its environment


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Versions 1, 2 and 3 of `bc`, alias `champion` on 1, version 3 deleted."""
    with project_at(tmp_path_factory.mktemp("embedded") / "project") as root:
        for _ in range(3):
            register_model()
        client = get_client(get_settings())
        client.set_registered_model_alias(MODEL_NAME, "champion", "1")
        client.delete_model_version(MODEL_NAME, "3")
        yield root


@pytest.fixture
def in_registry(registry: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.chdir(registry)
    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    reset_tracking()
    return get_client(get_settings())


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        (f"models:/{MODEL_NAME}/1", "1"),
        (f"models:/{MODEL_NAME}/2", "2"),
        (f"models:/{MODEL_NAME}/latest", "2"),  # 3 is deleted
        (f"models:/{MODEL_NAME}@champion", "1"),
    ],
)
def test_a_version_is_found_as_mlflow_finds_it(
    in_registry: MlflowClient, uri: str, version: str
) -> None:
    uri_of_store = get_settings().tracking_uri
    direct = embedded_model_version(uri_of_store, uri)
    assert direct is not None  # answered from SQLite, not handed to MLflow
    mlflows = resolve_model_version(in_registry, uri)
    assert (direct.name, direct.version, direct.run_id) == (
        mlflows.name,
        str(mlflows.version),
        mlflows.run_id,
    )
    assert direct.version == version
    location = in_registry.get_model_version_download_uri(MODEL_NAME, version)
    assert direct.files.as_uri() == location.rstrip("/")


def test_the_files_copied_are_mlflows_download(in_registry: MlflowClient, tmp_path: Path) -> None:
    import mlflow

    ref = find_model_version(f"models:/{MODEL_NAME}/2")
    assert ref.files is not None
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    download_model_version(ref, ours)
    mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/2", dst_path=str(theirs))
    assert hash_tree(ours) == hash_tree(theirs)  # every file, registered_model_meta included
    assert (ours / "registered_model_meta").read_text() == "model_name: bc\nmodel_version: '2'\n"


def test_tags_and_run_artifacts_are_mlflows(in_registry: MlflowClient) -> None:
    uri = get_settings().tracking_uri
    version = in_registry.get_model_version(MODEL_NAME, "1")
    assert model_version_tags(MODEL_NAME, "1") == dict(version.tags)
    assert "mlnb.hash" in model_version_tags(MODEL_NAME, "1")
    ref = find_model_version(f"models:/{MODEL_NAME}/1")
    assert ref.files is not None
    model_id = read_mlmodel(ref.files)["model_id"]  # as verify_model_files finds it
    assert embedded_logged_model_tags(uri, model_id) == in_registry.get_logged_model(model_id).tags
    run = in_registry.get_run(version.run_id)
    folder = embedded_run_artifacts(uri, version.run_id)
    assert folder is not None and folder.as_uri() == run.info.artifact_uri
    assert run_artifact_folder(version.run_id) == folder


@pytest.mark.parametrize(
    "uri",
    [
        f"models:/{MODEL_NAME}/3",  # deleted
        f"models:/{MODEL_NAME}/9",  # never registered
        f"models:/{MODEL_NAME}@nobody",
        "models:/nothing/latest",
    ],
)
def test_what_the_store_does_not_hold_is_mlflows_to_say(
    in_registry: MlflowClient, uri: str
) -> None:
    assert embedded_model_version(get_settings().tracking_uri, uri) is None
    with pytest.raises(Exception) as mlflows:
        resolve_model_version(in_registry, uri)
    with pytest.raises(Exception) as ours:
        find_model_version(uri)
    assert type(ours.value) is type(mlflows.value) and str(ours.value) == str(mlflows.value)


def test_other_stores_and_broken_files_are_handed_to_mlflow(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a SQLite file without MLflow's tables
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    for uri in (
        f"sqlite:///{empty}",
        f"sqlite:///{junk}",
        f"sqlite:///{tmp_path / 'missing.db'}",
        "http://127.0.0.1:9/",
        "postgresql://u@127.0.0.1/db",
    ):
        assert embedded_model_version(uri, "models:/m/1") is None, uri
        assert embedded_logged_model_tags(uri, "m-1") is None, uri
        assert embedded_run_artifacts(uri, "0" * 32) is None, uri


def test_workspaces_turned_on_are_mlflows_to_resolve(
    in_registry: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    assert embedded_model_version(get_settings().tracking_uri, f"models:/{MODEL_NAME}/1") is None
