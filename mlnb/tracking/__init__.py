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
from typing import TYPE_CHECKING, Any

from mlnb._lazy import lazy_names
from mlnb.tracking._direct import read_mlmodel
from mlnb.tracking._models import NATIVE_FLAVORS, LoggedModelInfo, pinned_models
from mlnb.tracking._repair import RepairReport, describe_status, repair_store
from mlnb.tracking._session import session
from mlnb.tracking._store import StoreStatus, check_store, ensure_store, store_path
from mlnb.tracking._warmup import flavors_to_warm

if TYPE_CHECKING:
    from mlnb.versioning import VersionRecord

if TYPE_CHECKING:
    from mlnb.tracking._cells import CellRecorder, assigned_names, locate_notebook
    from mlnb.tracking._cells import _papermill_input as papermill_input
    from mlnb.tracking._client import describe_error, ensure_experiment, get_client
    from mlnb.tracking._fluent import install as install_fluent_hooks
    from mlnb.tracking._journal import pending_entries, unsent_runs
    from mlnb.tracking._models import (
        ModelVersionRef,
        download_model_version,
        find_model_version,
        model_version_tags,
        resolve_model_version,
        run_artifact_folder,
    )
    from mlnb.tracking._provenance import environment_info
    from mlnb.tracking._read import (
        MetricPoint,
        RunSummary,
        active_experiment,
        active_run_id,
        describe_run,
        experiment_reason,
        experiments_with_runs,
        get_runs,
        list_runs,
        metric_histories,
    )
    from mlnb.tracking._requirements import packages_by_module
    from mlnb.tracking._trust import serialization_of

__all__ = [
    "NATIVE_FLAVORS",
    "CellRecorder",
    "LoggedModelInfo",
    "MetricPoint",
    "ModelVersionRef",
    "RepairReport",
    "RunSummary",
    "StoreStatus",
    "active_experiment",
    "active_run",
    "active_run_id",
    "assigned_names",
    "cell_running",
    "check_store",
    "describe_error",
    "describe_run",
    "describe_status",
    "download_model_version",
    "end_run",
    "ensure_experiment",
    "ensure_store",
    "environment_info",
    "expect_model_files",
    "experiment_reason",
    "experiments_with_runs",
    "find_model_version",
    "flavors_to_warm",
    "flush",
    "get_client",
    "get_runs",
    "install_fluent_hooks",
    "lineage",
    "list_runs",
    "load_model",
    "locate_notebook",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "metric_histories",
    "model_version_tags",
    "packages_by_module",
    "papermill_input",
    "pending_entries",
    "pinned_models",
    "read_mlmodel",
    "record_model",
    "repair_store",
    "resolve_model_version",
    "run_artifact_folder",
    "seed",
    "serialization_of",
    "session",
    "set_tag",
    "set_tags",
    "start_run",
    "store_path",
    "sync",
    "unsent_runs",
    "verify_model_files",
    "version",
    "versions",
]

# MLflow and the notebook machinery load on first use: `import mlnb` stays light.
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "CellRecorder": "._cells",
        "assigned_names": "._cells",
        "locate_notebook": "._cells",
        "papermill_input": "._cells:_papermill_input",
        "describe_error": "._client",
        "ensure_experiment": "._client",
        "get_client": "._client",
        "install_fluent_hooks": "._fluent:install",
        "pending_entries": "._journal",
        "unsent_runs": "._journal",
        "resolve_model_version": "._models",
        "ModelVersionRef": "._models",
        "download_model_version": "._models",
        "find_model_version": "._models",
        "run_artifact_folder": "._models",
        "model_version_tags": "._models",
        "environment_info": "._provenance",
        "packages_by_module": "._requirements",
        "MetricPoint": "._read",
        "RunSummary": "._read",
        "active_experiment": "._read",
        "experiment_reason": "._read",
        "experiments_with_runs": "._read",
        "active_run_id": "._read",
        "cell_running": "._read",
        "describe_run": "._read",
        "get_runs": "._read",
        "list_runs": "._read",
        "metric_histories": "._read",
        "serialization_of": "._trust",
    },
)


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
    from mlnb.tracking._lifecycle import _original

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
    from mlnb.tracking._versions import version_model

    version_model(info, registered_model_name or name, run.run_id)
    return info


def load_model(model_uri: str) -> Any:
    """Load any MLflow model URI; the native object when the flavor has one."""
    from mlnb.tracking import _client, _models

    pinned = _models.pinned_models.get(model_uri)
    if pinned is not None:  # inside an exported service: the copy pinned by hash
        from mlnb.tracking._direct import load_pinned

        return load_pinned(pinned, model_uri)  # by the model's library, without MLflow
    from mlnb.config import get_settings

    current = session()
    current.loaded_mlflow()
    _client.configure_mlflow(get_settings())
    model = _models.load_model(model_uri)
    if current.run is not None:
        from mlnb.tracking._versions import record_model_input

        record_model_input(model_uri, current.run.run_id)
    return model


def verify_model_files(folder: str | Path, what: str | None = None) -> dict[str, Any]:
    """Check a downloaded model folder against the serialization pinned when it was logged
    (the logged model's tags, looked up by the ``model_id`` in its MLmodel); its
    serialization record (``format``, ``trusted_types``...). Raises UntrustedModelError."""
    from mlnb.tracking._trust import check_model_files, pin_of

    try:
        model_id = read_mlmodel(folder).get("model_id")
    except Exception:  # no MLmodel or not YAML: check_model_files names it
        model_id = None
    return check_model_files(folder, pin_of(model_id), what)


def expect_model_files(folder: str | Path, record: dict[str, Any] | None) -> None:
    """Inside a service: load the model in ``folder`` only as ``record`` (the serialization
    recorded at export) says; nothing else is trusted for it."""
    from mlnb.tracking._trust import expect

    expect(folder, record)


def version(
    obj: Any,
    name: str | None = None,
    *,
    role: str = "input",
    context: str | None = None,
    run: bool = True,
) -> VersionRecord:
    """Version ``obj`` by content under ``name`` (``mlnb.versioning.add``) and attach it to
    the active run as an ``input`` (default) or ``output``: a dataset input (inputs) and an
    ``mlnb.<role>.<name>`` tag on the run, an edge for lineage. ``obj`` is a path to a file
    or folder, a pandas DataFrame or Series, a numpy array, a scipy sparse matrix, a list,
    tuple or dict of arrays, or a dict/list config; values from memory need a ``name``.
    With ``run=True`` (default) a run is started if none is active, as for any log call."""
    from mlnb.tracking import _versions

    return _versions.version(obj, name, role=role, context=context, run=run)


def versions(name: str) -> list[VersionRecord]:
    """Every version of ``name``, oldest first, each with the MLflow id of its run."""
    from mlnb.tracking import _versions

    return _versions.versions(name)


def lineage(ref: str) -> dict[str, Any]:
    """From a version up to the runs and versions that produced it and down to those that
    used it, with run names from MLflow (see ``mlnb lineage --json``)."""
    from mlnb.tracking import _versions

    return _versions.lineage(ref)


def record_model(
    model_uri: str, name: str, registered_version: str | None, run_id: str | None
) -> VersionRecord:
    """Version a logged model's files by content (``mlnb.log_model`` calls it)."""
    from mlnb.tracking import _versions

    return _versions.record_model(model_uri, name, registered_version, run_id)


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
