"""Logging, registering and loading models through MLflow's flavors.

``log_model`` picks the flavor from the model's class (any other object with ``predict``, or
a plain function, is logged as a ``python_function`` model), the serialization from the
object itself (:mod:`mlnb.tracking._formats`), and passes the requirements explicitly, which
skips MLflow's requirement inference (about 3 s of a 3.3 s ``mlflow.sklearn.log_model``
here). ``load_model`` accepts any MLflow model URI, checks the files against the
serialization pinned at logging (:mod:`mlnb.tracking._trust`) and returns the native object
when the model has a native flavor (the object itself for a wrapped one), else the pyfunc
model.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb._pins import Pins
from mlnb._text import first_line
from mlnb.exceptions import ModelError

__all__ = [
    "NATIVE_FLAVORS",
    "LoggedModelInfo",
    "ModelVersionRef",
    "download_model_version",
    "find_model_version",
    "flavor_of",
    "load_model",
    "log_model",
    "model_version_tags",
    "pinned_models",
    "resolve_model_version",
    "run_artifact_folder",
]

#: first module of a class in the model's MRO -> MLflow flavor module
_FLAVOR_BY_MODULE = {
    "sklearn": "sklearn",
    "imblearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "statsmodels": "statsmodels",
    "torch": "pytorch",
    "keras": "tensorflow",
    "tensorflow": "tensorflow",
    "prophet": "prophet",
    "spacy": "spacy",
    "onnx": "onnx",
}

#: flavors tried, in order, when loading a model natively
NATIVE_FLAVORS = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "catboost",
    "statsmodels",
    "pytorch",
    "tensorflow",
    "keras",
    "prophet",
    "spacy",
    "onnx",
    "transformers",
)


#: model URI -> local folder; pinned by an exported service (and the export check) so that
#: the notebook's own ``mlnb.load_model("models:/name@alias")`` loads the copy pinned (by
#: hash) at export: ``pinned_models.pin({...})``, or ``with pinned_models.pinned({...}):``
pinned_models: Pins[Path] = Pins("model URI")


@dataclass
class LoggedModelInfo:
    model_uri: str
    flavor: str
    registered_model_name: str | None
    registered_model_version: str | None
    pip_requirements: list[str]
    hash: str | None = None  # BLAKE3 of the model's files (mlnb's version record)
    #: "skops", "cloudpickle", "pickle" or "native" (the library's own format)
    serialization: str = "native"
    #: types skops was told to trust (recorded in MLmodel, pinned by hash in the tags)
    trusted_types: list[str] = field(default_factory=list)
    #: the serialization in one phrase, with why it was chosen ("%mlnb model" prints it)
    serialization_note: str = ""
    model_id: str | None = None


def flavor_of(model: Any) -> str:
    """The MLflow flavor module name for ``model``: ``"pyfunc"`` for a PythonModel and for
    any other object with a ``predict`` method, or a plain function."""
    try:
        from mlflow.pyfunc.model import PythonModel

        if isinstance(model, PythonModel):
            return "pyfunc"
    except ImportError:  # pragma: no cover
        pass
    for klass in type(model).__mro__:
        top = klass.__module__.split(".")[0]
        if top in _FLAVOR_BY_MODULE:
            return _FLAVOR_BY_MODULE[top]
    if callable(getattr(model, "predict", None)) and not isinstance(model, type):
        return "pyfunc"
    if isinstance(model, types.FunctionType):
        try:
            inspect.signature(model).bind(None)
        except TypeError:
            raise ModelError(
                f"cannot log function {model.__qualname__} as a model: it must take the model "
                "input as its only required argument (def predict(df): ...)."
            ) from None
        return "pyfunc"
    raise ModelError(
        f"cannot log a {type(model).__module__}.{type(model).__qualname__}: it has no "
        f"predict method. mlnb logs models from {', '.join(sorted(set(_FLAVOR_BY_MODULE)))}, "
        "any object with predict(...), and plain functions; give one of those."
    )


def log_model(
    model: Any,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    pip_requirements: list[str] | None = None,
    signature: Any = None,
    input_example: Any = None,
    serialization_format: str | None = None,
    skops_trusted_types: list[str] | None = None,
    **kwargs: Any,
) -> LoggedModelInfo:
    """Log ``model`` to the active run (and register it when a name is given), in the
    serialization ``serialization_format`` (default ``auto``: see mlnb.tracking._formats)."""
    import mlflow

    from mlnb.tracking._formats import by_value, compact_skops_schema, plan_format
    from mlnb.tracking._requirements import prime_package_map, requirements_of

    flavor = flavor_of(model)
    with contextlib.suppress(Exception):  # MLflow moved its internals: it builds the map
        prime_package_map()
    plan = plan_format(model, flavor, serialization_format, skops_trusted_types)
    module = importlib.import_module(f"mlflow.{plan.flavor}")
    if pip_requirements is not None:
        requirements = list(pip_requirements)
    else:
        base = default_requirements(module, plan.format)
        if flavor != plan.flavor:  # e.g. an xgboost model wrapped as python_function
            base += default_requirements(importlib.import_module(f"mlflow.{flavor}"), "native")
        requirements = requirements_of(plan.modules, base)
    tags = {**plan.tags(), **(kwargs.pop("tags", None) or {})}
    call: dict[str, Any] = {
        "name": name,
        "registered_model_name": registered_model_name,
        "pip_requirements": requirements,
        "signature": signature,
        "input_example": input_example,
        "tags": tags,
        **plan.log_kwargs(),
        **kwargs,
    }
    if registered_model_name:
        call.setdefault("await_registration_for", 60)
    try:
        # skops only when the model is saved with it: importing it walks every module of
        # scikit-learn (seconds), which a model in another format never needs.
        compact = compact_skops_schema() if plan.format == "skops" else contextlib.nullcontext()
        # cloudpickle carries local code by value; the library's own format and skops
        # never pickle, so they skip the scan of every imported module.
        pickles = plan.flavor == "pyfunc" or plan.format not in ("native", "skops")
        carry = by_value() if pickles else contextlib.nullcontext()
        with carry, _quiet_pickle_warning(), compact:
            if plan.flavor == "pyfunc":
                from mlnb.tracking._pyfunc import ObjectModel

                python_model = ObjectModel(model) if plan.wrap else model
                info = module.log_model(python_model=python_model, **call)
            else:
                info = module.log_model(model, **call)
    except mlflow.exceptions.MlflowException as exc:
        raise ModelError(f"could not log the model as {name!r}: {first_line(exc)}") from exc
    version = getattr(info, "registered_model_version", None)
    return LoggedModelInfo(
        model_uri=info.model_uri,
        flavor=flavor,
        registered_model_name=registered_model_name,
        registered_model_version=str(version) if version is not None else None,
        pip_requirements=requirements,
        serialization=plan.format,
        trusted_types=list(plan.trusted_types),
        serialization_note=plan.describe(),
        model_id=getattr(info, "model_id", None),
    )


def default_requirements(flavor_module: Any, fmt: str) -> list[str]:
    getter = getattr(flavor_module, "get_default_pip_requirements", None)
    if getter is None:
        return []
    accepted = inspect.signature(getter).parameters
    wanted = {"include_cloudpickle": fmt == "cloudpickle", "include_skops": fmt == "skops"}
    kwargs = {key: value for key, value in wanted.items() if key in accepted}
    try:
        return list(getter(**kwargs))
    except Exception:
        return list(getter())


_PICKLE_WARNINGS = (
    "pickle or cloudpickle format requires exercising caution",
    "causes it to be serialized using CloudPickle",
)


class _NoPickleWarning(logging.Filter):
    """MLflow warns about pickle on every cloudpickle save; mlnb says the format itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in str(record.msg) for text in _PICKLE_WARNINGS)


