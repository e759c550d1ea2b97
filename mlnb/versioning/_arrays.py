"""numpy arrays, scipy sparse matrices, and lists, tuples and dicts of them, as versions.

What is stored (one object in the store each, read back with ``allow_pickle=False``:
nothing is ever unpickled):

==========  ======  ===================================================================
kind        format  object
==========  ======  ===================================================================
``array``   npy     a dense array of a non-object dtype: NumPy's ``.npy`` (``np.load``)
``array``   json    an object or ``StringDType`` array: ``{"mlnb": 1, "type": "ndarray",
                    "dtype", "shape", "values"}``, the elements as in :mod:`._elements`
``sparse``  npz     a scipy sparse matrix or array: the layout of ``scipy.sparse.save_npz``
                    (uncompressed, so ``scipy.sparse.load_npz`` reads a checkout) plus
                    ``mlnb.json``; LIL and DOK are kept as CSR and converted back
``arrays``  npz     a list, tuple or dict (``str`` keys) of the above, nested as deep as
                    wanted: ``mlnb.json`` (the structure) and the leaves' members
==========  ======  ===================================================================

Zip members are stored uncompressed with fixed timestamps. Loading gives back an object
of the same type (``np.ndarray``, the same scipy class, ``list``/``tuple``/``dict``),
dtype, shape and values; a ``np.memmap`` comes back as an ``np.ndarray``.

The content hash (BLAKE3) depends on nothing but type, dtype, shape and values, so it is
the same in every process, whatever the memory layout (C or Fortran order, views):

* dense: a JSON header ``{"dtype": DESCR, "shape": [...], "type": "numpy.ndarray"}``, a
  NUL byte, then the elements' bytes in C order. Bytes count, not ``==``: ``0.0`` and
  ``-0.0`` differ, and so do ``<f8`` and ``>f8``. A bool counts as 0 or 1; a structured
  dtype field by field, so padding bytes do not count.
* object and ``StringDType``: the header, then the canonical JSON of the elements.
* sparse: a header with the scipy class, shape and dtype, then the hashes of the arrays
  it stores (index arrays as int64, so int32 and int64 indices agree). They are hashed as
  stored, not canonicalised: the same matrix stored in another order, with duplicates or
  with explicit zeros hashes differently.
* containers: a header with the container type (and a dict's keys), then the items' hashes.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from blake3 import blake3

from mlnb.exceptions import InvalidValueError
from mlnb.versioning import _elements

__all__ = ["Packed", "feed_array", "is_array_value", "pack", "unpack"]

#: the dense array a hash reads at a time when it must copy (a strided view, bools)
_CHUNK_BYTES = 64 * 1024 * 1024
#: at most this many items of a container are described in its schema
_SCHEMA_ITEMS = 50
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SPARSE_FORMATS = {"csr", "csc", "coo", "bsr", "dia", "lil", "dok"}
_DENSE_KINDS = "biufcmMSUV"


@dataclass
class Packed:
    """A value ready to be stored: its kind, format, content hash, schema, and a writer."""

    kind: str  # array | sparse | arrays
    format: str  # npy | json | npz
    digest: str
    schema: dict[str, Any]
    write: Callable[[IO[bytes]], None]


@dataclass
class _Node:
    digest: str
    schema: dict[str, Any]
    doc: dict[str, Any]  # this node in mlnb.json
    members: list[tuple[str, Any]] = field(default_factory=list)  # (zip name, array | bytes)


def _header(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\0"


def _is_leaf(obj: Any) -> bool:
    module = type(obj).__module__
    if module.startswith("numpy"):
        import numpy as np

        return isinstance(obj, np.ndarray)
    if module.startswith("scipy.sparse"):
        import scipy.sparse as sp

        return bool(sp.issparse(obj))
    return False


def is_array_value(obj: Any, depth: int = 0) -> bool:
    """True for what :func:`pack` takes: an array, a sparse matrix, or a list, tuple or
    dict holding one (at any depth)."""
    if _is_leaf(obj):
        return True
    if depth >= _elements.MAX_DEPTH:
        return False
    if type(obj) in (list, tuple):
        return any(is_array_value(v, depth + 1) for v in obj)
    if type(obj) is dict:
        return any(is_array_value(v, depth + 1) for v in obj.values())
    return False


# -- hashing -------------------------------------------------------------------------
def _chunks(arr: Any) -> Iterator[Any]:
    """``arr``'s elements as C-contiguous uint8 pieces, in C order."""
    import numpy as np

    if arr.nbytes == 0:
        return
    if arr.dtype.kind == "b":
        arr = arr.view(np.uint8) != 0  # any nonzero byte is True: hash it as 1
    if arr.flags.c_contiguous:
        yield arr.reshape(-1).view(np.uint8)
        return
    rows = max(1, _CHUNK_BYTES // max(1, arr[0].nbytes))
    for start in range(0, len(arr), rows):
        yield np.ascontiguousarray(arr[start : start + rows]).reshape(-1).view(np.uint8)


def feed_array(hasher: Any, arr: Any) -> None:
    """Feed a dense array's element bytes (C order) to ``hasher``, as its hash counts them."""
    if arr.dtype.names:  # field by field: padding between fields does not count
        for name in arr.dtype.names:
            feed_array(hasher, arr[name])
        return
    for piece in _chunks(arr):
        hasher.update(piece)


def _dense_digest(arr: Any, descr: Any) -> str:
    hasher = blake3(
        _header({"type": "numpy.ndarray", "dtype": descr, "shape": list(arr.shape)}),
        max_threads=blake3.AUTO,
    )
    feed_array(hasher, arr)
    return str(hasher.hexdigest())


def _combined(header: dict[str, Any], children: list[_Node]) -> str:
    hasher = blake3(_header(header))
    for child in children:
        hasher.update(child.digest.encode())
    return str(hasher.hexdigest())


# -- leaves --------------------------------------------------------------------------
class _Leaves:
    """Numbers the leaves of one value, for their zip member names."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return str(self.count - 1)


def _rows(shape: tuple[int, ...]) -> dict[str, int]:
    return {"rows": int(shape[0])} if len(shape) >= 1 else {}


def _dense(arr: Any, where: str, leaf: str | None) -> _Node:
    import numpy as np

    if type(arr) is not np.ndarray:
        if not isinstance(arr, np.memmap):
            kind = f"{type(arr).__module__}.{type(arr).__qualname__}"
            raise InvalidValueError(
                f"{where} is a {kind} (an ndarray subclass), which mlnb does not version "
                "as such; version np.asarray(...) of it (for a masked array, its .filled() "
                "data and its .mask as two arrays)."
            )
        arr = np.asarray(arr)
    dtype = arr.dtype
    schema = {"type": "ndarray", "dtype": str(dtype), "shape": list(arr.shape), **_rows(arr.shape)}
    if dtype.kind in "OT":
        return _json_leaf(arr, where, leaf, schema)
    if dtype.hasobject or dtype.kind not in _DENSE_KINDS or dtype.isbuiltin == 2:
        raise InvalidValueError(
            f"{where} has dtype {dtype}, which .npy can only keep by pickling; convert it to "
            "a numeric, bool, datetime64, bytes or str dtype, or to one array per field."
        )
    digest = _dense_digest(arr, np.lib.format.dtype_to_descr(dtype))
    name = f"{leaf}.npy" if leaf is not None else ""
    return _Node(digest, schema, {"type": "ndarray", "member": name}, [(name, arr)])


def _string_dtype(dtype: Any, where: str) -> dict[str, Any]:
    """The settings of a numpy StringDType as JSON (refusing an NA it cannot carry)."""
    out: dict[str, Any] = {"coerce": bool(dtype.coerce)}
    if hasattr(dtype, "na_object"):
        na = dtype.na_object
        if not (na is None or type(na) is str or (type(na) is float and na != na)):
            raise InvalidValueError(
                f"{where} is a StringDType array whose na_object is a {type(na).__name__}; "
                "mlnb keeps None, NaN or a str as the missing value. Convert it with "
                "arr.astype(StringDType(na_object=None))."
            )
        out["na_object"] = na
    return out


def _json_leaf(arr: Any, where: str, leaf: str | None, schema: dict[str, Any]) -> _Node:
    import numpy as np

    shape = arr.shape
    dtype: Any = (
        "object" if arr.dtype.kind == "O" else {"StringDType": _string_dtype(arr.dtype, where)}
    )

    def locate(i: int) -> str:
        index = tuple(int(x) for x in np.unravel_index(i, shape)) if shape else ()
        return f"element {index} of {where}"

    values = _elements.encode(arr.ravel(order="C").tolist(), locate)
    payload = _elements.dumps(values)
    head = {"type": "numpy.ndarray", "dtype": dtype, "shape": list(shape)}
    digest = str(blake3(_header(head) + payload).hexdigest())
    doc = {"mlnb": 1, "type": "ndarray", "dtype": dtype, "shape": list(shape)}
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=True)
    data = body[:-1].encode() + b',"values":' + payload + b"}"
    name = f"{leaf}.json" if leaf is not None else ""
    return _Node(digest, schema, {"type": "ndarray", "member": name}, [(name, data)])


def _sparse(obj: Any, where: str, prefix: str) -> _Node:
    import numpy as np
    import scipy.sparse as sp

    cls = type(obj).__name__
    if getattr(sp, cls, None) is not type(obj) or obj.format not in _SPARSE_FORMATS:
        raise InvalidValueError(
            f"{where} is a {type(obj).__module__}.{cls}, not one of scipy.sparse's own "
            "classes; convert it first, e.g. scipy.sparse.csr_matrix(x)."
        )
    if obj.dtype.hasobject or obj.dtype.kind not in "biufc":
        raise InvalidValueError(
            f"{where} is a sparse matrix of dtype {obj.dtype}; version a numeric or bool one."
        )
    stored = obj.tocsr() if obj.format in {"lil", "dok"} else obj
    fmt = stored.format
    parts: dict[str, Any] = {}
    if fmt in {"csr", "csc", "bsr"}:
        parts.update(indices=stored.indices, indptr=stored.indptr)
    elif fmt == "dia":
        parts.update(offsets=stored.offsets)
    elif stored.ndim == 2:
        parts.update(row=stored.row, col=stored.col)
    else:
        parts.update(coords=np.asarray(stored.coords))
    children = [
        _Node(_dense_digest(np.asarray(value).astype(np.int64, copy=False), "<i8"), {}, {})
        for value in parts.values()
    ]
    data = np.asarray(stored.data)
    children.append(_Node(_dense_digest(data, np.lib.format.dtype_to_descr(data.dtype)), {}, {}))
    head = {
        "type": "scipy.sparse",
        "class": cls,
        "shape": [int(n) for n in obj.shape],
        "dtype": np.lib.format.dtype_to_descr(obj.dtype),
        "parts": [*parts, "data"],
    }
    members: list[tuple[str, Any]] = [(f"{prefix}{k}.npy", np.asarray(v)) for k, v in parts.items()]
    members += [
        (f"{prefix}data.npy", data),
        (f"{prefix}format.npy", np.array(fmt.encode("ascii"))),
        (f"{prefix}shape.npy", np.array(obj.shape, dtype=np.int64)),
    ]
    if isinstance(obj, sp.sparray):
        members.append((f"{prefix}_is_array.npy", np.array(True)))
    schema = {
        "type": cls,
        "dtype": str(obj.dtype),
        "shape": [int(n) for n in obj.shape],
        "nnz": int(obj.nnz),
        **_rows(obj.shape),
    }
    return _Node(
        _combined(head, children),
        schema,
        {"type": "sparse", "class": cls, "prefix": prefix},
        members,
    )


def _node(obj: Any, where: str, leaves: _Leaves, depth: int) -> _Node:
    if _is_leaf(obj):
        if type(obj).__module__.startswith("scipy.sparse"):
            return _sparse(obj, where, f"{leaves.next()}/")
        return _dense(obj, where, leaves.next())
    if depth >= _elements.MAX_DEPTH:
        raise InvalidValueError(f"{where} is nested more than {_elements.MAX_DEPTH} deep.")
    kind = type(obj)
    if kind in (list, tuple):
        items = [_node(v, f"{where}[{i}]", leaves, depth + 1) for i, v in enumerate(obj)]
        keys: list[str] | None = None
    elif kind is dict:
        bad = [k for k in obj if type(k) is not str]
        if bad:
            raise InvalidValueError(
                f"{where} has a key {bad[0]!r} of type {type(bad[0]).__name__}; a dict of "
                "arrays needs str keys (e.g. {'X': X, 'y': y})."
            )
        keys = list(obj)
        items = [_node(obj[k], f"{where}[{k!r}]", leaves, depth + 1) for k in keys]
    else:
        what = "a DataFrame or Series" if kind.__module__.startswith("pandas") else None
        raise InvalidValueError(
            f"{where} is {what or 'a ' + kind.__qualname__}: a list, tuple or dict "
            "versioned as arrays holds only numpy arrays and scipy sparse matrices (and "
            "lists, tuples or dicts of them). Version other values on their own, e.g. "
            "mlnb.version(value, name='...')."
        )
    type_name = kind.__name__
    head: dict[str, Any] = {"type": type_name, "n": len(items)}
    doc: dict[str, Any] = {"type": type_name, "items": [item.doc for item in items]}
    schema: dict[str, Any] = {"type": type_name, "length": len(items)}
    described = [item.schema for item in items[:_SCHEMA_ITEMS]]
    if keys is not None:
        head["keys"] = doc["keys"] = keys
        schema["items"] = dict(zip(keys, described, strict=False))
    else:
        schema["items"] = described
    rows = {item.schema.get("rows") for item in items}
    if len(rows) == 1 and None not in rows:
        schema["rows"] = rows.pop()
    members = [member for item in items for member in item.members]
    return _Node(_combined(head, items), schema, doc, members)


# -- writing and reading ---------------------------------------------------------------
def _write_zip(out: IO[bytes], doc: dict[str, Any], members: list[tuple[str, Any]]) -> None:
    import numpy as np

    meta = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, payload in [("mlnb.json", meta), *members]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                if isinstance(payload, bytes):
                    fh.write(payload)
                else:
                    np.lib.format.write_array(fh, payload, allow_pickle=False)


def pack(obj: Any, label: str) -> Packed:
    """Check ``obj`` (named ``label`` in errors) and compute its content hash; nothing is
    written until :attr:`Packed.write` is called."""
    import numpy as np

    where = repr(label)
    if _is_leaf(obj) and not type(obj).__module__.startswith("scipy.sparse"):
        node = _dense(obj, where, None)
        (_, payload) = node.members[0]

        def write(out: IO[bytes]) -> None:
            if isinstance(payload, bytes):
                out.write(payload)
            else:
                np.lib.format.write_array(out, payload, allow_pickle=False)

        fmt = "json" if isinstance(payload, bytes) else "npy"
        return Packed("array", fmt, node.digest, node.schema, write)
    if _is_leaf(obj):
        node = _sparse(obj, where, "")
        doc, kind = {"mlnb": 1, "root": node.doc}, "sparse"
    else:
        node = _node(obj, where, _Leaves(), 0)
        doc, kind = {"mlnb": 1, "root": node.doc}, "arrays"
    return Packed(
        kind, "npz", node.digest, node.schema, lambda out: _write_zip(out, doc, node.members)
    )


def _read_json_array(data: bytes) -> Any:
    import numpy as np

    doc = _elements.loads(data)
    shape = tuple(doc["shape"])
    values = _elements.decode(doc["values"])
    if doc["dtype"] == "object":
        return _elements.object_array(values, shape)
    settings = dict(doc["dtype"]["StringDType"])
    return np.array(values, dtype=np.dtypes.StringDType(**settings)).reshape(shape)


def _build(node: dict[str, Any], zf: zipfile.ZipFile) -> Any:
    import numpy as np

    kind = node["type"]
    if kind == "ndarray":
        member = node["member"]
        if member.endswith(".json"):
            return _read_json_array(zf.read(member))
        with zf.open(member) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    if kind == "sparse":
        return _read_sparse(node, zf)
    items = [_build(item, zf) for item in node["items"]]
    if kind == "dict":
        return dict(zip(node["keys"], items, strict=True))
    return tuple(items) if kind == "tuple" else items


def _read_sparse(node: dict[str, Any], zf: zipfile.ZipFile) -> Any:
    import numpy as np
    import scipy.sparse as sp

    prefix = node["prefix"]
    names = set(zf.namelist())

    def part(key: str) -> Any:
        with zf.open(f"{prefix}{key}.npy") as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)

    fmt = part("format").item().decode("ascii")
    shape = tuple(int(n) for n in part("shape"))
    cls_name = node["class"]
    is_array = f"{prefix}_is_array.npy" in names
    stored_cls = getattr(sp, f"{fmt}_{'array' if is_array else 'matrix'}")
    data = part("data")
    if fmt in {"csr", "csc", "bsr"}:
        out = stored_cls((data, part("indices"), part("indptr")), shape=shape)
    elif fmt == "dia":
        out = stored_cls((data, part("offsets")), shape=shape)
    elif f"{prefix}coords.npy" in names:
        out = stored_cls((data, tuple(part("coords"))), shape=shape)
    else:
        out = stored_cls((data, (part("row"), part("col"))), shape=shape)
    if type(out).__name__ != cls_name:  # LIL and DOK were stored as CSR
        out = out.asformat(cls_name.split("_")[0])
    return out


def unpack(kind: str, fmt: str, path: Path) -> Any:
    """The value stored at ``path`` as kind ``kind`` in format ``fmt``."""
    import numpy as np

    if fmt == "npy":
        return np.load(path, allow_pickle=False)
    if fmt == "json":
        return _read_json_array(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        doc = json.loads(zf.read("mlnb.json"))
        return _build(doc["root"], zf)
