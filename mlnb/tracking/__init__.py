"""Experiment tracking on MLflow, with MLflow's names and signatures where they overlap.

>>> import mlnb
>>> mlnb.log_params({"lr": 0.1})          # starts a run when none is active
>>> mlnb.log_metrics({"acc": 0.93}, step=1)  # returns in microseconds; written in batches
>>> mlnb.end_run()

Every write is appended to a write-ahead journal under ``.mlnb/journal`` (fsynced every
50 ms) and sent to MLflow in order by a background thread; ``flush()`` waits for them. When
the tracking server is down or hung, the notebook goes on and the journal sends the writes
when it is back (or ``mlnb sync``); a run whose process died is marked KILLED.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlnb.tracking._models import LoggedModelInfo
from mlnb.tracking._repair import RepairReport, describe_status, repair_store
from mlnb.tracking._session import session
from mlnb.tracking._store import StoreStatus, check_store, ensure_store, store_path

__all__ = [
    "LoggedModelInfo",
    "RepairReport",
    "StoreStatus",
    "active_run",
    "check_store",
    "describe_status",
    "end_run",
    "ensure_store",
    "expect_model_files",
    "flush",
    "load_model",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "repair_store",
    "seed",
    "set_tag",
    "set_tags",
    "start_run",
    "store_path",
    "sync",
    "verify_model_files",
]


def start_run(
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
    """Start a run (as ``mlflow.start_run``; also ``experiment_name=``). Returns the
    ``mlflow.ActiveRun``, usable as a context manager."""
    return session().start_run(
        run_id=run_id,
        experiment_id=experiment_id,
        run_name=run_name,
        nested=nested,
        parent_run_id=parent_run_id,
        tags=tags,
        description=description,
        log_system_metrics=log_system_metrics,
        experiment_name=experiment_name,
    )


def end_run(status: str = "FINISHED") -> None:
    """Flush what is queued, write the run's provenance and end it (as ``mlflow.end_run``)."""
    session().end_run(status)


def active_run() -> Any:
    """The active ``mlflow.ActiveRun`` or None (as ``mlflow.active_run``)."""
    current = session()
    if current.run is not None:
        return current._active(current.run, wait=True)
    mlflow = current.loaded_mlflow()
    if mlflow is None:
        return None
    from mlnb.tracking._session import _original

    return _original(mlflow, "active_run")()


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Queue metrics for the active run (one started if none is active)."""
    session().log_metrics(metrics, step=step)


def log_metric(key: str, value: Any, step: int | None = None) -> None:
    session().log_metrics({key: value}, step=step)


def log_params(params: Mapping[str, Any]) -> None:
    """Queue params; a param already logged with another value is refused (as in MLflow)."""
    session().log_params(params)


def log_param(key: str, value: Any) -> Any:
    session().log_params({key: value})
    return value


def set_tags(tags: Mapping[str, Any]) -> None:
    session().set_tags(tags)


def set_tag(key: str, value: Any) -> None:
    session().set_tags({key: value})


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> None:
    """Copy a file or folder into the run's artifacts (journaled if the server is down)."""
    session().log_artifact(local_path, artifact_path)


def log_model(
    model: Any,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    serialization_format: str | None = None,
    **kwargs: Any,
) -> LoggedModelInfo:
    """Log a model with explicit requirements; register it when ``registered_model_name``
    is given. Any scikit-learn, xgboost, LightGBM, CatBoost or statsmodels model, an
    ``mlflow.pyfunc.PythonModel``, any object with ``predict`` or a plain function.

    ``serialization_format``: ``auto`` (default: skops with the trusted types computed from
    the model, or cloudpickle when the model uses code defined in the notebook; the
    library's own format for boosters and statsmodels), ``skops``, ``cloudpickle``,
    ``pickle`` or ``native``. A format that cannot save the model raises ModelFormatError
    before anything is logged."""
    from mlnb.tracking import _models
    from mlnb.tracking._formats import format_name

    format_name(serialization_format)  # a typo is refused before a run starts
    current = session()
    current.mlflow_run()  # the run exists in the store and is MLflow's active run here
    run = current.ensure_run()
    run.user_writes += 1
    info = _models.log_model(
        model,
        name,
        registered_model_name=registered_model_name,
        serialization_format=serialization_format,
        **kwargs,
    )
    if current.recorder is not None:
        current._provenance(run, "model", name)
    _version_model(info, registered_model_name or name, run.run_id)
    return info


