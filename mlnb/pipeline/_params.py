"""What each step of a pipeline is given: its params from ``pipeline.yaml``, the ``-p``
overrides and, for a grid step, the values its name fixes.

Guarantees: a value reaches a step only if the notebook's `parameters` cell sets that name
(else :class:`PipelineError` names the parameter and what the cell does set); ``-p
STEP.KEY=VALUE`` reads VALUE as YAML, as papermill's ``-y`` does; ``-p STEP.PARAM.KEY=VALUE``
sets one key of a dict parameter, leaving its other keys (from ``pipeline.yaml`` or the
notebook's default) as they were. Nothing here runs a kernel or touches MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mlnb.pipeline._spec import Pipeline, PipelineError

__all__ = ["effective_params", "parse_overrides"]


def parse_overrides(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``-p step.key=value`` (value read as YAML, as papermill's -y does)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        target, sep, raw = item.partition("=")
        step, dot, key = target.partition(".")
        if not sep or not dot or not step or not key:
            raise PipelineError(
                f"-p {item!r} is not STEP.KEY=VALUE, e.g. -p train.n_estimators=200"
            )
        out.setdefault(step, {})[key] = yaml.safe_load(raw)
    return out


def _parameters(notebook: Path) -> set[str] | None:
    """Names the notebook's `parameters` cell sets (None when it has no such cell)."""
    from mlnb.tracking import assigned_names

    doc = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in doc.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return set(assigned_names("".join(source) if isinstance(source, list) else source))
    return None


def effective_params(
    pipeline: Pipeline, overrides: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each step's params by step name (overrides of a grid's base step reach each of its
    steps); :class:`PipelineError` for a step or parameter the pipeline does not have."""
    names = {s.name for s in pipeline.steps} | {s.name.split("[")[0] for s in pipeline.steps}
    unknown_steps = sorted(set(overrides) - names)
    if unknown_steps:
        raise PipelineError(
            f"-p names the step {unknown_steps[0]!r}, which {pipeline.name!r} does not have."
        )
    params: dict[str, dict[str, Any]] = {}
    for step in pipeline.steps:
        base = step.name.split("[")[0]  # a grid step takes its base step's overrides
        grid = {k: v for k, v in step.params.items() if k in _grid_keys(step.name)}
        values = {**step.params, **_nested(step, pipeline, overrides.get(base, {})), **grid}
        if values:
            declared = _parameters(pipeline.path(step.notebook))
            if declared is None:
                raise PipelineError(
                    f"step {step.name!r} gives params ({', '.join(sorted(values))}) but "
                    f"{step.notebook} has no cell tagged `parameters`; tag the cell that sets "
                    "their defaults."
                )
            extra = sorted(set(values) - declared)
            if extra:
                raise PipelineError(
                    f"step {step.name!r}: {extra[0]!r} is not a parameter of {step.notebook} "
                    f"(its parameters cell sets {', '.join(sorted(declared)) or 'nothing'})."
                )
        params[step.name] = values
    return params


def _nested(step: Any, pipeline: Pipeline, given: dict[str, Any]) -> dict[str, Any]:
    """``-p train.params.n_estimators=50``: one key of a dict parameter, merged into its value
    in pipeline.yaml or, else, its default in the notebook's `parameters` cell."""
    out = {k: v for k, v in given.items() if "." not in k}
    for key, value in given.items():
        if "." not in key:
            continue
        name, *path = key.split(".")
        if name not in out:
            base = step.params.get(name)
            if base is None:
                base = _default(pipeline.path(step.notebook), name)
            if not isinstance(base, dict):
                raise PipelineError(
                    f"-p {step.name}.{key}: {name!r} is not a dict parameter of "
                    f"{step.notebook} (its default must be a literal dict, e.g. "
                    f"{name} = {{'n_estimators': 100}})."
                )
            out[name] = json.loads(json.dumps(base))  # a copy, nested dicts included
        target = out[name]
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise PipelineError(f"-p {step.name}.{key}: {part!r} is not a dict.")
        target[path[-1]] = value
    return out


def _default(notebook: Path, name: str) -> Any:
    """The literal default of ``name`` in the notebook's `parameters` cell, or None."""
    import ast

    doc = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in doc.get("cells", []):
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        source = cell.get("source", "")
        try:
            tree = ast.parse("".join(source) if isinstance(source, list) else source)
        except SyntaxError:
            return None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                try:
                    return ast.literal_eval(node.value)
                except ValueError:
                    return None
    return None


def _grid_keys(name: str) -> set[str]:
    """Parameters a grid step's name fixes (``train[C=0.1,depth=3]`` -> {C, depth})."""
    if "[" not in name:
        return set()
    return {part.split("=", 1)[0] for part in name[name.index("[") + 1 : -1].split(",")}
