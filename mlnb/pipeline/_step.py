"""One step of a pipeline: its notebook executed by papermill in a fresh kernel.

papermill runs in this process (its import is paid once per pipeline run, not once per
step, as the ``papermill`` command would), against a kernel from the
:class:`~mlnb.pipeline._kernels.KernelPool`: the output notebook is papermill's own, with
the injected parameters cell and, on failure, papermill's error cell at the top. The kernel
is shut down gracefully after the step, so mlnb inside it has ended and flushed the step's
MLflow run before the step counts as finished.
"""

from __future__ import annotations

import copy
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb._text import first_code_line, first_line
from mlnb.pipeline._fingerprint import SKIP_TAG
from mlnb.pipeline._kernels import (
    KernelPool,
    KernelStartError,
    finish,
    import_jupyter_client,
    kernel_env,
    kill,
    prepare_kernel,
    shutdown,
    start_kernel,
)
from mlnb.pipeline._progress import cell_label
from mlnb.pipeline._spec import Pipeline, Step

__all__ = ["StepResult", "own_process", "run_step"]

# (step name, state, cell label or None, message or None)
StepReport = Callable[[str, str, "str | None", "str | None"], None]


@dataclass
class StepResult:
    name: str
    status: str  # ok, cached, failed, skipped
    fingerprint: str | None = None
    run_id: str | None = None
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None
    notebook: str | None = None
    warm_kernel: bool = False


ENGINE = "mlnb"
_engine_lock = threading.Lock()
_own_process = False


def own_process() -> None:
    """Say that this process is mlnb's own (``mlnb pipeline run``), where no user code runs:
    papermill is then imported without jsonschema's ``iri`` format checks. papermill and
    nbformat never check formats, and building the grammar of those checks
    (``rfc3987-syntax``, installed with JupyterLab) is 2.6 s of the 3.8 s of CPU that
    importing papermill costs. In any other process (a notebook calling
    :func:`run_pipeline`, the lab's server) the import is left as it is."""
    global _own_process
    _own_process = True


def _import_papermill() -> None:
    if not _own_process or "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        import papermill

        return
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import fails: skipped
    try:
        import papermill  # noqa: F401
    finally:
        if "rfc3987_syntax" in sys.modules and sys.modules["rfc3987_syntax"] is None:
            del sys.modules["rfc3987_syntax"]  # a later import of it works as usual


def _register_engine() -> None:
    """papermill's nbclient engine, closing its kernel client after the notebook: nbclient
    only does that for kernels it started itself, and open sockets hold up the exit of the
    process (zmq waits for them)."""
    with _engine_lock:
        import_jupyter_client()
        _import_papermill()
        from papermill.clientwrap import PapermillNotebookClient
        from papermill.engines import NBClientEngine, papermill_engines
        from papermill.utils import merge_kwargs, remove_args

        if ENGINE in papermill_engines._engines:
            return

        class Engine(NBClientEngine):  # type: ignore[misc]
            @classmethod
            def execute_managed_notebook(  # papermill's own, but for the last lines
                cls,
                nb_man: Any,
                kernel_name: str,
                log_output: bool = False,
                stdout_file: Any = None,
                stderr_file: Any = None,
                start_timeout: int = 60,
                execution_timeout: int | None = None,
                **kwargs: Any,
            ) -> Any:
                import logging

                kwargs = remove_args(["input_path"], **kwargs)
                safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
                final_kwargs = merge_kwargs(
                    safe_kwargs,
                    timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                    startup_timeout=start_timeout,
                    kernel_name=kernel_name,
                    log=logging.getLogger("papermill"),
                    log_output=log_output,
                    stdout_file=stdout_file,
                    stderr_file=stderr_file,
                )
                client = PapermillNotebookClient(nb_man, **final_kwargs)
                try:
                    return client.execute()
                finally:
                    if client.kc is not None:
                        client.kc.stop_channels()
                        client.kc = None

        papermill_engines.register(ENGINE, Engine)


def load_papermill() -> None:
    """Import papermill (about a second) and register the engine; the runner calls this in
    the background as soon as it knows a step will run."""
    _register_engine()


def prepared_notebook(source: Path) -> Any:
    """The step's notebook without its `mlnb:skip` cells (those never run in pipelines)."""
    import nbformat

    nb = nbformat.read(str(source), as_version=4)
    nb.cells = [c for c in nb.cells if SKIP_TAG not in c.get("metadata", {}).get("tags", [])]
    return nb


