"""Reading runs back: what a run recorded, as text (for ``mlnb show`` and the demo)."""

from __future__ import annotations

from typing import Any

from mlnb.config import get_settings
from mlnb.exceptions import TrackingError
from mlnb.tracking import _client

__all__ = ["describe_run", "latest_run"]


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
    settings = get_settings()
    client = _client.get_client(settings)
    try:
        run = client.get_run(run_id) if run_id else latest_run(client, experiment)
    except TrackingError:
        raise
    except Exception as exc:
        raise _client.describe_error(exc, settings.tracking_uri, f"read run {run_id}") from exc
    info, data = run.info, run.data
    lines = [
        f"run        {info.run_name} ({info.run_id})",
        f"status     {info.status}",
        f"experiment {info.experiment_id}",
        f"tracking   {settings.tracking_uri}",
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
