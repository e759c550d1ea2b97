"""Registry reads of the embedded SQLite store, without MLflow.

``mlnb export`` needs three facts from the registry: which version a ``models:/`` URI names,
where that version's files are, and the serialization pinned on its logged model. Through
MLflow that costs its import and the opening of its SQLAlchemy store (about 5 s here, more
than the rest of the export's own work). For the embedded store (a SQLite file of this
project) they are three indexed ``SELECT`` s on MLflow's own tables, read here as MLflow's
store reads them:

* ``model_versions`` (name, version, run_id, status, storage_location; versions whose
  ``current_stage`` is MLflow's ``Deleted_Internal`` are gone), ``registered_model_aliases``
  for ``@alias`` and the highest version for ``latest``;
* ``logged_model_tags`` for the pin (``mlnb.serialization``, ``mlnb.trusted_types_hash``);
* ``runs.artifact_uri``, where a run's training profile is found, and
  ``model_version_tags`` (the version's content hash, for lineage).

Every answer here is a shortcut, never a second opinion: whatever is not plain (not SQLite,
a schema this code does not know, workspaces turned on, a version not READY, files not on
this machine, no such model, a store that is busy or broken) returns None, and the caller
asks MLflow as before, which gives its own answer and its own errors.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = [
    "EmbeddedVersion",
    "embedded_logged_model_tags",
    "embedded_model_version",
    "embedded_model_version_tags",
    "embedded_run_artifacts",
]

_DELETED = "Deleted_Internal"  # MLflow's stage of a deleted model version
_NEEDED = {"name", "version", "run_id", "status", "storage_location", "current_stage"}


@dataclass(frozen=True)
class EmbeddedVersion:
    """A registered model version of the embedded store, with its files on this machine."""

    name: str
    version: str
    run_id: str | None
    files: Path  # the logged model's artifact folder (``storage_location``)


def _database(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///") :].split("?", 1)[0])
    if not path.is_absolute():
        path = Path("/") / path
    return path if path.is_file() else None


@contextlib.contextmanager
def _reading(uri: str) -> Iterator[sqlite3.Connection | None]:
    path = _database(uri)
    if path is None or os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("1", "true"):
        yield None
        return
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        yield None
        return
    try:
        yield conn
    finally:
        conn.close()


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _local_folder(location: str | None) -> Path | None:
    if not location or not location.startswith("file:"):
        return None
    parsed = urlparse(location)
    if parsed.netloc not in ("", "localhost"):
        return None
    folder = Path(unquote(parsed.path))
    return folder if (folder / "MLmodel").is_file() else None


def embedded_model_version(uri: str, model_uri: str) -> EmbeddedVersion | None:
    """The version ``model_uri`` (``models:/NAME/N``, ``models:/NAME@ALIAS``,
    ``models:/NAME/latest``) names in the SQLite store ``uri``; None when MLflow must answer
    (see the module docstring)."""
    if not model_uri.startswith("models:/"):
        return None
    rest = model_uri[len("models:/") :].strip("/")
    try:
        with _reading(uri) as conn:
            if conn is None:
                return None
            columns = _columns(conn, "model_versions")
            if not columns >= _NEEDED:
                return None
            in_default = " AND workspace = 'default'" if "workspace" in columns else ""
            alive = f"(current_stage IS NULL OR current_stage != '{_DELETED}'){in_default}"
            if "@" in rest:
                name, alias = rest.split("@", 1)
                aliases = _columns(conn, "registered_model_aliases")
                where = " AND workspace = 'default'" if "workspace" in aliases else ""
                found = conn.execute(
                    "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?"
                    + where,
                    (name, alias),
                ).fetchone()
                if found is None:
                    return None
                version = int(found[0])
            else:
                name, _, text = rest.rpartition("/")
                if text == "latest":
                    found = conn.execute(
                        f"SELECT MAX(version) FROM model_versions WHERE name = ? AND {alive}",
                        (name,),
                    ).fetchone()
                    if found is None or found[0] is None:
                        return None
                    version = int(found[0])
                elif text.isdigit():
                    version = int(text)
                else:
                    return None
            row = conn.execute(
                "SELECT name, version, run_id, status, storage_location FROM model_versions "
                f"WHERE name = ? AND version = ? AND {alive}",
                (name, version),
            ).fetchone()
    except sqlite3.Error:
        return None
    if row is None or row[3] != "READY":
        return None
    files = _local_folder(row[4])
    if files is None:
        return None
    return EmbeddedVersion(str(row[0]), str(row[1]), row[2] or None, files)


def embedded_logged_model_tags(uri: str, model_id: str) -> dict[str, str] | None:
    """The tags of logged model ``model_id`` in the SQLite store ``uri``; None when MLflow
    must answer (not SQLite, no such logged model here, a busy or unknown store)."""
    try:
        with _reading(uri) as conn:
            if conn is None:
                return None
            if (
                conn.execute(
                    "SELECT 1 FROM logged_models WHERE model_id = ?", (model_id,)
                ).fetchone()
                is None
            ):
                return None
            rows = conn.execute(
                "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ?",
                (model_id,),
            ).fetchall()
    except sqlite3.Error:
        return None
    return {str(key): str(value) for key, value in rows}


def embedded_run_artifacts(uri: str, run_id: str) -> Path | None:
    """The local folder holding run ``run_id``'s artifacts in the SQLite store ``uri``; None
    when MLflow must answer (not SQLite, no such run, artifacts not on this machine)."""
    try:
        with _reading(uri) as conn:
            if conn is None:
                return None
            row = conn.execute(
                "SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)
            ).fetchone()
    except sqlite3.Error:
        return None
    if row is None or not row[0] or not str(row[0]).startswith("file:"):
        return None
    parsed = urlparse(str(row[0]))
    if parsed.netloc not in ("", "localhost"):
        return None
    folder = Path(unquote(parsed.path))
    return folder if folder.is_dir() else None


def embedded_model_version_tags(uri: str, name: str, version: str) -> dict[str, str] | None:
    """The tags of registered version ``name``/``version`` in the SQLite store ``uri``;
    None when MLflow must answer."""
    try:
        with _reading(uri) as conn:
            if conn is None:
                return None
            columns = _columns(conn, "model_version_tags")
            if not {"name", "version", "key", "value"} <= columns:
                return None
            where = " AND workspace = 'default'" if "workspace" in columns else ""
            if (
                conn.execute(
                    "SELECT 1 FROM model_versions WHERE name = ? AND version = ?" + where,
                    (name, int(version)),
                ).fetchone()
                is None
            ):
                return None  # no such version here: MLflow says so in its words
            rows = conn.execute(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?" + where,
                (name, int(version)),
            ).fetchall()
    except (sqlite3.Error, ValueError):
        return None
    return {str(key): str(value) for key, value in rows}
