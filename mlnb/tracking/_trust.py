"""What a model's files may make Python do, checked before they are loaded.

A model logged by mlnb carries its serialization in two places: the ``MLmodel`` file (MLflow's
``serialization_format`` and ``skops_trusted_types``, which MLflow's loaders read) and the
pin outside the files, the tags ``mlnb.serialization`` and ``mlnb.trusted_types_hash`` of the
logged model (also on its registered version). An exported service records the same in
``mlnb-service.json`` for each pinned model (``serialization``).

Before loading, :func:`check_model_files` guarantees:

* the format the files are in is the format pinned at logging (no skops model turns into a
  pickle);
* for skops, the trusted-type list in ``MLmodel`` has the pinned hash, and the types the
  ``.skops`` file references (``skops.io.get_untrusted_types``) are all in that list.

Anything else is an :class:`~mlnb.exceptions.UntrustedModelError` naming what changed, and
nothing is loaded. Without a pin (a model logged by plain MLflow, a local folder) the list in
``MLmodel`` is what was recorded at logging, and the file is still checked against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlnb.exceptions import ModelError, UntrustedModelError
from mlnb.tracking._formats import TAG_FORMAT, TAG_TRUSTED, trusted_types_hash

__all__ = ["EXPECTED", "check_model_files", "expect", "pin_of", "serialization_of"]

#: resolved local model folder -> its serialization record pinned at export (set by a
#: service for the models it verified by hash; it never asks a tracking server)
EXPECTED: dict[str, dict[str, Any]] = {}


def expect(folder: str | Path, record: dict[str, Any] | None) -> None:
    """Load the model in ``folder`` only as ``record`` (an export's ``serialization``) says."""
    if record:
        EXPECTED[str(Path(folder).resolve())] = dict(record)


def serialization_of(folder: str | Path) -> dict[str, Any]:
    """The serialization a model folder's ``MLmodel`` declares: ``format``, ``flavor``,
    ``data`` (the serialized file) and, for skops, ``trusted_types`` and their hash."""
    from mlnb.tracking._direct import read_mlmodel

    flavors: dict[str, Any] = read_mlmodel(folder)["flavors"]  # what MLflow's Model.load reads
    record: dict[str, Any] = {"format": "native", "flavor": None}
    for flavor in ("sklearn", "lightgbm"):
        conf = flavors.get(flavor)
        if conf is None:
            continue
        if conf.get("model_class", "") == "lightgbm.basic.Booster":
            return {"format": "native", "flavor": flavor}
        default = "pickle" if flavor == "sklearn" else "cloudpickle"  # MLflow's, before skops
        fmt = conf.get("serialization_format") or default
        data = conf.get("pickled_model") or conf.get("data")
        record = {"format": fmt, "flavor": flavor, "data": data}
        if fmt == "skops":
            listed = sorted(set(conf.get("skops_trusted_types") or []))
            record["trusted_types"] = listed
            record["trusted_types_hash"] = trusted_types_hash(listed)
        return record
    if "statsmodels" in flavors:
        return {"format": "pickle", "flavor": "statsmodels"}
    native = [f for f in flavors if f != "python_function"]
    if native:
        return {"format": "native", "flavor": native[0]}
    pyfunc = flavors.get("python_function", {})
    if "python_model" in pyfunc or pyfunc.get("loader_module") == "mlflow.pyfunc.model":
        return {"format": "cloudpickle", "flavor": "python_function"}
    return record


def pin_of(model_id: str | None) -> dict[str, Any] | None:
    """The serialization pinned in the logged model's tags, or None (no mlnb tags, or the
    logged model is not in this tracking store)."""
    if not model_id:
        return None
    from mlnb.config import get_settings
    from mlnb.tracking._embedded import embedded_logged_model_tags

    settings = get_settings()
    tags = (
        embedded_logged_model_tags(settings.tracking_uri, model_id) if settings.embedded else None
    )
    if tags is None:  # not the embedded store, or not plainly in it: MLflow answers
        from mlnb.tracking._client import get_client

        try:
            tags = get_client(settings).get_logged_model(model_id).tags or {}
        except Exception:
            return None
    if TAG_FORMAT not in tags:
        return None
    pin: dict[str, Any] = {"format": tags[TAG_FORMAT]}
    if TAG_TRUSTED in tags:
        pin["trusted_types_hash"] = tags[TAG_TRUSTED]
    return pin


def check_model_files(
    folder: str | Path, pin: dict[str, Any] | None, what: str | None = None
) -> dict[str, Any]:
    """Check the model in ``folder`` against ``pin`` (see the module docstring); the
    serialization record of the files. Raises UntrustedModelError."""
    folder = Path(folder)
    what = what or str(folder)
    pin = EXPECTED.get(str(folder.resolve()), pin)
    try:
        record = serialization_of(folder)
    except Exception as exc:
        raise ModelError(f"cannot read the MLmodel file of {what}: {exc}") from exc
    redo = (
        "The files changed after the model was logged; log it again from the code that trained it."
    )
    if pin and pin.get("format") and pin["format"] != record["format"]:
        raise UntrustedModelError(
            f"refusing to load {what}: it was logged as {pin['format']} but its files are now "
            f"{record['format']}. {redo}"
        )
    if record["format"] != "skops":
        return record
    listed = record["trusted_types"]
    pinned_hash = (pin or {}).get("trusted_types_hash")
    if pinned_hash and pinned_hash != record["trusted_types_hash"]:
        raise UntrustedModelError(
            f"refusing to load {what}: the list of types trusted by skops in its MLmodel "
            f"({', '.join(listed) or 'empty'}) is not the list pinned when it was logged "
            f"(hash {pinned_hash[:12]}). {redo}"
        )
    data = folder / str(record.get("data") or "model.skops")
    import skops.io

    try:
        found = set(skops.io.get_untrusted_types(file=data))
    except Exception as exc:
        raise UntrustedModelError(
            f"refusing to load {what}: {data.name} cannot be read by skops ({exc}). {redo}"
        ) from exc
    extra = sorted(found - set(listed))
    if extra:
        raise UntrustedModelError(
            f"refusing to load {what}: {data.name} references {', '.join(extra[:5])}, which "
            f"{'was' if len(extra) == 1 else 'were'} not trusted when the model was logged "
            f"(trusted: {', '.join(listed) or 'nothing beyond skops defaults'}). {redo}"
        )
    return record
