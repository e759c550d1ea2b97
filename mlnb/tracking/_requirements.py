"""Pinned pip requirements of a logged model, from the modules it uses.

``log_model`` passes requirements explicitly (MLflow's own inference costs seconds): the
flavor's defaults plus, for every top-level module the serialized model refers to (the
classes and functions pickling stores by name, the types skops records), the installed
distribution that provides it, pinned to its version (``xgboost==3.2.0``). Modules of the
standard library, of MLflow (which pins itself) and of mlnb are left out.

MLflow checks those pins against the environment with its map of every installed
distribution's modules (``importlib.metadata.packages_distributions()``: 0.5-2 s of reading
every RECORD file, on the first model of every process). :func:`prime_package_map` gives
MLflow that map from a cache kept per interpreter and environment (rebuilt when a package
is installed, upgraded or removed), so the check still runs, on the same map.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterable

__all__ = ["packages_by_module", "prime_package_map", "requirements_of"]


@functools.cache
def packages_by_module() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()`` (top-level module -> the installed
    distributions that provide it), from the cache of this interpreter and environment, or
    read and cached. Without MLflow: the export's requirements use it too."""
    import importlib.metadata

    from mlnb.tracking._provenance import environment_cache, read_cache, write_cache

    cache = environment_cache("modules")
    cached = read_cache(cache)
    if isinstance(cached, dict) and all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in cached.values()
    ):
        return cached
    found = {k: list(v) for k, v in importlib.metadata.packages_distributions().items()}
    write_cache(cache, found)
    return found


def prime_package_map() -> None:
    """Fill MLflow's module -> distributions map (used by its requirement checks) from the
    cache of this environment, or build it with MLflow's own code and cache it."""
    from mlflow.utils import requirements_utils as ru

    from mlnb.tracking._provenance import environment_cache, read_cache, write_cache

    if ru._MODULES_TO_PACKAGES is not None:
        return
    cache = environment_cache("mlflow-modules")
    cached = read_cache(cache)
    if isinstance(cached, dict) and all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in cached.values()
    ):
        ru._MODULES_TO_PACKAGES = cached  # type: ignore[assignment]  # MLflow: None until built
        return
    ru._init_modules_to_packages_map()
    if ru._MODULES_TO_PACKAGES is not None:
        write_cache(cache, {k: list(v) for k, v in ru._MODULES_TO_PACKAGES.items()})


def requirements_of(modules: Iterable[str], base: list[str]) -> list[str]:
    """``base`` plus a pinned requirement for each installed distribution that provides one
    of ``modules`` (the modules the pickled model refers to)."""
    from mlflow.utils.requirements_utils import _get_pinned_requirement

    have = {_req_key(r) for r in base}
    covered = {m for r in base for m in _modules_of_distribution(_req_key(r))}
    out = list(base)
    for module in sorted(set(modules) - covered - {"mlflow", "mlnb"}):  # MLflow pins itself
        for dist in _distributions_of(module):
            key = _req_key(dist)
            if key in have:
                continue
            with contextlib.suppress(Exception):
                out.append(_get_pinned_requirement(dist))
                have.add(key)
    return out


@functools.lru_cache(maxsize=256)
def _modules_of_distribution(dist: str) -> frozenset[str]:
    """The top-level modules an installed distribution provides (from its RECORD)."""
    import importlib.metadata

    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return frozenset()
    names = {f.parts[0].removesuffix(".py") for f in files if f.parts}
    return frozenset(n for n in names if n.isidentifier())


@functools.lru_cache(maxsize=256)
def _distributions_of(module: str) -> tuple[str, ...]:
    """The installed distributions that provide the top-level ``module``: looked up by name
    first (cheap), else in MLflow's map of every installed distribution (built once, about
    a second; mlnb warms it up while a run starts)."""
    import importlib.metadata

    if module in sys.stdlib_module_names or module == "__main__":
        return ()
    for candidate in dict.fromkeys((module, module.replace("_", "-"))):
        try:
            dist = importlib.metadata.distribution(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
        top = dist.read_text("top_level.txt")
        if top is None or module in top.split():
            return (str(dist.metadata["Name"]),)
    try:
        from mlflow.utils import requirements_utils as ru

        prime_package_map()
        mapping: dict[str, list[str]] = ru._MODULES_TO_PACKAGES or {}
        return tuple(mapping.get(module, []))
    except Exception:  # pragma: no cover - MLflow moved its internals
        return tuple(packages_by_module().get(module, []))


def _req_key(requirement: str) -> str:
    name = requirement
    for sep in ("==", ">=", "<=", "~=", "!=", "<", ">", "[", ";", " "):
        name = name.split(sep)[0]
    return name.strip().lower().replace("_", "-")
