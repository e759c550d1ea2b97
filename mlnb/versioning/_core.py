"""The versioning store: a file, folder, DataFrame, array or config stored by content and
recorded under a name (:func:`add`), the runs that read or wrote it recorded by id
(:func:`link`), any version restored (:func:`checkout`, :func:`load`).

It knows nothing of MLflow or of what a run is: run ids are names here. Attaching a version
to the active run (``mlnb.version``) is tracking's part (``mlnb.tracking.version``)."""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlnb._pins import Pins
from mlnb.config import Settings, get_settings
from mlnb.exceptions import InvalidValueError, VersioningError
from mlnb.versioning._hashing import StatCache, hash_tree
from mlnb.versioning._registry import Registry, VersionRecord, check_version_name
from mlnb.versioning._store import ObjectStore
from mlnb.versioning._values import (
    FROM_MEMORY,
    SUFFIXES,
    is_value,
    load_value,
    read_value,
    store_value,
)

__all__ = [
    "ROLES",
    "GcResult",
    "Project",
    "add",
    "add_edge",
    "checkout",
    "gc",
    "link",
    "load",
    "pinned_versions",
    "record_model",
    "recorded_run_ids",
    "source_path",
    "store_model",
    "version",
    "versions",
]

#: version reference -> ``{"kind", "format", "path"}``: pinned by an exported service so that
#: the notebook's own ``mlnb.load_version(ref)`` reads the copy pinned (by hash) at export
pinned_versions: Pins[dict[str, Any]] = Pins("version reference")

#: how a run used a version: it read it (``input``) or wrote it (``output``)
ROLES = ("input", "output")
CONFIG_SUFFIXES = {".yaml", ".yml", ".json", ".toml", ".ini", ".cfg"}
TABLE_SUFFIXES = {".csv", ".tsv", ".parquet"}


@dataclass
class Project:
    """The versioning parts of one project."""

    settings: Settings
    store: ObjectStore
    registry: Registry
    cache: StatCache

    @classmethod
    def current(cls) -> Project:
        settings = get_settings()
        home = settings.home
        cache = StatCache(home / "cache" / "stat.sqlite")
        return cls(
            settings=settings,
            store=ObjectStore(home / "objects", cache),
            registry=Registry(home / "versions.db"),
            cache=cache,
        )

    def relative(self, path: Path) -> str:
        path = path.resolve()
        try:
            return path.relative_to(self.settings.root).as_posix()
        except ValueError:
            return str(path)

    def absolute(self, stored_path: str) -> Path:
        path = Path(stored_path)
        return path if path.is_absolute() else self.settings.root / path


def _table_schema(path: Path) -> dict[str, Any] | None:
    """Column names and types of a CSV/TSV/Parquet file (from its head), or None."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
            return {"columns": {f.name: str(f.type) for f in schema}}
        import pandas as pd

        head = pd.read_csv(path, nrows=1000, sep="\t" if path.suffix == ".tsv" else ",")
        return {"columns": {str(c): str(t) for c, t in head.dtypes.items()}}
    except Exception:
        return None


def add(obj: Any, name: str | None = None) -> VersionRecord:
    """Store ``obj`` by content and record it as a version of ``name``; the record of what
    was stored. ``obj`` is a path to a file or folder, a pandas DataFrame or Series, a numpy
    array (any dtype and shape), a scipy sparse matrix or array, a list, tuple or dict of
    arrays (``(X, y)``), or a dict/list config; values from memory need a ``name``.

    The content goes into the project's object store once, by BLAKE3 hash; the record keeps
    size, schema (tables and arrays) and when. Nothing is linked to a run: ``mlnb.version``
    (``mlnb.tracking.version``) stores through here and attaches the version to the run.
    """
    project = Project.current()
    project.settings.home.mkdir(parents=True, exist_ok=True)
    return _store(project, obj, name)


def version(
    obj: Any,
    name: str | None = None,
    *,
    role: str = "input",
    context: str | None = None,
    run: bool = True,
) -> VersionRecord:
    """Deprecated: ``mlnb.version`` (``mlnb.tracking.version``) stores and attaches to the
    active run; :func:`add` only stores. Kept for one release; this forwards to
    ``mlnb.version`` through the package root, never to tracking itself."""
    warnings.warn(
        "mlnb.versioning.version is deprecated: use mlnb.version (mlnb.tracking.version), "
        "which stores the version and attaches it to the active run, or "
        "mlnb.versioning.add, which only stores it.",
        DeprecationWarning,
        stacklevel=2,
    )
    import mlnb

    record: VersionRecord = mlnb.version(obj, name, role=role, context=context, run=run)
    return record


def link(record: VersionRecord, run_id: str, role: str) -> VersionRecord:
    """Record that the run ``run_id`` read (``input``) or wrote (``output``) the version;
    the first run to see a content becomes the one that created it (``record.run_id``).
    Run ids are names to the store: what a run is, is the tracking side's business."""
    if role not in ROLES:
        raise InvalidValueError(f"role must be 'input' or 'output', not {role!r}.")
    project = Project.current()
    if record.run_id is None:
        project.registry.claim(record.name, record.hash, run_id)
        record.run_id = run_id
    project.registry.add_edge(run_id, record.name, record.hash, role)
    return record


