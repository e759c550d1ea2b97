"""The model loading policy and signed exports, on real exports served by real processes:
a pickle swapped in with its hashes recomputed never runs (a marker file it would write is
never created), ``--allow-pickle`` lets a pickled model serve, a signed export verifies and
refuses any change, and nothing of the exporting machine's paths reaches ``/version``,
``/openapi.json``, the MLmodel or ``mlnb-service.json``."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlnb.exceptions import NotebookError
from tests.serving import SERVE_CELLS, code, registered_project, running_service, write_notebook

KEY = "s3cret-signing-k\u00e9y"


class Marker:
    """Unpickling it creates ``path``: what a hostile pickle does at load time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


@dataclass
class Exports:
    root: Path
    plain: Path  # skops model, unsigned
    signed: Path  # skops model, signed with KEY
    notebook: Path


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exports]:
    from mlnb.export import export_notebook

    with registered_project(tmp_path_factory.mktemp("trust") / "project") as root:
        notebook = write_notebook(root / "svc.ipynb", *SERVE_CELLS)
        export_notebook(notebook, root / "plain", verify=False)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLNB_SIGNING_KEY", KEY)
            export_notebook(notebook, root / "signed", verify=False)
        yield Exports(root, root / "plain", root / "signed", notebook)


def _copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy" / source.name
    shutil.copytree(source, target)
    return target


def _manifest(folder: Path) -> dict[str, object]:
    return dict(json.loads((folder / "mlnb-service.json").read_text()))


def _write(folder: Path, manifest: dict[str, object]) -> None:
    (folder / "mlnb-service.json").write_text(json.dumps(manifest, indent=1))


def swap_in_pickle(folder: Path, marker: Path, allow: bool) -> None:
    """What someone who can write the folder does: the model becomes a pickle, and its
    hashes and serialization are recomputed in the manifest so they match."""
    from mlnb.versioning import hash_tree

    manifest = _manifest(folder)
    record = manifest["models"][0]  # type: ignore[index]
    model = folder / record["path"]
    (model / "model.skops").unlink()
    with (model / "model.pkl").open("wb") as fh:
        pickle.dump(Marker(marker), fh)
    mlmodel = (model / "MLmodel").read_text()
    mlmodel = mlmodel.replace("model.skops", "model.pkl").replace(
        "serialization_format: skops", "serialization_format: pickle"
    )
    (model / "MLmodel").write_text(mlmodel)
    digest, entries = hash_tree(model)
    record["hash"] = digest
    record["files"] = [{"path": e.path, "hash": e.hash, "size": e.size} for e in entries]
    record["serialization"] = {"format": "pickle", "flavor": "sklearn", "data": "model.pkl"}
    if allow:
        manifest["allow_pickle"] = True
    _write(folder, manifest)


