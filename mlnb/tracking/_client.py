"""The MLflow side: clients, experiments, and what counts as "the server is down".

MLflow is imported here, inside functions, never at ``import mlnb`` (it costs about 1.2 s).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb._text import first_line, slug
from mlnb.config import Settings
from mlnb.exceptions import StoreError, TrackingError, TrackingUnavailableError
from mlnb.tracking._store import ensure_store, is_disk_full

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "configure_mlflow",
    "describe_error",
    "ensure_experiment",
    "get_client",
    "is_unreachable",
    "send_entry",
]

# MLflow's own limits (mlflow.utils.validation): one log_batch call holds at most this many.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000

_configured: dict[str, str] = {}
_import_lock = threading.RLock()


def import_mlflow() -> Any:
    """``import mlflow``, one thread at a time: two threads importing it at once can see a
    half-initialised module ("partially initialized module 'mlflow'")."""
    with _import_lock:
        import mlflow

        return mlflow


def imported_mlflow() -> Any:
    """The mlflow module when it is imported (waiting for an import under way), else None."""
    if "mlflow" not in sys.modules:
        return None
    with _import_lock:
        return sys.modules.get("mlflow")


def configure_mlflow(settings: Settings) -> None:
    """Point MLflow's fluent API at the project's store (once per URI)."""
    mlflow = import_mlflow()

    if settings.is_remote:
        # The MLflow client retries an unreachable server for minutes by default; mlnb
        # would rather journal the write and go on. A user's own settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.http_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.http_timeout))
    if settings.embedded and settings.artifact_root is not None:
        # The SQLite store puts the "Default" experiment's artifacts under ./mlruns of
        # whatever the working directory is; keep them in the project's store instead.
        os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = settings.artifact_root.as_uri()
        settings.home.mkdir(parents=True, exist_ok=True)
    for uri in (settings.tracking_uri, settings.registry_uri):  # SQLite: made whole first
        if uri:
            ensure_store(uri)
    if _configured.get("tracking") != settings.tracking_uri:
        _point_mlflow(mlflow, "tracking", settings.tracking_uri)
        _configured["tracking"] = settings.tracking_uri
    if settings.registry_uri and _configured.get("registry") != settings.registry_uri:
        _point_mlflow(mlflow, "registry", settings.registry_uri)
        _configured["registry"] = settings.registry_uri
    # Runs of processes that died: replay their journal, mark them KILLED (once a process).
    from mlnb.tracking._writer import recover_dead

    recover_dead(settings.journal_dir)


def _mlflow_own(mlflow: Any, name: str) -> Any:
    """MLflow's own function, under mlnb's patch of its fluent API (``_fluent``)."""
    func = getattr(mlflow, name)
    return getattr(func, "__mlnb_original__", func)


#: MLflow's process-wide URIs: the module global its set_*_uri function sets
_URI_GLOBALS = {
    "tracking": ("mlflow.tracking._tracking_service.utils", "_tracking_uri", "set_tracking_uri"),
    "registry": ("mlflow.tracking._model_registry.utils", "_registry_uri", "set_registry_uri"),
}


def _point_mlflow(mlflow: Any, kind: str, uri: str) -> None:
    """Set MLflow's process-wide ``kind`` URI without touching ``os.environ``.

    MLflow's ``set_tracking_uri`` also writes MLFLOW_TRACKING_URI into the environment. Left
    there, the first project's store would follow the process (and its subprocesses) after a
    change of folder; written and put back, it is still there for an instant, and a thread
    that starts a subprocess in that instant (papermill, a pipeline step's kernel) hands the
    child this store as the user's own setting. So the global is set directly, as MLflow's
    setter does, and the setter is called (with the environment put back) only if MLflow
    has moved it."""
    import importlib

    module_name, attribute, setter = _URI_GLOBALS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        module = None
    if module is None or not hasattr(module, attribute):  # pragma: no cover - MLflow moved it
        with _environment_kept(f"MLFLOW_{kind.upper()}_URI"):
            _mlflow_own(mlflow, setter)(uri)
        return
    if getattr(module, attribute) == uri:
        return
    setattr(module, attribute, uri)
    if kind == "tracking":
        with contextlib.suppress(Exception):  # as set_tracking_uri: traces follow the store
            from mlflow.tracing.provider import reset

            reset()


@contextlib.contextmanager
def _environment_kept(name: str) -> Iterator[None]:
    """Run MLflow's own set_*_uri with the environment put back afterwards (the fallback
    of :func:`_point_mlflow`)."""
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def get_client(settings: Settings) -> MlflowClient:
    configure_mlflow(settings)
    from mlflow import MlflowClient

    try:
        client = MlflowClient(
            tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri
        )
        _ = client._tracking_client.store  # opens the store now: a bad URI fails here
    except Exception as exc:
        raise describe_error(exc, settings.tracking_uri, "open the tracking store") from exc
    return client


def ensure_experiment(client: MlflowClient, settings: Settings, name: str) -> str:
    """Id of the experiment ``name``, created if missing (artifacts kept in the project)."""
    try:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            return str(experiment.experiment_id)
        location = None
        if not settings.is_remote and settings.artifact_root is not None:
            location = (settings.artifact_root / slug(name, "experiment")).as_uri()
        return str(client.create_experiment(name, artifact_location=location))
    except Exception as exc:
        raise describe_error(exc, settings.tracking_uri, f"open experiment {name!r}") from exc


_DRIVERS = {
    "postgresql": "psycopg",
    "postgresql+psycopg2": "psycopg2",
    "postgresql+psycopg": "psycopg",
    "postgresql+pg8000": "pg8000",
    "mysql": "MySQLdb",
    "mysql+pymysql": "pymysql",
    "mysql+mysqldb": "MySQLdb",
    "mssql": "pyodbc",
    "mssql+pyodbc": "pyodbc",
}
_SCHEMES = {"http", "https", "sqlite", "file", "databricks", "databricks-uc", "uc"}
_checked: set[str] = set()


def check_uri(uri: str) -> None:
    """Refuse, without a round trip, a tracking URI that can never work (an unknown scheme,
    a missing database driver): that is a configuration error to fix, not an outage to
    journal through."""
    if uri in _checked:
        return
    import importlib.util

    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in _DRIVERS:
        module = _DRIVERS[scheme]
        if importlib.util.find_spec(module) is None:
            error = ModuleNotFoundError(f"No module named {module!r}", name=module)
            raise describe_error(error, uri, "open the tracking store")
    elif scheme not in _SCHEMES:
        raise TrackingError(
            f"could not open the tracking store on {uri}: unsupported URI scheme {scheme!r}. "
            "Check MLFLOW_TRACKING_URI or tracking_uri in [tool.mlnb]."
        )
    _checked.add(uri)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means the tracking server could not be reached at all."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TrackingUnavailableError):
            return True
        if isinstance(current, (requests.ConnectionError, requests.Timeout, ConnectionError)):
            return True
        text = str(current)
        if any(
            marker in text
            for marker in (
                "Max retries exceeded",
                "Connection refused",
                "failed with timeout",
                "Failed to establish a new connection",
                "Remote end closed connection",
                "Connection aborted",
                "503 Server Error",
                "502 Server Error",
                "504 Server Error",
                "too many 5",
            )
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def describe_error(exc: BaseException, uri: str, doing: str) -> TrackingError:
    """Turn an MLflow failure into one line that names the problem and the fix."""
    if is_unreachable(exc):
        return TrackingUnavailableError(
            f"cannot reach the tracking server at {uri} to {doing}; start the server "
            "(or fix MLFLOW_TRACKING_URI), or unset MLFLOW_TRACKING_URI to use the "
            "embedded store in .mlnb/."
        )
    first = first_line(exc)
    hint = ""
    if isinstance(exc, ModuleNotFoundError) and exc.name in {"psycopg", "psycopg2", "pymysql"}:
        first = f"the database driver {exc.name!r} is not installed"
        hint = (
            " Install psycopg2-binary and write postgresql+psycopg2://..., or run an MLflow "
            "server on that database and set MLFLOW_TRACKING_URI=http://host:port."
        )
    elif (
        ("Invalid" in first and "URI" in first)
        or "Could not find a registered" in first
        or "unsupported URI" in first
    ):
        hint = " Check MLFLOW_TRACKING_URI or tracking_uri in [tool.mlnb]."
    elif "unable to open database file" in first:
        hint = " The folder of the SQLite file must exist and be writable."
    elif is_disk_full(exc):
        hint = " The disk is full: free some space; what the store held before is intact."
    return TrackingError(f"could not {doing} on {uri}: {first}.{hint}")


_clients: dict[str, MlflowClient] = {}
_clients_lock = threading.Lock()


def client_for(uri: str) -> MlflowClient:
    """One client per tracking URI for the journal's sender (the store opened once)."""
    client = _clients.get(uri)
    if client is None:
        from mlnb.config import get_settings

        import_mlflow()
        from mlflow import MlflowClient

        settings = get_settings()
        if settings.tracking_uri == uri:
            configure_mlflow(settings)
        ensure_store(uri)  # a SQLite store: made whole before MLflow opens it
        with _clients_lock:
            client = _clients.get(uri)
            if client is None:
                client = _clients[uri] = MlflowClient(tracking_uri=uri)
    return client


