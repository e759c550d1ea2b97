"""The tracking session of this process: the active run and everything recorded with it."""

from __future__ import annotations

import atexit
import json
import numbers
import os
import random
import re
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.config import Settings, get_settings
from mlnb.exceptions import InvalidValueError, MlnbError, NoActiveRunError, TrackingError
from mlnb.tracking import _client
from mlnb.tracking._cells import CellRecorder, ExecutedCell, _papermill_input
from mlnb.tracking._outbox import Outbox
from mlnb.tracking._writer import BatchWriter, _warn, now_ms

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
    """What mlnb knows about the run it writes to."""

    run_id: str
    experiment_id: str
    uri: str
    name: str | None
    owned: bool  # started by mlnb (ended by mlnb) or adopted from mlflow.start_run
    active: Any = None  # mlflow.ActiveRun
    params: dict[str, str] = field(default_factory=dict)
    provenance: list[dict[str, Any]] = field(default_factory=list)
    first_cell: int = 0
    background: threading.Thread | None = None


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
        self._writers: dict[str, BatchWriter] = {}
        self._ever_started = False
        self._exiting = False
        self._warming: threading.Thread | None = None
        self._autolog_params: bool | None = None  # read once, not on every cell
        self._lock = threading.RLock()

    # -- plumbing --------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return get_settings()

    def writer(self, uri: str | None = None) -> BatchWriter:
        if uri is not None:  # the hot path of every log call: no settings lookup
            writer = self._writers.get(uri)
            if writer is not None:
                return writer
        settings = self.settings
        uri = uri or settings.tracking_uri
        writer = self._writers.get(uri)
        if writer is None:
            writer = self._writers[uri] = BatchWriter(
                uri, Outbox(settings.outbox_dir), settings.flush_interval
            )
        return writer

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
    ) -> Any:
        self.loaded_mlflow()  # a warm-up import must finish before this thread imports
        import mlflow

        with self._lock:
            settings = self.settings
            if run_id is None and not nested and self.run is None and not self._ever_started:
                # A pipeline step: the runner created this run (nested under the pipeline's).
                run_id = os.environ.get("MLNB_RUN_ID") or None
            if self.run is not None and not nested and run_id != self.run.run_id:
                raise TrackingError(
                    f"run {self.run.run_id} is already active; end it first "
                    "(mlnb.end_run() or %mlnb end) or pass nested=True."
                )
            client = _client.get_client(settings)
            if experiment_id is None and run_id is None:
                name = experiment_name or settings.experiment or self._default_experiment()
                experiment_id = _client.ensure_experiment(client, settings, name)
            if run_name is None and run_id is None:
                run_name = _fresh_run_name()
            context_tags = self._context_tags(settings)
            all_tags = {
                **context_tags,
                **self.pending_tags,
                **{k: str(v) for k, v in (tags or {}).items()},
            }
            user_random = random.getstate()  # starting a run must not draw from it
            try:
                active = mlflow.start_run(
                    run_id=run_id,
                    experiment_id=experiment_id,
                    run_name=run_name,
                    nested=nested,
                    parent_run_id=parent_run_id,
                    tags=all_tags if run_id is None else None,
                    description=description,
                    log_system_metrics=log_system_metrics,
                )
            except mlflow.exceptions.MlflowException as exc:
                raise _client.describe_error(exc, settings.tracking_uri, "start a run") from exc
            finally:
                random.setstate(user_random)
            self._register_exit()
            self.pending_tags.clear()
            if self.run is not None:
                self._parents.append(self.run)
            self.run = Run(
                run_id=active.info.run_id,
                experiment_id=active.info.experiment_id,
                uri=settings.tracking_uri,
                name=active.info.run_name,
                owned=True,
                active=active,
                first_cell=len(self.recorder.cells) if self.recorder else 0,
            )
            self._ever_started = True
            if self.notebook_params:
                self._submit_params(self.notebook_params, strict=False)
                if self.injected_params:
                    self._tag("mlnb.params.injected", ",".join(self.injected_params))
            self.run.background = threading.Thread(
                target=self._record_environment,
                args=(self.run, settings),
                name="mlnb-provenance",
                daemon=True,
            )
            self.run.background.start()
            return active

    def _default_experiment(self) -> str:
        if self.recorder is not None and self.recorder.notebook_path is not None:
            return self.recorder.notebook_path.stem
        return "Default"

    def _context_tags(self, settings: Settings) -> dict[str, str]:
        from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE

        tags: dict[str, str] = {"mlnb.version": _mlnb_version()}
        notebook = self.recorder.notebook_path if self.recorder else None
        if notebook is not None:
            try:
                source = str(notebook.relative_to(settings.root))
            except ValueError:
                source = str(notebook)
            tags[MLFLOW_SOURCE_NAME] = source
            tags[MLFLOW_SOURCE_TYPE] = "NOTEBOOK"
            tags["mlnb.notebook"] = str(notebook)
        if self.recorder is not None:
            tags["mlnb.runner"] = "papermill" if _papermill_input() else "jupyter"
        else:
            tags["mlnb.runner"] = "script"
        return tags

    def _record_environment(self, run: Run, settings: Settings) -> None:
        """Git and environment provenance, off the caller's path."""
        from mlflow.utils.mlflow_tags import (
            MLFLOW_GIT_BRANCH,
            MLFLOW_GIT_COMMIT,
            MLFLOW_GIT_DIRTY,
            MLFLOW_GIT_REPO_URL,
        )

        from mlnb.tracking._provenance import environment_info, git_info

        try:
            files: dict[str, str] = {}
            git = git_info(settings.root)
            if git is not None:
                tags = {
                    MLFLOW_GIT_COMMIT: git.commit,
                    MLFLOW_GIT_DIRTY: str(git.dirty).lower(),
                    "mlnb.git.dirty": str(git.dirty).lower(),
                }
                if git.branch:
                    tags[MLFLOW_GIT_BRANCH] = git.branch
                if git.repo_url:
                    tags[MLFLOW_GIT_REPO_URL] = git.repo_url
                for key, value in tags.items():
                    self.writer(run.uri).submit(run.run_id, "tag", (key, value))
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
                self.writer(run.uri).submit(run.run_id, "tag", (key, value))
            files["environment.txt"] = (
                f"# python {env.python} ({env.implementation}) on {env.platform}\n"
                f"# executable {env.executable}\n# packages hash {env.packages_hash}\n"
                + "\n".join(env.packages)
                + "\n"
            )
            self._log_texts(run, files)
            # Not part of the run's background work: the end of the run does not wait for it.
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
            self.writer(run.uri).send_or_journal(
                {
                    "op": "log_artifact",
                    "uri": run.uri,
                    "run_id": run.run_id,
                    "artifact_path": ARTIFACT_DIR,
                },
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
        mlflow = self.loaded_mlflow()
        if mlflow is not None:
            active = mlflow.active_run()
            if active is not None:  # started with mlflow.start_run(): write to it
                self.run = Run(
                    run_id=active.info.run_id,
                    experiment_id=active.info.experiment_id,
                    uri=mlflow.get_tracking_uri(),
                    name=active.info.run_name,
                    owned=False,
                    active=active,
                )
                self._register_exit()
                return self.run
        self.start_run()
        assert self.run is not None
        return self.run

    def end_run(self, status: str = "FINISHED") -> None:
        with self._lock:
            run = self.run
            if run is None:
                mlflow = self.loaded_mlflow()
                if mlflow is not None and mlflow.active_run() is not None:
                    mlflow.end_run(status)
                return
            try:
                if run.background is not None:
                    run.background.join(timeout=30)
                self._write_run_artifacts(run)
                writer = self.writer(run.uri)
                writer.flush()
                writer.send_or_journal(
                    {
                        "op": "set_terminated",
                        "uri": run.uri,
                        "run_id": run.run_id,
                        "status": status,
                        "end_time": now_ms(),
                    }
                )
            finally:
                self.run = self._parents.pop() if self._parents else None
                _pop_fluent_run(run.run_id)

    def _write_run_artifacts(self, run: Run) -> None:
        files: dict[str, str] = {}
        recorder = self.recorder
        if recorder is not None and recorder.cells:
            import nbformat

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
                files["notebook.ipynb"] = nbformat.writes(recorder.snapshot())
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
        """Kernel shutdown, papermill's end, or interpreter exit: finish the run."""
        self._exiting = True
        _STOP_WARMING.set()
        try:
            run = self.run
            if run is None and self.notebook_params and not self._ever_started:
                # A parameterized notebook that logged nothing itself is still recorded.
                self.start_run()
                run = self.run
            if run is not None and run.owned:
                last = self.recorder.cells[-1] if self.recorder and self.recorder.cells else None
                self.end_run("FAILED" if last is not None and last.error else "FINISHED")
            for writer in self._writers.values():
                writer.flush(timeout=30)
        except MlnbError as exc:
            _warn(str(exc))
        except Exception as exc:  # pragma: no cover - last resort at exit
            _warn(f"could not finish the run at exit: {exc}")
        finally:
            self._exiting = False

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
            self.writer(run.uri).submit(run.run_id, "tag", (key, value[:MAX_TAG_LENGTH]))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        checked = [(check_name("metric", k), metric_value(k, v)) for k, v in metrics.items()]
        if step is not None and not isinstance(step, numbers.Integral):
            raise InvalidValueError(f"step must be a whole number, got {step!r}.")
        run = self.ensure_run()
        writer = self.writer(run.uri)
        ts = now_ms()
        for key, value in checked:
            writer.submit(run.run_id, "metric", (key, value, ts, int(step or 0)))
            if self.recorder is not None:
                self._provenance(run, "metric", key)

    def log_params(self, params: Mapping[str, Any]) -> None:
        checked = {check_name("param", k): param_value(k, v) for k, v in params.items()}
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

    def _submit_params(self, params: Mapping[str, str | None], strict: bool) -> None:
        run = self.ensure_run()
        writer = self.writer(run.uri)
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
            writer.submit(run.run_id, "param", (key, text))
            if self.recorder is not None:
                self._provenance(run, "param", key)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        checked = {check_name("tag", k): str(v)[:MAX_TAG_LENGTH] for k, v in tags.items()}
        run = self.ensure_run()
        writer = self.writer(run.uri)
        for key, text in checked.items():
            writer.submit(run.run_id, "tag", (key, text))
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
        writer = self.writer(run.uri)
        entry: dict[str, Any] = {"op": "log_artifact", "uri": run.uri, "run_id": run.run_id}
        if path.is_dir():
            entry["artifact_path"] = "/".join(p for p in (artifact_path, path.name) if p)
        else:
            entry["artifact_path"] = artifact_path
        writer.send_or_journal(entry, files={"src": path.resolve()})
        if self.recorder is not None:
            self._provenance(run, "artifact", str(path))

    def flush(self) -> None:
        for writer in list(self._writers.values()):
            writer.flush()

    # -- notebook hooks (called by the IPython extension) ------------------------------
    def after_cell(self, cell: ExecutedCell | None) -> None:
        if cell is None or self.recorder is None:
            return
        if self._autolog_params is None:
            self._autolog_params = self.settings.autolog_params
        if self._autolog_params:
            found = self.recorder.parameter_names(cell)
            if found is not None:
                self.capture_parameters(*found)
        run = self.run
        if run is not None:
            writer = self._writers.get(run.uri)
            if writer is not None:
                writer.request_flush()

    def capture_parameters(self, names: list[str], injected: list[str]) -> None:
        ns = self.user_ns or {}
        values = {}
        for name in names:
            if name in ns and not name.startswith("_"):
                text = param_value(name, ns[name], strict=False)
                if text is not None:
                    values[name] = text
        self.notebook_params.update(values)
        self.injected_params = [n for n in injected if n in values]
        if values:
            self._register_exit()  # a parameterized notebook is recorded even if it logs nothing
            if self.run is None:
                self.warm_up()
        if self.run is not None:
            self._submit_params(values, strict=False)
            if self.injected_params:
                self._tag("mlnb.params.injected", ",".join(self.injected_params))

    def loaded_mlflow(self) -> Any:
        """The mlflow module if it is imported (waiting for a warm-up import under way),
        else None. Never a half-imported module."""
        warming = self._warming
        if warming is not None and warming.is_alive() and warming is not threading.current_thread():
            warming.join()
        return sys.modules.get("mlflow")

    def warm_up(self) -> None:
        """Import MLflow and open the store off the user's path, so a run can start (or be
        finished at kernel shutdown, where time is short) without waiting for them."""
        if self._warming is not None:
            return
        settings = self.settings

        def warm() -> None:
            try:
                _client.get_client(settings).search_experiments(max_results=1)
            except Exception:
                pass  # the real call reports the problem
            try:  # the notebook snapshot written at the end of the run (about 0.5 s)
                import nbformat  # noqa: F401
            except ImportError:
                pass

        self._warming = threading.Thread(target=warm, name="mlnb-warm-up", daemon=True)
        self._warming.start()

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
        outbox = Outbox(settings.outbox_dir)
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
            "queued": sum(len(w._queue) for w in self._writers.values()),
            "outbox_pending": len(outbox),
            "offline": any(w.offline for w in self._writers.values()),
        }


