"""The MLflow side: clients, experiments, and what counts as "the server is down".

MLflow is imported here, inside functions, never at ``import mlnb`` (it costs about 1.2 s).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb._text import first_line, slug
from mlnb.config import Settings
from mlnb.exceptions import TrackingError, TrackingUnavailableError

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


def configure_mlflow(settings: Settings) -> None:
    """Point MLflow's fluent API at the project's store (once per URI)."""
    import mlflow

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
    if _configured.get("tracking") != settings.tracking_uri:
        with _environment_kept("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri(settings.tracking_uri)
        _configured["tracking"] = settings.tracking_uri
    if settings.registry_uri and _configured.get("registry") != settings.registry_uri:
        with _environment_kept("MLFLOW_REGISTRY_URI"):
            mlflow.set_registry_uri(settings.registry_uri)
        _configured["registry"] = settings.registry_uri


@contextlib.contextmanager
def _environment_kept(name: str) -> Iterator[None]:
    """MLflow's set_*_uri also writes the URI into os.environ; that would pin this project's
    store for the rest of the process (and its subprocesses) even after a change of folder,
    and make it look like the user's own setting. Keep the environment as it was."""
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def get_client(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    configure_mlflow(settings)
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
    return TrackingError(f"could not {doing} on {uri}: {first}.{hint}")


def send_entry(entry: dict[str, Any]) -> None:
    """Send one outbox entry to its tracking store (raises when it cannot)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=entry["uri"])
    op = entry["op"]
    run_id = entry["run_id"]
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
    else:  # pragma: no cover - journals are only written by this module's callers
        raise TrackingError(f"unknown outbox operation {op!r} in the journal; remove it.")
