"""Lineage: from a version up to what produced it and down to what used it.

Upstream: the runs that wrote the version, the versions those runs read, and so on.
Downstream: the runs that read it, the versions (data, models) they wrote, the runs that
read those, and so on. The store knows runs by id only; a caller that knows their names
(tracking, for ``mlnb.lineage``) passes ``run_name``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlnb.versioning._core import Project
from mlnb.versioning._registry import VersionRecord

__all__ = ["SERVICE_PREFIX", "lineage", "render_lineage"]

MAX_DEPTH = 12
#: edges whose "run" is an exported service folder (``mlnb export``) start with this
SERVICE_PREFIX = "service:"


def _version_json(record: VersionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": record.name,
        "version": record.number,
        "hash": record.hash,
        "kind": record.kind,
        "size": record.size,
        "created_at": record.created_at,
        "path": record.path,
    }
    if record.kind == "model":
        out["model_uri"] = record.meta.get("model_uri")
        out["registered_version"] = record.meta.get("registered_version")
    return out


def lineage(ref: str, *, run_name: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """The lineage of ``ref`` as a JSON-ready dict (see ``mlnb lineage --json``).

    ``run_name`` gives a run's name from its id (None when it has none or is not known); the
    store has only ids (``mlnb.lineage`` passes tracking's names, looked up in MLflow)."""
    project = Project.current()
    registry = project.registry
    root = registry.resolve(ref)
    names: dict[str, str | None] = {}

    def name_of(run_id: str) -> str | None:
        if run_name is None or run_id.startswith(SERVICE_PREFIX):
            return None
        if run_id not in names:
            names[run_id] = run_name(run_id)
        return names[run_id]

    def record(name: str, digest: str) -> VersionRecord:
        return registry.get(name, digest)

    def up(rec: VersionRecord, depth: int, seen: set[tuple[str, str]]) -> list[dict[str, Any]]:
        if depth >= MAX_DEPTH:
            return []
        out = []
        producers = {
            e.run_id for e in registry.edges(name=rec.name, digest=rec.hash) if e.role == "output"
        }
        for run_id in sorted(producers):
            inputs = []
            for edge in registry.edges(run_id=run_id):
                key = (edge.name, edge.hash)
                if edge.role != "input" or key in seen:
                    continue
                parent = record(edge.name, edge.hash)
                inputs.append(
                    {**_version_json(parent), "upstream": up(parent, depth + 1, seen | {key})}
                )
            out.append({"run_id": run_id, "run_name": name_of(run_id), "read": inputs})
        return out

    def down(rec: VersionRecord, depth: int, seen: set[tuple[str, str]]) -> list[dict[str, Any]]:
        if depth >= MAX_DEPTH:
            return []
        out: list[dict[str, Any]] = []
        consumers = {
            e.run_id for e in registry.edges(name=rec.name, digest=rec.hash) if e.role == "input"
        }
        for run_id in sorted(consumers):
            outputs = []
            for edge in registry.edges(run_id=run_id):
                key = (edge.name, edge.hash)
                if edge.role != "output" or key in seen:
                    continue
                child = record(edge.name, edge.hash)
                outputs.append(
                    {**_version_json(child), "downstream": down(child, depth + 1, seen | {key})}
                )
            if run_id.startswith(SERVICE_PREFIX):
                path = run_id[len(SERVICE_PREFIX) :]
                out.append({"service": path, "run_id": run_id, "run_name": None, "wrote": []})
                continue
            out.append({"run_id": run_id, "run_name": name_of(run_id), "wrote": outputs})
        return out

    start = {(root.name, root.hash)}
    return {
        **_version_json(root),
        "upstream": up(root, 0, start),
        "downstream": down(root, 0, start),
    }


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def _label(v: dict[str, Any]) -> str:
    text = f"{v['name']}@{v['version']} ({v['hash'][:12]}, {v['kind']}, {_size(v['size'])})"
    if v.get("registered_version"):
        text += f" = models:/{v['name']}/{v['registered_version']}"
    return text


def _run_label(run: dict[str, Any]) -> str:
    name = f" {run['run_name']}" if run.get("run_name") else ""
    return f"run{name} ({run['run_id']})"


def render_lineage(doc: dict[str, Any]) -> str:
    """``mlnb lineage`` as text: the version, then upstream and downstream trees."""
    lines = [_label(doc)]

    def walk_up(runs: list[dict[str, Any]], indent: str) -> None:
        for run in runs:
            lines.append(f"{indent}<- written by {_run_label(run)}")
            for item in run["read"]:
                lines.append(f"{indent}     <- read {_label(item)}")
                walk_up(item["upstream"], indent + "        ")

    def walk_down(runs: list[dict[str, Any]], indent: str) -> None:
        for run in runs:
            if run.get("service"):
                lines.append(f"{indent}-> served by the exported service {run['service']}")
                continue
            lines.append(f"{indent}-> read by {_run_label(run)}")
            for item in run["wrote"]:
                lines.append(f"{indent}     -> wrote {_label(item)}")
                walk_down(item["downstream"], indent + "        ")

    lines.append("upstream:" if doc["upstream"] else "upstream: (nothing recorded)")
    walk_up(doc["upstream"], "  ")
    lines.append("downstream:" if doc["downstream"] else "downstream: (nothing recorded)")
    walk_down(doc["downstream"], "  ")
    return "\n".join(lines)
