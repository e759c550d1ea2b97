"""The pickle policy of an exported service: what may run code from its files when loaded.

A pickle (``pickle``, ``cloudpickle``, ``joblib``, ``torch.save``) runs whatever its bytes
say while it is read, so a model or a pinned file in one of those formats is code. An
exported service loads such files only when the export said so (``mlnb export NB
--allow-pickle``, recorded as ``"allow_pickle": true`` in ``mlnb-service.json``, covered by
the signature when the export is signed, see ``_signing``).

Guarantees, at start-up, before any model is loaded or ``service.py`` runs:

* the format of each pinned model is read from its files (the ``MLmodel`` they hold now,
  not the record in the manifest; a challenger's when it loads, after its hashes, so a
  refused challenger leaves the champion serving): ``pickle`` and ``cloudpickle``
  scikit-learn or LightGBM models, ``statsmodels`` and ``pytorch`` models and any model
  loaded through ``python_function`` (a cloudpickled ``PythonModel`` or a loader module) run
  code when loaded; skops, xgboost, LightGBM boosters, CatBoost, ONNX... do not;
* each pinned file, and each file of a pinned data version, is a pickle when its name says
  so (``.pkl``, ``.pickle``, ``.joblib``, ``.pt``...) or its first bytes are a pickle's;
* without ``allow_pickle`` any of these stops the service with a :class:`ServiceError`
  naming the model or file, its format and the fix. The same check runs at export, before
  the exported cells load anything, and for a model the service fetches later (a
  challenger given by ``MLNB_CHALLENGER``, a new version of a followed alias).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlnb.serve._service import ServiceError

__all__ = ["check_pickle_policy", "file_pickle_format", "model_pickle_format", "pickle_uses"]

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".jbl", ".sav", ".pt", ".pth", ".dill")
#: flavors mlnb loads natively whose files are pickles
_PICKLING_FLAVORS = {"statsmodels": "pickle", "pytorch": "pickle (torch.save)"}
_FIX_MODEL = (
    "Log the model in a format that holds no code (%mlnb model VAR --name NAME --format skops, "
    "or mlnb.log_model(model, serialization_format='skops')) and export again; or, if you "
    "trust these files, export with `mlnb export NOTEBOOK -o DIR --allow-pickle`."
)
_FIX_FILE = (
    "Save it in a format that holds no code (e.g. skops, parquet, JSON) and export again; or, "
    "if you trust it, export with `mlnb export NOTEBOOK -o DIR --allow-pickle`."
)


def model_pickle_format(folder: Path) -> str | None:
    """The pickle-based format the model in ``folder`` is loaded from, or None when loading
    it runs no code from its files."""
    from mlnb.tracking import NATIVE_FLAVORS, read_mlmodel, serialization_of

    try:
        flavors = read_mlmodel(folder)["flavors"]
    except Exception as exc:
        raise ServiceError(
            f"cannot read the MLmodel file of {folder} ({exc}); export the notebook again."
        ) from exc
    native = next((f for f in NATIVE_FLAVORS if f in flavors), None)
    if native in ("sklearn", "lightgbm"):
        fmt = str(serialization_of(folder)["format"])
        return fmt if fmt in ("pickle", "cloudpickle") else None
    if native is not None:
        return _PICKLING_FLAVORS.get(native)
    pyfunc = flavors.get("python_function") or {}
    if "python_model" in pyfunc:
        return "cloudpickle (python_function)"
    return f"python_function (loader module {pyfunc.get('loader_module') or 'unknown'})"


def file_pickle_format(path: Path) -> str | None:
    """``"pickle"`` when the file at ``path`` is one (by its name or its first bytes)."""
    if path.is_dir():
        return None
    if path.name.lower().endswith(PICKLE_SUFFIXES):
        return "pickle"
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
    except OSError:
        return None
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    return None


def pickle_uses(folder: Path, metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """``(what, format)`` of each pinned model and file that runs code when loaded. The
    challenger is checked when it loads (``_routing.load_challenger``: after its hashes, and
    a refusal leaves the champion serving, like any challenger that fails to load)."""
    found: list[tuple[str, str]] = []
    for model in metadata.get("models") or []:
        path = folder / model["path"]
        fmt = model_pickle_format(path) if path.is_dir() else None
        if fmt is not None:
            found.append((f"the model {model.get('resolved') or model['uri']} ({path})", fmt))
    for item in metadata.get("files") or []:
        fmt = file_pickle_format(folder / item["path"])
        if fmt is not None:
            found.append((f"the pinned file {item.get('source') or item['path']}", fmt))
    for item in metadata.get("versions") or []:
        path = folder / item["path"]
        inside = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        if any(file_pickle_format(p) is not None for p in inside):
            found.append(
                (f"the pinned file of version {item.get('ref') or item['path']}", "pickle")
            )
    return found


def check_pickle_policy(
    folder: Path, metadata: dict[str, Any], models: list[dict[str, Any]] | None = None
) -> None:
    """Refuse (ServiceError) what runs code when loaded, unless the export allowed pickles.
    ``models`` (records of models fetched later) are checked instead of the manifest's."""
    if metadata.get("allow_pickle") is True:
        return
    if models is not None:
        uses = [
            (f"the model {m.get('resolved') or m['uri']}", fmt)
            for m in models
            if (fmt := model_pickle_format(folder / m["path"])) is not None
        ]
    else:
        uses = pickle_uses(folder, metadata)
    if not uses:
        return
    what, fmt = uses[0]
    more = f" (and {len(uses) - 1} more)" if len(uses) > 1 else ""
    fix = _FIX_FILE if what.startswith("the pinned file") else _FIX_MODEL
    raise ServiceError(
        f"refusing to load {what}{more}: it is {fmt}, which runs code from its files when "
        f"loaded, and the service was exported without --allow-pickle. {fix}"
    )
