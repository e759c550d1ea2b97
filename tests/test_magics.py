"""The %mlnb magic and the extension's hooks, in a real IPython shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from mlflow import MlflowClient
from nbformat.v4 import new_code_cell, new_notebook

from mlnb.config import get_settings
from mlnb.tracking import session


def _client() -> MlflowClient:
    return MlflowClient(get_settings().tracking_uri)


def _cell(ip: Any, source: str, cell_id: str | None = None) -> Any:
    result = ip.run_cell(source, store_history=True, cell_id=cell_id)
    result.raise_error()
    return result


def _artifact_text(run_id: str, path: str, dst: Path) -> str:
    return Path(_client().download_artifacts(run_id, path, str(dst))).read_text()


def test_help_shows_every_subcommand_with_its_arguments(shell: Any) -> None:
    doc = shell.find_line_magic("mlnb").__doc__
    for expected in (
        "%mlnb start",
        "--experiment",
        "%mlnb end",
        "%mlnb params",
        "%mlnb metrics",
        "--step",
        "%mlnb tag",
        "%mlnb artifact",
        "%mlnb model",
        "--name REGISTERED_NAME",
        "%mlnb status",
    ):
        assert expected in doc


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("frobnicate", "unknown %mlnb subcommand 'frobnicate'"),
        ("start --bogus", "unrecognized arguments: --bogus"),
        ("model clf", "the following arguments are required: --name"),
        ("params", "the following arguments are required: NAME"),
        ("params not_defined", "name 'not_defined' is not defined in the notebook"),
        ("tag novalue", "'novalue' is not KEY=VALUE"),
        ("artifact missing.csv", "'missing.csv' does not exist"),
        ("metrics --step x m", "invalid int value: 'x'"),
        ("end --status WEIRD", "invalid choice: 'WEIRD'"),
    ],
)
def test_bad_arguments_are_one_usage_error(shell: Any, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        shell.run_line_magic("mlnb", line)


def test_a_value_that_cannot_be_logged_keeps_the_run(shell: Any) -> None:
    _cell(shell, "import pandas as pd\nframe = pd.DataFrame({'a': [1, 2]})\ngood = 0.5")
    shell.run_line_magic("mlnb", "metrics good")
    with pytest.raises(UsageError, match="metric 'frame' must be a number, got a DataFrame"):
        shell.run_line_magic("mlnb", "metrics frame")
    run = session().run
    shell.run_line_magic("mlnb", "end")
    assert _client().get_run(run.run_id).data.metrics == {"good": 0.5}


def test_full_session_records_everything(
    shell: Any, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cell(shell, "alpha = 0.3\nname = 'baseline'\nsteps = 4", "cell-a")
    shell.run_line_magic("mlnb", "start --experiment magics --name first")
    _cell(shell, "%mlnb params alpha name", "cell-b")
    _cell(shell, "loss = 0.25\n%mlnb metrics loss --step 2", "cell-c")
    _cell(shell, "%mlnb tag stage=dev 'note=two words'", "cell-d")
    (project / "out.txt").write_text("result")
    _cell(shell, "%mlnb artifact out.txt", "cell-e")
    _cell(
        shell,
        "from sklearn.linear_model import LogisticRegression\n"
        "clf = LogisticRegression().fit([[0], [1], [0], [1]], [0, 1, 0, 1])",
        "cell-f",
    )
    _cell(shell, "%mlnb model clf --name magic-clf", "cell-g")
    shell.run_line_magic("mlnb", "status")
    run = session().run
    assert run is not None
    run_id = run.run_id
    shell.run_line_magic("mlnb", "end")
    out = capsys.readouterr().out
    assert "started run first" in out
    assert "registered as models:/magic-clf/1" in out
    assert "tracking   sqlite:///" in out
    assert f"ended run first ({run_id})" in out

    client = _client()
    data = client.get_run(run_id).data
    assert data.params == {"alpha": "0.3", "name": "baseline"}
    assert client.get_metric_history(run_id, "loss")[0].step == 2
    assert data.tags["stage"] == "dev" and data.tags["note"] == "two words"
    assert data.tags["mlnb.runner"] == "jupyter"
    assert [str(v.version) for v in client.search_model_versions("name='magic-clf'")] == ["1"]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "out.txt" in artifacts

    code = _artifact_text(run_id, "mlnb/code.py", project / "dl1")
    assert code.index("alpha = 0.3") < code.index("%mlnb params alpha name")
    assert "cell_id=cell-c" in code
    provenance = json.loads(_artifact_text(run_id, "mlnb/provenance.json", project / "dl2"))
    where = {(r["kind"], r["key"]): r.get("cell_id") for r in provenance["records"]}
    assert where[("metric", "loss")] == "cell-c"
    assert where[("param", "alpha")] == "cell-b"
    assert where[("tag", "stage")] == "cell-d"
    assert where[("model", "model")] == "cell-g"
    assert where[("artifact", "out.txt")] == "cell-e"
    snapshot = nbformat.reads(
        _artifact_text(run_id, "mlnb/notebook.ipynb", project / "dl3"), as_version=4
    )
    assert any(c.source == "loss = 0.25\n%mlnb metrics loss --step 2" for c in snapshot.cells)


def test_parameters_cell_of_the_notebook_file_is_logged(
    shell: Any, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext mlnb"),
            new_code_cell("lr = 0.05\nepochs = 3", metadata={"tags": ["parameters"]}),
            new_code_cell("score = lr * epochs\n%mlnb metrics score"),
        ]
    )
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"id{i}"
    nbformat.write(nb, project / "exp.ipynb")
    monkeypatch.setenv("MLNB_NOTEBOOK", str(project / "exp.ipynb"))
    shell.extension_manager.unload_extension("mlnb")
    shell.run_line_magic("load_ext", "mlnb")  # picks up MLNB_NOTEBOOK
    _cell(shell, "lr = 0.05\nepochs = 3", "id1")
    _cell(shell, "score = lr * epochs\n%mlnb metrics score", "id2")
    run = session().run
    assert run is not None
    # Re-running the edited parameters cell inside the same run keeps the first value.
    _cell(shell, "lr = 0.5\nepochs = 3", "id1")
    shell.run_line_magic("mlnb", "end")
    run_id = run.run_id  # the MLflow id: the run exists in the store once ended
    client = _client()
    got = client.get_run(run_id)
    assert got.data.params == {"lr": "0.05", "epochs": "3"}
    assert client.get_experiment(got.info.experiment_id).name == "exp"
    assert got.data.tags["mlflow.source.name"] == "exp.ipynb"
    assert got.data.tags["mlflow.source.type"] == "NOTEBOOK"
    assert got.data.tags["mlnb.execution.reexecuted_cells"] == "id1"
    # The next run records the current values.
    _cell(shell, "%mlnb start")
    second = session().run
    shell.run_line_magic("mlnb", "end")
    assert client.get_run(second.run_id).data.params == {"lr": "0.5", "epochs": "3"}


def test_start_ends_the_active_run_first(shell: Any) -> None:
    shell.run_line_magic("mlnb", "start --name one")
    first = session().run
    shell.run_line_magic("mlnb", "start --name two")
    second = session().run
    shell.run_line_magic("mlnb", "end")
    client = _client()
    assert first.run_id != second.run_id
    assert client.get_run(first.run_id).info.status == "FINISHED"
    assert client.get_run(second.run_id).info.status == "FINISHED"


def test_seed_magic(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("mlnb", "seed 11")
    assert "seeded random" in capsys.readouterr().out
    shell.run_line_magic("mlnb", "start")
    run = session().run
    shell.run_line_magic("mlnb", "end")
    assert _client().get_run(run.run_id).data.tags["mlnb.seed"] == "11"
