"""Export errors as a notebook user reads them: the cell by its position counted from 1 (as
the user counts the cells in JupyterLab), its execution count ``[5]`` and its first line,
never its hidden id; the cause first, then what it stopped, then the fix. The same text
reaches the command line and JupyterLab's dialog (which also gets the cell's position)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlnb.exceptions import NotebookError
from mlnb.export import export_notebook, read_plan
from mlnb.export._plan import cell_label
from mlnb.export._verify import log_cause
from tests.conftest import run_mlnb


def _notebook(path: Path, *cells: Any) -> Path:
    nb = new_notebook(cells=[new_markdown_cell("# service"), *cells])
    nbformat.write(nb, path)
    return path


def _ran(source: str, count: int | None, *tags: str) -> Any:
    """A code cell as JupyterLab saves it after running it (``[count]`` in its prompt)."""
    cell = new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell.execution_count = count
    return cell


def test_a_cell_is_named_by_position_prompt_and_first_line() -> None:
    cell = {"cell_type": "code", "execution_count": 5, "id": "a1b2c3", "source": "\n  x = 1\n"}
    assert cell_label(6, cell) == 'cell 7 [5] "x = 1"'
    assert cell_label(0, {**cell, "execution_count": None}) == 'cell 1 "x = 1"'
    assert cell_label(2, {"cell_type": "code", "source": ""}) == "cell 3"
    long = {"cell_type": "code", "source": "model = " + "x" * 80}
    assert cell_label(0, long).endswith('…"') and len(cell_label(0, long)) < 70


def test_an_undefined_name_names_both_cells_and_the_fix(tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path / "nb.ipynb",
        _ran("import pandas as pd", 1, "mlnb:export"),
        _ran("scaler = lambda df: [0] * len(df)", 2),
        _ran(
            "def predict(df: pd.DataFrame) -> list[int]:\n    return scaler(df)", 3, "mlnb:export"
        ),
    )
    with pytest.raises(NotebookError) as caught:
        read_plan(notebook)
    message = str(caught.value)
    assert message.startswith(
        "name 'scaler' is used by cell 4 [3] \"def predict(df: pd.DataFrame) -> list[int]:\" "
        'but it is defined in cell 3 [2] "scaler = lambda df: [0] * len(df)", which is not '
        "tagged mlnb:export; tag cell 3 mlnb:export"
    )
    assert "id" not in message.split(";")[0].split()  # no hidden cell id
    assert caught.value.cell == 3  # the cell's position from 0, for "Go to cell"


def test_a_syntax_error_gives_the_cause_then_the_cell(tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path / "nb.ipynb", _ran("def predict(x: int) -> int\n    return x", 4, "mlnb:export")
    )
    with pytest.raises(NotebookError) as caught:
        read_plan(notebook)
    assert str(caught.value) == (
        "expected ':' at line 1 of cell 2 [4] \"def predict(x: int) -> int\": the cell is not "
        "valid Python; fix the cell."
    )
    assert caught.value.cell == 1


def test_a_cell_failing_in_the_check_gives_the_exception_then_the_line_and_cell(
    project: Path,
) -> None:
    notebook = _notebook(
        project / "boom.ipynb",
        _ran("import pandas as pd", 1, "mlnb:export"),
        _ran("rates = {'a': 1.0}\nscale = rates['b']", 7, "mlnb:export"),
        _ran("def predict(df: pd.DataFrame) -> list[float]:\n    return [scale]", 8, "mlnb:export"),
    )
    with pytest.raises(NotebookError) as caught:
        export_notebook(notebook, project / "svc", verify=False)
    message = str(caught.value)
    assert message.startswith(
        "KeyError: 'b', raised at line 2 of cell 3 [7] \"rates = {'a': 1.0}\" when the export "
        "check ran the cells tagged mlnb:export on their own"
    )
    assert message.endswith("tag the cells this one needs mlnb:export, or make it need none.")
    assert caught.value.cell == 2
    assert not (project / "svc").exists()


def test_the_command_line_shows_the_same_text(project: Path) -> None:
    _notebook(
        project / "cli.ipynb",
        _ran("import pandas as pd", 1, "mlnb:export"),
        _ran("def predict(df: pd.DataFrame):\n    return model.predict(df)", 2, "mlnb:export"),
    )
    done = run_mlnb(project, "export", "cli.ipynb", "-o", "svc")
    assert done.returncode == 1
    assert (
        "name 'model' is used by cell 3 [2] \"def predict(df: pd.DataFrame):\" but no cell "
        "defines it; define or import it in an exported cell"
    ) in done.stderr
    assert "Traceback" not in done.stderr


def test_a_service_log_gives_its_exception_and_the_cell_it_came_from(tmp_path: Path) -> None:
    code = tmp_path / "service.py"
    code.write_text(
        '"""doc"""\nimport mlnb\n\n# %% [cell 2] mlnb:export\nimport pandas as pd\n\n'
        "# %% [cell 5] mlnb:export\nx = 1\ny = open('data/gone.csv')\n"
    )
    log = (
        "Traceback (most recent call last):\n"
        '  File "/x/mlnb/serve/_service.py", line 200, in load\n'
        f'  File "{code}", line 9, in <module>\n'
        "FileNotFoundError: [Errno 2] No such file or directory: 'data/gone.csv'\n"
    )
    cause, cell = log_cause(log, code)
    assert cause == (
        "FileNotFoundError: [Errno 2] No such file or directory: 'data/gone.csv', raised at "
        "line 2 of cell 5"
    )
    assert cell == 4
    assert log_cause("INFO: started\n", code) == (None, None)