def add_edge(run_id: str, name: str, digest: str, role: str) -> None:
    """Record that the run ``run_id`` read or wrote ``name`` with content ``digest`` (a
    version recorded here, or one known only by its hash, such as a registered model's)."""
    if role not in ROLES:
        raise InvalidValueError(f"role must be 'input' or 'output', not {role!r}.")
    Project.current().registry.add_edge(run_id, name, digest, role)


def source_path(record: VersionRecord) -> Path | None:
    """Where the version was stored from (a file or folder, absolute), or None for a value
    from memory."""
    return Project.current().absolute(record.path) if record.path else None


def recorded_run_ids(prefix: str = "") -> list[str]:
    """The run ids (starting with ``prefix``) that versions or edges name."""
    return Project.current().registry.run_ids_like(prefix)


def _store(project: Project, obj: Any, name: str | None) -> VersionRecord:
    if is_value(obj):
        return store_value(project, obj, name)
    if not isinstance(obj, (str, os.PathLike)):
        hint = ""
        if type(obj).__module__ == "numpy":
            hint = " (a numpy scalar: version np.asarray(x), a 0-d array)"
        elif hasattr(obj, "__array__"):  # a tensor, a pandas array, an xarray...
            hint = " (it converts to a numpy array: version np.asarray(x))"
        raise InvalidValueError(
            f"cannot version a {type(obj).__name__}{hint}: give a path to a file or folder, "
            "a pandas DataFrame or Series, a numpy array, a scipy sparse matrix, a list, "
            "tuple or dict of arrays, or a dict/list config."
        )
    path = Path(obj).expanduser()
    if not path.exists():
        raise InvalidValueError(
            f"{str(obj)!r} does not exist (working directory {Path.cwd()}); check the path."
        )
    if not (path.is_file() or path.is_dir()):
        raise InvalidValueError(
            f"{str(obj)!r} is not a regular file or folder (a pipe, socket or device); "
            "version the data it holds by writing it to a file first."
        )
    if not os.access(path, os.R_OK):
        raise InvalidValueError(f"{str(obj)!r} is not readable; check its permissions.")
    relative = project.relative(path)
    name = check_version_name(name or relative.lstrip("/"))
    schema: dict[str, Any] | None = None
    meta: dict[str, Any] = {}
    try:
        if path.is_dir():
            digest, entries = project.store.put_tree(path, project.cache, label=name)
            kind, size = "folder", sum(e.size for e in entries)
            meta = {"files": len(entries)}
        else:
            digest = project.cache.hash(path)
            project.store.put_file(path, expected=digest, label=name)
            kind = "config" if path.suffix.lower() in CONFIG_SUFFIXES else "file"
            size = path.stat().st_size
            if path.suffix.lower() in TABLE_SUFFIXES:
                schema = _table_schema(path)
    except PermissionError as exc:
        raise InvalidValueError(f"cannot read {exc.filename}: permission denied.") from exc
    finally:
        project.cache.save()
    return project.registry.add(
        VersionRecord(
            name=name,
            hash=digest,
            object=digest,
            kind=kind,
            size=size,
            created_at=time.time(),
            schema=schema,
            path=relative,
            meta=meta,
        )
    )


def versions(name: str) -> list[VersionRecord]:
    """Every version of ``name``, oldest first, with the run ids recorded (``mlnb.versions``
    first follows runs recorded under a provisional id to their final one)."""
    project = Project.current()
    records = project.registry.versions(check_version_name(name))
    if not records:
        project.registry.resolve(name)  # raises the helpful "no versions of" error
    return records


def _restore_target(project: Project, record: VersionRecord, output: Path | None) -> Path:
    if output is not None:
        return output
    if record.path:
        return project.absolute(record.path)
    suffix = SUFFIXES.get(record.meta.get("format", ""), "") if record.path is None else ""
    return Path.cwd() / f"{record.name.replace('/', '_')}{suffix}"


