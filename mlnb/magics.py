"""The ``%mlnb`` magic and the hooks that record what a notebook runs.

A thin face: each subcommand parses its arguments with IPython's ``magic_arguments`` and
calls :mod:`mlnb.tracking`. Bad arguments and :class:`~mlnb.exceptions.MlnbError` are shown
as one ``UsageError`` line, never a traceback, and are the cell's error output (so a run under
papermill reports why it stopped); nothing already recorded is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from mlnb._ast import serialize_ast
from mlnb.exceptions import MlnbError
from mlnb.tracking import CellRecorder, flavors_to_warm, locate_notebook, session

__all__ = ["MlnbMagics", "MlnbUsageError", "load_ipython_extension", "unload_ipython_extension"]


# Each subcommand's parser lives on a function of its own so that `%mlnb?` can show them all.
@magic_arguments()
@argument("--experiment", "-e", help="experiment name (default: the notebook's name)")
@argument("--name", "-n", help="run name (default: one MLflow makes up)")
@argument("--description", "-d", help="run description")
def _start(line: str) -> None:
    """%mlnb start: start a run (ends the active one first)."""


@magic_arguments()
@argument("--status", default="FINISHED", choices=["FINISHED", "FAILED", "KILLED"])
def _end(line: str) -> None:
    """%mlnb end: flush, write provenance and end the active run."""


@magic_arguments()
@argument("names", nargs="+", metavar="NAME", help="variables whose current values to log")
def _params(line: str) -> None:
    """%mlnb params: log variables as params."""


@magic_arguments()
@argument("names", nargs="+", metavar="NAME", help="variables holding numbers")
@argument("--step", "-s", type=int, default=None, help="step of these values")
def _metrics(line: str) -> None:
    """%mlnb metrics: log variables as metrics."""


@magic_arguments()
@argument("pairs", nargs="+", metavar="KEY=VALUE")
def _tag(line: str) -> None:
    """%mlnb tag: set tags on the run."""


@magic_arguments()
@argument("path", metavar="PATH", help="file or folder")
@argument("--artifact-path", "-p", default=None, help="folder inside the run's artifacts")
def _artifact(line: str) -> None:
    """%mlnb artifact: copy a file or folder into the run's artifacts."""


@magic_arguments()
@argument("var", metavar="VAR", help="variable holding the model")
@argument("--name", "-n", required=True, metavar="REGISTERED_NAME", help="registered model name")
@argument("--artifact-name", default="model", help="name of the logged model in the run")
@argument(
    "--format",
    "-f",
    default=None,
    dest="serialization_format",
    metavar="FORMAT",
    help="serialization: auto (default), skops, cloudpickle, pickle or native",
)
def _model(line: str) -> None:
    """%mlnb model: log the model and register a new version of it."""


@magic_arguments()
@argument("value", type=int, metavar="N")
def _seed(line: str) -> None:
    """%mlnb seed: seed random, numpy, torch and tensorflow; record the seed."""


@magic_arguments()
@argument(
    "target",
    metavar="PATH|VAR",
    help="a file or folder, or a variable: DataFrame, Series, array, sparse matrix, (X, y), dict",
)
@argument("--name", "-n", default=None, help="version name (default: the path or variable)")
@argument("--output", "-o", action="store_true", help="record it as an output of the run")
def _version(line: str) -> None:
    """%mlnb version: store it by content hash and link it to the run."""


@magic_arguments()
@argument("var", metavar="VAR", help="variable holding the training data (a DataFrame)")
@argument("--name", "-n", default=None, help="profile name (default: the variable's name)")
@argument("--target", "-t", default=None, metavar="COL", help="the target column, if present")
def _profile(line: str) -> None:
    """%mlnb profile: record per-feature statistics of training data (for the service)."""


@magic_arguments()
def _status(line: str) -> None:
    """%mlnb status: the tracking URI, the active run, queued and journaled writes."""


@magic_arguments()
def _sync(line: str) -> None:
    """%mlnb sync: send writes journaled while the tracking server was down."""


@magic_arguments()
@argument("--experiment", "-e", default=None, help="experiment (default: the active one)")
@argument("--max", "-m", type=int, default=50, dest="max_results", help="newest N runs")
def _runs(line: str) -> None:
    """%mlnb runs: a panel of the experiment's runs, live while a run is going."""


@magic_arguments()
@argument("runs", nargs="+", metavar="RUN", help="run ids (or unique run names)")
@argument(
    "--metric",
    default=None,
    metavar="NAME",
    help="colour the parallel coordinates of the params by this metric (default: the first)",
)
def _compare(line: str) -> None:
    """%mlnb compare: params, metrics and metric plots of runs side by side."""


