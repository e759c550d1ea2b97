"""`mlnb export` on real notebooks, a real registry and a real service process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlnb.exceptions import NotebookError
from mlnb.export import export_notebook
from tests.conftest import _ENV_KEYS, reset_tracking
from tests.conftest import run_mlnb as _cli
from tests.serving import SERVE_CELLS, code, registered_project, write_notebook


@pytest.fixture(scope="module")
def model_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose registry holds the example model `bc` (module-wide: training once)."""
    with registered_project(tmp_path_factory.mktemp("export") / "project") as root:
        yield root


@pytest.fixture
def in_project(model_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(model_project)
    for key in _ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    reset_tracking()
    return model_project


def test_export_writes_a_verified_service_with_the_model_pinned(in_project: Path) -> None:
    notebook = write_notebook(in_project / "serve.ipynb", *SERVE_CELLS)
    done = _cli(in_project, "export", str(notebook), "-o", "svc", "--parity")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "endpoint  POST /predict  (dataframe, from predict)" in done.stdout
    assert "verified  POST /predict with the example -> 200" in done.stdout
    assert "parity    the service answers as the notebook's own predict(example)" in done.stdout
    svc = in_project / "svc"
    assert sorted(p.name for p in svc.iterdir()) == [
        "Dockerfile",
        "example.json",
        "mlnb-service.json",
        "model",
        "requirements.txt",
        "service.py",
    ]
    meta = json.loads((svc / "mlnb-service.json").read_text())
    (model,) = meta["models"]
    assert (model["uri"], model["resolved"], model["version"]) == (
        "models:/bc/latest",
        "models:/bc/1",
        "1",
    )
    assert len(model["hash"]) == 64 and (svc / model["path"] / "MLmodel").is_file()
    assert meta["source_run_id"] == model["run_id"]
    assert meta["notebook"]["path"] == "serve.ipynb"  # from the project root
    assert meta["allow_pickle"] is False and "signature" not in meta
    assert len(meta["notebook"]["hash"]) == 64
    assert [c["index"] for c in meta["cells"]] == [1, 2, 3]
    (endpoint,) = meta["endpoints"]
    columns = endpoint["schema"]["columns"]
    assert len(columns) == 30 and columns[0] == {
        "name": "mean radius",
        "dtype": "float64",
        "type": "float",
        "nullable": False,
    }
    code_text = (svc / "service.py").read_text()
    assert "# %% [cell 3] mlnb:export" in code_text and "def predict(df: pd.DataFrame)" in code_text
    assert "never runs in the service" not in code_text  # mlnb:skip
    requirements = (svc / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("pandas==") for r in requirements)
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert "mlnb[serve]==" in (svc / "requirements.txt").read_text()
    assert json.loads((svc / "example.json").read_text())["records"][0]["mean radius"] == 17.99
    assert 'CMD ["mlnb", "serve"' in (svc / "Dockerfile").read_text()
    from mlnb.tracking import lineage
    from mlnb.versioning import render_lineage

    doc = lineage("bc")  # the registered model's version record: what uses it
    service = {"service": str(svc), "run_id": f"service:{svc}", "run_name": None, "wrote": []}
    assert service in doc["downstream"]
    assert f"-> served by the exported service {svc}" in render_lineage(doc)


def test_an_export_from_the_embedded_store_never_imports_mlflow(in_project: Path) -> None:
    """Resolving, copying and checking the model, its profile and lineage are read from the
    project's SQLite store directly: MLflow's import and store opening cost more than the
    rest of the export."""
    notebook = write_notebook(in_project / "serve.ipynb", *SERVE_CELLS)
    done = _cli(in_project, "export", str(notebook), "-o", "svc-light", PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "skops.io" in imported  # the import log is read (the model's loader is in it)
    assert not {m for m in imported if m == "mlflow" or m.startswith("mlflow.")}
    meta = json.loads((in_project / "svc-light" / "mlnb-service.json").read_text())
    assert meta["models"][0]["resolved"] == "models:/bc/1"


def test_a_relative_output_for_a_notebook_in_a_subfolder(in_project: Path) -> None:
    """`mlnb export notebooks/serve.ipynb -o build/service` from the project root (what
    `make demo` does): the check runs the cells in notebooks/, where the relative output
    folder is not; the pinned model must still be found."""
    (in_project / "notebooks").mkdir(exist_ok=True)
    notebook = write_notebook(in_project / "notebooks" / "serve.ipynb", *SERVE_CELLS)
    result = export_notebook(notebook.relative_to(in_project), Path("build") / "svc", verify=False)
    assert (in_project / "build" / "svc" / "mlnb-service.json").is_file()
    meta = result.metadata
    assert meta["notebook"]["path"] == "notebooks/serve.ipynb"
    assert (in_project / "build" / "svc" / meta["models"][0]["path"] / "MLmodel").is_file()


def test_an_existing_folder_is_kept_without_force(in_project: Path) -> None:
    notebook = write_notebook(in_project / "force.ipynb", *SERVE_CELLS)
    target = in_project / "svc-force"
    export_notebook(notebook, target, verify=False)
    first = json.loads((target / "mlnb-service.json").read_text())["exported_at"]
    with pytest.raises(NotebookError, match="already exists; pass --force"):
        export_notebook(notebook, target, verify=False)
    export_notebook(notebook, target, force=True, verify=False)
    assert (target / "mlnb-service.json").exists()
    assert json.loads((target / "mlnb-service.json").read_text())["exported_at"] >= first
    other = in_project / "not-an-export"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(NotebookError, match="is not an mlnb export"):
        export_notebook(notebook, other, force=True, verify=False)
    assert (other / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ((code("x = 1"),), "has no cell tagged mlnb:export"),
        ((code("", "mlnb:export"),), "cell 2 is tagged mlnb:export but empty"),
        ((code("x = 1", "mlnb:exprot"),), "unknown tag 'mlnb:exprot'"),
        (
            (
                code("import pandas as pd\nmodel = object()"),
                code("def predict(df: pd.DataFrame):\n    return model.predict(df)", "mlnb:export"),
            ),
            r"name 'model' is used by cell 3 .* defined in cell 2 .* not tagged mlnb:export; "
            r"tag cell 2 .* mlnb.load_model",
        ),
        (
            (code("def predict(df):\n    return [1] * len(df)", "mlnb:export"),),
            "predict has no type hints and there is no example",
        ),
        (
            (code("import mlnb\nmodel = mlnb.load_model('models:/nope/3')", "mlnb:export"),),
            r"model URI 'models:/nope/3' does not resolve",
        ),
        ((code("def helper():\n    return 1", "mlnb:export"),), "define no endpoint"),
        (
            (
                code(
                    "import pandas as pd\ndef predict(df: pd.DataFrame):\n    return df",
                    "mlnb:export",
                ),
                code("frame = 1", "mlnb:example"),
            ),
            "does not set a variable named `example`",
        ),
        ((code("def predict(x: int) -> int\n    return x", "mlnb:export"),), "is not valid Python"),
    ],
)
def test_bad_notebooks_are_refused_and_nothing_is_written(
    in_project: Path, cells: tuple[object, ...], message: str
) -> None:
    notebook = write_notebook(in_project / "bad.ipynb", *cells)
    target = in_project / "svc-bad"
    with pytest.raises(NotebookError, match=message):
        export_notebook(notebook, target)
    assert not target.exists()
    assert not [p for p in in_project.iterdir() if p.name.startswith(".svc-bad-")]


def test_a_missing_or_broken_notebook(in_project: Path) -> None:
    with pytest.raises(NotebookError, match="does not exist"):
        export_notebook(in_project / "nope.ipynb", in_project / "x")
    broken = in_project / "broken.ipynb"
    broken.write_text("{not json")
    done = _cli(in_project, "export", str(broken), "-o", "x")
    assert done.returncode == 1
    assert "is not a readable notebook" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.usefixtures("processes")  # the export checks its service in a fresh process
def test_parity_catches_code_the_service_does_not_have(in_project: Path) -> None:
    notebook = write_notebook(
        in_project / "drift.ipynb",
        code("import pandas as pd\nSCALE = 1", "mlnb:export"),
        code(
            "def predict(df: pd.DataFrame) -> list[float]:\n    return (df['x'] * SCALE).tolist()",
            "mlnb:export",
        ),
        code("example = pd.DataFrame({'x': [1.0, 2.0]})", "mlnb:example"),
        code("SCALE = 2  # changed in an untagged cell: the service never sees it"),
    )
    with pytest.raises(NotebookError, match="--parity: the service's predictions differ"):
        export_notebook(notebook, in_project / "svc-drift", parity=True)
    assert not (in_project / "svc-drift").exists()


@pytest.mark.usefixtures("processes")  # the export checks its service in a fresh process
def test_typed_endpoints_from_pydantic_models_and_primitives(in_project: Path) -> None:
    notebook = write_notebook(
        in_project / "typed.ipynb",
        code(
            "import mlnb\nfrom pydantic import BaseModel\n\n"
            "class Loan(BaseModel):\n    amount: float\n    years: int\n\n"
            "class Quote(BaseModel):\n    monthly: float\n\n"
            "@mlnb.endpoint('/quote')\ndef quote(loan: Loan) -> Quote:\n"
            "    return Quote(monthly=round(loan.amount / (12 * loan.years), 2))\n\n"
            "@mlnb.endpoint('/double')\ndef double(x: int, label: str = 'n') -> dict[str, int]:\n"
            "    return {label: 2 * x}",
            "mlnb:export",
        ),
        code("example = {'amount': 1200.0, 'years': 1}", "mlnb:example"),
    )
    result = export_notebook(notebook, in_project / "svc-typed")
    assert result.answers["/quote"] == {"monthly": 100.0}
    kinds = {e["path"]: e["kind"] for e in result.metadata["endpoints"]}
    assert kinds == {"/double": "typed", "/quote": "typed"}
