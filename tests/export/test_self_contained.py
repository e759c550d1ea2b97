"""Exports carry what the exported cells read: a notebook run with plain papermill, whose
exported cells `joblib.load` a model file and `pd.read_csv` a lookup table from folders of the
project and `mlnb.load_version` a config, is exported and served from a copy elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlnb.exceptions import NotebookError
from mlnb.export import export_notebook
from tests.serving import code, project_at, running_service, write_notebook

TRAIN = (
    "import os\nimport joblib\nimport mlnb\n"
    "from sklearn.datasets import load_iris\n"
    "from sklearn.ensemble import RandomForestClassifier\n\n"
    "X, y = load_iris(return_X_y=True, as_frame=True)\n"
    "forest = RandomForestClassifier(n_estimators=n_estimators, random_state=0).fit(X, y)\n"
    "os.makedirs('../models', exist_ok=True)\n"
    "joblib.dump(forest, '../models/forest.joblib')\n"
    "mlnb.version({'prefix': 'iris-'}, name='naming', run=False)"
)
EXPORTED = (
    code(
        "import joblib\nimport mlnb\nimport pandas as pd\nfrom helpers import label",
        "mlnb:export",
    ),
    code(
        "model = joblib.load('../models/forest.joblib')\n"
        "species = pd.read_csv('../data/species.csv').set_index('code')['name']\n"
        "naming = mlnb.load_version('naming')",
        "mlnb:export",
    ),
    code(
        "def predict(df: pd.DataFrame) -> list[str]:\n"
        "    return [label(naming['prefix'], species[c]) for c in model.predict(df)]",
        "mlnb:export",
    ),
    code(
        "from sklearn.datasets import load_iris\n"
        "example = load_iris(as_frame=True).data.iloc[[0, 60, 120]]",
        "mlnb:example",
    ),
)


@dataclass
class Exported:
    root: Path
    folder: Path
    expected: list[str]


def _write_species(root: Path) -> None:
    (root / "data").mkdir()
    (root / "data" / "species.csv").write_text(
        "code,name\n0,setosa\n1,versicolor\n2,virginica\n", encoding="utf-8"
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    import joblib
    import papermill
    from sklearn.datasets import load_iris

    with project_at(tmp_path_factory.mktemp("pinned") / "project") as root:
        _write_species(root)
        (root / "notebooks").mkdir()
        (root / "notebooks" / "helpers.py").write_text(
            "def label(prefix: str, name: str) -> str:\n    return prefix + name\n"
        )
        notebook = write_notebook(
            root / "notebooks" / "forest.ipynb",
            code("n_estimators = 5", "parameters"),
            code(TRAIN),
            *EXPORTED,
        )
        papermill.execute_notebook(
            str(notebook),
            str(root / "notebooks" / "forest-out.ipynb"),
            parameters={"n_estimators": 7},
            cwd=str(notebook.parent),
            progress_bar=False,
        )
        forest = joblib.load(root / "models" / "forest.joblib")
        assert forest.n_estimators == 7  # papermill's value, trained in the kernel
        names = {0: "setosa", 1: "versicolor", 2: "virginica"}
        rows = load_iris(as_frame=True).data.iloc[[0, 60, 120]]
        expected = [f"iris-{names[c]}" for c in forest.predict(rows)]
        # the forest is read with joblib (a pickle): the export must allow it
        result = export_notebook(notebook, root / "build" / "svc", allow_pickle=True)
        assert result.answers["/predict"]["predictions"] == expected
        yield Exported(root, result.folder, expected)


def test_the_files_and_versions_read_are_pinned_by_hash(exported: Exported) -> None:
    from mlnb.versioning import hash_file

    meta = json.loads((exported.folder / "mlnb-service.json").read_text())
    assert meta["workdir"] == "files/notebooks" and meta["sys_path"] == ["files/notebooks"]
    files = {f["source"]: f for f in meta["files"]}
    assert sorted(files) == ["data/species.csv", "models/forest.joblib", "notebooks/helpers.py"]
    for source, item in files.items():
        pinned = exported.folder / item["path"]
        assert item["path"] == f"files/{source}"
        assert pinned.read_bytes() == (exported.root / source).read_bytes()
        assert item["hash"] == hash_file(pinned)
        cell = "cell 4 " if source.endswith(".py") else "cell 5 "  # the import, the loads
        assert item["read_by"].startswith(cell)
    (version,) = meta["versions"]
    assert (version["ref"], version["resolved"], version["kind"]) == (
        "naming",
        "naming@1",
        "config",
    )
    assert json.loads((exported.folder / version["path"]).read_text()) == {"prefix": "iris-"}
    code_text = (exported.folder / "service.py").read_text()
    assert "joblib.load('../models/forest.joblib')" in code_text  # the user's code, unchanged


def test_a_module_this_process_imported_already_is_pinned_too(exported: Exported) -> None:
    assert "helpers" in sys.modules  # from the first export: importing it again reads nothing
    notebook = exported.root / "notebooks" / "forest.ipynb"
    again = export_notebook(
        notebook, exported.root / "build" / "again", verify=False, allow_pickle=True
    )
    files = {f["source"]: f["read_by"] for f in again.metadata["files"]}
    assert files["notebooks/helpers.py"] == "import helpers"
    assert again.metadata["sys_path"] == ["files/notebooks"]
    shutil.rmtree(exported.root / "build" / "again")


def test_a_copy_elsewhere_serves_without_the_project(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "elsewhere" / "svc"
    shutil.copytree(exported.folder, copy)
    monkeypatch.chdir(tmp_path)
    hidden = exported.root.with_name("project-hidden")
    exported.root.rename(hidden)  # nothing of the project can be read meanwhile
    try:
        with running_service(copy, tmp_path / "service.log") as service, service.client() as http:
            body = json.loads((copy / "example.json").read_text())
            answer = http.post("/predict", json=body)
    finally:
        hidden.rename(exported.root)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == exported.expected


def test_a_tampered_pinned_file_stops_the_service(exported: Exported, tmp_path: Path) -> None:
    copy = tmp_path / "svc"
    shutil.copytree(exported.folder, copy)
    target = copy / "files" / "data" / "species.csv"
    target.write_text(target.read_text().replace("virginica", "virginica-edited"))
    done = subprocess.run(
        [sys.executable, "-m", "mlnb", "serve", str(copy), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 6, done.stderr[-2000:]
    assert f"refusing to start: the pinned file {target} (data/species.csv)" in done.stderr
    assert "does not match the hash recorded at export" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def small(project: Path) -> Path:
    """A project with the lookup table, as the working directory."""
    _write_species(project)
    return project


def _lookup_notebook(root: Path, read: str) -> Path:
    return write_notebook(
        root / "lookup.ipynb",
        code(f"import pandas as pd\nspecies = {read}", "mlnb:export"),
        code(
            "def predict(df: pd.DataFrame) -> list[str]:\n"
            "    return [str(species.iloc[0, 1])] * len(df)",
            "mlnb:export",
        ),
        code("import pandas as pd\nexample = pd.DataFrame({'x': [1.0]})", "mlnb:example"),
    )


def test_a_file_read_outside_the_project_is_refused(small: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "species.csv"
    outside.parent.mkdir()
    shutil.copyfile(small / "data" / "species.csv", outside)
    notebook = _lookup_notebook(small, f"pd.read_csv({str(outside)!r})")
    with pytest.raises(NotebookError) as caught:
        export_notebook(notebook, small / "svc", verify=False)
    message = str(caught.value)
    assert f"read 1 file(s) outside the project {small}: {outside} (read by cell 2" in message
    assert "Copy the file into the project" in message and "mlnb.load_version" in message
    assert not (small / "svc").exists()


def test_an_absolute_path_into_the_project_is_refused(small: Path) -> None:
    absolute = small / "data" / "species.csv"
    notebook = _lookup_notebook(small, f"pd.read_csv({str(absolute)!r})")
    refused = r"spelled from the filesystem's root.*relative to the notebook's folder: 'data/spe"
    with pytest.raises(NotebookError, match=refused):
        export_notebook(notebook, small / "svc", verify=False)
    assert not (small / "svc").exists()


@pytest.mark.usefixtures("processes")  # the export checks its service in a fresh process
def test_a_read_the_trace_cannot_see_fails_the_check_run_from_a_copy(small: Path) -> None:
    """pyarrow opens parquet files in C, through a path built at run time: nothing sees the
    read, and the service, started from a copy outside the project, cannot find the file."""
    import pandas as pd

    pd.read_csv(small / "data" / "species.csv").to_parquet(small / "data" / "species.parquet")
    notebook = _lookup_notebook(
        small, "pd.read_parquet('/'.join(['data', 'species' + '.parquet']))"
    )
    with pytest.raises(NotebookError, match="from a copy of its folder outside the project"):
        export_notebook(notebook, small / "svc")
    assert not (small / "svc").exists()


def test_mlnbs_own_modules_are_never_pinned_even_inside_the_project(tmp_path: Path) -> None:
    """mlnb's repository is a project with mlnb installed editable inside it (``make demo``
    exports from there): the exported cells' imports of mlnb read its sources from inside the
    project root, yet they are the installed package's, not the service's inputs."""
    import mlnb
    from mlnb.export._reads import Read, ReadTrace, pin_reads

    package = Path(mlnb.__file__).resolve().parent
    root = package.parent  # the project holds the mlnb package, as the repository does
    data = root / "pyproject.toml"  # a file of the project the cells read
    trace = ReadTrace()
    for path in (package / "__init__.py", package / "serve" / "__init__.py", data):
        trace.reads[str(path)] = Read(str(path), path.name, "cell 1")
    pinned = pin_reads(trace, tmp_path / "service", root, root, ignore=[])
    sources = [f["source"] for f in pinned["files"]]
    assert "pyproject.toml" in sources  # the project's own file is pinned ...
    # ... and none of mlnb's, read or imported (the modules this process loaded count too)
    assert not [s for s in sources if s.startswith("mlnb/")], sources
    assert not (tmp_path / "service" / "files" / "mlnb").exists()