def kernel_name(metadata: Mapping[str, Any], step: Step) -> str:
    """The step's ``kernel``, else the notebook's kernelspec, else ``python3``."""
    if step.kernel:
        return step.kernel
    spec = metadata.get("kernelspec") or {}
    return str(spec.get("name") or "python3")


def _describe(exc: BaseException, timed_out: bool, timeout: float | None) -> str:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if timed_out:
        return f"timed out after {timeout:g} s"
    if isinstance(exc, PapermillExecutionError):
        where = f"In [{exc.exec_count}]" if exc.exec_count else f"cell {exc.cell_index + 1}"
        code = first_code_line(exc.source or "")
        code = f" ({code})" if code else ""
        return f'cell "{where}"{code}: {exc.ename}: {exc.evalue}'
    if isinstance(exc, DeadKernelError):
        return "the kernel died (killed, out of memory, or crashed) while running the notebook"
    if isinstance(exc, CellTimeoutError):
        return f"a cell ran longer than the step's cell timeout: {first_line(exc)}"
    return f"{type(exc).__name__}: {first_line(exc)}"


def run_step(
    pipeline: Pipeline,
    step: Step,
    params: dict[str, Any],
    folder: Path,
    run_id: str | None,
    project_root: Path,
    report: StepReport | None = None,
    pool: KernelPool | None = None,
) -> StepResult:
    """Execute ``step``; retries with backoff; never raises for a failing notebook."""
    load_papermill()  # before importing papermill here: another thread may be importing it
    import papermill

    output = folder / f"{step.name.replace('/', '_')}.ipynb"
    source = pipeline.path(step.notebook)
    nb = prepared_notebook(source)
    name = kernel_name(nb.metadata, step)
    total = len(nb.cells) + (1 if params else 0)  # papermill adds the injected parameters
    step_env = {"MLNB_NOTEBOOK": str(source), "MLNB_RUN_ID": run_id or ""}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        if report is not None and cell.get("cell_type") == "code":
            report(step.name, "running", cell_label(cell_index, total, cell.source), None)

    started = time.perf_counter()
    error = "not run"
    warm = False
    for attempt in range(1, step.retries + 2):
        timed_out = threading.Event()
        km = None
        try:
            if pool is not None:
                km, warm = pool.take(name)
            else:
                km = start_kernel(name, pipeline.root, kernel_env(project_root))
            prepare_kernel(km, step_env)
            watchdog = None
            if step.timeout:

                def expire(km: Any = km, flag: threading.Event = timed_out) -> None:
                    flag.set()
                    kill(km)

                watchdog = threading.Timer(step.timeout, expire)
                watchdog.daemon = True
                watchdog.start()
            try:
                papermill.execute_notebook(
                    copy.deepcopy(nb),
                    str(output),
                    parameters=params,
                    kernel_name=name,
                    progress_bar=False,
                    log_output=False,
                    execution_timeout=int(step.cell_timeout) if step.cell_timeout else None,
                    engine_name=ENGINE,
                    km=km,
                    on_cell_start=on_cell_start,
                )
            finally:
                if watchdog is not None:
                    watchdog.cancel()
        except KernelStartError as exc:
            error = str(exc)
        except Exception as exc:
            error = _describe(exc, timed_out.is_set(), step.timeout)
        else:
            finish(km)  # mlnb in the kernel ends the step's run before this returns
            km = None
            return StepResult(
                step.name,
                "ok",
                run_id=run_id,
                seconds=time.perf_counter() - started,
                attempts=attempt,
                notebook=str(output),
                warm_kernel=warm,
            )
        finally:
            if km is not None:
                shutdown(km)
        if attempt <= step.retries:
            delay = min(2 ** (attempt - 1), 30)
            if report is not None:
                report(
                    step.name,
                    "retrying",
                    None,
                    f"attempt {attempt} failed ({error}); retrying in {delay} s",
                )
            time.sleep(delay)
    return StepResult(
        step.name,
        "failed",
        run_id=run_id,
        seconds=time.perf_counter() - started,
        attempts=step.retries + 1,
        error=error,
        notebook=str(output) if output.exists() else None,
        warm_kernel=warm,
    )