def classify(exc: BaseException) -> str:
    """How the journal treats a failed send: ``"retry"`` later (the store is unreachable,
    hung, busy or out of space) or ``"reject"`` (the store refused this write)."""
    if is_unreachable(exc) or is_disk_full(exc) or isinstance(exc, StoreError):
        return "retry"  # a full disk, or a store to repair first: the write itself is fine
    text = str(exc)
    if any(
        marker in text
        for marker in ("database is locked", "disk I/O error", "No space left", "database is full")
    ):
        return "retry"
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return "retry"
    return "reject"


LOCAL_ID_TAG = "mlnb.local_id"


def send_entry(entry: dict[str, Any], ids: dict[str, str] | None = None) -> str | None:
    """Send one journal entry to its tracking store; local run ids are mapped through
    ``ids``. Returns the real id of a run it created (or adopted). Raises when it cannot."""
    client = client_for(entry["uri"])  # imports mlflow first, one thread at a time
    from mlflow.entities import Metric, Param, RunTag

    op = entry["op"]
    raw = entry.get("run") or entry.get("run_id") or ""
    if op == "create_run":
        return _create_run(client, entry, ids or {})
    if op == "adopt_run":
        return str(raw)
    run_id = (ids or {}).get(raw, raw)
    if run_id.startswith("local-"):
        raise TrackingError(f"run {raw} was never created in the tracking store; cannot {op}.")
    if op == "log_batch":
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, step) for k, v, ts, step in entry.get("metrics", [])],
            params=[Param(k, v) for k, v in entry.get("params", [])],
            tags=[RunTag(k, v) for k, v in entry.get("tags", [])],
            synchronous=True,
        )
    elif op == "log_artifact":
        src = Path(entry["files"]["src"])
        if src.is_dir():
            client.log_artifacts(run_id, str(src), entry.get("artifact_path"))
        else:
            client.log_artifact(run_id, str(src), entry.get("artifact_path"))
    elif op == "log_inputs":
        from mlflow.entities import Dataset, DatasetInput, InputTag

        client.log_inputs(
            run_id,
            datasets=[
                DatasetInput(
                    dataset=Dataset(
                        name=d["name"],
                        digest=d["digest"],
                        source_type=d["source_type"],
                        source=d["source"],
                        schema=d.get("schema"),
                        profile=d.get("profile"),
                    ),
                    tags=[InputTag("mlflow.data.context", d["context"])]
                    if d.get("context")
                    else [],
                )
                for d in entry["datasets"]
            ],
        )
    elif op == "set_terminated":
        client.set_terminated(run_id, entry["status"], entry.get("end_time"))
    elif op == "delete_run":
        client.delete_run(run_id)
    else:  # pragma: no cover - journals are only written by mlnb
        raise TrackingError(f"unknown journal operation {op!r}; remove the entry.")
    return None