def checkout(ref: str, output: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
    """Restore a version (``NAME``, ``NAME@3``, ``NAME@<hash prefix>``) to ``output``
    (default: where it was versioned from). Refuses to overwrite content that is not a
    recorded version of the name, unless ``force``."""
    project = Project.current()
    record = project.registry.resolve(ref)
    target = _restore_target(project, record, Path(output) if output is not None else None)
    if target.exists() and not force:
        known = {r.hash for r in project.registry.versions(record.name)}
        try:
            if target.is_dir():
                current_hash = hash_tree(target, project.cache)[0]
            else:
                current_hash = project.cache.hash(target)
        finally:
            project.cache.save()
        if record.kind in FROM_MEMORY or (record.kind == "config" and record.path is None):
            # a value from memory: the file holds its object (a Parquet, .npy, ... file)
            if current_hash == record.object:
                return target
            known = {r.object for r in project.registry.versions(record.name)}
        elif current_hash == record.hash:
            return target
        if current_hash not in known:
            raise VersioningError(
                f"{target} has changes that are not versioned; version them first "
                f"(mlnb.version({str(target)!r}, name={record.name!r})) or pass --force."
            )
    if record.kind == "folder":
        project.store.restore_tree(record.object, target)
    else:
        project.store.restore_file(record.object, target)
    return target


def load(ref: str) -> Any:
    """A version's content: the DataFrame, Series, array, sparse matrix, list/tuple/dict of
    arrays or dict/list config that was versioned (same type, dtype, shape and values), or
    the path of a restored file or folder (restored into ``.mlnb/checkouts/``). Raises the
    audit event ``mlnb.load_version`` with ``ref`` (``mlnb export`` pins what the exported
    cells load); in an exported service, the copy pinned at export is read instead of the
    project's."""
    sys.audit("mlnb.load_version", ref)
    pinned = pinned_versions.get(ref)
    if pinned is not None:
        return _content(pinned["kind"], pinned.get("format"), Path(pinned["path"]))
    project = Project.current()
    record = project.registry.resolve(ref)
    if record.kind in FROM_MEMORY or (record.kind == "config" and record.path is None):
        return load_value(project, record)
    target = (
        project.settings.home
        / "checkouts"
        / record.hash[:16]
        / Path(record.path or record.name).name
    )
    if not target.exists():
        checkout(ref, target, force=True)
    return target


def _content(kind: str, fmt: str | None, path: Path) -> Any:
    """What :func:`load` returns for a pinned copy at ``path``: the value from memory it
    holds (a DataFrame, Series, array, ... or JSON config), or the path itself (a file or
    folder, and configs in other formats)."""
    if kind in FROM_MEMORY or (kind == "config" and fmt == "json"):
        return read_value(kind, fmt, path)
    return path


def store_model(
    folder: str | os.PathLike[str],
    name: str,
    *,
    model_uri: str,
    registered_version: str | None = None,
    run_id: str | None = None,
) -> VersionRecord:
    """Version the files of a logged model (downloaded to ``folder``) by content, as kind
    ``model``; ``model_uri`` and ``registered_version`` are kept on the record, and
    ``run_id`` (the run that logged it) is its creator and writer."""
    project = Project.current()
    try:
        digest, entries = project.store.put_tree(Path(folder), None, label=f"model {name!r}")
    finally:
        project.cache.save()
    record = project.registry.add(
        VersionRecord(
            name=check_version_name(name),
            hash=digest,
            object=digest,
            kind="model",
            size=sum(e.size for e in entries),
            created_at=time.time(),
            run_id=run_id,
            meta={"model_uri": model_uri, "registered_version": registered_version},
        )
    )
    if run_id is not None:
        project.registry.add_edge(run_id, record.name, record.hash, "output")
    return record


def record_model(
    model_uri: str, name: str, registered_version: str | None, run_id: str | None
) -> VersionRecord | None:
    """Deprecated: ``mlnb.tracking.record_model`` downloads any MLflow model URI and stores
    it with :func:`store_model`. Kept for one release for models already on this machine
    (a folder or a ``file:`` URI); the store does not read MLflow URIs itself."""
    warnings.warn(
        "mlnb.versioning.record_model is deprecated: use mlnb.tracking.record_model "
        "(any model URI) or mlnb.versioning.store_model (a downloaded model folder).",
        DeprecationWarning,
        stacklevel=2,
    )
    parsed = urlparse(model_uri)
    if parsed.scheme not in ("", "file"):
        raise VersioningError(
            f"cannot read model {model_uri!r} here: the versioning store reads only folders; "
            "use mlnb.tracking.record_model, which downloads it first."
        )
    folder = Path(url2pathname(parsed.path)) if parsed.scheme == "file" else Path(model_uri)
    return store_model(
        folder, name, model_uri=model_uri, registered_version=registered_version, run_id=run_id
    )


@dataclass
class GcResult:
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    freed: int = 0
    dry_run: bool = False


def gc(dry_run: bool = False) -> GcResult:
    """Remove objects that no recorded version refers to."""
    project = Project.current()
    live: set[str] = set()
    for record in project.registry.all():
        live.add(record.object)
        if record.kind in {"folder", "model"}:
            live.update(project.store.children(record.object))
    result = GcResult(dry_run=dry_run)
    for digest in list(project.store):
        if digest in live:
            result.kept += 1
            continue
        result.removed.append(digest)
        result.freed += project.store.size(digest)
        if not dry_run:
            project.store.remove(digest)
    if not dry_run and project.store.folder.is_dir():
        cutoff = time.time() - 3600
        for tmp in project.store.folder.glob("*/.tmp-*"):  # left by a crash mid-write
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
    return result
