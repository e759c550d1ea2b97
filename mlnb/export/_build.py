"""Writing the service folder: pinned models, the files and data versions the exported cells
read (``_reads``), service.py, metadata, requirements, Dockerfile."""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import json
import platform
import shutil
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from blake3 import blake3

from mlnb._text import first_line, slug
from mlnb._version import __version__
from mlnb.exceptions import NotebookError
from mlnb.export._plan import EXAMPLE_TAG, ExportCell, ExportPlan
from mlnb.export._reads import ReadTrace, check_folder, pin_reads, scan_literals

__all__ = ["build_service", "code_imports", "loader_modules"]


def pin_models(
    plan: ExportPlan, folder: Path, warm: Callable[[list[str]], None] | None = None
) -> list[dict[str, Any]]:
    """Resolve each model URI to a concrete version and copy it under ``folder/model``.
    ``warm`` is told first the modules the models' loaders import, when the registry has
    their files on this machine (their ``MLmodel`` says), so that the export check's process
    imports them while this one checks the files."""
    from mlnb.serve import fetch_model, pinned_record

    if warm is not None:
        warm(loader_modules(_declared(plan)))
    pinned: list[dict[str, Any]] = []
    for uri in plan.model_uris:
        try:
            if uri.startswith("models:/"):
                pinned.append(fetch_model(folder, uri))
                continue
            run_id = uri[len("runs:/") :].split("/", 1)[0] if uri.startswith("runs:/") else None
            target = folder / "model" / slug(uri.split(":", 1)[-1], "model")
            target.parent.mkdir(parents=True, exist_ok=True)
            import mlflow

            mlflow.artifacts.download_artifacts(uri, dst_path=str(target))
        except Exception as exc:
            first = first_line(exc)
            raise NotebookError(
                f"model URI {uri!r} does not resolve: {first}. Check the name and version in "
                "the registry (`mlnb ui`), or register the model with %mlnb model VAR --name NAME."
            ) from exc
        # download_artifacts puts the model's files directly in target (or in a sub-folder)
        pinned.append(pinned_record(folder, target, uri, uri, None, None, run_id))
    return pinned


def _declared(plan: ExportPlan) -> list[dict[str, Any]]:
    """The serialization the registry's copy of each ``models:/`` model declares, where the
    files are on this machine (nothing is checked or trusted here: only what to import)."""
    from mlnb.tracking import find_model_version, serialization_of

    found: list[dict[str, Any]] = []
    for uri in plan.model_uris:
        if not uri.startswith("models:/"):
            continue
        try:
            ref = find_model_version(uri)
            if ref.files is not None:
                found.append({"serialization": serialization_of(ref.files)})
        except Exception:
            continue  # pinning the model says what is wrong, in its words
    return found


#: serialization format or flavor of a pinned model -> the module its loader imports
_LOADERS = {
    "skops": "skops.io",
    "cloudpickle": "cloudpickle",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "sklearn": "sklearn",
}


def loader_modules(models: list[dict[str, Any]]) -> list[str]:
    """The modules the service imports to load ``models`` (pinned-model records)."""
    found: list[str] = []
    for model in models:
        record = model.get("serialization") or {}
        for key in (record.get("format"), record.get("flavor")):
            module = _LOADERS.get(str(key))
            if module and module not in found:
                found.append(module)
    return found


