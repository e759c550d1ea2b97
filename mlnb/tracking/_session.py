"""The tracking session of this process: the active run and everything recorded with it."""

from __future__ import annotations

import atexit
import contextlib
import json
import numbers
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.config import Settings, get_settings
from mlnb.exceptions import InvalidValueError, MlnbError, NoActiveRunError, TrackingError
from mlnb.tracking import _client
from mlnb.tracking._cells import CellRecorder, ExecutedCell, _papermill_input
from mlnb.tracking._journal import Journal, is_local_id, new_local_id, pending_entries
from mlnb.tracking._writer import BatchWriter, _created_hooks, _warn, journal_for, now_ms

__all__ = ["Run", "TrackingSession", "session"]

# MLflow's limits (mlflow.utils.validation)
_NAME_RE = re.compile(r"^[/\w.\- :]*$")
MAX_NAME_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
ARTIFACT_DIR = "mlnb"

_SIMPLE = (str, int, float, bool, type(None), Path)


@dataclass
class Run:
    """What mlnb knows about the run it writes to.

    ``key`` names the run in the journal: a local id (``local-...``) until the journal has
    created it in MLflow, or the MLflow id of a run mlnb adopted. ``run_id`` is the MLflow id
    once known, else the local id.
    """

    key: str
    experiment_id: str | None
    uri: str
    name: str | None
    owned: bool  # started by mlnb (ended by mlnb) or adopted from mlflow.start_run
    active: Any = None  # mlflow.ActiveRun
    params: dict[str, str] = field(default_factory=dict)
    provenance: list[dict[str, Any]] = field(default_factory=list)
    first_cell: int = 0
    background: threading.Thread | None = None
    experiment: str | None = None  # name, when mlnb chose the experiment
    real: str | None = None  # the MLflow id, once created
    kernel: bool = False  # a run of the kernel (ends with it, or when idle)
    auto: bool = False  # started by mlnb itself (%load_ext, a new cell), not by the user
    user_writes: int = 0  # writes other than mlnb's automatic provenance
    metrics_logged: bool = False
    claimed: str | None = None  # "open" / "ended": a notebook's own mlflow.start_run block
    start_time: int = 0
    writer: BatchWriter | None = None  # where its writes go (kept: the hot path of log calls)

    def __post_init__(self) -> None:
        if not is_local_id(self.key):
            self.real = self.key

    @property
    def run_id(self) -> str:
        return self.real or self.key


def _describe(value: Any) -> str:
    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    return f"a {kind} with shape {tuple(shape)}" if shape is not None else f"a {kind}"