def _version_model(info: LoggedModelInfo, name: str, run_id: str) -> None:
    """Record the model's files by content hash (on the run, the registry version and in
    mlnb's version records), so lineage and exports can pin it."""
    from mlnb.tracking._writer import _warn
    from mlnb.versioning import record_model

    try:
        record = record_model(info.model_uri, name, info.registered_model_version, run_id)
    except Exception as exc:  # the model is logged; its hash is a bonus
        _warn(f"could not record the content hash of model {name!r}: {exc}")
        return
    if record is None:
        return
    info.hash = record.hash
    session().set_tags({f"mlnb.output.{record.name}"[:250]: f"{record.number} {record.hash}"})
    if info.registered_model_name and info.registered_model_version:
        from mlnb.config import get_settings
        from mlnb.tracking._client import get_client

        get_client(get_settings()).set_model_version_tag(
            info.registered_model_name, info.registered_model_version, "mlnb.hash", record.hash
        )


def load_model(model_uri: str) -> Any:
    """Load any MLflow model URI; the native object when the flavor has one."""
    from mlnb.tracking import _client, _models

    pinned = _models.PINNED.get(model_uri)
    if pinned is not None:  # inside an exported service: the copy pinned by hash
        return _models.load_model(str(pinned))
    from mlnb.config import get_settings

    current = session()
    current.loaded_mlflow()
    _client.configure_mlflow(get_settings())
    model = _models.load_model(model_uri)
    if current.run is not None:
        _record_model_input(model_uri, current.run.run_id)
    return model


def verify_model_files(folder: str | Path, what: str | None = None) -> dict[str, Any]:
    """Check a downloaded model folder against the serialization pinned when it was logged
    (the logged model's tags, looked up by the ``model_id`` in its MLmodel); its
    serialization record (``format``, ``trusted_types``...). Raises UntrustedModelError."""
    from mlflow.models import Model

    from mlnb.tracking._trust import check_model_files, pin_of

    model_id = getattr(Model.load(str(folder)), "model_id", None)
    return check_model_files(folder, pin_of(model_id), what)


def expect_model_files(folder: str | Path, record: dict[str, Any] | None) -> None:
    """Inside a service: load the model in ``folder`` only as ``record`` (the serialization
    recorded at export) says; nothing else is trusted for it."""
    from mlnb.tracking._trust import expect

    expect(folder, record)


def _record_model_input(model_uri: str, run_id: str) -> None:
    """A run that loads a registered model read it: an edge for lineage."""
    from mlnb.config import get_settings
    from mlnb.tracking import _models
    from mlnb.tracking._client import get_client
    from mlnb.versioning._core import Project

    if not model_uri.startswith("models:/"):
        return
    try:
        client = get_client(get_settings())
        version = _models.resolve_model_version(client, model_uri)
        digest = (version.tags or {}).get("mlnb.hash")
        if digest:
            Project.current().registry.add_edge(run_id, version.name, digest, "input")
    except Exception:
        return  # lineage of a model from elsewhere is best effort


def seed(value: int) -> list[str]:
    """Seed ``random`` and the numpy/torch/tensorflow generators already imported; the seed
    is recorded on the run. Returns the libraries seeded."""
    return session().seed(value)


def flush() -> None:
    """Wait until every queued metric, param and tag is written (or journaled)."""
    session().flush()


def sync() -> dict[str, int]:
    """Send journaled writes now: this process's, and those of processes that died (their
    runs that never ended are marked KILLED). Returns counts: ``sent``, ``killed``,
    ``skipped`` (sent before an interruption) and ``remaining``."""
    import os

    from mlnb.config import get_settings
    from mlnb.tracking._client import configure_mlflow, describe_error
    from mlnb.tracking._journal import pending_entries
    from mlnb.tracking._writer import recover_dead

    settings = get_settings()
    # set_terminated would print MLflow's "View run" links for every journaled run.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    configure_mlflow(settings)
    current = session()
    if current._writers:
        current.flush()
    # A kernel's hand-off may be replaying its segment right now: wait for it.
    result = recover_dead(settings.journal_dir, force=True, wait=120.0)
    remaining = pending_entries(settings.journal_dir) - sum(
        w.queued for w in current._writers.values()
    )
    if result.error is not None:
        raise describe_error(
            result.error, settings.tracking_uri, "send journaled writes"
        ) from result.error
    return {
        "sent": result.sent,
        "killed": result.killed,
        "skipped": result.skipped,
        "remaining": max(0, remaining),
    }
