"""A notebook's tree models, one of them using a function defined in the notebook, trained
under plain papermill (a real kernel), exported and served from a copy in another folder by
a process that never saw the notebook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import mlnb
from mlnb.exceptions import MlnbError
from mlnb.export import export_notebook
from tests.serving import code, running_service, write_notebook

PAPERMILL = str(Path(sys.executable).with_name("papermill"))

TRAIN_CELLS = (
    code("%load_ext mlnb"),
    code("n_estimators = 10", "parameters"),
    code(
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import FunctionTransformer\n"
        "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n\n"
        "def clip_outliers(frame):\n"
        '    """Cap every column at its 99th percentile (defined in the notebook)."""\n'
        "    return frame.clip(upper=frame.quantile(0.99), axis=1)\n\n"
        "forest = RandomForestClassifier(n_estimators, random_state=0).fit(X, y)\n"
        "clipped = make_pipeline(\n"
        "    FunctionTransformer(clip_outliers),\n"
        "    RandomForestClassifier(n_estimators, random_state=1),\n"
        ").fit(X, y)"
    ),
    code("%mlnb model forest --name forest"),
    code("%mlnb model clipped --name clipped"),
)

SERVE_CELLS = (
    code("import mlnb\nimport pandas as pd", "mlnb:export"),
    code(
        'forest = mlnb.load_model("models:/forest/latest")\n'
        'clipped = mlnb.load_model("models:/clipped/latest")\n'
        "FEATURES = list(forest.feature_names_in_)",
        "mlnb:export",
    ),
    code(
        "def predict(df: pd.DataFrame) -> list[int]:\n"
        "    return forest.predict(df[FEATURES]).tolist()\n\n\n"
        "@mlnb.endpoint('/clipped')\n"
        "def clipped_predict(df: pd.DataFrame) -> list[int]:\n"
        "    return clipped.predict(df[FEATURES]).tolist()",
        "mlnb:export",
    ),
    code(
        "from sklearn.datasets import load_breast_cancer\n"
        "example = load_breast_cancer(as_frame=True).data.head(3)",
        "mlnb:example",
    ),
)


def _outputs(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    return "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )


def test_tree_models_and_notebook_code_are_exported_and_served(
    project: Path, tmp_path: Path
) -> None:
    train = write_notebook(project / "train.ipynb", *TRAIN_CELLS)
    done = subprocess.run(
        [PAPERMILL, str(train), str(project / "out.ipynb"), "-p", "n_estimators", "25"],
        cwd=project,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = _outputs(project / "out.ipynb")
    assert "as skops, trusting sklearn.tree._tree.Tree, registered as models:/forest/1" in printed
    assert "as cloudpickle (carrying __main__.clip_outliers by value;" in printed

    # exported in this process (the export's own check still starts the service in a fresh
    # one); the command line's handling of these errors is tested with the CLI
    serve = write_notebook(project / "serve.ipynb", *SERVE_CELLS)
    with pytest.raises(MlnbError) as refused:
        export_notebook(serve, project / "svc")
    assert "refusing to load the model models:/clipped/1" in str(refused.value), refused.value
    assert "it is cloudpickle" in str(refused.value) and "--allow-pickle" in str(refused.value)
    assert not (project / "svc").exists()
    exported = export_notebook(serve, project / "svc", allow_pickle=True)
    assert set(exported.answers) == {"/predict", "/clipped"}  # the verified start answered
    meta = json.loads((project / "svc" / "mlnb-service.json").read_text())
    assert meta["allow_pickle"] is True
    records = {m["name"]: m["serialization"] for m in meta["models"]}
    assert records["forest"]["format"] == "skops"
    assert records["forest"]["trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert records["clipped"]["format"] == "cloudpickle"

    elsewhere = tmp_path / "elsewhere" / "svc"  # no notebook, no project, no registry
    shutil.copytree(project / "svc", elsewhere)
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).data.iloc[[0, 19, 100, 300]]
    body = {"records": json.loads(rows.to_json(orient="records"))}
    expected = {
        "/predict": mlnb.load_model("models:/forest/1").predict(rows).tolist(),
        "/clipped": mlnb.load_model("models:/clipped/1").predict(rows).tolist(),
    }
    log = tmp_path / "serve.log"
    with running_service(elsewhere, log, MLNB_FOLLOW="off") as service, service.client() as client:
        for path, predictions in expected.items():
            answer = client.post(path, json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == predictions, path
