"""Values from memory as versions: pandas DataFrames and Series (as Parquet), numpy arrays,
scipy sparse matrices and lists, tuples and dicts of them (see :mod:`._arrays`), and
dict/list configs (as JSON).

Guarantees:

* A version's hash is a hash of its content alone (:mod:`._frames`, :mod:`._arrays`, the
  JSON bytes of a config), so the same content is the same version in every process, and
  any change to it is a new version.
* Content whose hash is already recorded with an object in the store (under any name) is
  neither serialised nor written again: versioning it again costs one hash of the content,
  where the first time cost the hash, the serialisation and the write.
* Bad input raises :class:`~mlnb.exceptions.InvalidValueError` before anything is recorded,
  and a store that cannot be written a :class:`~mlnb.exceptions.VersioningError` (a full
  disk: :class:`~mlnb.exceptions.DiskFullError`); an object
  is recorded only once it is complete in the store.
* :func:`load_value` gives back a value of the same type, dtype, shape and values.

Why a value is hashed again each time rather than recognised as "unchanged in memory":
nothing in pandas or numpy says whether memory was written since it was hashed. pandas
has no generation counter, and numpy arrays none either. The identity of a frame's blocks
plus a sampled checksum misses any edit in place outside the sample. Copy-on-Write
(pandas 3) does not close the hole: ``df["x"].array[i] = v`` writes into the frame's block
in place, and so into a shallow copy held to detect changes, as does an array given to a
constructor with ``copy=False`` and later changed. A cell holding a list can be changed
without touching the frame at all. Being wrong here would record content under a hash it
does not have, so the hash is always computed from the content, and it is the cheap part
(see ``benchmarks/versioning.py``).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlnb.exceptions import (
    CorruptObjectError,
    InvalidValueError,
    ObjectHealedWarning,
    VersioningError,
)
from mlnb.versioning import _arrays, _elements
from mlnb.versioning._frames import fingerprint_dataframe, fingerprint_series
from mlnb.versioning._registry import VersionRecord, check_version_name

if TYPE_CHECKING:
    from mlnb.versioning._core import Project

__all__ = ["FROM_MEMORY", "SUFFIXES", "is_value", "load_value", "read_value", "store_value"]

#: kinds of versions made from values in memory (restored by :func:`load_value`)
FROM_MEMORY = frozenset({"dataframe", "series", "array", "sparse", "arrays"})
#: the file suffix of a checkout, by the stored format
SUFFIXES = {"parquet": ".parquet", "json": ".json", "npy": ".npy", "npz": ".npz"}
#: the column a Series is stored under (its own name is kept in the record)
_SERIES_COLUMN = "values"
#: the Series' name (as :mod:`._elements` JSON), kept in the Parquet file's pandas attrs too
_SERIES_ATTR = "mlnb.series_name"
_ARRAY_KINDS = frozenset({"array", "sparse", "arrays"})


def _pandas_kind(obj: Any) -> str | None:
    kind = type(obj)
    if not kind.__module__.startswith("pandas"):
        return None
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return "dataframe"
    if isinstance(obj, pd.Series):
        return "series"
    return None


def is_value(obj: Any) -> bool:
    """True for what :func:`store_value` takes (anything else is a path)."""
    return (
        _pandas_kind(obj) is not None
        or isinstance(obj, (dict, list))
        or _arrays.is_array_value(obj)
    )


def _needs_name(kind: str, example: str) -> InvalidValueError:
    return InvalidValueError(
        f"{kind} needs a name: mlnb.version({example}, name='{example}') (or %mlnb version "
        f"{example}, which uses the variable's name)."
    )


def store_value(project: Project, obj: Any, name: str | None) -> VersionRecord:
    """Version a value from memory under ``name`` (see the module's guarantees)."""
    pandas_kind = _pandas_kind(obj)
    if pandas_kind is not None:
        if name is None:
            raise _needs_name(f"a {'DataFrame' if pandas_kind == 'dataframe' else 'Series'}", "df")
        return _store_frame(project, obj, check_version_name(name), pandas_kind)
    if _arrays.is_array_value(obj):
        if name is None:
            raise _needs_name("an array (or a list, tuple or dict of arrays)", "X")
        name = check_version_name(name)
        packed = _arrays.pack(obj, name)
        return _record(
            project, name, packed.kind, packed.digest, packed.format, packed.schema, packed.write
        )
    if name is None:
        raise InvalidValueError("a config needs a name: mlnb.version(params, name='params').")
    return _store_config(project, obj, check_version_name(name))


def _record(
    project: Project,
    name: str,
    kind: str,
    digest: str,
    fmt: str,
    schema: dict[str, Any] | None,
    write: Any,
    meta: dict[str, Any] | None = None,
) -> VersionRecord:
    """Record content ``digest`` under ``name``, writing it to the store only if no copy of
    it is there yet."""
    try:
        return _record_checked(project, name, kind, digest, fmt, schema, write, meta)
    finally:
        project.cache.save()  # what the store learnt of its objects (see ObjectStore.state)


def _record_checked(
    project: Project,
    name: str,
    kind: str,
    digest: str,
    fmt: str,
    schema: dict[str, Any] | None,
    write: Any,
    meta: dict[str, Any] | None,
) -> VersionRecord:
    registry, store = project.registry, project.store
    try:
        existing: VersionRecord | None = registry.get(name, digest)
    except VersioningError:
        existing = None
    if existing is not None and store.intact(existing.object, existing.size):
        return existing  # the same content again: nothing to write
    stored = next(
        (
            obj
            for _, obj, known in registry.stored_as(digest, kind)
            if known.get("format") == fmt and store.intact(obj)
        ),
        None,
    ) or store.put_written(write, label=f"version {name!r}")
    if existing is not None:  # its object was removed (gc), never pulled, or corrupted
        if stored != existing.object:
            if store.state(existing.object) is False:  # written again, to other bytes
                warnings.warn(
                    ObjectHealedWarning(
                        f"object {existing.object[:12]} of version {name!r} was corrupted in "
                        f"the store; the version now points at a good copy, {stored[:12]}."
                    ),
                    stacklevel=4,
                )
            registry.set_object(name, digest, stored)
            existing.object = stored
        return existing
    return registry.add(
        VersionRecord(
            name=name,
            hash=digest,
            object=stored,
            kind=kind,
            size=project.store.size(stored),
            created_at=time.time(),
            schema=schema,
            meta={"format": fmt, **(meta or {})},
        )
    )


# -- pandas ------------------------------------------------------------------------------
def _parquet_writer(frame: Any, name: str) -> Any:
    def write(out: IO[bytes]) -> None:
        try:
            with warnings.catch_warnings():
                # pyarrow's word that the frame would not read back as it is
                warnings.filterwarnings("error", message=".*roundtrip", category=UserWarning)
                frame.to_parquet(out)
        except ImportError as exc:
            raise InvalidValueError(
                f"writing {name!r} as Parquet needs pyarrow: pip install pyarrow ({exc})."
            ) from exc
        except (TypeError, ValueError, NotImplementedError, UserWarning) as exc:
            # pyarrow's ArrowTypeError, ArrowInvalid, ArrowNotImplementedError
            text = str(exc).strip()
            detail = text.splitlines()[0] if text else type(exc).__name__
            raise InvalidValueError(
                f"{name!r} cannot be written as Parquet exactly: {detail}. Give each column "
                "values of one type Parquet stores (e.g. df['col'] = df['col'].astype(str)), "
                "and the columns unique names of one type (e.g. df.columns = "
                "df.columns.astype(str)), then version it again."
            ) from exc

    return write


def _store_frame(project: Project, obj: Any, name: str, kind: str) -> VersionRecord:
    meta: dict[str, Any] = {}
    if kind == "series":
        try:
            label = _elements.dumps(_elements.encode([obj.name], lambda i: "the Series' name"))
        except InvalidValueError as exc:
            raise InvalidValueError(f"{exc} Rename the Series first: s.rename('y').") from exc
        meta["series_name"] = label.decode("utf-8", "surrogatepass")
        frame = obj.to_frame(name=_SERIES_COLUMN)
        frame.attrs = {_SERIES_ATTR: meta["series_name"]}  # a copy of the frame's, not obj's
        digest = fingerprint_series(obj, label)
        schema: dict[str, Any] = {
            "dtype": str(obj.dtype),
            "rows": len(obj),
            "index": str(obj.index.dtype),
        }
    else:
        frame = obj
        digest = fingerprint_dataframe(obj)
        schema = {
            "columns": {str(c): str(t) for c, t in obj.dtypes.items()},
            "rows": len(obj),
            "index": str(obj.index.dtype),
        }
    return _record(
        project, name, kind, digest, "parquet", schema, _parquet_writer(frame, name), meta
    )


def _store_config(project: Project, obj: Any, name: str) -> VersionRecord:
    try:
        data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"config {name!r} cannot be written as JSON: {exc}") from exc
    try:
        stored = project.store.put_bytes(data, label=f"config {name!r}")
    finally:
        project.cache.save()
    return project.registry.add(
        VersionRecord(
            name=name,
            hash=stored,
            object=stored,
            kind="config",
            size=len(data),
            created_at=time.time(),
            meta={"format": "json"},
        )
    )


