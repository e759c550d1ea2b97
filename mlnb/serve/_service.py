"""Loading an exported service directory: metadata, pinned models, the notebook's code."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.endpoints import EndpointSpec, fallback_of, spec_of
from mlnb.exceptions import MlnbError, ServiceError

__all__ = [
    "METADATA_FILE",
    "Service",
    "ServiceError",
    "collect_endpoints",
    "collect_fallbacks",
    "load_module",
    "load_service",
]

METADATA_FILE = "mlnb-service.json"


@dataclass
class Endpoint:
    path: str
    function: Any
    spec: EndpointSpec


@dataclass
class Service:
    folder: Path
    metadata: dict[str, Any]
    module: types.ModuleType
    endpoints: list[Endpoint] = field(default_factory=list)
    fallbacks: dict[str, Any] = field(default_factory=dict)  # endpoint path -> baseline
    signature: dict[str, Any] = field(default_factory=dict)  # signed, verified, key_id

    @property
    def example(self) -> Any:
        return self.metadata.get("example")

    @property
    def model_info(self) -> dict[str, Any]:
        models = self.metadata.get("models") or []
        if not models:
            return {"name": None, "version": None}
        first = models[0]
        return {"name": first.get("name"), "version": first.get("version")}


def collect_endpoints(namespace: dict[str, Any]) -> list[Endpoint]:
    """``predict`` and every ``@mlnb.endpoint`` function defined by the exported code."""
    found: dict[str, Endpoint] = {}
    for name, value in namespace.items():
        if not callable(value) or isinstance(value, type):
            continue
        spec = spec_of(value)
        if spec is None and name == "predict" and isinstance(value, types.FunctionType):
            spec = EndpointSpec("/predict")
        if spec is None:
            continue
        if spec.path in found:
            raise ServiceError(
                f"two endpoints use the path {spec.path}: {found[spec.path].function.__name__} "
                f"and {name}; give one of them another path in @mlnb.endpoint(...)."
            )
        found[spec.path] = Endpoint(spec.path, value, spec)
    return sorted(found.values(), key=lambda e: e.path)


def collect_fallbacks(namespace: dict[str, Any]) -> dict[str, Any]:
    """Every ``@mlnb.fallback(path)`` function defined by the exported code, by path."""
    found: dict[str, Any] = {}
    for value in namespace.values():
        path = fallback_of(value) if callable(value) else None
        if path is None:
            continue
        if path in found and found[path] is not value:
            raise ServiceError(
                f"two fallbacks for {path}: {found[path].__name__} and {value.__name__}; "
                "keep one @mlnb.fallback per endpoint."
            )
        found[path] = value
    return found


def verify_models(folder: Path, models: list[dict[str, Any]]) -> dict[str, Path]:
    """Check every pinned model's files against the hashes recorded at export; loading
    them will then trust exactly the serialization recorded at export."""
    from mlnb.tracking import expect_model_files
    from mlnb.versioning import hash_tree

    pinned: dict[str, Path] = {}
    for model in models:
        path = folder / model["path"]
        if not path.is_dir():
            raise ServiceError(
                f"the model folder {path} is missing; export the notebook again "
                "(mlnb export NOTEBOOK -o DIR --force)."
            )
        digest, entries = hash_tree(path)
        if digest != model["hash"]:
            expected = {e["path"]: e["hash"] for e in model.get("files", [])}
            changed = [e.path for e in entries if expected.get(e.path) != e.hash]
            changed += [p for p in expected if p not in {e.path for e in entries}]
            names = ", ".join(str(path / p) for p in sorted(set(changed))[:5]) or str(path)
            raise ServiceError(
                f"refusing to start: the model files do not match the hash pinned at export "
                f"({model['hash'][:12]}); changed: {names}. Export the notebook again."
            )
        expect_model_files(path, model.get("serialization"))
        pinned[model["uri"]] = path
    return pinned


def load_service(folder: str | Path, *, signing_key: str | None = None) -> Service:
    """Read ``mlnb-service.json``; check its signature (``_signing``; with ``signing_key``,
    else ``MLNB_SIGNING_KEY``), the pinned models' hashes and the pickle policy
    (``_pickles``) before anything is loaded; verify the pinned files and data versions,
    enter the service's working folder (``_files``) and run ``service.py``."""
    folder = Path(folder).resolve()
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        raise ServiceError(
            f"{folder} is not an exported service (no {METADATA_FILE}); create one with "
            "`mlnb export NOTEBOOK -o DIR`."
        )
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ServiceError(f"{meta_path} is not valid JSON ({exc}); export again.") from exc
    from mlnb.serve._files import prepare_inputs
    from mlnb.serve._pickles import check_pickle_policy
    from mlnb.serve._signing import check_signature
    from mlnb.tracking import pinned_models

    signature = check_signature(folder, metadata, signing_key)
    pinned = verify_models(folder, metadata.get("models", []))
    check_pickle_policy(folder, metadata)
    pinned_models.pin(pinned)
    prepare_inputs(folder, metadata)
    module = load_module(folder, metadata)
    service = _service_of(folder, local_paths(metadata), module)
    service.signature = signature
    return service


def local_paths(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with nothing of the exporting machine in it: an export older than
    project-relative paths recorded the notebook's absolute path; only its name is kept."""
    notebook = metadata.get("notebook")
    if isinstance(notebook, dict) and Path(str(notebook.get("path") or "")).is_absolute():
        return {**metadata, "notebook": {**notebook, "path": Path(notebook["path"]).name}}
    return metadata


def _service_of(folder: Path, metadata: dict[str, Any], module: types.ModuleType) -> Service:
    code_path = folder / metadata.get("code", "service.py")
    namespace = vars(module)
    service = Service(
        folder, metadata, module, collect_endpoints(namespace), collect_fallbacks(namespace)
    )
    if not service.endpoints:
        raise ServiceError(
            f"{code_path} defines no endpoint: define predict(...) or decorate a function "
            "with @mlnb.endpoint('/path')."
        )
    return service


_EXEC_LOCK = threading.Lock()
_COUNTER = itertools.count(1)


def load_module(
    folder: Path, metadata: dict[str, Any], pinned: dict[str, Path] | None = None
) -> types.ModuleType:
    """Run ``service.py`` as a new module. ``pinned`` (model URI -> local folder) overrides
    the pinned models while it runs: the same code bound to another model version (the
    challenger, or a new champion when the service follows an alias)."""
    from mlnb.tracking import pinned_models

    code_path = folder / metadata.get("code", "service.py")
    module_name = f"mlnb_service_{abs(hash(str(folder)))}"
    if pinned:
        module_name += f"_{next(_COUNTER)}"
    spec = importlib.util.spec_from_file_location(module_name, code_path)
    if spec is None or spec.loader is None:
        raise ServiceError(f"cannot load {code_path}; export again.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    with _EXEC_LOCK, pinned_models.pinned(pinned or {}):
        try:
            spec.loader.exec_module(module)
        except MlnbError:
            sys.modules.pop(module_name, None)
            raise
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise ServiceError(
                f"the exported code in {code_path} failed at start-up: {type(exc).__name__}: {exc}"
            ) from exc
    return module


def load_variant(
    service: Service, pinned: dict[str, Path], metadata: dict[str, Any] | None = None
) -> Service:
    """The service's code run again with some models replaced (``pinned``)."""
    meta = metadata if metadata is not None else service.metadata
    module = load_module(service.folder, service.metadata, pinned)
    return _service_of(service.folder, meta, module)