@contextlib.contextmanager
def _quiet_pickle_warning() -> Iterator[None]:
    quiet = _NoPickleWarning()
    names = ("mlflow.sklearn", "mlflow.lightgbm", "mlflow.pyfunc")
    loggers = [logging.getLogger(n) for n in names]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def load_model(model_uri: str) -> Any:
    """Load any MLflow model URI (``runs:/``, ``models:/name/3``, ``models:/name@alias``,
    ``models:/name/latest``, a path); native object when the flavor has one. The files are
    checked against the serialization pinned at logging first."""
    import mlflow

    from mlnb.tracking._trust import check_model_files, pin_of

    local = _local_copy(model_uri)
    try:
        from mlflow.models import Model

        meta = Model.load(str(local))
    except Exception as exc:
        raise ModelError(f"cannot load model {model_uri!r}: {first_line(exc)}") from exc
    is_uri = "://" in model_uri or model_uri.startswith(("models:/", "runs:/"))
    is_path = not is_uri or model_uri.startswith("file:")
    pin = None if is_path else pin_of(getattr(meta, "model_id", None))
    check_model_files(local, pin, model_uri)
    path = str(local)
    for flavor in NATIVE_FLAVORS:
        if flavor in meta.flavors:
            try:
                module = importlib.import_module(f"mlflow.{flavor}")
            except ImportError:
                continue
            try:
                return module.load_model(path)
            except ImportError as exc:
                raise ModelError(
                    f"model {model_uri!r} needs {exc.name or 'a package'} to load; install "
                    "the model's requirements (requirements.txt next to its MLmodel)."
                ) from exc
    try:
        loaded = mlflow.pyfunc.load_model(path)
    except Exception as exc:
        raise ModelError(f"cannot load model {model_uri!r}: {exc}") from exc
    from mlnb.tracking._pyfunc import unwrap

    return unwrap(loaded)