# -- loading -----------------------------------------------------------------------------
def read_value(kind: str, fmt: str | None, path: Path, meta: dict[str, Any] | None = None) -> Any:
    """The value of ``kind`` stored in format ``fmt`` in the file at ``path``: an object of
    the store, or the copy an exported service pinned (which has no record, only the file)."""
    if kind in {"dataframe", "series"}:
        import pandas as pd

        frame = pd.read_parquet(path)
        if kind == "dataframe":
            return frame
        label = frame.attrs.get(_SERIES_ATTR) or (meta or {}).get("series_name") or "null"
        (name,) = _elements.decode(_elements.loads(label.encode("utf-8", "surrogatepass")))
        series = frame[_SERIES_COLUMN]
        series.attrs.pop(_SERIES_ATTR, None)
        return series.rename(name)
    if kind == "config":
        return json.loads(path.read_bytes())
    if fmt not in {"npy", "json", "npz"}:
        raise VersioningError(
            f"{path} holds a {kind} stored as {fmt!r}, which this mlnb cannot read; upgrade mlnb."
        )
    return _arrays.unpack(kind, fmt, path)


def load_value(project: Project, record: VersionRecord) -> Any:
    """The value a version from memory holds (its object verified against its hash)."""
    path = project.store.verify(record.object)
    fmt = record.meta.get("format")
    value = read_value(record.kind, fmt, path, record.meta)
    if record.kind in _ARRAY_KINDS and _arrays.pack(value, record.name).digest != record.hash:
        raise CorruptObjectError(
            f"{record.ref} does not read back to its hash {record.short} (stored as {fmt}); "
            "refusing to use it. Run `mlnb pull` to fetch a good copy, or version it again."
        )
    return value
