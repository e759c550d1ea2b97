"""The README's demo: notebooks/train.ipynb (run twice under plain papermill) registers two
versions and writes notebooks/data/holdout.csv; the gates then compare them on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlnb.cli import main
from tests.conftest import NOTEBOOKS
from tests.gates.conftest import champion

PAPERMILL = str(Path(sys.executable).with_name("papermill"))
MODEL = "breast-cancer-classifier"


def test_train_notebook_writes_the_holdout_the_gates_use(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = project / "notebooks" / "train.ipynb"
    notebook.parent.mkdir()
    shutil.copy(NOTEBOOKS / "train.ipynb", notebook)
    for C in ("1.0", "0.5"):
        done = subprocess.run(
            [PAPERMILL, str(notebook), str(project / "out.ipynb"), "-p", "C", C,
             "--log-level", "WARNING"],
            cwd=project, env=os.environ.copy(), capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    holdout = project / "notebooks" / "data" / "holdout.csv"
    frame = pd.read_csv(holdout)
    assert len(frame) == 143 and "target" in frame.columns and frame.shape[1] == 31

    assert main(["promote", MODEL, "1", "--yes"]) == 0
    capsys.readouterr()
    code = main(["gates", f"models:/{MODEL}/2", "--against", "champion",
                 "--data", "notebooks/data/holdout.csv", "--target", "target"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"models:/{MODEL}@champion (models:/{MODEL}/1)" in out
    assert "PASS  regression" in out and "143 rows" in out
    assert champion(MODEL) == "1"