def code_imports(code: str) -> list[str]:
    """The modules ``code`` imports unconditionally at start-up (its top-level ``import``
    statements, in order): what the service imports anyway when it runs the code."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return list(dict.fromkeys(_imported(tree.body)))


def _imported(nodes: Iterable[ast.AST]) -> Iterator[str]:
    """The absolute module names the ``import`` statements among ``nodes`` import."""
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _evaluate(
    plan: ExportPlan, folder: Path, models: list[dict[str, Any]], trace: ReadTrace | None = None
) -> tuple[dict[str, Any], Any]:
    """Run the exported cells (models from the pinned copies; in the notebook's folder, what
    they read recorded by ``trace``) and the example cell."""
    from mlnb.tracking import pinned_models

    module = types.ModuleType("mlnb_export_check")
    namespace = vars(module)
    namespace["__name__"] = "mlnb_export_check"
    sys.modules["mlnb_export_check"] = module
    with pinned_models.pinned({m["uri"]: folder / m["path"] for m in models}):
        with check_folder(plan.path.resolve().parent), trace or contextlib.nullcontext():
            for cell in plan.exported:
                if trace is not None:
                    trace.cell, trace.index = cell.label, cell.index
                try:
                    exec(compile(cell.source, f"<{cell.number}>", "exec"), namespace)
                except Exception as exc:
                    raise NotebookError(
                        f"{_raised(exc, cell)} when the export check ran the cells tagged "
                        "mlnb:export on their own, in notebook order (as the service does): "
                        "tag the cells this one needs mlnb:export, or make it need none.",
                        cell=cell.index,
                    ) from exc
        examples: dict[str, Any] = {}
        if plan.example is not None:
            scope = dict(namespace)
            try:
                exec(compile(plan.example.source, f"<{plan.example.number}>", "exec"), scope)
            except Exception as exc:
                raise NotebookError(
                    f"{_raised(exc, plan.example)} (tagged {EXAMPLE_TAG}) after the exported "
                    "cells: make it self-contained (its own imports, literal values).",
                    cell=plan.example.index,
                ) from exc
            if not any(k == "example" or k.startswith("example_") for k in scope):
                raise NotebookError(
                    f"{plan.example.label} is tagged {EXAMPLE_TAG} but does not set a variable "
                    "named `example` (a DataFrame, a dict or a list of dicts; `example_NAME` for "
                    "the endpoint function NAME).",
                    cell=plan.example.index,
                )
            examples = {
                k: v for k, v in scope.items() if k == "example" or k.startswith("example_")
            }
    return namespace, examples


def _raised(exc: BaseException, cell: ExportCell) -> str:
    """``NameError: name 'X' is not defined, raised at line 2 of cell 7 [5] "..."``: the
    cause first, then where (the deepest line of the cell in the traceback)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == f"<{cell.number}>":
            line = frame.lineno
    at = f"at line {line} of " if line else "by "
    return f"{type(exc).__name__}: {first_line(exc)}, raised {at}{cell.label}"


def _example_doc(name: str, example: Any) -> dict[str, Any]:
    import pandas as pd

    from mlnb.serve import example_records

    if isinstance(example, pd.DataFrame) or (
        isinstance(example, list) and all(isinstance(r, dict) for r in example)
    ):
        records = example_records(example)
        return {"kind": "records", "records": records, "value": records}
    if isinstance(example, dict):
        return {"kind": "json", "records": [example], "value": example}
    raise NotebookError(
        f"`{name}` is a {type(example).__name__}; make it a DataFrame, a dict or a list of dicts."
    )


def describe_endpoints(
    namespace: dict[str, Any], examples: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    from mlnb.serve import ServiceError, collect_endpoints, dataframe_schema_from_example, shape_of

    try:
        endpoints = collect_endpoints(namespace)
    except ServiceError as exc:
        raise NotebookError(str(exc)) from None
    if not endpoints:
        raise NotebookError(
            "the exported cells define no endpoint: define `predict(df: pd.DataFrame)` (or "
            "any function decorated with @mlnb.endpoint('/path')) in a cell tagged mlnb:export."
        )
    described = []
    example = examples.get("example")
    example_doc = _example_doc("example", example) if example is not None else None
    for endpoint in endpoints:
        try:
            own = f"example_{endpoint.function.__name__}"
            chosen = examples.get(own, example)
            shape = shape_of(endpoint.function, namespace, chosen, None)
        except TypeError as exc:
            raise NotebookError(f"endpoint {endpoint.path}: {exc}") from None
        item: dict[str, Any] = {
            "path": endpoint.path,
            "function": endpoint.function.__name__,
            "kind": shape.kind,
            "example": _example_doc(own, chosen) if shape.fits_example else None,
        }
        if shape.kind == "dataframe":
            item["schema"] = dataframe_schema_from_example(chosen).to_json()
        item["request_schema"] = shape.request_schema
        described.append(item)
    if example_doc is not None and not any(e["example"] for e in described):
        raise NotebookError(
            "`example` fits none of the endpoints' request types "
            f"({', '.join(e['path'] for e in described)}); make it the body one of them takes."
        )
    return described, example_doc


def call_examples(
    plan: ExportPlan, namespace: dict[str, Any], endpoints: list[dict[str, Any]], trace: ReadTrace
) -> None:
    """Answer each endpoint's example here, traced, so files read at request time are pinned
    too. A failure is left for the service check to report, with the service's log."""
    from mlnb.serve import collect_endpoints, frame_runner, shape_of, typed_runner

    functions = {e.path: e.function for e in collect_endpoints(namespace)}
    with check_folder(plan.path.resolve().parent), trace:
        for item in endpoints:
            example, function = item["example"], functions[item["path"]]
            if not example:
                continue
            trace.cell = f"{item['function']}() answering the example"
            trace.index = None
            try:
                if item["kind"] == "dataframe":
                    columns = [c["name"] for c in item["schema"]["columns"]]
                    frame_runner(function, columns)([dict(r) for r in example["records"]])
                else:
                    shape = shape_of(function, namespace, example["value"], None)
                    typed_runner(function, shape)(shape.request.validate_python(example["value"]))
            except Exception:
                continue  # the service check reports it, with its log


def pin_inputs(
    plan: ExportPlan, folder: Path, trace: ReadTrace, confine: Path | None = None
) -> dict[str, Any]:
    """The files and versions the exported cells read, copied into ``folder`` by hash (only
    from the project, and from under ``confine`` when given: ``_reads.pin_reads``)."""
    from mlnb.config import get_settings

    settings = get_settings()
    cwd = plan.path.resolve().parent
    cells = [(c.label, c.source, c.index) for c in plan.exported]
    scan_literals(cells, trace, str(settings.root), str(cwd))
    ignore = [folder.resolve(), settings.home]
    return pin_reads(trace, folder, settings.root, cwd, ignore, confine)


def requirements(code: str, models: list[dict[str, Any]], folder: Path) -> list[str]:
    """Pinned versions of what the code imports and what the models need."""
    modules = {name.split(".")[0] for name in _imported(ast.walk(ast.parse(code)))}
    from mlnb.tracking import packages_by_module

    by_module = packages_by_module()
    pins: dict[str, str] = {"mlnb": f"mlnb[serve]=={__version__}"}
    for module in sorted(modules):
        for dist in by_module.get(module, []):
            key = dist.lower().replace("_", "-")
            if key not in pins:
                try:
                    pins[key] = f"{dist}=={importlib.metadata.version(dist)}"
                except importlib.metadata.PackageNotFoundError:
                    continue
    for model in models:
        for req_file in (folder / model["path"]).rglob("requirements.txt"):
            for line in req_file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "-")):
                    key = (
                        line.split("==")[0]
                        .split(">=")[0]
                        .split("[")[0]
                        .strip()
                        .lower()
                        .replace("_", "-")
                    )
                    pins.setdefault(key, line)
    pins.pop("mlflow-skinny", None)
    return sorted(pins.values(), key=str.lower)


