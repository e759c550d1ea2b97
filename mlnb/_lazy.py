"""Lazy names on a package's public face (PEP 562), shared by every mlnb package.

A package's ``__init__`` lists in ``__all__`` every name other packages (and users) may
import from it; the names whose modules are heavy (MLflow, pandas, FastAPI...) or would
import another package are resolved on first access instead of at ``import``::

    __getattr__, __dir__ = lazy_names(__name__, {"get_client": "._client"})
    if TYPE_CHECKING:  # mypy sees the real names and types
        from mlnb.tracking._client import get_client

A target is ``".module"`` (the attribute of the same name in that submodule) or
``".module:attribute"`` (another attribute name: a public name for a private helper).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` resolving ``names`` on first use
    (each resolved name is then set on the package, so the lookup runs once)."""

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(module, package), attribute or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
