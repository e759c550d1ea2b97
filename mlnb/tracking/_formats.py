"""How a model is serialized: chosen from the object itself, before anything is logged.

Formats (``serialization_format=`` / ``%mlnb model ... --format``):

==============  ===========================================================================
``auto``        the default: ``skops`` for scikit-learn and LightGBM scikit-learn models when
                every type they need can be imported by name from an installed package; else
                ``cloudpickle``; the library's own format for xgboost, LightGBM boosters,
                CatBoost and statsmodels; ``cloudpickle`` for any other Python object
``skops``       scikit-learn's safe format; the types it does not trust by default are read
                from the object just trained (``skops.io.get_untrusted_types``) and recorded
``cloudpickle`` any object; functions and classes defined in the notebook (``__main__``) or in
                the project's own modules travel with the model, by value
``pickle``      the standard library's pickle (code defined in the notebook is refused)
``native``      the library's own format (xgboost UBJSON, LightGBM text, CatBoost, statsmodels)
==============  ===========================================================================

Guarantees: ``auto`` never picks a format that could not load in a process that never saw
the notebook; an explicit format is used as asked or refused with a
:class:`~mlnb.exceptions.ModelFormatError` that names why and the formats that would work,
before anything is logged. The plan's tags (``mlnb.serialization`` and, for skops,
``mlnb.trusted_types_hash``, the BLAKE3 hash of the sorted trusted types) go on the logged
model and its registered version; :mod:`mlnb.tracking._trust` checks them at load time.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import site
import sys
import threading
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.exceptions import ModelFormatError

__all__ = [
    "FORMATS",
    "FormatPlan",
    "by_value",
    "format_name",
    "plan_format",
    "trusted_types_hash",
]

FORMATS = ("auto", "skops", "cloudpickle", "pickle", "native")
_PICKLED = ("skops", "cloudpickle", "pickle")
#: flavors whose ``log_model`` takes ``serialization_format`` and ``skops_trusted_types``
_FORMAT_FLAVORS = ("sklearn", "lightgbm")
#: the format of each flavor's own ``save_model``
_NATIVE = {"statsmodels": "pickle"}

TAG_FORMAT = "mlnb.serialization"
TAG_TRUSTED = "mlnb.trusted_types_hash"


def trusted_types_hash(names: Iterable[str]) -> str:
    """BLAKE3 of the sorted, distinct type names (the pin of a skops model's trust list)."""
    from blake3 import blake3

    return blake3(json.dumps(sorted(set(names))).encode()).hexdigest()


@dataclass
class FormatPlan:
    """How one model is logged."""

    flavor: str  # the MLflow flavor module that logs it ("sklearn", "pyfunc", ...)
    format: str  # "skops", "cloudpickle", "pickle" or "native"
    trusted_types: list[str] = field(default_factory=list)  # skops only
    reason: str | None = None  # why ``auto`` did not take the flavor's usual format
    wrap: bool = False  # logged through mlnb's ObjectModel (python_function)
    modules: set[str] = field(default_factory=set)  # modules the pickled model imports

    def log_kwargs(self) -> dict[str, Any]:
        if self.flavor in _FORMAT_FLAVORS and self.format in _PICKLED:
            kwargs: dict[str, Any] = {"serialization_format": self.format}
            if self.format == "skops":
                kwargs["skops_trusted_types"] = self.trusted_types
            return kwargs
        return {}

    def tags(self) -> dict[str, str]:
        tags = {TAG_FORMAT: self.format}
        if self.format == "skops":
            tags[TAG_TRUSTED] = trusted_types_hash(self.trusted_types)
        return tags

    def describe(self) -> str:
        """One phrase for the ``%mlnb model`` line: the format, what it trusts, and why."""
        text = self.format
        if self.flavor == "pyfunc" and self.wrap:
            text += " (python_function)"
        if self.format == "skops":
            shown = ", ".join(self.trusted_types[:3]) or "nothing beyond skops' defaults"
            more = len(self.trusted_types) - 3
            text += f", trusting {shown}" + (f" and {more} more" if more > 0 else "")
        if self.reason:
            text += f" ({self.reason})"
        return text


def is_sklearn_estimator(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn missing
        return False
    return isinstance(model, BaseEstimator)


def _is_booster(model: Any) -> bool:
    return any(
        f"{k.__module__}.{k.__qualname__}" == "lightgbm.basic.Booster" for k in type(model).__mro__
    )


def format_name(requested: str | None) -> str:
    """``requested`` as one of :data:`FORMATS` (None is ``auto``); raises ModelFormatError."""
    fmt = (requested or "auto").strip().lower()
    if fmt not in FORMATS:
        raise ModelFormatError(
            f"unknown serialization format {requested!r}; choose one of {', '.join(FORMATS)} "
            "(e.g. %mlnb model VAR --name NAME --format cloudpickle, or "
            "mlnb.log_model(model, serialization_format='cloudpickle'))."
        )
    return fmt


def plan_format(
    model: Any, flavor: str, requested: str | None, trusted_types: list[str] | None = None
) -> FormatPlan:
    """The format ``model`` (of MLflow ``flavor``) is logged in; raises ModelFormatError."""
    fmt = format_name(requested)
    if trusted_types is not None and fmt == "auto":
        fmt = "skops"  # trusted types only mean something to skops
    pickled_flavor = flavor in _FORMAT_FLAVORS and not _is_booster(model)
    if fmt == "auto":
        if flavor == "pyfunc":
            return _cloudpickle(model, flavor, wrap=_needs_wrapper(model))
        if pickled_flavor:
            return _skops_or_cloudpickle(model, flavor)
        return FormatPlan(flavor, _NATIVE.get(flavor, "native"))
    if fmt == "native":
        if pickled_flavor or flavor == "pyfunc":
            raise _refuse(model, fmt, "it has no format of its own in MLflow", flavor)
        return FormatPlan(flavor, _NATIVE.get(flavor, "native"))
    if flavor == "pyfunc":
        if fmt != "cloudpickle":
            raise _refuse(model, fmt, "MLflow stores Python objects with cloudpickle", flavor)
        return _cloudpickle(model, flavor, wrap=_needs_wrapper(model))
    if _NATIVE.get(flavor) == fmt:
        return FormatPlan(flavor, fmt)
    target = flavor if pickled_flavor else ("sklearn" if is_sklearn_estimator(model) else None)
    if target is None:
        if fmt == "cloudpickle":
            return _cloudpickle(model, "pyfunc", wrap=True)
        raise _refuse(model, fmt, f"MLflow's {flavor} flavor does not write {fmt}", flavor)
    if fmt == "skops":
        return _skops(model, target, trusted_types)
    if fmt == "pickle":
        return _pickle(model, target)
    return _cloudpickle(model, target)


def formats_for(model: Any, flavor: str) -> list[str]:
    """The formats that can save ``model`` (for error messages)."""
    if flavor == "pyfunc":
        return ["cloudpickle"]
    if flavor in _FORMAT_FLAVORS and not _is_booster(model):
        return ["skops", "cloudpickle", "pickle"]
    found = ["native"]
    if flavor in _NATIVE:
        found.append(_NATIVE[flavor])
    if is_sklearn_estimator(model):
        found += ["skops", "pickle"]
    return [*dict.fromkeys([*found, "cloudpickle"])]


def _refuse(model: Any, fmt: str, why: str, flavor: str) -> ModelFormatError:
    options = ", ".join(formats_for(model, flavor))
    return ModelFormatError(
        f"cannot save a {_type_name(model)} as {fmt}: {why}. Use --format {options.split(',')[0]}"
        f" (formats that work for it: {options}), or leave --format out and mlnb chooses."
    )


def _type_name(model: Any) -> str:
    if isinstance(model, types.FunctionType):
        return f"function {model.__module__}.{model.__qualname__}"
    return f"{type(model).__module__}.{type(model).__qualname__}"


def _needs_wrapper(model: Any) -> bool:
    try:
        from mlflow.pyfunc.model import PythonModel
    except ImportError:  # pragma: no cover
        return True
    return not isinstance(model, PythonModel)


# -- skops ------------------------------------------------------------------------------
class _SkopsCannot(Exception):
    """skops cannot save this model so that it loads elsewhere (the message says why)."""

    def __init__(self, message: str, code: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code or []  # functions and classes defined in the notebook or project

    def reason(self) -> str:
        """Why ``auto`` took cloudpickle, in a few words."""
        if self.code:
            return f"carrying {', '.join(self.code[:3])} by value; skops {self.code_phrase()}"
        return f"{self}"

    @staticmethod
    def code_phrase() -> str:
        return "stores functions and classes by name only"


class _CompactJson:
    """``json`` as skops' writer sees it inside :func:`compact_skops_schema`."""

    loads = staticmethod(json.loads)

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        kwargs.pop("indent", None)
        return json.dumps(obj, **kwargs)


_compact_lock = threading.Lock()
_compact_depth = 0


@contextlib.contextmanager
def compact_skops_schema() -> Iterator[None]:
    """skops writes its ``schema.json`` indented, which makes ``json`` use its pure-Python
    encoder: for a 50-tree forest about 0.25 s of each save, half the cost of logging it.
    Inside this block the schema is written on one line by the C encoder; the file is the
    same skops file (skops reads its schema with ``json.loads``)."""
    global _compact_depth
    try:
        from skops.io import _persist
    except ImportError:  # no skops: nothing writes a schema
        yield
        return
    with _compact_lock:
        if _compact_depth == 0:
            _persist.json = _CompactJson  # type: ignore[assignment]
        _compact_depth += 1
    try:
        yield
    finally:
        with _compact_lock:
            _compact_depth -= 1
            if _compact_depth == 0:
                _persist.json = json


def _skops_types(model: Any, flavor: str) -> list[str]:
    """The types skops does not trust by default that ``model`` needs, all importable."""
    import skops.io

    from mlnb._text import first_line

    try:
        with compact_skops_schema():
            data = skops.io.dumps(model)
        found = sorted(set(skops.io.get_untrusted_types(data=data)))
    except Exception as exc:
        raise _SkopsCannot(
            f"skops cannot store it ({type(exc).__name__}: {first_line(exc)})"
        ) from exc
    blocked = [name for name in found if not _importable_by_name(name)]
    if blocked:
        raise _SkopsCannot(
            f"it uses {', '.join(blocked[:3])}, defined in the notebook (or the project's own "
            f"code), and skops {_SkopsCannot.code_phrase()}: the model would not load "
            "anywhere else",
            code=blocked,
        )
    if flavor == "lightgbm":  # MLflow adds its own list; pin exactly what the MLmodel holds
        import mlflow.lightgbm

        extra = getattr(mlflow.lightgbm, "_LIGHTGBM_SKLEARN_SKOPS_TRUSTED_TYPES", ())
        found = sorted(set(found) | set(extra))
    return found


def _skops(model: Any, flavor: str, given: list[str] | None) -> FormatPlan:
    try:
        needed = _skops_types(model, flavor)
    except _SkopsCannot as exc:
        raise ModelFormatError(
            f"cannot save a {_type_name(model)} as skops: {exc}. Use --format cloudpickle "
            "(it carries code defined in the notebook with the model), or leave --format out "
            "and mlnb chooses."
        ) from None
    if given is not None:
        missing = sorted(set(needed) - set(given))
        if missing:
            raise ModelFormatError(
                f"skops_trusted_types leaves out {', '.join(missing)}, which the model uses; "
                "leave skops_trusted_types out and mlnb trusts exactly the types the model uses."
            )
        needed = sorted(set(given))
    return FormatPlan(flavor, "skops", needed, modules={n.split(".")[0] for n in needed})


def _skops_or_cloudpickle(model: Any, flavor: str) -> FormatPlan:
    try:
        needed = _skops_types(model, flavor)
    except _SkopsCannot as exc:
        plan = _cloudpickle(model, flavor)
        plan.reason = exc.reason()
        return plan
    return FormatPlan(flavor, "skops", needed, modules={n.split(".")[0] for n in needed})


def _importable_by_name(name: str) -> bool:
    """Whether ``module.qualname`` can be imported by name from an installed package."""
    module, rest = _split_module(name)
    if module is None or "<" in rest:
        return False
    return not (module == "__main__" or module.split(".")[0] in _local_packages())


def _split_module(name: str) -> tuple[str | None, str]:
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:cut]) in sys.modules:
            return ".".join(parts[:cut]), ".".join(parts[cut:])
    return None, name


# -- cloudpickle and pickle ---------------------------------------------------------------
def _cloudpickle(model: Any, flavor: str, wrap: bool = False) -> FormatPlan:
    target = _wrapped(model) if wrap else model
    with by_value():
        refs = _references(target, cloud=True)
    local = _local_packages()
    modules = {m.split(".")[0] for m, _ in refs} - local - {"__main__"}
    return FormatPlan("pyfunc" if wrap else flavor, "cloudpickle", wrap=wrap, modules=modules)


def _pickle(model: Any, flavor: str) -> FormatPlan:
    refs: set[tuple[str, str]] = set()
    failed: Exception | None = None
    try:
        _references(model, cloud=False, found=refs)
    except Exception as exc:  # refs holds what was met before pickle gave up
        failed = exc
    blocked = sorted(f"{m}.{q}" for m, q in refs if q and not _importable_by_name(f"{m}.{q}"))
    if failed is not None and not blocked:
        from mlnb._text import first_line

        raise ModelFormatError(
            f"cannot save a {_type_name(model)} as pickle: {type(failed).__name__}: "
            f"{first_line(failed)}. Use --format cloudpickle (it stores lambdas and code "
            "defined in the notebook), or leave --format out and mlnb chooses."
        ) from None
    if blocked:
        raise ModelFormatError(
            f"cannot save a {_type_name(model)} as pickle: pickle stores {', '.join(blocked[:3])}"
            " by name, and code defined in the notebook (or the project's own modules) cannot "
            "be imported where the model is loaded. Use --format cloudpickle (it carries that "
            "code by value), or leave --format out and mlnb chooses."
        )
    return FormatPlan(flavor, "pickle", modules={m.split(".")[0] for m, _ in refs})


def _wrapped(model: Any) -> Any:
    from mlnb.tracking._pyfunc import ObjectModel

    return ObjectModel(model)


class _Sink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


def _references(
    model: Any, cloud: bool, found: set[tuple[str, str]] | None = None
) -> set[tuple[str, str]]:
    """``(module, qualname)`` of every function, class and module pickling ``model`` stores
    by reference (with cloudpickle: what it does not carry by value), added to ``found``."""
    import cloudpickle

    seen: set[tuple[str, str]] = set() if found is None else found
    by_value = tuple(cloudpickle.list_registry_pickle_by_value()) if cloud else ()
    base: Any = cloudpickle.Pickler if cloud else pickle.Pickler

    def by_reference(obj: Any, module: str) -> bool:
        if not cloud:
            return True
        if module == "__main__" or "<" in getattr(obj, "__qualname__", "<"):
            return False
        return not any(module == name or module.startswith(name + ".") for name in by_value)

    class Scanner(base):  # type: ignore[misc, valid-type]
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, types.ModuleType):
                seen.add((obj.__name__, ""))
            elif isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
                module = getattr(obj, "__module__", None) or ""
                if by_reference(obj, module):
                    seen.add((module, getattr(obj, "__qualname__", "")))
            parent = getattr(super(), "reducer_override", None)
            return parent(obj) if parent is not None else NotImplemented

    Scanner(_Sink(), protocol=pickle.DEFAULT_PROTOCOL).dump(model)
    return seen