DOCKERFILE = """\
# Built by mlnb export. The models (./model), the files the exported cells read (./files)
# and the data versions they load (./versions) are pinned by hash and checked at start-up.
FROM python:{python}-slim
WORKDIR /service
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV MLNB_LOG_LEVEL=INFO
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
CMD ["mlnb", "serve", ".", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
"""


def service_code(plan: ExportPlan) -> str:
    parts = [
        f'"""Service code exported by mlnb {__version__} from {plan.path.name}.\n\n'
        "The cells tagged mlnb:export, in notebook order. Edit the notebook, not this file:\n"
        f'`mlnb export {plan.path.name} -o DIR --force` writes it again.\n"""\n',
        "import mlnb  # noqa: F401  (mlnb.load_model loads the models pinned in ./model)\n",
    ]
    for cell in plan.exported:
        parts.append(f"# %% [{cell.number}] mlnb:export\n{cell.source.rstrip()}\n")
    return "\n".join(parts)


def copy_profile(
    models: list[dict[str, Any]], folder: Path, explicit: str | Path | None = None
) -> str | None:
    """Copy the training data profile to ``folder/profile.json``: ``explicit`` when given,
    else the one recorded on the first pinned model's run that has one (the profile named
    like the model first). Returns the relative path, or None when there is none."""
    from mlnb.monitor import Profile, find_profile

    source: Path | None = Path(explicit) if explicit is not None else None
    for model in models if source is None else []:
        if model.get("run_id"):
            source = find_profile(model["run_id"], model.get("name"))
            if source is not None:
                break
    if source is None:
        return None
    Profile.load(source)  # refuses a file that is not a profile
    shutil.copyfile(source, folder / "profile.json")
    return "profile.json"