def _local_copy(model_uri: str) -> Path:
    """The model's folder on this machine (downloaded once when it lives elsewhere)."""
    import mlflow

    local = Path(model_uri)
    is_uri = "://" in model_uri or model_uri.startswith(("models:/", "runs:/"))
    if not is_uri and (local / "MLmodel").is_file():
        return local
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    except Exception as exc:
        raise ModelError(
            f"cannot load model {model_uri!r}: {first_line(exc)}. Check the URI: "
            "runs:/<run_id>/<name>, models:/<name>/<version>, models:/<name>@<alias> or "
            "models:/<name>/latest."
        ) from exc


def resolve_model_version(client: Any, model_uri: str) -> Any:
    """The registry version a ``models:/`` URI points at (number, ``@alias`` or ``latest``)."""
    rest = model_uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    name, _, version = rest.rpartition("/")
    if version == "latest":
        versions = client.search_model_versions(f"name='{name}'")
        if not versions:
            raise ModelError(f"registered model {name!r} has no versions.")
        return max(versions, key=lambda v: int(v.version))
    return client.get_model_version(name, version)


@dataclass(frozen=True)
class ModelVersionRef:
    """A registered model version: its name, number and run, and, when the embedded store
    answered without MLflow, the folder of its files on this machine."""

    name: str
    version: str
    run_id: str | None
    files: Path | None = None


def find_model_version(model_uri: str) -> ModelVersionRef:
    """The version a ``models:/`` URI names (number, ``@alias`` or ``latest``). The embedded
    store is read without MLflow (``_embedded``); anything else, and anything that store
    cannot answer plainly, is asked through MLflow (whose errors are raised)."""
    from mlnb.config import get_settings
    from mlnb.tracking._embedded import embedded_model_version

    settings = get_settings()
    if settings.embedded and settings.registry_uri in (None, settings.tracking_uri):
        found = embedded_model_version(settings.tracking_uri, model_uri)
        if found is not None:
            return ModelVersionRef(found.name, found.version, found.run_id, found.files)
    from mlnb.tracking._client import get_client

    version = resolve_model_version(get_client(settings), model_uri)
    return ModelVersionRef(str(version.name), str(version.version), version.run_id or None)


def download_model_version(ref: ModelVersionRef, dst: Path) -> None:
    """Copy version ``ref``'s files into the empty folder ``dst``, as
    ``mlflow.artifacts.download_artifacts("models:/NAME/N", dst_path=dst)`` does (its
    ``registered_model_meta`` file included)."""
    if ref.files is None:
        import mlflow

        mlflow.artifacts.download_artifacts(f"models:/{ref.name}/{ref.version}", dst_path=str(dst))
        return
    import shutil

    import yaml

    shutil.copytree(ref.files, dst, dirs_exist_ok=True)
    meta = {"model_name": ref.name, "model_version": ref.version}
    (dst / "registered_model_meta").write_text(
        yaml.safe_dump(meta, default_flow_style=False), encoding="utf-8"
    )


def run_artifact_folder(run_id: str) -> Path | None:
    """The local folder of run ``run_id``'s artifacts when the embedded store has it (read
    without MLflow); None when the artifacts must be listed and downloaded through MLflow."""
    from mlnb.config import get_settings
    from mlnb.tracking._embedded import embedded_run_artifacts

    settings = get_settings()
    if not settings.embedded:
        return None
    return embedded_run_artifacts(settings.tracking_uri, run_id)


def model_version_tags(name: str, version: str) -> dict[str, str]:
    """The tags of registered version ``name``/``version`` (the embedded store read without
    MLflow). Raises what MLflow raises when the version does not exist."""
    from mlnb.config import get_settings
    from mlnb.tracking._embedded import embedded_model_version_tags

    settings = get_settings()
    if settings.embedded and settings.registry_uri in (None, settings.tracking_uri):
        tags = embedded_model_version_tags(settings.tracking_uri, name, version)
        if tags is not None:
            return tags
    from mlnb.tracking._client import get_client

    return dict(get_client(settings).get_model_version(name, version).tags or {})
