"""Reading runs back for the faces (``mlnb show``, widgets, Lab sidebar): one run as text,
summaries and metric histories.

Everything goes through the MLflow client of :func:`mlnb.tracking._client.get_client`, never
the store's tables; failures become one-line :class:`~mlnb.exceptions.TrackingError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlnb.config import get_settings
from mlnb.exceptions import TrackingError
from mlnb.tracking import _client

__all__ = [
    "MetricPoint",
    "RunSummary",
    "active_experiment",
    "active_run_id",
    "describe_run",
    "get_runs",
    "latest_run",
    "list_runs",
    "metric_histories",
]


@dataclass(frozen=True)
class MetricPoint:
    step: int
    timestamp: float  # seconds since the epoch
    value: float


@dataclass
class RunSummary:
    """What a run table shows about one run."""

    run_id: str
    name: str
    status: str
    experiment_id: str
    start_time: float | None  # seconds since the epoch
    end_time: float | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (to now while the run is going)."""
        if self.start_time is None:
            return None
        end = self.end_time if self.end_time is not None else time.time()
        return max(0.0, end - self.start_time)

    @property
    def active(self) -> bool:
        return self.status in {"RUNNING", "SCHEDULED"}

    @classmethod
    def from_mlflow(cls, run: Any) -> RunSummary:
        info, data = run.info, run.data
        return cls(
            run_id=info.run_id,
            name=info.run_name or info.run_id[:8],
            status=info.status,
            experiment_id=str(info.experiment_id),
            start_time=info.start_time / 1000 if info.start_time else None,
            end_time=info.end_time / 1000 if info.end_time else None,
            params=dict(data.params),
            metrics=dict(data.metrics),
            tags={k: v for k, v in data.tags.items() if not k.startswith("mlflow.log-model")},
        )


def _client_and_uri() -> tuple[Any, str]:
    settings = get_settings()
    return _client.get_client(settings), settings.tracking_uri


def active_run_id() -> str | None:
    """The run this process writes to, if any (without starting one)."""
    from mlnb.tracking._session import session

    run = session().run
    return run.real if run is not None else None  # None until it exists in the store


def cell_running() -> bool | None:
    """Whether a cell of this kernel is executing now (None where mlnb sees no cells: no
    ``%load_ext mlnb``). An interactive run stays open between cells; this tells whether
    anything can be updating it."""
    from mlnb.tracking._session import session

    return session().in_cell


def active_experiment() -> str:
    """Name of the experiment runs of this process go to: the active run's, else the
    configured one (``[tool.mlnb] experiment``, ``MLFLOW_EXPERIMENT_NAME``), else the
    notebook's name, else ``Default``."""
    from mlnb.tracking._session import session

    current = session()
    if current.run is not None and current.run.experiment:
        return current.run.experiment
    if current.run is not None and current.run.experiment_id is not None:
        client, uri = _client_and_uri()
        try:
            return str(client.get_experiment(current.run.experiment_id).name)
        except Exception as exc:
            raise _client.describe_error(exc, uri, "read the active run's experiment") from exc
    return current.settings.experiment or current._default_experiment()


def experiment_reason() -> str:
    """Why :func:`active_experiment` is the one it is, in words for a notebook user."""
    from mlnb.tracking._session import session

    current = session()
    if current.run is not None:
        return "the experiment of this kernel's run"
    if current.settings.experiment:
        return f"set by {current.settings.sources.get('experiment', 'the configuration')}"
    recorder = current.recorder
    if recorder is not None and recorder.notebook_path is not None:
        return f"named after this notebook, {recorder.notebook_path.name}"
    return "MLflow's default"


def experiments_with_runs(limit: int = 5) -> list[str]:
    """Names of the experiments of this store that hold runs, the latest updated first (at
    most ``limit``): where else to look when an experiment has none."""
    client, uri = _client_and_uri()
    try:
        found = client.search_experiments(order_by=["last_update_time DESC"], max_results=50)
        names = []
        for experiment in found:
            if client.search_runs([experiment.experiment_id], max_results=1):
                names.append(str(experiment.name))
            if len(names) >= limit:
                break
    except Exception as exc:
        raise _client.describe_error(exc, uri, "list the experiments") from exc
    return names


