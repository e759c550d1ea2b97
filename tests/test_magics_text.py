"""What the %mlnb magic says: a clean ``%mlnb?``, a refused subcommand named with its
usage, MLflow's registry chatter replaced by mlnb's one line, the experiment %mlnb runs
looked in (and where else to look), and no empty FAILED run left by a refused magic."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from nbformat.v4 import new_notebook

from tests.conftest import settle_journal


def test_help_lists_each_subcommand_once_without_rest_markup(shell: Any) -> None:
    doc = shell.find_line_magic("mlnb").__doc__
    lines = doc.splitlines()
    assert "  %mlnb metrics [--step STEP] NAME [NAME ...]" in lines
    assert "      log variables as metrics." in lines
    assert sum(line.startswith("  %mlnb metrics") for line in lines) == 1
    assert not [line for line in lines if line.strip() in {"::", ":"}]
    assert "%_" not in doc and "%%mlnb" not in doc


def test_a_subcommand_without_its_arguments_names_itself_and_its_usage(shell: Any) -> None:
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("mlnb", "metrics")
    assert str(caught.value) == (
        "%mlnb metrics: the following arguments are required: NAME. "
        "Usage: %mlnb metrics [--step STEP] NAME [NAME ...] (see %mlnb?)"
    )


def test_a_missing_file_names_the_working_directory(shell: Any, project: Path) -> None:
    with pytest.raises(UsageError, match=f"working directory {project}"):
        shell.run_line_magic("mlnb", "artifact missing.csv")
    with pytest.raises(UsageError, match=f"in {project}"):
        shell.run_line_magic("mlnb", "version missing_thing")


def test_model_shows_one_mlnb_line_and_no_registry_chatter(shell: Any) -> None:
    shell.run_cell(
        "from sklearn.linear_model import LogisticRegression\n"
        "clf = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])"
    ).raise_error()
    for _ in range(2):  # a new registered model, then a new version of it
        with capture_output() as captured:
            shell.run_line_magic("mlnb", "model clf --name chatty")
        assert "Successfully registered model" not in captured.stderr
        assert "Created version" not in captured.stderr
        assert "already exists" not in captured.stderr
        (line,) = [x for x in captured.stdout.splitlines() if x.startswith("mlnb: logged")]
        assert "registered as models:/chatty/" in line


def test_runs_in_a_new_notebook_says_which_experiment_and_where_else_to_look(
    shell: Any, project: Path
) -> None:
    from mlflow import MlflowClient

    from mlnb.config import get_settings
    from mlnb.tracking import session

    client = MlflowClient(get_settings().tracking_uri)
    client.create_run(client.create_experiment("churn"), run_name="earlier")
    shell.run_line_magic("mlnb", "end")  # between runs, in a new notebook "Untitled.ipynb"
    recorder = session().recorder
    assert recorder is not None
    recorder.notebook_path = project / "Untitled.ipynb"
    with capture_output() as captured:
        shell.run_line_magic("mlnb", "runs")
    (shown,) = captured.outputs
    text = shown.data["text/plain"]
    assert "mlnb runs: experiment Untitled (0 runs)" in text
    assert (
        "No runs in experiment 'Untitled' (named after this notebook, Untitled.ipynb) yet" in text
    )
    assert "Experiments of this project with runs: 'churn'" in text
    assert "show one with %mlnb runs -e 'churn'" in text


def _notebook(path: Path) -> Path:
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb = new_notebook(metadata={"kernelspec": spec})
    nbformat.write(nb, path)
    return path


def test_a_refused_magic_after_an_idle_end_leaves_no_empty_failed_run(project: Path) -> None:
    from jupyter_client.manager import KernelManager
    from mlflow import MlflowClient

    from mlnb.config import get_settings

    path = _notebook(project / "Untitled.ipynb")
    manager = KernelManager(kernel_name="python3")
    env = {**os.environ, "JPY_SESSION_NAME": str(path), "MLNB_IDLE_TIMEOUT": "2"}
    manager.start_kernel(cwd=str(project), env=env)
    kernel = manager.client()
    kernel.start_channels()
    client = MlflowClient(get_settings().tracking_uri)

    def runs() -> list[Any]:
        ids = [e.experiment_id for e in client.search_experiments()]
        return list(client.search_runs(ids))

    try:
        kernel.wait_for_ready(timeout=120)
        reply = kernel.execute_interactive("%load_ext mlnb", timeout=120)
        assert reply["content"]["status"] == "ok"
        kernel.execute_interactive("import mlnb; mlnb.log_metric('a', 1.0); mlnb.flush()")
        deadline = time.monotonic() + 90
        while not [r for r in runs() if r.info.status == "FINISHED"]:
            assert time.monotonic() < deadline, "the idle run never ended"
            time.sleep(0.25)
        said: list[str] = []
        reply = kernel.execute_interactive(
            "%mlnb metrics",
            timeout=120,
            output_hook=lambda msg: said.append(str(msg["content"].get("evalue", ""))),
        )
        assert reply["content"]["status"] == "error"
        assert any("%mlnb metrics: the following arguments are required: NAME" in s for s in said)
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=False)
    settle_journal(project)
    found = runs()
    assert [(r.info.status, sorted(r.data.metrics)) for r in found] == [("FINISHED", ["a"])]
