"""The elements of numpy object arrays as JSON, read back without pickle.

An object array holds Python objects, which ``.npy`` can only keep by pickling them (and
unpickling runs code). mlnb keeps them as JSON instead, for the values that JSON can carry
faithfully, and refuses the others with the conversion to make.

Guarantees:

* :func:`encode` accepts exactly ``None``, ``bool``, ``int``, ``float`` (NaN and infinities
  included), ``complex``, ``str`` (lone surrogates included), ``bytes``, numpy scalars of
  any non-object dtype, numpy arrays (ragged arrays of arrays), and ``list``, ``tuple`` and
  ``dict`` of those, nested up to :data:`MAX_DEPTH`. The exact type counts: a subclass
  (``IntEnum``, a ``str`` subclass) is refused, as is any other object, with an
  :class:`~mlnb.exceptions.InvalidValueError` that names its type, where it is, and the fix.
* :func:`decode` of :func:`encode`'s output gives values of the same types, equal to the
  originals (a NaN stays a NaN; a dict keeps its key order).
* The bytes are a pure function of the values (compact JSON, keys in a fixed order), so
  their hash is stable across processes, platforms and ``PYTHONHASHSEED``.

A JSON array is a ``list``; every other container or non-JSON value is an object with the
tag ``"$"``: ``{"$": "tuple", "v": [...]}``, ``{"$": "dict", "v": [[key, value], ...]}``,
``{"$": "bytes", "v": BASE64}``, ``{"$": "complex", "v": [re, im]}``, ``{"$": "numpy",
"dtype": DESCR, "v": BASE64}`` (a numpy scalar's raw bytes) and ``{"$": "ndarray", ...}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from mlnb.exceptions import InvalidValueError

__all__ = ["MAX_DEPTH", "decode", "descr_to_dtype", "dumps", "encode", "loads", "object_array"]

#: deepest nesting of lists, tuples, dicts and arrays inside one element
MAX_DEPTH = 64

_PLAIN = frozenset({str, int, float, bool, type(None)})

_FIX = (
    "mlnb stores object arrays without pickle, as JSON of None, bool, int, float, complex, "
    "str, bytes, numpy scalars and arrays, and lists, tuples and dicts of them. Convert it "
    "first (e.g. arr.astype(str), or np.asarray(arr, dtype='datetime64[ns]') for dates), or "
    "save it in a format of your choice and version the file (mlnb.version('data.joblib'))."
)


def dumps(values: list[Any]) -> bytes:
    """Compact JSON bytes of already :func:`encode`-d values (UTF-8, lone surrogates kept)."""
    text = json.dumps(values, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "surrogatepass"))


def encode(values: list[Any], where: Callable[[int], str]) -> list[Any]:
    """``values`` (the elements of an object array, flattened) as JSON-ready values; an
    error names element ``i`` as ``where(i)``."""
    if _PLAIN.issuperset(map(type, values)):  # the usual case: text, numbers, None
        return values
    return [_encode(value, where(i), 0) for i, value in enumerate(values)]


def _refuse(value: Any, where: str, why: str = "") -> InvalidValueError:
    kind = type(value)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return InvalidValueError(f"{where} is a {name}{why}, which mlnb cannot store safely. {_FIX}")


def _encode(value: Any, where: str, depth: int) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if depth >= MAX_DEPTH:
        raise InvalidValueError(
            f"{where} is nested more than {MAX_DEPTH} levels deep; flatten it before versioning."
        )
    if kind is list:
        return [_encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if kind is tuple:
        return {
            "$": "tuple",
            "v": [_encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)],
        }
    if kind is dict:
        return {
            "$": "dict",
            "v": [
                [
                    _encode(k, f"{where} key {k!r}", depth + 1),
                    _encode(v, f"{where}[{k!r}]", depth + 1),
                ]
                for k, v in value.items()
            ],
        }
    if kind is bytes:
        return {"$": "bytes", "v": base64.b64encode(value).decode("ascii")}
    if kind is complex:
        return {"$": "complex", "v": [value.real, value.imag]}
    if kind.__module__ == "numpy":
        return _encode_numpy(value, where, depth)
    raise _refuse(value, where)


def _encode_numpy(value: Any, where: str, depth: int) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        if type(value) is not np.ndarray:
            raise _refuse(value, where, " (an ndarray subclass)")
        if value.dtype.hasobject:
            flat = value.ravel(order="C").tolist()
            items = [_encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(flat)]
            return {"$": "ndarray", "dtype": "object", "shape": list(value.shape), "v": items}
        descr = _descr(value.dtype, value, where)
        data = np.ascontiguousarray(value).tobytes()
        return {
            "$": "ndarray",
            "dtype": descr,
            "shape": list(value.shape),
            "v": base64.b64encode(data).decode("ascii"),
        }
    if isinstance(value, np.generic) and not value.dtype.hasobject:
        descr = _descr(value.dtype, value, where)
        return {
            "$": "numpy",
            "dtype": descr,
            "v": base64.b64encode(value.tobytes()).decode("ascii"),
        }
    raise _refuse(value, where)


def _descr(dtype: Any, value: Any, where: str) -> Any:
    import numpy as np

    if dtype.kind not in "biufcmMSUV" or dtype.isbuiltin == 2:
        raise _refuse(value, where, f" of dtype {dtype}")
    return np.lib.format.dtype_to_descr(dtype)


def decode(values: list[Any]) -> list[Any]:
    """The inverse of :func:`encode`, on values read back with :func:`loads`."""
    if not any(type(v) is list or type(v) is dict for v in values):
        return values
    return [_decode(v) for v in values]


def _decode(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        return [_decode(v) for v in value]
    if kind is not dict:
        return value
    tag = value["$"]
    if tag == "tuple":
        return tuple(_decode(v) for v in value["v"])
    if tag == "dict":
        return {_decode(k): _decode(v) for k, v in value["v"]}
    if tag == "bytes":
        return base64.b64decode(value["v"])
    if tag == "complex":
        return complex(*value["v"])
    import numpy as np

    if tag == "numpy":
        dtype = descr_to_dtype(value["dtype"])
        return np.frombuffer(base64.b64decode(value["v"]), dtype=dtype)[0].copy()
    if tag == "ndarray":
        shape = tuple(value["shape"])
        if value["dtype"] == "object":
            return object_array([_decode(v) for v in value["v"]], shape)
        dtype = descr_to_dtype(value["dtype"])
        return np.frombuffer(base64.b64decode(value["v"]), dtype=dtype).reshape(shape).copy()
    raise InvalidValueError(f"unknown tag {tag!r} in a stored object array; upgrade mlnb.")


def object_array(items: list[Any], shape: tuple[int, ...]) -> Any:
    """An object array of ``shape`` holding ``items`` (flat, C order) one per cell: a list
    or tuple item stays one object, it is not spread over an axis."""
    import numpy as np

    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out.reshape(shape)


def descr_to_dtype(descr: Any) -> Any:
    """The dtype of a descr that went through JSON (tuples became lists)."""
    import numpy as np

    return np.lib.format.descr_to_dtype(_tuples(descr))


def _tuples(descr: Any) -> Any:
    if not isinstance(descr, list):
        return descr
    fields = []
    for field in descr:  # (name, type) or (name, type, shape); name may be (title, name)
        name = tuple(field[0]) if isinstance(field[0], list) else field[0]
        rest = [_tuples(field[1])] + ([tuple(field[2])] if len(field) > 2 else [])
        fields.append((name, *rest))
    return fields
