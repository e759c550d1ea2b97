"""Loading a pinned model folder from its own files, without importing MLflow.

An exported service (and the export check) loads models only from copies pinned by hash;
importing MLflow and its flavor module for that costs seconds at every start (``import
mlflow.sklearn`` alone is about 3.5 s here) for what is, in the end, one call of the model
library's own loader. :func:`load_pinned` reads ``MLmodel`` (YAML) itself and, for the
flavors it covers, makes the same call MLflow's loader makes:

* ``sklearn``: ``skops.io.load(file, trusted=<the MLmodel's skops_trusted_types>)`` for
  skops, ``pickle.load`` / ``cloudpickle.load`` for the pickle formats (these only when the
  export allowed pickles; the policy is checked before anything is loaded, and MLflow's own
  ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` is honoured by leaving those to MLflow);
* ``xgboost``: an instance of the flavor's ``model_class`` and its ``load_model(file)``;
* ``lightgbm``: ``lightgbm.Booster(model_file=file)``, or the sklearn-API class as the
  sklearn flavor does.

Everything else (other flavors, models logged with ``code_paths``, plain pyfunc models)
goes to MLflow's loader (:func:`mlnb.tracking._models.load_model`). The trust checks are the
same on both paths and come first: :func:`mlnb.tracking._trust.check_model_files`, with the
serialization recorded at export for the folder (``expect``), after the service checked the
files' hashes.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from mlnb.exceptions import ModelError

__all__ = ["load_pinned", "read_mlmodel"]


def read_mlmodel(folder: str | Path) -> dict[str, Any]:
    """The ``MLmodel`` file of a local model folder, as the mapping MLflow reads."""
    import yaml

    path = Path(folder) / "MLmodel"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=loader)
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not an MLmodel file (no YAML mapping in it).")
    data.setdefault("flavors", {})
    return data


def _pickles_refused() -> bool:
    value = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    return value is not None and value.strip().lower() in ("false", "0", "no", "off")


def _sklearn(folder: Path, conf: dict[str, Any], default_format: str) -> Any:
    fmt = conf.get("serialization_format") or default_format
    data = folder / str(conf.get("pickled_model") or conf.get("data") or "")
    if fmt == "skops":
        import skops.io

        return skops.io.load(data, trusted=conf.get("skops_trusted_types") or None)
    if fmt in ("pickle", "cloudpickle") and not _pickles_refused():
        with data.open("rb") as fh:
            if fmt == "pickle":
                import pickle

                return pickle.load(fh)
            import cloudpickle

            return cloudpickle.load(fh)
    return None


def _class(name: str) -> Any:
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def _direct(folder: Path, flavors: dict[str, Any]) -> Any:
    """The model loaded by its library, or None when MLflow's loader is needed."""
    from mlnb.tracking._models import NATIVE_FLAVORS

    flavor = next((f for f in NATIVE_FLAVORS if f in flavors), None)
    conf = flavors.get(flavor) if flavor else None
    if not isinstance(conf, dict) or conf.get("code"):
        return None  # code_paths go on sys.path: MLflow's loader does that
    if flavor == "sklearn":
        return _sklearn(folder, conf, "pickle")
    if flavor == "xgboost" and conf.get("data"):
        model = _class(str(conf.get("model_class") or "xgboost.core.Booster"))()
        model.load_model(str(folder / str(conf["data"])))
        return model
    if flavor == "lightgbm" and conf.get("data"):
        model_class = str(conf.get("model_class") or "lightgbm.basic.Booster")
        if model_class == "lightgbm.basic.Booster":
            import lightgbm

            return lightgbm.Booster(model_file=str(folder / str(conf["data"])))
        return _sklearn(folder, conf, "cloudpickle")
    return None


def load_pinned(folder: str | Path, what: str | None = None) -> Any:
    """Load the pinned model in ``folder`` (checked as :func:`check_model_files` says):
    by its library when the flavor is covered, else through MLflow."""
    from mlnb.tracking._trust import check_model_files

    folder = Path(folder)
    what = what or str(folder)
    check_model_files(folder, None, what)
    import yaml

    try:
        flavors = read_mlmodel(folder)["flavors"]
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot load model {what!r}: {exc}") from exc
    try:
        model = _direct(folder, flavors)
    except ImportError as exc:
        raise ModelError(
            f"model {what!r} needs {exc.name or 'a package'} to load; install the model's "
            "requirements (requirements.txt next to its MLmodel)."
        ) from exc
    if model is not None:
        return model
    from mlnb.tracking._models import load_model

    return load_model(str(folder))