@magic_arguments()
@argument("action", choices=["run"], help="what to do with the pipeline")
@argument("pipeline", metavar="PIPELINE", help="pipeline.yaml")
@argument("-p", "--param", action="append", default=[], metavar="STEP.KEY=VALUE")
@argument("--workers", "-w", type=int, default=1, help="steps run at the same time")
@argument("--force", action="store_true", help="run every step, even those up to date")
@argument("--only", default=None, metavar="STEP", help="run only this step")
@argument("--from", dest="from_step", default=None, metavar="STEP", help="this step and after")
def _pipeline(line: str) -> None:
    """%mlnb pipeline: run a pipeline of notebooks, showing each step's progress."""


_SUBCOMMANDS: dict[str, Callable[[str], None]] = {
    "start": _start,
    "end": _end,
    "params": _params,
    "metrics": _metrics,
    "tag": _tag,
    "artifact": _artifact,
    "model": _model,
    "seed": _seed,
    "version": _version,
    "profile": _profile,
    "status": _status,
    "sync": _sync,
    "runs": _runs,
    "compare": _compare,
    "pipeline": _pipeline,
}


def subcommand_usage(name: str) -> str:
    """``%mlnb metrics [--step STEP] NAME [NAME ...]``: one subcommand's usage line(s),
    in plain argparse form (IPython's own adds reST ``::`` blocks and ``%_name``)."""
    parser = _SUBCOMMANDS[name].parser  # type: ignore[attr-defined]
    formatter = argparse.HelpFormatter(prog=f"%mlnb {name}", width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    return formatter.format_help().strip()


def _summary(name: str) -> str:
    """What the subcommand does: its function's docstring after ``%mlnb NAME:``."""
    parser = _SUBCOMMANDS[name].parser  # type: ignore[attr-defined]
    return str(parser.description or "").split(":", 1)[-1].strip()


def _usage() -> str:
    lines = [
        "Track this notebook's runs in MLflow.",
        "",
        "Usage: %mlnb SUBCOMMAND [ARGS]",
        "",
    ]
    for name in _SUBCOMMANDS:
        lines.append(f"  {subcommand_usage(name)}")
        lines.append(f"      {_summary(name)}")
    lines += [
        "",
        "A run starts with %load_ext mlnb and ends when the kernel shuts down (or, in",
        "JupyterLab, after MLNB_IDLE_TIMEOUT seconds without a cell; the next cell starts",
        "the next run). MLflow's own calls in the notebook land in the same run.",
        "The parameters cell (and papermill's injected values) are logged as params, and",
        "the executed code, a notebook snapshot, git and environment are recorded per run.",
    ]
    return "\n".join(lines)


#: what MLflow's registry prints on stderr for every registration (mlnb says it in one line)
_REGISTRY_CHATTER = re.compile(
    r"(Successfully registered model '.*'\.|Registered model '.*' already exists\. "
    r"Creating a new version of this model\.\.\.|Created version '.*' of model '.*'\.)\s*$"
)


@contextlib.contextmanager
def _without_registry_chatter() -> Iterator[None]:
    """Hold back stderr while a model is logged and registered, then pass it on without
    MLflow's "Successfully registered model ..." lines (shown as a red block under the
    cell); warnings and anything else written meanwhile still reach the notebook."""
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            yield
    finally:
        kept = [
            line
            for line in held.getvalue().splitlines(keepends=True)
            if not _REGISTRY_CHATTER.search(line)
        ]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def _unquote(text: str) -> str:
    """IPython's argument splitter keeps quotes around a quoted word: drop them."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


class MlnbUsageError(UsageError, MlnbError):
    """A :class:`UsageError` that also reaches the notebook as an error output of one line
    (and an :class:`~mlnb.exceptions.MlnbError`, drawn in its tree).

    IPython prints a plain ``UsageError`` on stderr only, so papermill, which reads a cell's
    error outputs, stops the run with an empty "CellExecutionError" and the reason is lost.
    This subclass goes through IPython's traceback path (``_render_traceback_``), which
    sends the one line as the cell's error: ``UsageError: <what went wrong and the fix>``.
    """

    exit_code = 2

    def _render_traceback_(self) -> list[str]:
        return [f"UsageError: {self}"]


@magics_class
class MlnbMagics(Magics):
    @line_magic
    def mlnb(self, line: str) -> Any:
        command, _, rest = line.strip().partition(" ")
        if not command or command in {"-h", "--help", "help"}:
            print(_usage())
            return None
        func = _SUBCOMMANDS.get(command)
        if func is None:
            raise MlnbUsageError(
                f"unknown %mlnb subcommand {command!r}; choose one of "
                f"{', '.join(_SUBCOMMANDS)} (see %mlnb?)."
            )
        try:
            args = parse_argstring(func, rest)
        except UsageError as exc:  # argparse's words: name the subcommand and its usage
            self._refused()
            usage = " ".join(subcommand_usage(command).split())  # one line
            raise MlnbUsageError(f"%mlnb {command}: {exc}. Usage: {usage} (see %mlnb?)") from None
        try:
            return getattr(self, f"_do_{command}")(args)
        except MlnbUsageError:
            self._refused()
            raise
        except (MlnbError, UsageError) as exc:
            self._refused()
            raise MlnbUsageError(str(exc)) from None

    def _refused(self) -> None:
        """A refused subcommand wrote nothing: a run this very cell started (the previous
        one ended idle) is dropped, not left empty to end FAILED; the next cell starts one."""
        hooks = _loaded.get(id(self.shell))
        current = session()
        started = hooks.started if hooks is not None else None
        if started is not None and current.run is started and current.discard_empty_kernel_run():
            hooks.started = None  # type: ignore[union-attr]

    mlnb.__doc__ = _usage()

    # -- subcommands -----------------------------------------------------------------
    def _lookup(self, name: str) -> Any:
        ns = self.shell.user_ns if self.shell is not None else {}
        if name not in ns:
            raise UsageError(
                f"name {name!r} is not defined in the notebook; run the cell that defines it "
                "first, or check the spelling."
            )
        return ns[name]

    def _do_start(self, args: Any) -> None:
        current = session()
        if current.run is not None and not current.discard_empty_kernel_run():
            ended = current.run
            current.end_run()
            print(f"mlnb: ended run {ended.name} ({ended.run_id})")
        active = current.start_run(
            run_name=args.name,
            description=args.description,
            experiment_name=args.experiment,
            kernel=current.kernel_mode,
        )
        print(
            f"mlnb: started run {active.info.run_name} ({active.info.run_id}) "
            f"in experiment {active.info.experiment_id}"
        )

    def _do_end(self, args: Any) -> None:
        current = session()
        run = current.run
        if run is None:
            print("mlnb: no active run")
            return
        current.end_run(args.status)
        print(f"mlnb: ended run {run.name} ({run.run_id}) as {args.status}")

    def _do_params(self, args: Any) -> None:
        values = {name: self._lookup(name) for name in args.names}
        session().log_params(values)

    def _do_metrics(self, args: Any) -> None:
        values = {name: self._lookup(name) for name in args.names}
        session().log_metrics(values, step=args.step)

    def _do_tag(self, args: Any) -> None:
        tags = {}
        for pair in map(_unquote, args.pairs):
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"tag {pair!r} is not KEY=VALUE; write e.g. %mlnb tag stage=dev")
            tags[key] = value
        session().set_tags(tags)

    def _do_artifact(self, args: Any) -> None:
        session().log_artifact(_unquote(args.path), args.artifact_path)

    def _do_model(self, args: Any) -> None:
        from mlnb.tracking import log_model

        model = self._lookup(args.var)
        started = time.perf_counter()
        with _without_registry_chatter():
            info = log_model(
                model,
                args.artifact_name,
                registered_model_name=args.name,
                serialization_format=args.serialization_format,
            )
        elapsed = time.perf_counter() - started
        print(
            f"mlnb: logged {info.flavor} model {info.model_uri} as "
            f"{info.serialization_note}, registered as "
            f"models:/{args.name}/{info.registered_model_version} in {elapsed:.2f} s"
        )

    def _do_version(self, args: Any) -> None:
        from mlnb.tracking import version

        target = _unquote(args.target)
        ns = self.shell.user_ns if self.shell is not None else {}
        if target.isidentifier() and target in ns and not isinstance(ns[target], str):
            obj, name = ns[target], args.name or target
        elif target.isidentifier() and not os.path.exists(target):
            raise UsageError(
                f"{target!r} is neither a variable of the notebook nor a file or folder (in "
                f"{os.getcwd()}); run the cell that defines it first, or check the spelling."
            )
        else:
            obj, name = target, args.name
        record = version(obj, name, role="output" if args.output else "input")
        size = f"{record.size:,} bytes" if record.size is not None else "?"
        shape = (record.schema or {}).get("shape")
        what = record.kind
        if shape is not None:  # arrays and sparse matrices: dtype and shape too
            what += f" {record.schema['dtype']} {tuple(shape)}"  # type: ignore[index]
        print(f"mlnb: {record.name}@{record.number}  {record.hash[:16]}  {what}, {size}")

    def _do_profile(self, args: Any) -> None:
        from mlnb.monitor import profile

        data = self._lookup(args.var)
        target = _unquote(args.target or "") or None
        result = profile(data, args.name or args.var, target=target, log=False)
        run = session().ensure_run()  # a log call: the run starts here if none is active
        result.record()
        numbers = sum(f.kind == "number" for f in result.features.values())
        print(
            f"mlnb: profile {result.name!r} of {result.rows:,} rows, {numbers} numeric and "
            f"{len(result.features) - numbers} categorical feature(s), recorded on run "
            f"{run.run_id}"
        )

    def _do_seed(self, args: Any) -> None:
        seeded = session().seed(args.value)
        print(f"mlnb: seeded {', '.join(seeded)} with {args.value}")

    def _do_status(self, args: Any) -> None:
        info = session().status()
        print(f"tracking   {info['tracking_uri']}  [{info['tracking_uri_source']}]")
        if info["run_id"]:
            run = f"{info['run_name']} ({info['run_id']})"
            print(f"run        {run}, experiment {info['experiment_id']}")
        else:
            print("run        none active (one starts at the first log call)")
        print(f"notebook   {info['notebook'] or 'unknown'}")
        if info["notebook_params"]:
            print(f"parameters {info['notebook_params']}")
        print(
            f"queued     {info['queued']} write(s); journaled {info['outbox_pending']}"
            + ("  (tracking server unreachable)" if info["offline"] else "")
        )

    # -- widgets (mlnb.widgets: a face, imported when used) -----------------------------
    def _do_runs(self, args: Any) -> None:
        from IPython.display import display

        from mlnb.widgets import runs_panel

        if args.max_results < 1:
            raise UsageError("--max must be at least 1.")
        display(runs_panel(args.experiment and _unquote(args.experiment), args.max_results))

    def _do_compare(self, args: Any) -> None:
        from IPython.display import display

        from mlnb.widgets import compare

        metric = args.metric and _unquote(args.metric)
        display(compare([_unquote(r) for r in args.runs], metric=metric))

    def _do_pipeline(self, args: Any) -> None:
        from mlnb.pipeline import parse_overrides
        from mlnb.widgets import run_pipeline

        run_pipeline(
            _unquote(args.pipeline),
            parse_overrides(args.param),
            workers=args.workers,
            force=args.force,
            only=args.only,
            from_step=args.from_step,
        )

    def _do_sync(self, args: Any) -> None:
        from mlnb.tracking import sync

        result = sync()
        print(f"mlnb: sent {result['sent']} journaled write(s); {result['remaining']} left")


class _Hooks:
    """pre/post_run_cell callbacks; they stay cheap (well under a millisecond).

    They also warm up model logging while the kernel is idle: once a library with an MLflow
    flavor is imported (scikit-learn, xgboost, ...), the imports the first ``%mlnb model``
    would pay for (1-3 s: MLflow's flavor, skops, MLflow's package map) run in the kernel's
    main thread after ``WARM_AFTER_IDLE`` seconds without a cell. Never in another thread
    (beside the notebook's own imports of the same packages that can deadlock), and never
    between cells that follow each other at once (papermill): there the cost would only move.
    """

    WARM_AFTER_IDLE = 1.0  # seconds without a cell before the kernel warms up

    def __init__(self, shell: Any, recorder: CellRecorder) -> None:
        self.shell = shell
        self.recorder = recorder
        self._busy = False
        self._last_cell = time.monotonic()
        self._warm_scheduled = False
        self.started: Any = None  # the run this cell started, if any

    def _schedule_warm_up(self, delay: float) -> None:
        loop = getattr(getattr(self.shell, "kernel", None), "io_loop", None)
        if loop is None or self._warm_scheduled:
            return  # not in a kernel (a terminal IPython): the first model pays
        self._warm_scheduled = True
        loop.call_later(delay, self._warm_up_if_idle)

    def _warm_up_if_idle(self) -> None:
        self._warm_scheduled = False
        idle = time.monotonic() - self._last_cell
        if self._busy or idle < self.WARM_AFTER_IDLE:
            if not self._busy:
                self._schedule_warm_up(self.WARM_AFTER_IDLE - idle)
            return  # a cell is running; its post_run_cell schedules again
        try:
            session().warm_model_flavors()
        except (Exception, KeyboardInterrupt):  # an interrupt meant for no cell: ignored
            pass

    def pre_run_cell(self, info: Any) -> None:
        if getattr(info, "silent", False):
            return
        self._busy = True
        self._last_cell = time.monotonic()
        current = session()
        before = current.run
        current.before_cell()
        # the run this cell started, if it did (after an idle end): a refused magic drops it
        self.started = current.run if current.run is not before else None
        # IPython has already counted this cell: the count it shows is one less.
        self.recorder.pre_cell(
            info.raw_cell, getattr(info, "cell_id", None), self.shell.execution_count - 1
        )
        run = current.run
        if run is not None and "mlflow" in (info.raw_cell or ""):
            # A cell that calls MLflow itself: its calls land in this kernel's run, so the
            # run must exist in the store (it does, but in a fresh project's first seconds).
            try:
                current.mlflow_run()
            except MlnbError as exc:
                print(f"mlnb: warning: {exc}")
        elif run is not None and run.active is not None:
            current._active(run, wait=False)  # MLflow's fluent stack is per thread

    def post_run_cell(self, result: Any) -> None:
        info = getattr(result, "info", None)
        if info is not None and getattr(info, "silent", False):
            return
        error = result.error_before_exec or result.error_in_exec
        cell = self.recorder.post_cell(error, getattr(result, "execution_count", None))
        try:
            session().after_cell(cell)
        except MlnbError as exc:
            print(f"mlnb: warning: {exc}")
        finally:
            self._busy = False
            self._last_cell = time.monotonic()
        if flavors_to_warm():
            self._schedule_warm_up(self.WARM_AFTER_IDLE)


_loaded: dict[int, _Hooks] = {}


def load_ipython_extension(ipython: Any) -> None:
    serialize_ast(ipython)  # before any of mlnb's threads import beside the cells' parsing
    ipython.register_magics(MlnbMagics)
    recorder = CellRecorder()
    recorder.notebook_path = locate_notebook(ipython.user_ns)
    raw = list(ipython.history_manager.input_hist_raw)
    # raw[0] is empty and raw[-1] is the cell running `%load_ext mlnb` right now.
    recorder.backfill(raw[1:-1])
    if len(raw) > 1:
        recorder.pre_cell(raw[-1], None, ipython.execution_count - 1)
    current = session()
    current.recorder = recorder
    current.user_ns = ipython.user_ns
    found = recorder.find_parameters()
    if found is not None and current.settings.autolog_params:
        current.capture_parameters(*found)
    hooks = _Hooks(ipython, recorder)
    ipython.events.register("pre_run_cell", hooks.pre_run_cell)
    ipython.events.register("post_run_cell", hooks.post_run_cell)
    _loaded[id(ipython)] = hooks
    _finish_on_kernel_shutdown(ipython)
    from mlnb.tracking import install_fluent_hooks

    install_fluent_hooks()  # MLflow's fluent calls in this notebook land in the kernel's run
    current.begin_kernel_run()
    current.warm_up()


def _finish_on_kernel_shutdown(ipython: Any) -> None:
    """End the run when the kernel is asked to shut down (JupyterLab, papermill's end).

    This runs in the kernel's event loop, before the interpreter starts tearing down; at
    atexit time Python refuses the imports and threads that finishing a run may need.
    """
    kernel = getattr(ipython, "kernel", None)
    if kernel is None or getattr(kernel.do_shutdown, "_mlnb", False):
        return
    original = kernel.do_shutdown

    def do_shutdown(restart: bool) -> Any:
        _finished.clear()
        _finishing.set()
        try:
            session().at_exit()
        finally:
            _finished.set()
            _finishing.clear()
        return original(restart)

    do_shutdown._mlnb = True  # type: ignore[attr-defined]
    kernel.do_shutdown = do_shutdown
    _defer_sigterm_while_finishing()


_finishing = threading.Event()
_finished = threading.Event()


def _defer_sigterm_while_finishing() -> None:
    """jupyter_client sends SIGTERM 2.5 s after a shutdown request (SIGKILL at 5 s). While
    mlnb is writing the run's last records, a SIGTERM waits for it; otherwise it acts as
    before."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return
    previous = signal.getsignal(signal.SIGTERM)
    if getattr(previous, "_mlnb", False):
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        if _finishing.is_set():
            _finished.wait(timeout=10)
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    on_sigterm._mlnb = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, on_sigterm)


def unload_ipython_extension(ipython: Any) -> None:
    hooks = _loaded.pop(id(ipython), None)
    if hooks is not None:
        ipython.events.unregister("pre_run_cell", hooks.pre_run_cell)
        ipython.events.unregister("post_run_cell", hooks.post_run_cell)
    current = session()
    current.flush()
    current.recorder = None
    current.user_ns = None
