"""An interactive session as JupyterLab drives a kernel: ``JPY_SESSION_NAME`` names the
notebook, each execute request carries the cell's id, cells run out of order and are
edited without saving, and the session ends with a shutdown request."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from mlflow import MlflowClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlnb.config import get_settings
from tests.conftest import settle_journal

CELLS = {
    "load": "%load_ext mlnb",
    "params": "lr = 0.1\nepochs = 2",
    "train": "score = lr * 10\n%mlnb metrics score",
    "other": "x = 1",
}


@pytest.fixture
def kernel(project: Path) -> Iterator[tuple[KernelManager, Any, Path]]:
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Interactive"),
            new_code_cell(CELLS["load"]),
            new_code_cell(CELLS["params"], metadata={"tags": ["parameters"]}),
            new_code_cell(CELLS["train"]),
            new_code_cell(CELLS["other"]),
        ]
    )
    for cell, cell_id in zip(nb.cells, ["title", *CELLS], strict=True):
        cell["id"] = cell_id
    path = project / "analysis.ipynb"
    nbformat.write(nb, path)
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(project), env={**os.environ, "JPY_SESSION_NAME": str(path)})
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    yield km, kc, path
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=True)


def _send(
    kc: Any, code: str, silent: bool = False, *, cell_id: str | None = None, **expressions: str
) -> str:
    """An execute request (with the cell's id in its metadata, as JupyterLab sends it);
    returns its message id."""
    content = {
        "code": code,
        "silent": silent,
        "store_history": not silent,
        "user_expressions": expressions,
        "allow_stdin": False,
        "stop_on_error": True,
    }
    metadata = {"cellId": cell_id} if cell_id is not None else {}
    msg = kc.session.msg("execute_request", content, metadata=metadata)
    kc.shell_channel.send(msg)
    return str(msg["header"]["msg_id"])


def _reply(kc: Any, msg_id: str) -> dict[str, Any]:
    """The reply to request ``msg_id``, which must be ``ok``."""
    while True:
        reply = kc.get_shell_msg(timeout=180)
        if reply["parent_header"].get("msg_id") == msg_id:
            assert reply["content"]["status"] == "ok", reply["content"]
            return dict(reply["content"])


def _execute(kc: Any, code: str, cell_id: str) -> dict[str, Any]:
    """Run ``code`` as cell ``cell_id``, as JupyterLab does, and wait for its reply."""
    return _reply(kc, _send(kc, code, cell_id=cell_id))


def test_interactive_session_is_recorded_with_ids_order_and_live_sources(
    kernel: tuple[KernelManager, Any, Path], project: Path
) -> None:
    km, kc, _ = kernel
    for cell_id in ("load", "params", "train", "other"):
        _execute(kc, CELLS[cell_id], cell_id)
    _execute(kc, "score = lr * 100  # edited, not saved\n%mlnb metrics score", "train")
    km.shutdown_kernel()  # graceful: a shutdown request, as JupyterLab sends
    settle_journal(project)

    client = MlflowClient(get_settings().tracking_uri)
    experiment = client.get_experiment_by_name("analysis")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1", "epochs": "2"}
    history = client.get_metric_history(run.info.run_id, "score")
    assert sorted(m.value for m in history) == [1.0, 10.0]
    tags = run.data.tags
    assert tags["mlnb.runner"] == "jupyter"
    assert tags["mlflow.source.name"] == "analysis.ipynb"
    assert tags["mlnb.execution.out_of_order"] == "true"  # "train" ran again after "other"
    assert tags["mlnb.execution.reexecuted_cells"] == "train"

    download = project / "download"
    code = Path(client.download_artifacts(run.info.run_id, "mlnb/code.py", str(download)))
    text = code.read_text()
    assert "cell_id=params" in text and "cell_id=other" in text
    assert text.index("x = 1") < text.index("edited, not saved")
    snapshot = nbformat.read(
        client.download_artifacts(run.info.run_id, "mlnb/notebook.ipynb", str(download)),
        as_version=4,
    )
    by_id = {c["id"]: c for c in snapshot.cells}
    assert "edited, not saved" in by_id["train"].source
    assert by_id["train"].execution_count == 5
    assert by_id["params"].execution_count == 2
    assert snapshot.cells[0].cell_type == "markdown"


WARM = "mlflow.pyfunc skops.io mlflow.sklearn"
IMPORTED = f"[m for m in {WARM.split()!r} if m in __import__('sys').modules]"
TRAIN = (
    "from sklearn.datasets import load_iris\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "X, y = load_iris(return_X_y=True, as_frame=True)\n"
    "clf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)"
)


def _imported(kc: Any) -> list[str]:
    """What of the warm-up is imported, asked with a silent request (no cell, so the
    kernel stays idle for mlnb)."""
    content = _reply(kc, _send(kc, "", silent=True, w=IMPORTED))
    value = content["user_expressions"]["w"]
    assert value["status"] == "ok", value
    return list(eval(value["data"]["text/plain"]))  # a list of str, printed by the kernel


def test_model_logging_warms_up_while_the_kernel_is_idle_and_never_between_queued_cells(
    kernel: tuple[KernelManager, Any, Path], project: Path
) -> None:
    _, kc, _ = kernel
    # Queued at once, as papermill runs a notebook: no idle moment between the cells, so
    # nothing is imported beside them (the cost would only move, not go).
    ids = [_send(kc, "%load_ext mlnb"), _send(kc, TRAIN), _send(kc, "after = 1")]
    ids.append(_send(kc, "", silent=True, w=IMPORTED))
    for msg_id in ids[:-1]:
        _reply(kc, msg_id)
    seen_between = _reply(kc, ids[-1])["user_expressions"]["w"]["data"]["text/plain"]
    assert eval(seen_between) == [], "warmed up between cells that followed each other"

    # Idle (a person reading the output): the kernel imports what the first model needs.
    deadline = time.monotonic() + 180
    while _imported(kc) != WARM.split():
        assert time.monotonic() < deadline, f"not warmed up after idling: {_imported(kc)}"
        time.sleep(0.5)
    content = _reply(kc, _send(kc, "%mlnb model clf --name idle-forest"))
    assert content["status"] == "ok"
    client = MlflowClient(get_settings().tracking_uri)
    (version,) = client.search_model_versions("name='idle-forest'")
    assert version.run_id
