"""The ``mlnb`` command, run as a user runs it: a subprocess in a project folder."""

from __future__ import annotations

from pathlib import Path

import mlnb
from tests.conftest import run_mlnb as _mlnb


def test_version(project: Path) -> None:
    done = _mlnb(project, "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"mlnb {mlnb.__version__}"


def test_init_then_status(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    done = _mlnb(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    assert f"created  {tmp_path}/.mlnb" in done.stdout
    assert f"tracking sqlite:///{tmp_path}/.mlnb/mlflow.db" in done.stdout
    status = _mlnb(tmp_path / ".mlnb", "status")  # from a subfolder: same root
    assert status.returncode == 0
    assert f"root       {tmp_path}" in status.stdout
    assert "journal    0 write(s) not sent yet" in status.stdout


def test_show_prints_what_a_run_recorded(project: Path) -> None:
    mlnb.start_run(experiment_name="cli", run_name="shown")
    mlnb.log_params({"alpha": 0.5})
    mlnb.log_metrics({"rmse": 1.25})
    run_id = mlnb.active_run().info.run_id
    mlnb.end_run()
    for args in ((run_id,), ("--experiment", "cli"), ()):
        done = _mlnb(project, "show", *args)
        assert done.returncode == 0, done.stderr
        assert f"run        shown ({run_id})" in done.stdout
        assert "alpha = 0.5" in done.stdout
        assert "rmse = 1.25" in done.stdout
        assert "mlnb/provenance.json" in done.stdout


def test_show_without_runs_says_what_to_do(project: Path) -> None:
    done = _mlnb(project, "show")
    assert done.returncode == 1
    assert "no runs yet; run a notebook with `%load_ext mlnb` first" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_server_is_one_line_and_exit_3(project: Path) -> None:
    done = _mlnb(project, "show", MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    assert done.returncode == 3, done.stderr
    assert "cannot reach the tracking server at http://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_configuration_is_exit_2(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.mlnb]\nflush_interval = 'soon'\n")
    done = _mlnb(project, "status")
    assert done.returncode == 2
    assert "flush_interval = 'soon' is not a valid float" in done.stderr
    assert "Traceback" not in done.stderr


def test_sync_with_an_empty_outbox(project: Path) -> None:
    done = _mlnb(project, "sync")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent 0 journaled write(s); 0 left"


def test_unknown_command_shows_usage(project: Path) -> None:
    done = _mlnb(project, "frobnicate")
    assert done.returncode == 2
    assert "invalid choice: 'frobnicate'" in done.stderr