def _create_run(client: MlflowClient, entry: dict[str, Any], ids: dict[str, str]) -> str:
    """Create the run of a ``create_run`` entry, or find the one an earlier, interrupted
    replay created (it carries the entry's local id as a tag)."""
    local = entry["run"]
    experiment_id = entry.get("experiment_id")
    if experiment_id is None:
        experiment_id = _experiment_id(client, entry["experiment"], entry.get("location"))
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{LOCAL_ID_TAG}` = '{local}'", max_results=1
    )
    if found:
        return str(found[0].info.run_id)
    tags = dict(entry.get("tags") or {})
    tags[LOCAL_ID_TAG] = local
    parent = entry.get("parent")
    if parent:
        parent_id = ids.get(parent, parent)
        if not parent_id.startswith("local-"):
            tags["mlflow.parentRunId"] = parent_id
    run = client.create_run(
        experiment_id,
        start_time=entry.get("start_time"),
        tags=tags,
        run_name=entry.get("run_name") or _run_name(),
    )
    return str(run.info.run_id)


def _run_name() -> str:
    """One of MLflow's run names ("bouncy-cat-123") drawn from a generator of its own:
    MLflow draws from the global ``random``, and this runs beside the user's code, which
    may have seeded it."""
    import random

    from mlflow.utils import name_utils

    rng = random.Random()
    return (
        f"{rng.choice(name_utils._GENERATOR_PREDICATES)}-"
        f"{rng.choice(name_utils._GENERATOR_NOUNS)}-{rng.randint(0, 999)}"
    )


def _experiment_id(client: MlflowClient, name: str, location: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except Exception:
        experiment = client.get_experiment_by_name(name)  # created meanwhile by another process
        if experiment is None:
            raise
        return str(experiment.experiment_id)