def list_runs(
    experiment: str | None = None, max_results: int = 50, *, must_exist: bool = False
) -> list[RunSummary]:
    """The latest runs of ``experiment`` (default: :func:`active_experiment`), newest first.
    An experiment that does not exist yet has no runs, unless ``must_exist``: then it
    raises naming the experiments there are."""
    name = experiment or active_experiment()
    client, uri = _client_and_uri()
    try:
        found = client.get_experiment_by_name(name)
        if found is None and must_exist:
            names = sorted(e.name for e in client.search_experiments())
            raise TrackingError(
                f"no experiment named {name!r} in {uri}; experiments there: "
                f"{', '.join(names) or 'none'}."
            )
        if found is None:
            return []
        runs = client.search_runs(
            [found.experiment_id],
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )
    except TrackingError:
        raise
    except Exception as exc:
        raise _client.describe_error(exc, uri, f"list the runs of experiment {name!r}") from exc
    return [RunSummary.from_mlflow(r) for r in runs]


def get_runs(run_ids: Sequence[str]) -> list[RunSummary]:
    """Summaries of the given runs, in the order given. A run can also be named by its run
    name when that name is unique. An unknown one raises naming it."""
    client, uri = _client_and_uri()
    out: list[RunSummary] = []
    for ref in run_ids:
        out.append(RunSummary.from_mlflow(_find_run(client, uri, ref)))
    return out


def _find_run(client: Any, uri: str, ref: str) -> Any:
    try:
        return client.get_run(ref)
    except Exception as exc:
        if _client.is_unreachable(exc):
            raise _client.describe_error(exc, uri, f"read run {ref}") from exc
    try:  # maybe a run name
        ids = [e.experiment_id for e in client.search_experiments()]
        quoted = ref.replace("'", "\\'")
        runs = client.search_runs(ids, filter_string=f"attributes.run_name = '{quoted}'")
    except Exception:
        runs = []
    if len(runs) == 1:
        return runs[0]
    if len(runs) > 1:
        raise TrackingError(
            f"{len(runs)} runs are named {ref!r}; give one of their run ids instead "
            f"({', '.join(r.info.run_id for r in runs[:5])})."
        )
    raise TrackingError(
        f"no run with id or name {ref!r} in {uri}; copy a run id from %mlnb runs or `mlnb show`."
    )


def metric_histories(
    run_id: str, keys: Iterable[str] | None = None
) -> dict[str, list[MetricPoint]]:
    """Every recorded value of each metric of the run (default: all its metrics), in order."""
    client, uri = _client_and_uri()
    try:
        if keys is None:
            keys = list(client.get_run(run_id).data.metrics)
        out: dict[str, list[MetricPoint]] = {}
        for key in keys:
            history = client.get_metric_history(run_id, key)
            points = sorted(history, key=lambda m: (m.step, m.timestamp))
            out[key] = [
                MetricPoint(int(m.step), m.timestamp / 1000, float(m.value)) for m in points
            ]
    except Exception as exc:
        raise _client.describe_error(exc, uri, f"read the metrics of run {run_id}") from exc
    return out


def latest_run(client: Any, experiment: str | None = None) -> Any:
    """The most recently started run, in ``experiment`` or in any experiment."""
    if experiment is not None:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise TrackingError(f"no experiment named {experiment!r}; see `mlnb ui` for the list.")
        ids = [found.experiment_id]
    else:
        ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise TrackingError("no runs yet; run a notebook with `%load_ext mlnb` first.")
    return runs[0]


def _artifacts(client: Any, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            out.extend(_artifacts(client, run_id, item.path))
        else:
            out.append(f"{item.path} ({item.file_size} bytes)")
    return out


def describe_run(run_id: str | None = None, experiment: str | None = None) -> str:
    """What a run recorded, as text (``mlnb show``): the given run, else the latest one."""
    client, uri = _client_and_uri()
    try:
        run = client.get_run(run_id) if run_id else latest_run(client, experiment)
    except TrackingError:
        raise
    except Exception as exc:
        raise _client.describe_error(exc, uri, f"read run {run_id}") from exc
    info, data = run.info, run.data
    lines = [
        f"run        {info.run_name} ({info.run_id})",
        f"status     {info.status}",
        f"experiment {info.experiment_id}",
        f"tracking   {uri}",
        "params:",
        *(f"  {k} = {v}" for k, v in sorted(data.params.items())),
        "metrics:",
        *(f"  {k} = {v:.6g}" for k, v in sorted(data.metrics.items())),
        "tags:",
        *(
            f"  {k} = {v if len(v) < 100 else v[:97] + '...'}"
            for k, v in sorted(data.tags.items())
            if not k.startswith("mlflow.log-model") and k != "mlflow.runName"
        ),
        "artifacts:",
        *(f"  {a}" for a in _artifacts(client, info.run_id)),
    ]
    return "\n".join(lines)