def _fresh_run_name() -> str:
    """One of MLflow's run names ("bouncy-cat-123"), drawn without touching the global
    ``random`` stream: MLflow draws from it, so a notebook that called ``mlnb.seed(42)``
    would get the same name every time and lose draws from its own seeded stream."""
    from mlflow.utils.name_utils import _generate_random_name

    state = random.getstate()
    try:
        random.seed()  # from the OS
        return str(_generate_random_name())
    finally:
        random.setstate(state)


def _pop_fluent_run(run_id: str) -> None:
    """Make MLflow's fluent API forget the run without calling the server again."""
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


def _warm_model_flavors() -> None:
    """Import MLflow's flavor modules for libraries already in use, so the first
    log_model does not pay for them on the user's path."""
    import importlib

    from mlnb.tracking._models import _FLAVOR_BY_MODULE

    for top, flavor in _FLAVOR_BY_MODULE.items():
        if _STOP_WARMING.is_set():
            return
        if top in sys.modules:
            try:
                importlib.import_module(f"mlflow.{flavor}")
                if flavor == "sklearn":
                    importlib.import_module("skops.io")  # MLflow saves sklearn with skops
            except Exception:
                pass
    if _STOP_WARMING.is_set():
        return
    try:  # MLflow builds this map on the first model it saves (about 0.4 s)
        from mlflow.utils.requirements_utils import _init_packages_to_modules_map

        _init_packages_to_modules_map()
    except Exception:
        pass


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