def check_name(kind: str, key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidValueError(f"{kind} name {key!r} must be a non-empty string.")
    if len(key) > MAX_NAME_LENGTH or not _NAME_RE.match(key):
        raise InvalidValueError(
            f"{kind} name {key!r} is not allowed by MLflow: use at most {MAX_NAME_LENGTH} "
            "letters, digits, and _ - . / : or spaces."
        )
    return key


def metric_value(key: str, value: Any) -> float:
    """``value`` as a float, or a clear error for things that are not one number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    size = getattr(value, "size", None)
    if size == 1 and hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        item = value.item()
        if isinstance(item, numbers.Real):
            return float(item)
    raise InvalidValueError(
        f"metric {key!r} must be a number, got {_describe(value)}; log one number per "
        "metric (e.g. a mean or a score), or save the object with mlnb.log_artifact."
    )


def param_value(key: str, value: Any, strict: bool = True) -> str | None:
    """``value`` as MLflow param text; None (when not strict) for values that are not params."""
    simple = isinstance(value, _SIMPLE) or (
        isinstance(value, (list, tuple, dict, set))
        and len(value) <= 100
        and all(
            isinstance(v, _SIMPLE) for v in (value.values() if isinstance(value, dict) else value)
        )
    )
    if not simple and isinstance(value, numbers.Number):
        simple = True  # numpy scalars
    if not simple:
        if not strict:
            return None
        raise InvalidValueError(
            f"param {key!r} is {_describe(value)}; params hold short text such as numbers, "
            "strings or small lists: log a summary of it, or save it with mlnb.log_artifact."
        )
    text = str(value)
    if len(text) > MAX_PARAM_LENGTH:
        if not strict:
            return None
        raise InvalidValueError(
            f"param {key!r} is {len(text)} characters long; MLflow keeps at most "
            f"{MAX_PARAM_LENGTH}: log it as an artifact instead."
        )
    return text


class TrackingSession:
    """One per process (see :func:`session`)."""

    def __init__(self) -> None:
        self.run: Run | None = None
        self.recorder: CellRecorder | None = None
        self.user_ns: Mapping[str, Any] | None = None
        self.notebook_params: dict[str, str] = {}
        self.injected_params: list[str] = []
        self.pending_tags: dict[str, str] = {}
        self._parents: list[Run] = []  # runs a nested run was started under
        self._writers: dict[tuple[Path, str], BatchWriter] = {}
        self._runs: dict[str, Run] = {}  # by journal key
        self._ever_started = False
        self._exiting = False
        self._warming: threading.Thread | None = None
        self._autolog_params: bool | None = None  # read once, not on every cell
        self._lock = threading.RLock()
        #: True in a kernel with %load_ext mlnb: the kernel has a run of its own, MLflow's
        #: fluent calls land in it, and an idle interactive run ends by itself
        self.kernel_mode = False
        #: values of the ``parameters`` cell, held until the next cell (papermill injects
        #: its values right after it, and those are the ones that count)
        self._held_params: dict[str, Any] | None = None
        self.last_activity: float | None = None  # end of the last executed cell (epoch s)
        self.clock: Any = time.time
        self._idle_watch: threading.Thread | None = None
        self._idle_wake = threading.Event()
        self._finished = False  # the kernel's runs are ended: nothing more at exit
        #: set by the notebook's own mlflow.set_experiment(): where its next runs go
        self.experiment_override: str | None = None
        self._idle_timeout: float | None = None
        self._seed_tags: dict[str, str] = {}  # the process's seed: every later run has it
        _created_hooks.append(self._on_created)

    # -- plumbing --------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return get_settings()

    @property
    def journal(self) -> Journal:
        settings = self.settings
        return journal_for(settings.journal_dir, settings.commit_interval)

    def writer(self, uri: str | None = None) -> BatchWriter:
        settings = self.settings
        uri = uri or settings.tracking_uri
        key = (settings.journal_dir, uri)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = BatchWriter(
                uri, journal_for(settings.journal_dir, settings.commit_interval)
            )
        return writer

    def _w(self, run: Run) -> BatchWriter:
        if run.writer is None:
            run.writer = self.writer(run.uri)
        return run.writer

    def _on_created(self, local: str, real: str) -> None:
        """The journal created run ``local`` in MLflow as ``real``."""
        run = self._runs.get(local)
        if run is not None:
            run.real = real

    def _register_exit(self) -> None:
        # (Re-)registered after mlflow is imported, so it runs before MLflow's own handler
        # (atexit is last-in, first-out) and ends the run with the right status.
        if self._exiting:
            return  # Python refuses new atexit handlers while it runs them
        atexit.unregister(self.at_exit)
        atexit.register(self.at_exit)

    # -- run lifecycle ---------------------------------------------------------------
    def start_run(
        self,
        run_id: str | None = None,
        experiment_id: str | None = None,
        run_name: str | None = None,
        nested: bool = False,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
        log_system_metrics: bool | None = None,
        *,
        experiment_name: str | None = None,
        wait: bool = True,
        kernel: bool = False,
        auto: bool = False,
    ) -> Any:
        """Start a run. It is journaled at once and created in MLflow by the journal's
        sender; with ``wait`` this returns an ``mlflow.ActiveRun`` once it exists (an
        ``ActiveRun`` under the local id while the tracking store is unreachable)."""
        with self._lock:
            settings = self.settings
            if run_id is None and not nested and self.run is None and not self._ever_started:
                # A pipeline step: the runner created this run (nested under the pipeline's).
                run_id = os.environ.get("MLNB_RUN_ID") or None
            if self.run is not None and self.run.auto and not nested and run_id is None:
                # mlnb's own automatic run gives way to the one the notebook starts
                if not self.discard_empty_kernel_run():
                    self.end_run("FINISHED", timeout=0.0)
                kernel = kernel or self.kernel_mode
            if self.run is not None and not nested and run_id != self.run.run_id:
                raise TrackingError(
                    f"run {self.run.run_id} is already active; end it first "
                    "(mlnb.end_run() or %mlnb end) or pass nested=True."
                )
            if self.run is not None and run_id is not None and run_id == self.run.run_id:
                return self._active(self.run, wait)
            uri = settings.tracking_uri
            _client.check_uri(uri)
            journal = self.writer(uri)
            if run_id is not None:  # a run that exists: write to it, end it at the end
                run = Run(
                    run_id, experiment_id, uri, run_name, owned=True, kernel=kernel, auto=auto
                )
                journal.send_or_journal({"op": "adopt_run", "run": run_id})
            else:
                name = None
                location = None
                if experiment_id is None:
                    name = (
                        experiment_name
                        or self.experiment_override
                        or settings.experiment
                        or self._default_experiment()
                    )
                    if not settings.is_remote and settings.artifact_root is not None:
                        from mlnb._text import slug

                        location = (settings.artifact_root / slug(name, "experiment")).as_uri()
                all_tags = {
                    **self._context_tags(settings),
                    **self._seed_tags,
                    **self.pending_tags,
                    **{k: str(v) for k, v in (tags or {}).items()},
                }
                if description:
                    all_tags["mlflow.note.content"] = description
                parent = None
                if nested and self.run is not None:
                    parent = self.run.key
                if parent_run_id:
                    parent = parent_run_id
                run = Run(
                    new_local_id(),
                    experiment_id,
                    uri,
                    run_name,
                    owned=True,
                    experiment=name,
                    kernel=kernel,
                    auto=auto,
                    start_time=now_ms(),
                )
                journal.send_or_journal(
                    {
                        "op": "create_run",
                        "run": run.key,
                        "experiment": name,
                        "experiment_id": experiment_id,
                        "location": location,
                        "run_name": run_name,
                        "tags": all_tags,
                        "start_time": run.start_time,
                        "parent": parent,
                    }
                )
            self._runs[run.key] = run
            self._register_exit()
            self.pending_tags.clear()
            if self.run is not None:
                self._parents.append(self.run)
            run.first_cell = len(self.recorder.cells) if self.recorder else 0
            self.run = run
            self._ever_started = True
            if self.notebook_params:
                self._submit_params(self.notebook_params, strict=False, user=False)
                if self.injected_params:
                    self._tag("mlnb.params.injected", ",".join(self.injected_params))
            run.background = threading.Thread(
                target=self._record_environment,
                args=(run, settings),
                name="mlnb-provenance",
                daemon=True,
            )
            run.background.start()
        return self._active(run, wait) if wait else None

    def begin_kernel_run(self) -> None:
        """The kernel's own run, started by ``%load_ext mlnb`` without waiting for the
        tracking store: experiment, run, params and early provenance are journaled now."""
        self.kernel_mode = True
        if self.run is not None and self.run.kernel:
            self.discard_empty_kernel_run()  # loaded again: the run takes the new context
        if self.run is None:
            self.start_run(wait=False, kernel=True, auto=True)
        self._watch_idle()

    def _active(self, run: Run, wait: bool) -> Any:
        """``run`` as an ``mlflow.ActiveRun`` on MLflow's fluent stack of this thread."""
        if run.active is not None:
            _push_fluent(run.active)
            return run.active
        mlflow = _client.import_mlflow()
        from mlflow.entities import Run as MlflowRun
        from mlflow.entities import RunData, RunInfo

        settings = self.settings
        real = self.journal.real_id(run.key, timeout=settings.http_timeout + 60 if wait else 0)
        if real is not None:
            run.real = real
            try:
                entity = _client.client_for(run.uri).get_run(real)
            except Exception as exc:
                raise _client.describe_error(exc, run.uri, "start a run") from exc
            if run.experiment_id is None:
                run.experiment_id = entity.info.experiment_id
            run.name = run.name or entity.info.run_name
        else:  # the store is unreachable: the run lives in the journal for now
            info = RunInfo(
                run_id=run.key,
                experiment_id=run.experiment_id or "",
                user_id="",
                status="RUNNING",
                start_time=run.start_time,
                end_time=None,
                lifecycle_stage="active",
                run_name=run.name,
            )
            entity = MlflowRun(info, RunData())
        active = mlflow.ActiveRun(entity)
        if real is not None:
            run.active = active
            _push_fluent(active)
        return active

    def mlflow_run(self) -> Any:
        """The active run as MLflow's fluent active run of this thread (started if none;
        waits until it exists in the tracking store): for calls that go through MLflow."""
        run = self.ensure_run()
        active = self._active(run, wait=True)
        if run.real is None:
            from mlnb.exceptions import TrackingUnavailableError

            raise TrackingUnavailableError(
                f"the tracking store at {run.uri} is unreachable, so run {run.key} is only in "
                "the journal; this needs the real run: start the server, or run `mlnb sync`."
            )
        return active

    def _default_experiment(self) -> str:
        if self.recorder is not None and self.recorder.notebook_path is not None:
            return self.recorder.notebook_path.stem
        return "Default"

    def _context_tags(self, settings: Settings) -> dict[str, str]:
        tags: dict[str, str] = {"mlnb.version": _mlnb_version()}
        notebook = self.recorder.notebook_path if self.recorder else None
        if notebook is not None:
            try:
                source = str(notebook.relative_to(settings.root))
            except ValueError:
                source = str(notebook)
            tags["mlflow.source.name"] = source
            tags["mlflow.source.type"] = "NOTEBOOK"
            tags["mlnb.notebook"] = str(notebook)
        if self.recorder is not None:
            tags["mlnb.runner"] = "papermill" if _papermill_input() else "jupyter"
        else:
            tags["mlnb.runner"] = "script"
        tags["mlnb.host"] = _host()
        tags["mlnb.pid"] = str(os.getpid())
        return tags

    def _record_environment(self, run: Run, settings: Settings) -> None:
        """Git and environment provenance, off the caller's path."""
        from mlnb.tracking._provenance import environment_info, git_info

        try:
            files: dict[str, str] = {}
            git = git_info(settings.root)
            if git is not None:
                tags = {
                    "mlflow.source.git.commit": git.commit,
                    "mlflow.source.git.dirty": str(git.dirty).lower(),
                    "mlnb.git.dirty": str(git.dirty).lower(),
                }
                if git.branch:
                    tags["mlflow.source.git.branch"] = git.branch
                if git.repo_url:
                    tags["mlflow.source.git.repoURL"] = git.repo_url
                for key, value in tags.items():
                    self._w(run).submit(run.key, "tag", (key, value))
                if git.dirty:
                    files["git_diff.patch"] = git.diff + "".join(
                        f"# untracked: {name}\n" for name in git.untracked
                    )
            env = environment_info()
            for key, value in {
                "mlnb.python.version": env.python,
                "mlnb.python.implementation": env.implementation,
                "mlnb.platform": env.platform,
                "mlnb.packages.hash": env.packages_hash,
            }.items():
                self._w(run).submit(run.key, "tag", (key, value))
            files["environment.txt"] = (
                f"# python {env.python} ({env.implementation}) on {env.platform}\n"
                f"# executable {env.executable}\n# packages hash {env.packages_hash}\n"
                + "\n".join(env.packages)
                + "\n"
            )
            self._log_texts(run, files)
            # Not part of the run's background work: the end of the run does not wait for it.
            # Never in a kernel: importing sklearn or lightgbm there beside the notebook's own
            # imports of them can deadlock or see a half-initialised module.
            if not self.kernel_mode:
                threading.Thread(target=_warm_model_flavors, name="mlnb-warm", daemon=True).start()
        except Exception as exc:  # provenance must never break the user's run
            _warn(f"could not record git/environment provenance: {exc}")

    def _log_texts(self, run: Run, files: Mapping[str, str]) -> None:
        """Write small text files as artifacts under ``mlnb/`` of the run."""
        if not files:
            return
        folder = Path(tempfile.mkdtemp(prefix="mlnb-artifacts-"))
        try:
            for name, text in files.items():
                (folder / name).write_text(text, encoding="utf-8")
            self._w(run).send_or_journal(
                {"op": "log_artifact", "run": run.key, "artifact_path": ARTIFACT_DIR},
                files={"src": folder},
            )
        finally:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)

    def ensure_run(self) -> Run:
        """The active run, started on the first log call when there is none."""
        run = self.run
        if run is not None:
            return run
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None:
            active = _original(mlflow, "active_run")()
            if active is not None:  # started with mlflow.start_run(): write to it
                self.run = Run(
                    active.info.run_id,
                    active.info.experiment_id,
                    mlflow.get_tracking_uri(),
                    active.info.run_name,
                    owned=False,
                    active=active,
                )
                self._runs[self.run.key] = self.run
                self._register_exit()
                return self.run
        self.start_run(wait=False, kernel=self.kernel_mode, auto=self.kernel_mode)
        assert self.run is not None
        return self.run

    def end_run(
        self,
        status: str = "FINISHED",
        *,
        end_time: int | None = None,
        timeout: float | None = None,
    ) -> bool:
        """End the active run: its last records and the end are journaled, then sent (up
        to ``timeout`` seconds). True when everything reached the tracking store."""
        with self._lock:
            run = self.run
            if run is None:
                mlflow = self.loaded_mlflow()
                if mlflow is not None and _original(mlflow, "active_run")() is not None:
                    _original(mlflow, "end_run")(status)
                return True
            budget = self.settings.http_timeout + 5.0 if timeout is None else timeout
            started = time.monotonic()
            sent = False
            try:
                self._release_held_params()
                if run.background is not None:
                    run.background.join(timeout=max(0.0, budget / 2))
                self._write_run_artifacts(run)
                self._w(run).send_or_journal(
                    {
                        "op": "set_terminated",
                        "run": run.key,
                        "status": status,
                        "end_time": end_time or now_ms(),
                    }
                )
                # Sent (or durably journaled) before the run stops being the active one, so
                # whoever sees it end reads it ended in the store.
                remaining = max(0.0, budget - (time.monotonic() - started))
                sent = self._w(run).flush(timeout=remaining)
            finally:
                self.run = self._parents.pop() if self._parents else None
                _pop_fluent_run(run.run_id)
                run.active = None
        return sent

    def discard_empty_kernel_run(self) -> bool:
        """End and delete the kernel's automatic run if nothing but mlnb's provenance was
        written to it (the notebook started a run of its own, or moved to another store)."""
        run = self.run
        if run is None or not run.auto or run.user_writes or self._parents:
            return False
        with self._lock:
            writer = self._w(run)
            writer.submit(run.key, "tag", ("mlnb.discarded", "true"))
            writer.send_or_journal(
                {"op": "set_terminated", "run": run.key, "status": "FINISHED", "end_time": now_ms()}
            )
            writer.send_or_journal({"op": "delete_run", "run": run.key})
            self.run = None
            _pop_fluent_run(run.run_id)
        return True

    def _write_run_artifacts(self, run: Run) -> None:
        files: dict[str, str] = {}
        recorder = self.recorder
        if recorder is not None and recorder.cells:
            flags = recorder.execution_flags()
            self._tag("mlnb.execution.out_of_order", str(flags["out_of_order"]).lower())
            self._tag(
                "mlnb.execution.reexecuted_cells", ",".join(flags["reexecuted"])[:MAX_TAG_LENGTH]
            )
            self._tag(
                "mlnb.execution.reexecuted",
                str(bool(flags["reexecuted"] or flags["reexecuted_without_id"])).lower(),
            )
            self._tag("mlnb.execution.cells", str(len(recorder.cells)))
            failed = [c for c in recorder.cells[run.first_cell :] if c.error]
            if failed:
                self._tag("mlnb.execution.errors", str(len(failed)))
            files["code.py"] = recorder.code_text()
            files["cells.json"] = json.dumps(recorder.cells_json(), indent=1)
            try:
                snapshot = recorder.snapshot()
                files["notebook.ipynb"] = json.dumps(snapshot, indent=1, ensure_ascii=False)
            except Exception as exc:
                _warn(f"could not snapshot the notebook: {exc}")
        files["provenance.json"] = json.dumps(
            {
                "notebook": str(recorder.notebook_path)
                if recorder and recorder.notebook_path
                else None,
                "records": run.provenance,
            },
            indent=1,
        )
        self._log_texts(run, files)

    def at_exit(self) -> None:
        """Kernel shutdown, papermill's end, or interpreter exit: finish the run.

        Everything is journaled first (milliseconds); then what is left is sent for at most
        ``shutdown_timeout`` seconds (jupyter_client SIGTERMs the kernel 2.5 s after asking
        it to stop). What could not be sent stays in the journal for the next mlnb process.
        """
        if self._finished:
            return  # ended at the kernel's shutdown request; this is the interpreter's exit
        self._exiting = True
        _STOP_WARMING.set()
        self._idle_wake.set()
        budget = self.settings.shutdown_timeout
        if os.environ.get("MLNB_RUN_ID"):
            # A pipeline step: the runner waits for this kernel's answer (no SIGTERM at
            # 2.5 s) and the step counts as done only once its run is complete.
            budget = max(budget, self.settings.http_timeout + 60.0)
        started = time.monotonic()
        try:
            run = self.run
            if run is None and self.notebook_params and not self._ever_started:
                # A parameterized notebook that logged nothing itself is still recorded.
                self.start_run(wait=False)
                run = self.run
            while run is not None and run.owned:
                last = self.recorder.cells[-1] if self.recorder and self.recorder.cells else None
                self.end_run(
                    "FAILED" if last is not None and last.error else "FINISHED",
                    end_time=self._end_time(),
                    timeout=0.0,
                )
                run = self.run
            remaining = max(0.0, budget - (time.monotonic() - started))
            journal = self.journal
            if journal.flush(timeout=remaining):
                journal.close()
            else:
                left = journal.unsent + len(journal._queue)
                if left:
                    _hand_off(journal.folder)
                    why = "the tracking store is unreachable" if journal.offline else "no time"
                    _say(
                        f"mlnb: {left} tracking write(s) not sent yet ({why}); they are kept "
                        f"in {journal.folder} and sent in the background once this process "
                        "has exited (`mlnb sync` sends them too)."
                    )
        except MlnbError as exc:
            _warn(str(exc))
        except Exception as exc:  # pragma: no cover - last resort at exit
            _warn(f"could not finish the run at exit: {exc}")
        finally:
            self._exiting = False
            self._finished = self.kernel_mode and self.run is None

    def _end_time(self) -> int | None:
        """An interactive run ends when its last cell did, not when the kernel stops."""
        run = self.run
        if run is None or self.last_activity is None or not self.kernel_mode:
            return None
        if _papermill_input() or os.environ.get("MLNB_RUN_ID"):
            return None
        return int(self.last_activity * 1000)

    # -- interactive runs: idle end ----------------------------------------------------
    def before_cell(self) -> None:
        """Called before each cell: an interactive run idle for ``idle_timeout`` has ended
        (at the end of its last cell); this cell starts the next run."""
        if not self.kernel_mode:
            return
        with self._lock:
            if self.run is None and self._ever_started:
                self.start_run(wait=False, kernel=True, auto=True)
            else:
                self._end_if_idle(start_next=True)

    def _end_if_idle(self, start_next: bool) -> bool:
        run = self.run
        if run is None or self.last_activity is None:
            return False
        if self._idle_timeout is None:  # read once: settings cost ~0.1 ms, this runs per cell
            self._idle_timeout = self.settings.idle_timeout
        idle = self._idle_timeout
        if (
            run is None
            or not run.kernel
            or idle <= 0
            or self.last_activity is None
            or self.clock() - self.last_activity < idle
            or _papermill_input()
            or os.environ.get("MLNB_RUN_ID")
        ):
            return False
        self.end_run("FINISHED", end_time=int(self.last_activity * 1000), timeout=0.0)
        if start_next:
            self.start_run(wait=False, kernel=True, auto=True)
        return True

    def _watch_idle(self) -> None:
        if self._idle_watch is not None or self.settings.idle_timeout <= 0:
            return

        def watch() -> None:
            while not self._exiting:
                idle = self.settings.idle_timeout
                last = self.last_activity
                wait = idle if last is None else max(0.5, last + idle - self.clock())
                if self._idle_wake.wait(min(wait, 60.0)):
                    return
                with contextlib.suppress(Exception), self._lock:
                    self._end_if_idle(start_next=False)

        self._idle_watch = threading.Thread(target=watch, name="mlnb-idle", daemon=True)
        self._idle_watch.start()

    # -- logging ---------------------------------------------------------------------
    def _where(self) -> dict[str, Any]:
        cell = self.recorder.current if self.recorder else None
        if cell is None:
            return {}
        out: dict[str, Any] = {"cell_index": cell.index, "execution_count": cell.execution_count}
        if cell.cell_id:
            out["cell_id"] = cell.cell_id
        return out

    def _provenance(self, run: Run, kind: str, key: str) -> None:
        run.provenance.append({"kind": kind, "key": key, **self._where()})

    def _tag(self, key: str, value: str) -> None:
        run = self.run
        if run is not None:
            self._w(run).submit(run.key, "tag", (key, value[:MAX_TAG_LENGTH]))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        checked = [(check_name("metric", k), metric_value(k, v)) for k, v in metrics.items()]
        if step is not None and not isinstance(step, numbers.Integral):
            raise InvalidValueError(f"step must be a whole number, got {step!r}.")
        run = self.ensure_run()
        run.user_writes += 1
        run.metrics_logged = True
        writer = self._w(run)
        ts = now_ms()
        for key, value in checked:
            writer.submit(run.key, "metric", (key, value, ts, int(step or 0)))
            if self.recorder is not None:
                self._provenance(run, "metric", key)

    def log_params(self, params: Mapping[str, Any]) -> None:
        checked = flatten_params(params, strict=True)
        run = self.ensure_run()
        for key, text in checked.items():
            old = run.params.get(key)
            if old is not None and old != text:
                raise InvalidValueError(
                    f"param {key!r} was already logged as {old!r} in this run and MLflow "
                    f"params cannot change (new value {text!r}); start a new run "
                    "(%mlnb end, then %mlnb start) or log it as a metric or tag."
                )
        self._submit_params(checked, strict=True)

    def _submit_params(
        self, params: Mapping[str, str | None], strict: bool, user: bool = True
    ) -> None:
        run = self.ensure_run()
        writer = self._w(run)
        if user:
            run.user_writes += 1
        for key, text in params.items():
            if text is None:
                continue
            old = run.params.get(key)
            if old == text:
                continue
            if old is not None:
                if strict:  # pragma: no cover - checked by the caller
                    raise InvalidValueError(f"param {key!r} cannot change.")
                _warn(
                    f"parameter {key!r} changed from {old!r} to {text!r} after it was logged; "
                    "MLflow params cannot change, so this run keeps the first value: start "
                    "a new run (%mlnb end, then %mlnb start) to record the new one."
                )
                continue
            run.params[key] = text
            writer.submit(run.key, "param", (key, text))
            if self.recorder is not None:
                self._provenance(run, "param", key)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        checked = {check_name("tag", k): str(v)[:MAX_TAG_LENGTH] for k, v in tags.items()}
        run = self.ensure_run()
        run.user_writes += 1
        writer = self._w(run)
        for key, text in checked.items():
            writer.submit(run.key, "tag", (key, text))
            if self.recorder is not None:
                self._provenance(run, "tag", key)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(local_path).expanduser()
        if not path.exists():
            raise InvalidValueError(
                f"artifact {str(local_path)!r} does not exist (working directory "
                f"{Path.cwd()}); check the path or write the file first."
            )
        if not (path.is_dir() or path.is_file()):
            raise InvalidValueError(f"artifact {str(local_path)!r} is not a file or folder.")
        try:
            path.open("rb").close() if path.is_file() else None
        except OSError as exc:
            raise InvalidValueError(
                f"cannot read artifact {str(local_path)!r}: {exc.strerror}."
            ) from exc
        run = self.ensure_run()
        run.user_writes += 1
        writer = self._w(run)
        entry: dict[str, Any] = {"op": "log_artifact", "run": run.key}
        if path.is_dir():
            entry["artifact_path"] = "/".join(p for p in (artifact_path, path.name) if p)
        else:
            entry["artifact_path"] = artifact_path
        writer.send_or_journal(entry, files={"src": path.resolve()})
        if self.recorder is not None:
            self._provenance(run, "artifact", str(path))

    def flush(self, timeout: float | None = None) -> bool:
        """Everything accepted so far is durable, and sent unless the store is unreachable
        (or ``timeout`` ran out). True when sent."""
        if timeout is None:
            timeout = self.settings.http_timeout + 5.0
        done = True
        for journal in {id(w.journal): w.journal for w in self._writers.values()}.values():
            done = journal.flush(timeout=timeout) and done
        return done

    # -- notebook hooks (called by the IPython extension) ------------------------------
    def after_cell(self, cell: ExecutedCell | None) -> None:
        if cell is None or self.recorder is None:
            return
        self.last_activity = self.clock()
        if self._autolog_params is None:
            self._autolog_params = self.settings.autolog_params
        if not self._autolog_params:
            return
        found = self.recorder.parameter_names(cell)
        if found is not None and found[1]:  # papermill's injected cell: these values count
            self._held_params = None
            self.capture_parameters(*found)
        elif found is not None:  # the parameters cell: papermill may inject right after it
            self._release_held_params()
            self._held_params = {"names": found[0]}
        elif self._held_params is not None:
            self._release_held_params()

    def _release_held_params(self) -> None:
        held, self._held_params = self._held_params, None
        if held is not None:
            self.capture_parameters(held["names"], [])

    def capture_parameters(self, names: list[str], injected: list[str]) -> None:
        ns = self.user_ns or {}
        values: dict[str, str] = {}
        skipped: list[str] = []
        for name in names:
            if name in ns and not name.startswith("_"):
                flat = flatten_params({name: ns[name]}, strict=False, skipped=skipped)
                values.update(flat)
        if skipped:
            _warn(
                f"parameter(s) {', '.join(skipped)} are not params MLflow can hold (not text, "
                "numbers or small containers of them, or too long); log a summary with "
                "mlnb.log_param, or save them with mlnb.log_artifact."
            )
        self.notebook_params.update(values)
        self.injected_params = [
            n for n in injected if n in values or any(k.startswith(f"{n}.") for k in values)
        ]
        if values:
            self._register_exit()  # a parameterized notebook is recorded even if it logs nothing
        if self.run is not None:
            self._submit_params(values, strict=False, user=False)
            if self.injected_params:
                self._tag("mlnb.params.injected", ",".join(self.injected_params))

    def loaded_mlflow(self) -> Any:
        """The mlflow module if it is imported (waiting for an import under way in another
        thread: the warm-up, the journal's sender), else None. Never a half-imported module."""
        warming = self._warming
        if warming is not None and warming.is_alive() and warming is not threading.current_thread():
            warming.join()
        return _client.imported_mlflow()

    def warm_up(self) -> None:
        """Import MLflow and open the store off the user's path, so a run can start (or be
        finished at kernel shutdown, where time is short) without waiting for them."""
        if self._warming is not None:
            return
        settings = self.settings

        def warm() -> None:
            try:
                _client.get_client(settings)
            except Exception:
                pass  # the journal's sender reports the problem

        self._warming = threading.Thread(target=warm, name="mlnb-warm-up", daemon=True)
        self._warming.start()

    def warm_model_flavors(self) -> bool:
        """Import, in this thread and now, what the first ``log_model`` of the libraries in
        use would import (MLflow's flavor, skops, MLflow's package map); False when nothing
        was left to import. A kernel calls it from its main thread while idle."""
        if _STOP_WARMING.is_set() or not flavors_to_warm():
            return False
        _warm_model_flavors()
        return True

    # -- seeds -----------------------------------------------------------------------
    def seed(self, value: int) -> list[str]:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise InvalidValueError(f"seed must be a whole number, got {value!r}.")
        value = int(value)
        random.seed(value)
        seeded = ["random"]
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed(value % 2**32)
            seeded.append("numpy")
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.manual_seed(value)
            seeded.append("torch")
        tf = sys.modules.get("tensorflow")
        if tf is not None and hasattr(tf, "random"):
            tf.random.set_seed(value)
            seeded.append("tensorflow")
        tags = {"mlnb.seed": str(value), "mlnb.seed.libraries": ",".join(seeded)}
        self._seed_tags = tags
        if self.run is not None:
            for key, text in tags.items():
                self._tag(key, text)
        else:
            self.pending_tags.update(tags)
        return seeded

    # -- status ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        settings = self.settings
        run = self.run
        queued = sum(w.queued for w in {id(w.journal): w for w in self._writers.values()}.values())
        return {
            "tracking_uri": settings.tracking_uri,
            "tracking_uri_source": settings.sources.get("tracking_uri"),
            "run_id": run.run_id if run else None,
            "run_name": run.name if run else None,
            "experiment_id": run.experiment_id if run else None,
            "params": dict(run.params) if run else {},
            "notebook": str(self.recorder.notebook_path)
            if self.recorder and self.recorder.notebook_path
            else None,
            "notebook_params": dict(self.notebook_params),
            "queued": queued,
            "outbox_pending": pending_entries(settings.journal_dir),
            "offline": any(w.offline for w in self._writers.values()),
        }


