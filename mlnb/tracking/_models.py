"""Logging, registering and loading models through MLflow's flavors.

``log_model`` picks the flavor from the model's class and passes the flavor's default pip
requirements explicitly, which skips MLflow's requirement inference (about 3 s of a 3.3 s
``mlflow.sklearn.log_model`` here). ``load_model`` accepts any MLflow model URI and returns
the native object when the model has a native flavor, else the pyfunc model.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from mlnb._text import first_line
from mlnb.exceptions import ModelError

__all__ = ["LoggedModelInfo", "flavor_of", "load_model", "log_model"]

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
_NATIVE_FLAVORS = (
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


#: model URI -> local folder; set by an exported service so that the notebook's own
#: ``mlnb.load_model("models:/name@alias")`` loads the copy pinned (by hash) at export
PINNED: dict[str, Any] = {}


@dataclass
class LoggedModelInfo:
    model_uri: str
    flavor: str
    registered_model_name: str | None
    registered_model_version: str | None
    pip_requirements: list[str]
    hash: str | None = None  # BLAKE3 of the model's files (mlnb's version record)


def flavor_of(model: Any) -> str:
    """The MLflow flavor module name for ``model`` (``"pyfunc"`` for a PythonModel)."""
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
    raise ModelError(
        f"cannot log a {type(model).__module__}.{type(model).__qualname__}: mlnb knows models "
        f"from {', '.join(sorted(set(_FLAVOR_BY_MODULE)))} and mlflow.pyfunc.PythonModel "
        "subclasses; wrap other models in a PythonModel."
    )


def default_requirements(flavor_module: Any) -> list[str]:
    getter = getattr(flavor_module, "get_default_pip_requirements", None)
    if getter is None:
        return []
    accepted = inspect.signature(getter).parameters
    kwargs = {name: True for name in ("include_cloudpickle", "include_skops") if name in accepted}
    try:
        return list(getter(**kwargs))
    except Exception:
        return list(getter())


def log_model(
    model: Any,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    pip_requirements: list[str] | None = None,
    signature: Any = None,
    input_example: Any = None,
    **kwargs: Any,
) -> LoggedModelInfo:
    """Log ``model`` to the active run (and register it when a name is given)."""
    import mlflow

    flavor = flavor_of(model)
    module = importlib.import_module(f"mlflow.{flavor}")
    requirements = (
        pip_requirements if pip_requirements is not None else default_requirements(module)
    )
    call: dict[str, Any] = {
        "name": name,
        "registered_model_name": registered_model_name,
        "pip_requirements": requirements,
        "signature": signature,
        "input_example": input_example,
        **kwargs,
    }
    if registered_model_name:
        call.setdefault("await_registration_for", 60)
    try:
        if flavor == "pyfunc":
            info = module.log_model(python_model=model, **call)
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
    )


def load_model(model_uri: str) -> Any:
    """Load any MLflow model URI (``runs:/``, ``models:/name/3``, ``models:/name@alias``,
    ``models:/name/latest``, a path); native object when the flavor has one."""
    import mlflow
    from mlflow.models import Model

    try:
        meta = Model.load(model_uri)
    except Exception as exc:
        raise ModelError(
            f"cannot load model {model_uri!r}: {first_line(exc)}. Check the URI: "
            "runs:/<run_id>/<name>, models:/<name>/<version>, models:/<name>@<alias> or "
            "models:/<name>/latest."
        ) from exc
    for flavor in _NATIVE_FLAVORS:
        if flavor in meta.flavors:
            try:
                module = importlib.import_module(f"mlflow.{flavor}")
            except ImportError:
                continue
            try:
                return module.load_model(model_uri)
            except ImportError as exc:
                raise ModelError(
                    f"model {model_uri!r} needs {exc.name or 'a package'} to load; install "
                    "the model's requirements (requirements.txt next to its MLmodel)."
                ) from exc
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        raise ModelError(f"cannot load model {model_uri!r}: {exc}") from exc


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
