"""Run lifecycle: starting, adopting and ending the runs of this process.

:class:`RunLifecycle` holds the session's runs (the active one, the parents of a nested
one) and their writers. Guarantees:

- a run is journaled the moment it starts (``create_run`` or ``adopt_run``) and created in
  MLflow by the journal's sender; the caller waits for it only when it asks for an
  ``mlflow.ActiveRun`` (``wait``), and gets one under the local id while the tracking
  store is unreachable;
- one run is active at a time, nested runs stack, and mlnb's own automatic run gives way
  to the one the notebook starts (deleted when nothing but provenance was written to it);
- ``end_run`` journals the run's last records and its end before it stops being the
  active run, so whoever sees it ended reads it ended in the store;
- MLflow's fluent API sees the same active run (``_push_fluent``/``_pop_fluent_run``).

What a run records when it starts and ends (notebook params, held params) is the
session's: :meth:`RunLifecycle._run_started` and :meth:`RunLifecycle._run_ending`. How a
run ends without ``end_run`` (idle, exit) is :mod:`mlnb.tracking._auto_end`.
"""

from __future__ import annotations

import abc
import atexit
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.config import Settings, get_settings
from mlnb.exceptions import TrackingError
from mlnb.tracking import _client
from mlnb.tracking._cells import CellRecorder
from mlnb.tracking._journal import Journal, is_local_id, new_local_id
from mlnb.tracking._provenance import context_tags, record_environment, write_run_artifacts
from mlnb.tracking._validation import MAX_TAG_LENGTH
from mlnb.tracking._warmup import loaded_mlflow
from mlnb.tracking._writer import BatchWriter, _created_hooks, journal_for, now_ms

__all__ = ["Run", "RunLifecycle"]


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


class RunLifecycle(abc.ABC):
    """The runs of one process: started, adopted, active, ended."""

    def __init__(self) -> None:
        self.run: Run | None = None
        self.recorder: CellRecorder | None = None
        self.notebook_params: dict[str, str] = {}
        self.pending_tags: dict[str, str] = {}
        self._parents: list[Run] = []  # runs a nested run was started under
        self._writers: dict[tuple[Path, str], BatchWriter] = {}
        self._runs: dict[str, Run] = {}  # by journal key
        self._ever_started = False
        self._exiting = False
        self._warming: threading.Thread | None = None
        self._lock = threading.RLock()
        #: True in a kernel with %load_ext mlnb: the kernel has a run of its own, MLflow's
        #: fluent calls land in it, and an idle interactive run ends by itself
        self.kernel_mode = False
        self.last_activity: float | None = None  # end of the last executed cell (epoch s)
        #: a cell of this kernel is executing (None: no cell hooks, %load_ext mlnb not loaded)
        self.in_cell: bool | None = None
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
                    **context_tags(self.recorder, settings),
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
            self._run_started(run)
            run.background = threading.Thread(
                target=record_environment,
                args=(self._w(run), run, settings),
                # never in a kernel: see record_environment
                kwargs={"warm_flavors": not self.kernel_mode},
                name="mlnb-provenance",
                daemon=True,
            )
            run.background.start()
        return self._active(run, wait) if wait else None

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
                self._run_ending(run)
                if run.background is not None:
                    run.background.join(timeout=max(0.0, budget / 2))
                write_run_artifacts(self._w(run), run, self.recorder)
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

    def _tag(self, key: str, value: str) -> None:
        """A tag on the active run (cut to MLflow's length), if there is one."""
        run = self.run
        if run is not None:
            self._w(run).submit(run.key, "tag", (key, value[:MAX_TAG_LENGTH]))

    def loaded_mlflow(self) -> Any:
        """The mlflow module if it is imported (waiting for an import under way in another
        thread: the warm-up, the journal's sender), else None. Never a half-imported module."""
        return loaded_mlflow(self._warming)

    # -- what the session adds ---------------------------------------------------------
    @abc.abstractmethod
    def _run_started(self, run: Run) -> None:
        """``run`` just became the active run (journaled, not yet created in MLflow)."""

    @abc.abstractmethod
    def _run_ending(self, run: Run) -> None:
        """``run`` is about to end: record what is still held for it."""

    @abc.abstractmethod
    def at_exit(self) -> None:
        """Finish the process's runs (registered with atexit by :meth:`_register_exit`)."""


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
