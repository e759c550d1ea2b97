"""Warm-up: MLflow and the model flavors imported off the user's path.

``import mlnb`` stays light; the first run or ``log_model`` would pay for importing MLflow
(and a flavor, skops, MLflow's package map) on the user's path. :func:`start_warm_up`
imports MLflow and opens the store in a background thread; :func:`warm_model_flavors`
imports what the first ``log_model`` of the libraries in use would. Guarantees: a warm-up
never raises (the journal's sender reports an unreachable store), never imports beside the
notebook's own imports in a kernel (only its main thread warms flavors there), stops once
the process exits (:data:`STOP_WARMING`), and :func:`loaded_mlflow` never hands out a
half-imported module.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from mlnb._ast import serialize_ast
from mlnb.config import Settings
from mlnb.tracking import _client

__all__ = [
    "STOP_WARMING",
    "flavors_to_warm",
    "loaded_mlflow",
    "start_warm_up",
    "warm_model_flavors",
]

#: set at exit: warming up is for later, there is no later
STOP_WARMING = threading.Event()


_WARMED: set[str] = set()  # flavor modules imported by a warm-up (and MLflow's package map)


def flavors_to_warm() -> list[str]:
    """The modules the first ``log_model`` of a library already in use would import:
    MLflow's flavor (and skops for scikit-learn), and MLflow's map of installed packages.
    Empty once they are imported."""
    from mlnb.tracking._models import _FLAVOR_BY_MODULE

    wanted: list[str] = []
    for top, flavor in _FLAVOR_BY_MODULE.items():
        if top in sys.modules:
            wanted.append(f"mlflow.{flavor}")
            if flavor == "sklearn":
                wanted.append("skops.io")  # MLflow saves scikit-learn with skops
    if wanted:  # every flavor saves through MLflow's pyfunc (0.5 s of pydantic models)
        wanted = ["mlflow.pyfunc", *wanted, "mlflow:packages", "mlflow:context"]
    return [m for m in dict.fromkeys(wanted) if m not in _WARMED and m not in sys.modules]


def warm_model_flavors() -> None:
    """Import MLflow's flavor modules for libraries already in use, so the first
    log_model does not pay for them on the user's path.

    Run from a background thread outside kernels; in a kernel only from its main thread
    while it is idle (``mlnb.magics`` schedules it), because importing scikit-learn or
    LightGBM beside the notebook's own imports of them can deadlock or see a half-initialised
    module."""
    import importlib

    _client.import_mlflow()  # never beside another thread's first import of mlflow
    for name in flavors_to_warm():
        if STOP_WARMING.is_set():
            return
        try:
            if name == "mlflow:packages":  # built on the first model saved (0.5-2 s)
                from mlflow.utils.requirements_utils import _init_packages_to_modules_map

                from mlnb.tracking._requirements import prime_package_map

                prime_package_map()
                _init_packages_to_modules_map()
            elif name == "mlflow:context":  # a logged model's tags: git, notebook, user
                from mlflow.tracking.context.registry import resolve_tags

                resolve_tags()  # its providers cache what they find
            else:
                importlib.import_module(name)
        except Exception:
            pass
        _WARMED.add(name)


def start_warm_up(settings: Settings) -> threading.Thread:
    """Import MLflow and open the store at ``settings``' tracking URI in a background
    thread (returned, started), so a run can start (or be finished at kernel shutdown,
    where time is short) without waiting for them."""

    def warm() -> None:
        try:
            _client.get_client(settings)
        except Exception:
            pass  # the journal's sender reports the problem

    serialize_ast()  # importing parses, beside the caller's own parsing
    thread = threading.Thread(target=warm, name="mlnb-warm-up", daemon=True)
    thread.start()
    return thread


def loaded_mlflow(warming: threading.Thread | None) -> Any:
    """The mlflow module if it is imported (waiting for an import under way in another
    thread: the warm-up ``warming``, the journal's sender), else None. Never a
    half-imported module."""
    if warming is not None and warming.is_alive() and warming is not threading.current_thread():
        warming.join()
    return _client.imported_mlflow()
