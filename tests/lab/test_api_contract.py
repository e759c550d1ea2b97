"""The TypeScript interfaces in labextension/src/api.ts and the pydantic models of
mlnb.labserver._models describe the same JSON, field for field and type for type."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mlnb.labserver import _models

API_TS = Path(__file__).resolve().parents[2] / "labextension" / "src" / "api.ts"
INTERFACE = re.compile(r"export interface (\w+) \{(.*?)\n\}", re.S)
FIELD = re.compile(r"^\s*(\w+)(\??):\s*(.+?);\s*$")


def ts_interfaces(source: str) -> dict[str, dict[str, tuple[str, bool]]]:
    """``{interface: {field: (type, optional)}}`` of every exported interface."""
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    for name, body in INTERFACE.findall(source):
        fields: dict[str, tuple[str, bool]] = {}
        for line in body.splitlines():
            if not line.strip() or line.strip().startswith(("//", "/*", "*")):
                continue
            match = FIELD.match(line)
            assert match, f"cannot read the field {line.strip()!r} of {name} in api.ts"
            fields[match[1]] = (match[3], bool(match[2]))
        out[name] = fields
    return out


def ts_type(annotation: Any) -> str:
    """The TypeScript spelling of a pydantic field's annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " | ".join(ts_type(a) for a in rest) + (" | null" if len(rest) < len(args) else "")
    if origin is list:
        return f"{ts_type(args[0])}[]"
    if origin is dict:
        return f"Record<{ts_type(args[0])}, {ts_type(args[1])}>"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    simple = {str: "string", int: "number", float: "number", bool: "boolean"}
    assert annotation in simple, f"no TypeScript type for {annotation!r}; extend ts_type()"
    return simple[annotation]


def py_interfaces() -> dict[str, dict[str, tuple[str, bool]]]:
    out = {}
    for name in _models.__all__:
        model = getattr(_models, name)
        out[name] = {
            field: (ts_type(info.annotation), not info.is_required())
            for field, info in model.model_fields.items()
        }
    return out


def test_ts_reader_reads_what_it_should() -> None:
    read = ts_interfaces(
        "export interface A {\n  a: string;\n  b?: number | null;\n"
        "  c: Record<string, number>;\n  d: B[];\n}\n"
    )
    assert read == {
        "A": {
            "a": ("string", False),
            "b": ("number | null", True),
            "c": ("Record<string, number>", False),
            "d": ("B[]", False),
        }
    }
    assert ts_type(dict[str, float]) == "Record<string, number>"
    assert ts_type(list[_models.StepState]) == "StepState[]"
    assert ts_type(_models.ErrorResponse | None) == "ErrorResponse | null"


def test_every_model_has_its_interface() -> None:
    ts = ts_interfaces(API_TS.read_text(encoding="utf-8"))
    py = py_interfaces()
    assert sorted(ts) == sorted(py), "api.ts and _models.py declare different shapes"


@pytest.mark.parametrize("name", _models.__all__)
def test_fields_and_types_match(name: str) -> None:
    ts = ts_interfaces(API_TS.read_text(encoding="utf-8"))[name]
    py = py_interfaces()[name]
    assert ts == py, f"{name}: api.ts has {ts}, _models.py has {py}"


def test_extension_has_the_package_version() -> None:
    import json

    from mlnb._version import __version__

    root = API_TS.parents[2]
    source = json.loads((root / "labextension" / "package.json").read_text(encoding="utf-8"))
    built = json.loads((root / "mlnb" / "labextension" / "package.json").read_text("utf-8"))
    assert source["version"] == built["version"] == __version__


def test_committed_bundle_is_built_from_these_sources() -> None:
    """The hash `make labextension` records after a build (see the Makefile) matches the
    sources: a TypeScript change without a rebuild of mlnb/labextension/ fails here."""
    import hashlib

    ext = API_TS.parents[1]
    fixed = [ext / "package.json", ext / "package-lock.json", ext / "tsconfig.json"]
    globbed = [*ext.glob("src/*.ts"), *ext.glob("style/*"), *ext.glob("schema/*.json")]
    files = fixed + sorted(globbed, key=lambda p: str(p.relative_to(ext.parent)))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:16]
    recorded = (ext / ".built-from").read_text(encoding="utf-8").strip()
    assert recorded == digest, "run `make labextension` to rebuild mlnb/labextension/"
