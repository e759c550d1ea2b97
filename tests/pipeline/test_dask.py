# ruff: noqa: E501
"""Pipeline steps as tasks of a real Dask distributed cluster on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlnb.pipeline import PipelineError, run_pipeline
from tests.pipeline.test_runner import _notebook, _write
from tests.servers import free_port


def _spec(project: Path) -> Path:
    flow = project / "flow"
    _notebook(
        flow / "one.ipynb",
        "name = 'x'",
        "import os\nopen(f'{name}.txt', 'w').write(str(os.getpid()))",
    )
    return _write(
        project,
        "name: spread\nsteps:\n"
        "  - {name: a, notebook: one.ipynb, params: {name: a}, outputs: [a.txt]}\n"
        "  - {name: b, notebook: one.ipynb, params: {name: b}, outputs: [b.txt]}\n"
        "  - {name: c, notebook: one.ipynb, needs: [a, b], params: {name: c}, outputs: [c.txt]}\n",
    )


def test_steps_run_on_a_local_dask_cluster(project: Path) -> None:
    from distributed import LocalCluster

    spec = _spec(project)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, processes=True
    ) as cluster:
        result = run_pipeline(spec, executor=cluster.scheduler_address, report=lambda _: None)
    assert {n: s.status for n, s in result.steps.items()} == {"a": "ok", "b": "ok", "c": "ok"}
    assert all((project / "flow" / f"{n}.txt").is_file() for n in "abc")
    again = run_pipeline(spec, report=lambda _: None)  # the same cache, whatever ran it
    assert {s.status for s in again.steps.values()} == {"cached"}


def test_steps_run_on_dask_scheduler_and_worker_processes(project: Path, tmp_path: Path) -> None:
    spec = _spec(project)
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    scheduler = subprocess.Popen(
        [str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "scheduler.log").open("wb"), env=env,
        start_new_session=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [str(bin_dir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "2",
         "--no-dashboard", "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "worker.log").open("wb"), env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(
                [sys.executable, "-m", "mlnb", "pipeline", "run", str(spec), "--executor", f"dask://127.0.0.1:{port}"],
                cwd=project, env=dict(os.environ), capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            if (
                done.returncode == 0
                or time.monotonic() > deadline
                or "has no workers" not in done.stderr
            ):
                break
            time.sleep(1)  # the worker is still connecting
        assert done.returncode == 0, done.stderr[-2000:]
        assert "pipeline spread: 3 ok" in done.stdout
    finally:
        for process in (worker, scheduler):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_a_dask_address_that_does_not_answer(project: Path) -> None:
    spec = _spec(project)
    with pytest.raises(
        PipelineError, match=r"the Dask scheduler at tcp://127.0.0.1:\d+ does not answer"
    ):
        run_pipeline(spec, executor=f"dask://127.0.0.1:{free_port()}", report=lambda _: None)
    assert not (project / ".mlnb" / "runs").exists()
