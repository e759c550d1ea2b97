"""mlnb: production-first notebooks.

``%load_ext mlnb`` in a notebook, or the same operations as functions for scripts::

    import mlnb
    mlnb.log_params({"lr": 0.1})
    mlnb.log_metrics({"accuracy": 0.93})
    mlnb.end_run()

``import mlnb`` is cheap: MLflow and the other heavy parts load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlnb._lazy import lazy_names
from mlnb._version import __version__
from mlnb.endpoints import endpoint, fallback
from mlnb.exceptions import MlnbError
from mlnb.tracking import (
    active_run,
    end_run,
    flush,
    lineage,
    load_model,
    log_artifact,
    log_metric,
    log_metrics,
    log_model,
    log_param,
    log_params,
    seed,
    set_tag,
    set_tags,
    start_run,
    sync,
    version,
    versions,
)

if TYPE_CHECKING:
    from mlnb.monitor import profile
    from mlnb.versioning import checkout
    from mlnb.versioning import load as load_version

__all__ = [
    "MlnbError",
    "__version__",
    "active_run",
    "checkout",
    "end_run",
    "endpoint",
    "fallback",
    "flush",
    "lineage",
    "load_ipython_extension",
    "load_model",
    "load_version",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "profile",
    "seed",
    "set_tag",
    "set_tags",
    "start_run",
    "sync",
    "unload_ipython_extension",
    "version",
    "versions",
]


# Versioning (blake3, fsspec) and profiles (numpy, pandas) load on first use.
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "checkout": ".versioning",
        "load_version": ".versioning:load",
        "profile": ".monitor",
    },
)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext mlnb``: the ``%mlnb`` magic and automatic run provenance."""
    from mlnb.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from mlnb.magics import unload_ipython_extension as unload

    unload(ipython)