@contextlib.contextmanager
def by_value() -> Iterator[list[str]]:
    """While active, cloudpickle carries the project's own modules (and mlnb's ObjectModel)
    by value: a model that uses them loads where they are not installed."""
    import cloudpickle

    names = sorted(_local_packages())
    wrapper = "mlnb.tracking._pyfunc"
    if wrapper in sys.modules:
        names.append(wrapper)
    registered = set(cloudpickle.list_registry_pickle_by_value())
    added = [n for n in names if n not in registered and n in sys.modules]
    for name in added:
        cloudpickle.register_pickle_by_value(sys.modules[name])
    try:
        yield added
    finally:
        for name in added:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(sys.modules[name])


_LOCAL_CACHE: dict[int, set[str]] = {}


def _local_packages() -> set[str]:
    """Top-level modules imported from files outside the installed environment (the
    notebook's folder, the project, PYTHONPATH): code a model cannot import by name
    elsewhere. mlnb itself is a requirement of every service and not counted."""
    key = len(sys.modules)
    if key not in _LOCAL_CACHE:
        _LOCAL_CACHE.clear()
        _LOCAL_CACHE[key] = _find_local_packages()
    return set(_LOCAL_CACHE[key])


def _find_local_packages() -> set[str]:
    roots = _environment_dirs()
    local: set[str] = set()
    for name, module in sys.modules.copy().items():  # another thread may import meanwhile
        if "." in name or name in {"__main__", "mlnb"} or name in sys.stdlib_module_names:
            continue
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            local.add(name)
    return local


def _environment_dirs() -> list[Path]:
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    with contextlib.suppress(Exception):
        dirs.add(site.getusersitepackages())
    return [Path(d).resolve() for d in dirs if d]
