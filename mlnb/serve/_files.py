"""The files and data versions an exported service reads, pinned at export.

``mlnb export`` copies what the exported cells read into the service folder (see
``mlnb.export._reads``): project files under ``files/`` at their paths from the project root,
data versions under ``versions/``, each with its BLAKE3 hash in ``mlnb-service.json``. At
start-up, before ``service.py`` runs:

* every pinned copy is checked against its hash; a missing or changed one stops the service,
  naming it (export again to refresh it);
* the process moves into ``workdir`` (``files/<the notebook's folder from the project
  root>``), which goes first on ``sys.path`` with the folders of ``sys_path`` (where the
  pinned project modules import from): the notebook's relative paths name the pinned copies
  and its project modules import, with nothing of its code rewritten. The
  working folder is process-wide: ``create_app`` on such a folder changes it for the whole
  process, as ``mlnb serve`` does;
* ``mlnb.load_version(ref)`` returns the version pinned for ``ref`` instead of asking the
  project's store (which the service does not have).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["prepare_inputs", "verify_inputs"]

_FIX = "export the notebook again (mlnb export NOTEBOOK -o DIR --force)"


def verify_inputs(folder: Path, metadata: dict[str, Any]) -> None:
    """Every pinned file and version matches the hash recorded at export (ServiceError)."""
    from mlnb.serve._service import ServiceError
    from mlnb.versioning import hash_file, hash_tree

    pinned = [("file", f) for f in metadata.get("files") or []]
    pinned += [("version", v) for v in metadata.get("versions") or []]
    for what, item in pinned:
        path = folder / item["path"]
        label = item.get("source") or item.get("ref")
        if not path.exists():
            raise ServiceError(
                f"refusing to start: the pinned {what} {path} ({label}) is missing; {_FIX}."
            )
        digest = hash_tree(path)[0] if path.is_dir() else hash_file(path)
        if digest != item["hash"]:
            raise ServiceError(
                f"refusing to start: the pinned {what} {path} ({label}) does not match the "
                f"hash recorded at export ({item['hash'][:12]}, now {digest[:12]}); {_FIX}."
            )


def _inside(folder: Path, entry: str, key: str) -> Path:
    """``folder / entry``, refused when ``entry`` leaves the service folder (paths in the
    manifest are relative to it, so a copied folder runs anywhere)."""
    from mlnb.serve._service import ServiceError

    path = folder / entry
    if Path(entry).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        raise ServiceError(
            f"refusing to start: {key} {entry!r} in mlnb-service.json is outside the service "
            f"folder {folder}; its paths are relative to that folder. {_FIX[0].upper()}{_FIX[1:]}."
        )
    return path


def prepare_inputs(folder: Path, metadata: dict[str, Any]) -> None:
    """Check the pinned inputs, then make them what the exported code reads."""
    from mlnb.serve._service import ServiceError
    from mlnb.versioning import pinned_versions

    verify_inputs(folder, metadata)
    pinned_versions.pin(
        {
            item["ref"]: {
                "kind": item["kind"],
                "format": item.get("format"),
                "path": folder / item["path"],
            }
            for item in metadata.get("versions") or []
        }
    )
    workdir = metadata.get("workdir")
    if not workdir:
        return
    path = _inside(folder, workdir, "workdir")
    entries = [_inside(folder, e, "sys_path") for e in metadata.get("sys_path") or [workdir]]
    try:
        if not path.is_dir():  # holds no pinned file itself: git, for one, drops it
            path.mkdir(parents=True)
        os.chdir(path)
    except OSError as exc:
        raise ServiceError(
            f"cannot enter the service's working folder {path} ({exc.strerror}); {_FIX}."
        ) from exc
    for entry in reversed(entries):
        where = str(entry)
        if where not in sys.path:
            sys.path.insert(0, where)