def _serve_fails(folder: Path, **env: str) -> str:
    """Start ``mlnb serve`` on ``folder``; it must exit non-zero: its output."""
    done = subprocess.run(
        [sys.executable, "-m", "mlnb", "serve", str(folder), "--port", "1"],
        env={**{k: v for k, v in os.environ.items() if k != "MLNB_SIGNING_KEY"}, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0, done.stdout[-2000:]
    return done.stdout + done.stderr


def test_a_swapped_pickle_never_runs_without_a_key(exports: Exports, tmp_path: Path) -> None:
    folder = _copy(exports.plain, tmp_path)
    marker = tmp_path / "pickle-ran"
    swap_in_pickle(folder, marker, allow=False)
    output = _serve_fails(folder)
    assert "refusing to load the model models:/bc/1" in output, output[-2000:]
    assert "it is pickle, which runs code from its files when loaded" in output
    assert "--allow-pickle" in output
    assert not marker.exists()


def test_a_swapped_pickle_with_the_flag_flipped_is_refused_by_the_signature(
    exports: Exports, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlnb.serve import load_service
    from mlnb.serve._signing import SignatureError

    folder = _copy(exports.signed, tmp_path)
    marker = tmp_path / "pickle-ran"
    swap_in_pickle(folder, marker, allow=True)
    output = _serve_fails(folder, MLNB_SIGNING_KEY=KEY)
    assert "the signature of" in output and "does not match its contents" in output, output
    assert not marker.exists()
    monkeypatch.setenv("MLNB_SIGNING_KEY", KEY)
    with pytest.raises(SignatureError, match="manifest was changed after it was signed"):
        load_service(folder)
    assert not marker.exists()


def test_a_signed_export_refuses_every_change(
    exports: Exports, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlnb.serve import load_service
    from mlnb.serve._signing import SignatureError

    monkeypatch.setenv("MLNB_SIGNING_KEY", KEY)
    edited = _copy(exports.signed, tmp_path / "a")
    (edited / "service.py").write_text(
        (edited / "service.py").read_text() + "\nimport os\n", encoding="utf-8"
    )
    with pytest.raises(SignatureError, match=r"service\.py does not match its signed hash"):
        load_service(edited)

    planted = _copy(exports.signed, tmp_path / "b")
    (planted / "pandas.py").write_text("raise SystemExit('planted')\n")
    with pytest.raises(SignatureError, match=r"pandas\.py is not part of the signed export"):
        load_service(planted)

    flipped = _copy(exports.signed, tmp_path / "c")
    manifest = _manifest(flipped)
    manifest["allow_pickle"] = True
    _write(flipped, manifest)
    with pytest.raises(SignatureError, match="does not match its contents"):
        load_service(flipped)

    with pytest.raises(SignatureError, match=r"MLNB_SIGNING_KEY is set but .* is not signed"):
        load_service(exports.plain)

    monkeypatch.setenv("MLNB_SIGNING_KEY", "another key")
    with pytest.raises(SignatureError, match=r"signed with key id [0-9a-f]{16}; MLNB_SIGNING_KEY"):
        load_service(exports.signed)


def _no_local_path(text: str, root: Path, what: str) -> None:
    for form in {str(root), str(root.resolve()), root.resolve().as_uri()}:
        assert form not in text, f"{what} holds the export machine's path {form}"


@pytest.mark.usefixtures("processes")  # the export checks its service in a fresh process
def test_a_signed_copy_verifies_and_shows_nothing_of_the_export_machine(
    exports: Exports, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _copy(exports.signed, tmp_path)
    manifest = _manifest(folder)
    assert manifest["signature"]["algorithm"] == "hmac-sha256"  # type: ignore[index]
    assert manifest["allow_pickle"] is False
    assert manifest["notebook"]["path"] == "svc.ipynb"  # type: ignore[index]
    for path in folder.rglob("*"):
        if path.is_file():
            _no_local_path(path.read_text(errors="replace"), exports.root, str(path))
    body = json.loads((folder / "example.json").read_text())
    log = tmp_path / "signed.log"
    with running_service(folder, log, MLNB_SIGNING_KEY=KEY) as service, service.client() as client:
        version = client.get("/version")
        openapi = client.get("/openapi.json")
        assert client.post("/predict", json=body).status_code == 200
    assert version.json()["signature"]["verified"] is True
    assert version.json()["audit"] == "audit"
    _no_local_path(version.text, exports.root, "/version")
    _no_local_path(openapi.text, exports.root, "/openapi.json")

    from mlnb.serve import load_service

    with caplog.at_level(logging.WARNING, logger="mlnb.serve"):
        unchecked = load_service(folder)  # MLNB_SIGNING_KEY is not set here
    assert unchecked.signature == {
        "signed": True,
        "verified": False,
        "key_id": manifest["signature"]["key_id"],  # type: ignore[index]
    }
    assert "the signature was NOT checked" in caplog.text


def test_an_older_manifest_still_loads_without_its_absolute_path(
    exports: Exports, tmp_path: Path
) -> None:
    from mlnb.serve import load_service

    folder = _copy(exports.plain, tmp_path)
    manifest = _manifest(folder)
    manifest["notebook"] = {**manifest["notebook"], "path": str(exports.notebook)}  # type: ignore[dict-item]
    del manifest["allow_pickle"]
    _write(folder, manifest)
    service = load_service(folder)
    assert service.metadata["notebook"]["path"] == "svc.ipynb"
    assert service.signature == {"signed": False, "verified": False, "key_id": None}


PICKLE_CELLS = (
    code("import mlnb\nimport pandas as pd", "mlnb:export"),
    code(
        'model = mlnb.load_model("models:/bc-pickle/latest")\n'
        "FEATURES = list(model.feature_names_in_)",
        "mlnb:export",
    ),
    code(
        "def predict(df: pd.DataFrame) -> list[int]:\n"
        "    return model.predict(df[FEATURES]).tolist()",
        "mlnb:export",
    ),
    code(
        "from sklearn.datasets import load_breast_cancer\n"
        "example = load_breast_cancer(as_frame=True).data.head(3)",
        "mlnb:example",
    ),
)


@pytest.mark.usefixtures("processes")  # the export checks its service in a fresh process
def test_a_pickled_model_serves_only_with_allow_pickle(exports: Exports) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    import mlnb
    from mlnb.export import export_notebook
    from tests.serving import project_at

    with project_at(exports.root.parent / "pickled") as root:
        X, y = load_breast_cancer(return_X_y=True, as_frame=True)
        mlnb.start_run(experiment_name="train")
        mlnb.log_model(
            LogisticRegression(max_iter=5000).fit(X, y),
            "model",
            registered_model_name="bc-pickle",
            serialization_format="cloudpickle",
        )
        mlnb.end_run()
        notebook = write_notebook(root / "pickled.ipynb", *PICKLE_CELLS)
        with pytest.raises(
            NotebookError, match=r"models:/bc-pickle/1: it is cloudpickle.*--allow-pickle"
        ):
            export_notebook(notebook, root / "svc")
        assert not (root / "svc").exists()
        result = export_notebook(notebook, root / "svc", allow_pickle=True)  # served and asked
    assert result.metadata["allow_pickle"] is True
    assert len(result.answers["/predict"]["predictions"]) == 3


JOBLIB_CELLS = (
    code("import joblib\nimport pandas as pd", "mlnb:export"),
    code('model = joblib.load("models/clf.joblib")', "mlnb:export"),
    code(
        "def predict(df: pd.DataFrame) -> list[int]:\n"
        "    return model.predict(df[list(model.feature_names_in_)]).tolist()",
        "mlnb:export",
    ),
    code(
        "from sklearn.datasets import load_iris\nexample = load_iris(as_frame=True).data.head(2)",
        "mlnb:example",
    ),
)


def test_a_pickled_file_the_code_reads_is_refused_without_allow_pickle(exports: Exports) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlnb.export import export_notebook
    from tests.serving import project_at

    with project_at(exports.root.parent / "joblib") as root:
        X, y = load_iris(return_X_y=True, as_frame=True)
        (root / "models").mkdir()
        joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), root / "models" / "clf.joblib")
        notebook = write_notebook(root / "reads.ipynb", *JOBLIB_CELLS)
        with pytest.raises(
            NotebookError,
            match=r"the pinned file models/clf\.joblib: it is pickle.*--allow-pickle",
        ):
            export_notebook(notebook, root / "svc", verify=False)
        assert not (root / "svc").exists()
        result = export_notebook(notebook, root / "svc", verify=False, allow_pickle=True)
    assert result.metadata["allow_pickle"] is True
    assert [f["source"] for f in result.metadata["files"]] == ["models/clf.joblib"]


def test_a_working_folder_outside_the_service_is_refused(exports: Exports, tmp_path: Path) -> None:
    from mlnb.serve import ServiceError, load_service

    folder = _copy(exports.plain, tmp_path)
    manifest = _manifest(folder)
    manifest["workdir"] = str(exports.root)
    _write(folder, manifest)
    with pytest.raises(ServiceError, match=r"workdir '.*' in mlnb-service.json is outside the"):
        load_service(folder)
    manifest["workdir"], manifest["sys_path"] = "files", ["../.."]
    _write(folder, manifest)
    with pytest.raises(ServiceError, match=r"sys_path '\.\./\.\.' .* is outside the service"):
        load_service(folder)
