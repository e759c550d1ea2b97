"""The cell recorder on its own: parameters, papermill's injected cell, order, snapshots."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlnb.tracking import CellRecorder, assigned_names, locate_notebook


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("a = 1\nb: int = 2\nc, (d, e) = 3, (4, 5)", ["a", "b", "c", "d", "e"]),
        ("x = y = 0\nx += 1", ["x", "y"]),
        ("%load_ext mlnb\nlr = 0.1  # comment", ["lr"]),
        ("def f():\n    inner = 1\nobj.attr = 2\nd['k'] = 3", []),
        ("this is not python", []),
    ],
)
def test_assigned_names(source: str, names: list[str]) -> None:
    assert assigned_names(source) == names


def _run(recorder: CellRecorder, source: str, cell_id: str | None = None, error: bool = False):
    count = len(recorder.cells) + 1
    recorder.pre_cell(source, cell_id, count)
    return recorder.post_cell(ValueError("boom") if error else None)


def test_papermill_injected_cell_names_params_and_injected() -> None:
    recorder = CellRecorder()
    _run(recorder, "%load_ext mlnb")
    params = _run(recorder, "lr = 0.01\nepochs = 3")
    assert recorder.parameter_names(params) is None  # not known until papermill's cell runs
    injected = _run(recorder, "# Parameters\nlr = 0.5\n")
    assert recorder.parameter_names(injected) == (["epochs", "lr"], ["lr"])


def test_injected_cell_without_a_parameters_cell() -> None:
    recorder = CellRecorder()
    injected = _run(recorder, "# Parameters\nalpha = 2\n")
    assert recorder.parameter_names(injected) == (["alpha"], ["alpha"])


def _notebook(path: Path) -> Path:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# title"),
            new_code_cell("%load_ext mlnb"),
            new_code_cell("lr = 0.1\nseed = 1", metadata={"tags": ["parameters"]}),
            new_code_cell("y = lr * 2"),
            new_code_cell("z = y + 1"),
        ]
    )
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i}"
    nbformat.write(nb, path)
    return path


def test_tagged_parameters_cell_found_through_the_notebook_file(tmp_path: Path) -> None:
    recorder = CellRecorder()
    recorder.notebook_path = _notebook(tmp_path / "nb.ipynb")
    _run(recorder, "%load_ext mlnb", "c1")
    # JupyterLab sends the cell id; papermill does not: both must be recognized.
    by_id = _run(recorder, "lr = 0.1\nseed = 1", "c2")
    assert recorder.parameter_names(by_id) == (["lr", "seed"], [])
    by_source = _run(recorder, "lr = 0.1\nseed = 1")
    assert recorder.parameter_names(by_source) == (["lr", "seed"], [])
    other = _run(recorder, "y = lr * 2")
    assert recorder.parameter_names(other) is None
    assert recorder.resolved_id(other) == "c3"


def test_in_order_run_has_no_flags(tmp_path: Path) -> None:
    recorder = CellRecorder()
    recorder.notebook_path = _notebook(tmp_path / "nb.ipynb")
    for cid, src in [("c1", "%load_ext mlnb"), ("c2", "lr = 0.1\nseed = 1"), ("c3", "y = lr * 2")]:
        _run(recorder, src, cid)
    assert recorder.execution_flags() == {
        "reexecuted": [],
        "reexecuted_without_id": 0,
        "out_of_order": False,
    }


def test_out_of_order_and_reexecuted_cells_are_flagged(tmp_path: Path) -> None:
    recorder = CellRecorder()
    recorder.notebook_path = _notebook(tmp_path / "nb.ipynb")
    _run(recorder, "z = y + 1", "c4")
    _run(recorder, "y = lr * 2", "c3")
    _run(recorder, "y = lr * 3", "c3")  # edited and run again
    flags = recorder.execution_flags()
    assert flags["out_of_order"] is True
    assert flags["reexecuted"] == ["c3"]


def test_without_a_notebook_file_order_is_unknown_but_repeats_are_seen() -> None:
    recorder = CellRecorder()
    _run(recorder, "a = 1")
    _run(recorder, "a = 1")
    flags = recorder.execution_flags()
    assert flags["out_of_order"] is None
    assert flags["reexecuted_without_id"] == 1


def test_code_text_lists_cells_in_execution_order_with_ids_and_errors(tmp_path: Path) -> None:
    recorder = CellRecorder()
    recorder.notebook_path = _notebook(tmp_path / "nb.ipynb")
    recorder.backfill(["import os"])
    _run(recorder, "y = lr * 2", "c3")
    _run(recorder, "# Parameters\nlr = 5\n")
    _run(recorder, "1/0", error=True)
    text = recorder.code_text()
    assert text.index("import os") < text.index("y = lr * 2") < text.index("lr = 5")
    assert "(ran before mlnb was loaded)" in text
    assert "cell_id=c3" in text
    assert "(papermill injected parameters)" in text
    assert "ERROR ValueError: boom" in text


def test_snapshot_has_the_live_sources_not_the_saved_ones(tmp_path: Path) -> None:
    recorder = CellRecorder()
    recorder.notebook_path = _notebook(tmp_path / "nb.ipynb")
    _run(recorder, "y = lr * 2", "c3")
    _run(recorder, "y = lr * 100  # edited, not saved", "c3")
    _run(recorder, "scratch = 1", "new-cell")
    nb = nbformat.from_dict(recorder.snapshot())
    nbformat.validate(nb)
    sources = [c.source for c in nb.cells]
    assert "y = lr * 100  # edited, not saved" in sources
    assert "y = lr * 2" not in sources
    assert sources[-1] == "scratch = 1"
    assert nb.cells[-1].metadata["mlnb"] == {"not_in_saved_notebook": True}
    assert nb.cells[0].cell_type == "markdown"  # the saved structure is kept


def test_snapshot_without_a_file_is_the_executed_cells() -> None:
    recorder = CellRecorder()
    _run(recorder, "a = 1")
    _run(recorder, "b = a + 1")
    nb = nbformat.from_dict(recorder.snapshot())
    nbformat.validate(nb)
    assert [c.source for c in nb.cells] == ["a = 1", "b = a + 1"]


def test_locate_notebook_from_environment_and_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _notebook(tmp_path / "nb.ipynb")
    monkeypatch.delenv("MLNB_NOTEBOOK", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert locate_notebook({}) is None
    assert locate_notebook({"__session__": str(path)}) == path
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    assert locate_notebook({}) == path
    monkeypatch.setenv("MLNB_NOTEBOOK", str(tmp_path / "missing.ipynb"))
    assert locate_notebook({}) == path  # a path that does not exist is passed over


def test_a_parameters_cell_that_starts_with_a_parameters_comment_is_not_injected(
    tmp_path: Path,
) -> None:
    nb = new_notebook(
        cells=[
            new_code_cell(
                "# Parameters: papermill overrides these\nlr = 0.1",
                metadata={"tags": ["parameters"]},
            ),
            new_code_cell("y = lr"),
        ]
    )
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    recorder = CellRecorder()
    recorder.notebook_path = path
    own = _run(recorder, "# Parameters: papermill overrides these\nlr = 0.1")
    assert recorder.parameter_names(own) == (["lr"], [])
    injected = _run(recorder, "# Parameters\nlr = 0.5\n")
    assert recorder.parameter_names(injected) == (["lr"], ["lr"])
    assert recorder.code_text().count("(papermill injected parameters)") == 1
