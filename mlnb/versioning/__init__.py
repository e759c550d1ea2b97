"""Versioning of data, models and configs by full content (BLAKE3).

>>> import mlnb
>>> v = mlnb.version("data/train.csv")          # a file, a folder, a DataFrame or a dict
>>> v.hash, v.number
>>> mlnb.checkout("data/train.csv@1")           # restore an earlier version in place

Objects live once in ``<root>/.mlnb/objects``; names, versions and the runs that read or
wrote them in ``<root>/.mlnb/versions.db``; ``push``/``pull`` share them through any fsspec
URL. ``lineage`` follows a version to what produced it and what used it.
"""

from __future__ import annotations

from mlnb.versioning._core import GcResult, checkout, gc, load, record_model, version, versions
from mlnb.versioning._lineage import lineage, render_lineage
from mlnb.versioning._registry import VersionRecord
from mlnb.versioning._remote import TransferResult, pull, push


def rename_run(old: str, new: str) -> int:
    """Versions and lineage edges recorded under run id ``old`` now name ``new`` (a run the
    tracking journal created under a local id while the store was unreachable)."""
    from mlnb.versioning._core import Project

    return Project.current().registry.rename_run(old, new)


__all__ = [
    "GcResult",
    "TransferResult",
    "VersionRecord",
    "checkout",
    "gc",
    "lineage",
    "load",
    "pull",
    "push",
    "record_model",
    "rename_run",
    "render_lineage",
    "version",
    "versions",
]
