"""Versioning of data, models and configs by full content (BLAKE3).

>>> import mlnb
>>> v = mlnb.version("data/train.csv")          # a file, a folder, a DataFrame or a dict
>>> v.hash, v.number
>>> mlnb.checkout("data/train.csv@1")           # restore an earlier version in place

This package is the store: ``add`` stores and returns what it stored, ``link`` records a run
(by id) reading or writing it. It knows nothing of MLflow or of runs' lifecycle; attaching a
version to the active run (``mlnb.version``) is ``mlnb.tracking.version``.

Objects live once in ``<root>/.mlnb/objects``; names, versions and the runs that read or
wrote them in ``<root>/.mlnb/versions.db``; ``push``/``pull`` share them through any fsspec
URL. ``lineage`` follows a version to what produced it and what used it.
"""

from __future__ import annotations

from mlnb.versioning._core import (
    ROLES,
    GcResult,
    Project,
    add,
    add_edge,
    checkout,
    gc,
    link,
    load,
    pinned_versions,
    record_model,
    recorded_run_ids,
    source_path,
    store_model,
    version,
    versions,
)
from mlnb.versioning._hashing import StatCache, hash_file, hash_tree
from mlnb.versioning._lineage import SERVICE_PREFIX, lineage, render_lineage
from mlnb.versioning._registry import VersionRecord
from mlnb.versioning._remote import TransferResult, pull, push


def rename_run(old: str, new: str) -> int:
    """Versions and lineage edges recorded under run id ``old`` now name ``new`` (a run the
    tracking journal created under a local id while the store was unreachable)."""
    return Project.current().registry.rename_run(old, new)


__all__ = [
    "ROLES",
    "SERVICE_PREFIX",
    "GcResult",
    "Project",
    "StatCache",
    "TransferResult",
    "VersionRecord",
    "add",
    "add_edge",
    "checkout",
    "gc",
    "hash_file",
    "hash_tree",
    "lineage",
    "link",
    "load",
    "pinned_versions",
    "pull",
    "push",
    "record_model",
    "recorded_run_ids",
    "rename_run",
    "render_lineage",
    "source_path",
    "store_model",
    "version",
    "versions",
]
