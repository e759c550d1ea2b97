"""Versions on runs: what tracking adds to the versioning store.

The store (``mlnb.versioning``) keeps content and names, and the runs that read or wrote a
version by id only; it imports neither tracking nor MLflow. Everything that needs a run is
here, going one way (tracking -> versioning), as DVC's experiment tracking uses its repo:

- :func:`version` (``mlnb.version``): the store's ``add``, then the version attached to the
  active run: an edge in the store (``link``), a dataset input (inputs) and an
  ``mlnb.<role>.<name>`` tag on the MLflow run (written through the journal like every
  tracking write), a provenance record of the cell;
- :func:`versions` and :func:`lineage` (``mlnb.versions``, ``mlnb.lineage``): the store's
  reads, after runs recorded under the journal's local id are followed to their MLflow id,
  with run names from MLflow;
- :func:`record_model`, :func:`record_model_input`: a logged model's files stored by content
  (downloaded through MLflow), and a registered model a run loads recorded as its input.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import InvalidValueError, NoActiveRunError

if TYPE_CHECKING:
    from mlnb.tracking._models import LoggedModelInfo
    from mlnb.versioning import VersionRecord

__all__ = [
    "RunNames",
    "attach",
    "lineage",
    "link_local_runs",
    "record_model",
    "record_model_input",
    "version",
    "version_model",
    "versions",
]


def version(
    obj: Any,
    name: str | None = None,
    *,
    role: str = "input",
    context: str | None = None,
    run: bool = True,
) -> VersionRecord:
    """Version ``obj`` under ``name`` and link it to the active run as an ``input`` (default)
    or ``output``. ``obj`` is a path to a file or folder, a pandas DataFrame or Series, a
    numpy array (any dtype and shape), a scipy sparse matrix or array, a list, tuple or dict
    of arrays (``(X, y)``), or a dict/list config; values from memory need a ``name``.

    The content goes into the project's object store once, by BLAKE3 hash; the record keeps
    size, schema (tables and arrays), the run that created it and when. With ``run=True``
    (default) a run is started if none is active, as for any log call; with ``run=False``
    the version is attached only to a run already active.
    """
    from mlnb import versioning
    from mlnb.tracking._session import session

    if role not in versioning.ROLES:
        raise InvalidValueError(f"role must be 'input' or 'output', not {role!r}.")
    record = versioning.add(obj, name)
    current = session()
    if current.run is None and not run:
        return record
    current.ensure_run()
    return attach(record, role, context)


def attach(record: VersionRecord, role: str, context: str | None = None) -> VersionRecord:
    """Attach a stored version to the active run: an edge in the store, a dataset input
    (inputs) or nothing more (outputs) on the MLflow run, the ``mlnb.<role>.<name>`` tag,
    and per-cell provenance. The run must be active (``session().ensure_run()``)."""
    from mlnb import versioning
    from mlnb.tracking._session import session

    current = session()
    run = current.run
    if run is None:
        raise NoActiveRunError(
            f"no active run to attach {record.name}@{record.number} to; start one with "
            "mlnb.start_run(), or use mlnb.version(), which starts one."
        )
    record = versioning.link(record, run.run_id, role)
    if role == "input":
        source = versioning.source_path(record)
        current.writer(run.uri).send_or_journal(
            {
                "op": "log_inputs",
                "uri": run.uri,
                "run_id": run.run_id,
                "datasets": [_dataset(record, source.as_uri() if source else None, context)],
            }
        )
    current.set_tags({f"mlnb.{role}.{record.name}"[:250]: f"{record.number} {record.hash}"})
    if current.recorder is not None:
        current._provenance(run, role, f"{record.name}@{record.number}")
    return record


def _dataset(record: VersionRecord, uri: str | None, context: str | None) -> dict[str, Any]:
    """The MLflow dataset input of a version (what ``mlflow.log_input`` would write)."""
    source = {"uri": uri} if uri is not None else {"mlnb": f"{record.name}@{record.hash}"}
    rows = record.schema.get("rows") if record.schema else None
    return {
        "name": record.name,
        "digest": record.hash[:36],  # MLflow keeps 36 characters of a digest
        "source_type": "local" if record.path else "code",
        "source": json.dumps(source),
        "schema": json.dumps(record.schema) if record.schema else None,
        "profile": json.dumps(
            {
                "hash": record.hash,
                "hash_algorithm": "blake3",
                "kind": record.kind,
                "size": record.size,
                "version": record.number,
                **({"num_rows": rows} if record.schema and "rows" in record.schema else {}),
            }
        ),
        "context": context or "input",
    }


def link_local_runs() -> int:
    """Give versions and edges recorded under a run's local id its MLflow id; returns how
    many rows changed.

    The tracking journal creates a run under a local id (``local-...``) and in MLflow later,
    maybe in another process (the kernel's hand-off after it exited, ``mlnb sync``) than the
    one that versioned data for it. The run carries the tag ``mlnb.local_id``, so whoever
    reads versions looks the id up here. Best effort: when MLflow does not answer, the ids
    stay local until the next read.
    """
    from mlnb import versioning
    from mlnb.config import get_settings
    from mlnb.tracking._client import LOCAL_ID_TAG, get_client
    from mlnb.tracking._journal import LOCAL_PREFIX

    local = versioning.recorded_run_ids(LOCAL_PREFIX)
    if not local:
        return 0
    changed = 0
    try:
        from mlflow.entities import ViewType

        client = get_client(get_settings())
        experiments = [e.experiment_id for e in client.search_experiments(ViewType.ALL)]
        for run_id in local:
            found = client.search_runs(
                experiments,
                filter_string=f"tags.`{LOCAL_ID_TAG}` = '{run_id}'",
                run_view_type=ViewType.ALL,
                max_results=1,
            )
            if found:
                changed += versioning.rename_run(run_id, found[0].info.run_id)
    except Exception:
        return changed  # not created yet, or the store is unreachable: next time
    return changed


def versions(name: str) -> list[VersionRecord]:
    """Every version of ``name``, oldest first, with the MLflow id of the run that created
    it (``mlnb.versions``)."""
    from mlnb import versioning

    link_local_runs()
    return versioning.versions(name)


class RunNames:
    """Run names from MLflow, looked up once each; None when MLflow does not answer."""

    def __init__(self) -> None:
        self._names: dict[str, str | None] = {}
        self._client: Any = None

    def __call__(self, run_id: str) -> str | None:
        if run_id in self._names:
            return self._names[run_id]
        try:
            if self._client is None:
                from mlnb.config import get_settings
                from mlnb.tracking._client import get_client

                self._client = get_client(get_settings())
            self._names[run_id] = self._client.get_run(run_id).info.run_name
        except Exception:
            self._names[run_id] = None
        return self._names[run_id]


def lineage(ref: str) -> dict[str, Any]:
    """The lineage of ``ref`` with run names (``mlnb.lineage``; see ``mlnb lineage --json``)."""
    from mlnb import versioning

    link_local_runs()
    return versioning.lineage(ref, run_name=RunNames())


def record_model(
    model_uri: str, name: str, registered_version: str | None, run_id: str | None
) -> VersionRecord:
    """Version a logged model's files by content (downloaded from ``model_uri``); called by
    ``mlnb.log_model``."""
    from pathlib import Path

    import mlflow

    from mlnb import versioning

    local = Path(mlflow.artifacts.download_artifacts(model_uri))
    return versioning.store_model(
        local, name, model_uri=model_uri, registered_version=registered_version, run_id=run_id
    )


def version_model(info: LoggedModelInfo, name: str, run_id: str) -> None:
    """Record the model's files by content hash (on the run, the registry version and in
    mlnb's version records), so lineage and exports can pin it."""
    from mlnb.tracking._session import session
    from mlnb.tracking._writer import _warn

    try:
        record = record_model(info.model_uri, name, info.registered_model_version, run_id)
    except Exception as exc:  # the model is logged; its hash is a bonus
        _warn(f"could not record the content hash of model {name!r}: {exc}")
        return
    info.hash = record.hash
    session().set_tags({f"mlnb.output.{record.name}"[:250]: f"{record.number} {record.hash}"})
    if info.registered_model_name and info.registered_model_version:
        from mlnb.config import get_settings
        from mlnb.tracking._client import get_client

        get_client(get_settings()).set_model_version_tag(
            info.registered_model_name, info.registered_model_version, "mlnb.hash", record.hash
        )


def record_model_input(model_uri: str, run_id: str) -> None:
    """A run that loads a registered model read it: an edge for lineage."""
    from mlnb import versioning
    from mlnb.config import get_settings
    from mlnb.tracking import _models
    from mlnb.tracking._client import get_client

    if not model_uri.startswith("models:/"):
        return
    try:
        client = get_client(get_settings())
        model_version = _models.resolve_model_version(client, model_uri)
        digest = (model_version.tags or {}).get("mlnb.hash")
        if digest:
            versioning.add_edge(run_id, model_version.name, digest, "input")
    except Exception:
        return  # lineage of a model from elsewhere is best effort
