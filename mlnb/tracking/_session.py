"""The tracking session of this process: the active run and everything recorded with it.

:func:`session` is the one :class:`TrackingSession` of the process. It is put together by
concern, each module saying what it guarantees: run lifecycle (:mod:`._lifecycle`), runs
that end by themselves at exit or when idle (:mod:`._auto_end`), validation of values
(:mod:`._validation`), provenance (:mod:`._provenance`), warm-up (:mod:`._warmup`) and
seeding (:mod:`._seeding`). Here: the log calls and the notebook's hooks. A log call checks
its values before anything is written, starts a run when none is active, and hands the
writes to the journal (durable within its group-commit window); it never waits for the
tracking server.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlnb.exceptions import InvalidValueError, NoActiveRunError
from mlnb.tracking._auto_end import AutoEnd
from mlnb.tracking._cells import ExecutedCell
from mlnb.tracking._journal import pending_entries
from mlnb.tracking._lifecycle import Run
from mlnb.tracking._provenance import note
from mlnb.tracking._seeding import seed_generators
from mlnb.tracking._validation import (
    MAX_TAG_LENGTH,
    check_name,
    flatten_params,
    metric_value,
)
from mlnb.tracking._warmup import (
    STOP_WARMING,
    flavors_to_warm,
    start_warm_up,
    warm_model_flavors,
)
from mlnb.tracking._writer import _warn, now_ms

__all__ = [
    "Run",
    "TrackingSession",
    "flavors_to_warm",
    "require_run",
    "session",
]


class TrackingSession(AutoEnd):
    """One per process (see :func:`session`)."""

    def __init__(self) -> None:
        super().__init__()
        self.user_ns: Mapping[str, Any] | None = None
        self.injected_params: list[str] = []
        self._autolog_params: bool | None = None  # read once, not on every cell
        #: values of the ``parameters`` cell, held until the next cell (papermill injects
        #: its values right after it, and those are the ones that count)
        self._held_params: dict[str, Any] | None = None

    def _run_started(self, run: Run) -> None:
        """A new run records the notebook's parameters (and which papermill injected)."""
        if self.notebook_params:
            self._submit_params(self.notebook_params, strict=False, user=False)
            if self.injected_params:
                self._tag("mlnb.params.injected", ",".join(self.injected_params))

    def _run_ending(self, run: Run) -> None:
        """Parameters held for papermill's injected cell are recorded before the end."""
        self._release_held_params()

    # -- logging ---------------------------------------------------------------------
    def _provenance(self, run: Run, kind: str, key: str) -> None:
        """Keep which cell recorded ``key`` (``provenance.json`` at the run's end)."""
        note(run, self.recorder, kind, key)

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
        self.in_cell = False
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

    # -- warm-up ---------------------------------------------------------------------
    def warm_up(self) -> None:
        """Import MLflow and open the store off the user's path, so a run can start (or be
        finished at kernel shutdown, where time is short) without waiting for them."""
        if self._warming is not None:
            return
        self._warming = start_warm_up(self.settings)

    def warm_model_flavors(self) -> bool:
        """Import, in this thread and now, what the first ``log_model`` of the libraries in
        use would import (MLflow's flavor, skops, MLflow's package map); False when nothing
        was left to import. A kernel calls it from its main thread while idle."""
        if STOP_WARMING.is_set() or not flavors_to_warm():
            return False
        warm_model_flavors()
        return True

    # -- seeds -----------------------------------------------------------------------
    def seed(self, value: int) -> list[str]:
        seeded, tags = seed_generators(value)
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