def pin_challenger(
    plan: ExportPlan,
    folder: Path,
    models: list[dict[str, Any]],
    uri: str,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """Copy the challenger (a ``models:/`` URI) next to the champion, pinned by hash, and
    check that the exported cells run with it in place of the first model."""
    from mlnb.serve import fetch_model

    if not models:
        raise NotebookError(
            "--challenger needs a model to stand in for, but the exported cells load none "
            "with mlnb.load_model('models:/NAME/...')."
        )
    try:
        record = fetch_model(folder, uri)
    except Exception as exc:
        raise NotebookError(
            f"the challenger {uri!r} does not resolve: {first_line(exc)}. Give "
            "models:/NAME/VERSION or models:/NAME@ALIAS of a registered version."
        ) from exc
    check_pickles(folder, allow_pickle, [record])
    try:
        _evaluate(plan, folder, [{**record, "uri": models[0]["uri"]}, *models[1:]])
    except NotebookError as exc:
        raise NotebookError(f"with the challenger {uri} in place: {exc}") from None
    return record


def check_pickles(
    folder: Path, allow_pickle: bool, models: list[dict[str, Any]] | None, **metadata: Any
) -> None:
    """The service's pickle policy (``mlnb.serve._pickles``), applied at export: refuse
    what the service would refuse, before the exported cells load it."""
    from mlnb.serve import ServiceError, check_pickle_policy

    try:
        check_pickle_policy(folder, {**metadata, "allow_pickle": allow_pickle}, models)
    except ServiceError as exc:
        raise NotebookError(str(exc)) from None


def notebook_path(plan: ExportPlan) -> str:
    """The notebook's path from the project root (its name when it is outside)."""
    from mlnb.config import get_settings

    path, root = plan.path.resolve(), Path(get_settings().root).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def build_service(
    plan: ExportPlan,
    folder: Path,
    profile: str | Path | None = None,
    serving: dict[str, Any] | None = None,
    allow_pickle: bool = False,
    confine: Path | None = None,
    warm: Callable[[list[str]], None] | None = None,
) -> dict[str, Any]:
    """Write the service into ``folder`` (which must be empty or missing); files are copied
    only from the project, and from under ``confine`` when given. Pickled models and files
    are refused unless ``allow_pickle``; with ``MLNB_SIGNING_KEY`` set, the manifest is
    signed (``mlnb.serve._signing``). ``warm`` is told, once the models are pinned, the
    modules their loaders import (the export check's process imports them meanwhile)."""
    from mlnb.serve import sign_manifest, signing_key

    if profile is not None:
        from mlnb.monitor import Profile

        Profile.load(profile)  # a wrong --profile fails before the slow steps
    folder.mkdir(parents=True, exist_ok=True)
    models = pin_models(plan, folder, warm)
    check_pickles(folder, allow_pickle, models)
    if warm is not None:
        warm(loader_modules(models))
    trace = ReadTrace()
    namespace, examples = _evaluate(plan, folder, models, trace)
    endpoints, example_doc = describe_endpoints(namespace, examples)
    call_examples(plan, namespace, endpoints, trace)
    inputs = pin_inputs(plan, folder, trace, confine)
    check_pickles(folder, allow_pickle, None, files=inputs["files"], versions=inputs["versions"])
    code = service_code(plan)
    (folder / "service.py").write_text(code, encoding="utf-8")
    reqs = requirements(plan.code, models, folder)
    (folder / "requirements.txt").write_text("\n".join(reqs) + "\n", encoding="utf-8")
    python = ".".join(platform.python_version_tuple()[:2])
    (folder / "Dockerfile").write_text(DOCKERFILE.format(python=python), encoding="utf-8")
    # example.json is the body of the main endpoint: /predict, else the first with an example
    with_example = [e for e in endpoints if e["example"]]
    first = next((e for e in with_example if e["path"] == "/predict"), None)
    first = first or (with_example[0] if with_example else endpoints[0])
    example_doc = first["example"] or example_doc
    if example_doc is not None:
        body = (
            {"records": example_doc["records"]}
            if first["kind"] == "dataframe"
            else example_doc["value"]
        )
        (folder / "example.json").write_text(
            json.dumps(body, indent=1, default=str) + "\n", encoding="utf-8"
        )
    metadata = {
        "name": plan.path.stem,
        "notebook": {
            "path": notebook_path(plan),
            "hash": blake3(plan.path.read_bytes()).hexdigest(),
        },
        "cells": [{"index": c.index, "id": c.cell_id} for c in plan.exported],
        "example_cell": plan.example.cell_id if plan.example else None,
        "code": "service.py",
        "models": models,
        "workdir": inputs["workdir"],
        "sys_path": inputs["sys_path"],
        "files": inputs["files"],
        "versions": inputs["versions"],
        "endpoints": endpoints,
        "example": example_doc,
        "requirements": reqs,
        "mlnb_version": __version__,
        "python_version": platform.python_version(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_run_id": models[0]["run_id"] if models else None,
        "profile": copy_profile(models, folder, profile),
        "allow_pickle": allow_pickle,
    }
    serving = dict(serving or {})  # challenger, routing, canary_weight, follow
    if serving.get("challenger"):
        challenger = serving.pop("challenger")
        metadata["challenger"] = pin_challenger(plan, folder, models, challenger, allow_pickle)
    metadata.update({k: v for k, v in serving.items() if v is not None})
    key = signing_key()
    if key is not None:
        metadata = sign_manifest(metadata, folder, key)
    (folder / "mlnb-service.json").write_text(
        json.dumps(metadata, indent=1, default=str) + "\n", encoding="utf-8"
    )
    return metadata


def replace_folder(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    source.rename(target)