def flatten_params(
    params: Mapping[str, Any], strict: bool, skipped: list[str] | None = None
) -> dict[str, str]:
    """Params as MLflow text: a dict becomes one param per key (``params.n_estimators``),
    nested dicts too; sets become sorted lists. A value that cannot be a param raises
    (``strict``) or is named in ``skipped``."""
    out: dict[str, str] = {}

    def add(key: str, value: Any, depth: int) -> None:
        if isinstance(value, Mapping) and value and depth < 5:
            for sub, inner in value.items():
                add(f"{key}.{sub}", inner, depth + 1)
            return
        if isinstance(value, (set, frozenset)):
            try:
                value = sorted(value)
            except TypeError:
                value = sorted(value, key=repr)
        try:
            name = check_name("param", key)
        except InvalidValueError:
            if strict:
                raise
            if skipped is not None:
                skipped.append(key)
            return
        text = param_value(name, value, strict=strict)
        if text is None:
            if skipped is not None:
                skipped.append(key)
            return
        out[name] = text

    for key, value in params.items():
        add(str(key) if not isinstance(key, str) else key, value, 0)
    return out


def _hand_off(folder: Path) -> None:
    """Start a detached process that sends this journal once this process has exited."""
    import subprocess

    with contextlib.suppress(Exception):
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "handoff.log").open("a", encoding="utf-8") as log:
            subprocess.Popen(
                [sys.executable, "-m", "mlnb.tracking._handoff", str(os.getpid()), str(folder)],
                cwd=str(folder.parent.parent),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )


def _host() -> str:
    import socket

    return socket.gethostname()


def _say(message: str) -> None:
    """A line on the terminal of the process (papermill's, for a kernel), at exit."""
    for stream in (sys.__stderr__, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                print(message, file=stream, flush=True)
                return


def _push_fluent(active: Any) -> None:
    """Make ``active`` MLflow's fluent active run in this thread (once)."""
    try:
        from mlflow.tracking import fluent

        stack = fluent._active_run_stack.get()
        if not any(r.info.run_id == active.info.run_id for r in stack):
            stack.append(active)
    except Exception:  # pragma: no cover - MLflow moved its internals
        pass


def _original(mlflow: Any, name: str) -> Any:
    """MLflow's own fluent function, under mlnb's patch (see ``_fluent``)."""
    func = getattr(mlflow, name)
    return getattr(func, "__mlnb_original__", func)


def _pop_fluent_run(run_id: str) -> None:
    """Make MLflow's fluent API forget the run without calling the server again."""
    if "mlflow.tracking.fluent" not in sys.modules:
        return  # never imported: nothing to forget (and no import at a kernel's shutdown)
    try:
        from mlflow.environment_variables import MLFLOW_RUN_ID
        from mlflow.tracking import fluent

        # The stack is per thread, and the kernel shuts down on its control thread: look in
        # every thread's stack, or MLflow's own exit handler ends the run again as FINISHED.
        for stack in fluent._active_run_stack.get_all_thread_values().values():
            for index in range(len(stack) - 1, -1, -1):
                if stack[index].info.run_id == run_id:
                    del stack[index]
        MLFLOW_RUN_ID.unset()
        fluent._last_active_run_id.set(run_id)
    except Exception:  # pragma: no cover - MLflow moved its internals
        import mlflow

        try:
            mlflow.end_run()
        except Exception:
            pass


_STOP_WARMING = threading.Event()  # set at exit: warming up is for later, there is no later


_WARMED: set[str] = set()  # flavor modules imported by a warm-up (and MLflow's package map)


def flavors_to_warm() -> list[str]:
    """The modules the first ``log_model`` of a library already in use would import:
    MLflow's flavor (and skops for scikit-learn), and MLflow's map of installed packages.
    Empty once they are imported."""
    from mlnb.tracking._models import _FLAVOR_BY_MODULE

    wanted: list[str] = []
    for top, flavor in _FLAVOR_BY_MODULE.items():
        if top in sys.modules:
            wanted.append(f"mlflow.{flavor}")
            if flavor == "sklearn":
                wanted.append("skops.io")  # MLflow saves scikit-learn with skops
    if wanted:  # every flavor saves through MLflow's pyfunc (0.5 s of pydantic models)
        wanted = ["mlflow.pyfunc", *wanted, "mlflow:packages", "mlflow:context"]
    return [m for m in dict.fromkeys(wanted) if m not in _WARMED and m not in sys.modules]


def _warm_model_flavors() -> None:
    """Import MLflow's flavor modules for libraries already in use, so the first
    log_model does not pay for them on the user's path.

    Run from a background thread outside kernels; in a kernel only from its main thread
    while it is idle (``mlnb.magics`` schedules it), because importing scikit-learn or
    LightGBM beside the notebook's own imports of them can deadlock or see a half-initialised
    module."""
    import importlib

    _client.import_mlflow()  # never beside another thread's first import of mlflow
    for name in flavors_to_warm():
        if _STOP_WARMING.is_set():
            return
        try:
            if name == "mlflow:packages":  # built on the first model saved (0.5-2 s)
                from mlflow.utils.requirements_utils import _init_packages_to_modules_map

                _init_packages_to_modules_map()
            elif name == "mlflow:context":  # a logged model's tags: git, notebook, user
                from mlflow.tracking.context.registry import resolve_tags

                resolve_tags()  # its providers cache what they find
            else:
                importlib.import_module(name)
        except Exception:
            pass
        _WARMED.add(name)


def _mlnb_version() -> str:
    from mlnb._version import __version__

    return __version__


_SESSION: TrackingSession | None = None


def session() -> TrackingSession:
    global _SESSION
    if _SESSION is None:
        _SESSION = TrackingSession()
    return _SESSION


def require_run() -> Run:
    run = session().run
    if run is None:
        raise NoActiveRunError("no active run; start one with mlnb.start_run() or %mlnb start.")
    return run
