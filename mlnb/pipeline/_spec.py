"""``pipeline.yaml``: the pipeline spec, validated with pydantic; errors name the line and field.

Paths are relative to the pipeline file's folder, which is also the steps' working directory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlnb.exceptions import PipelineError

__all__ = [
    "Pipeline",
    "PipelineError",
    "Step",
    "load_pipeline",
    "named_paths",
    "topological_order",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    notebook: str
    params: dict[str, Any] = Field(default_factory=dict)
    needs: list[str] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    retries: int = Field(default=0, ge=0, le=10)
    timeout: float | None = Field(default=None, gt=0, description="seconds for the whole step")
    cell_timeout: float | None = Field(default=None, gt=0, description="seconds per cell")
    kernel: str | None = None
    #: a parameter sweep: one run of the step per combination (``{param}`` in paths)
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"grid parameter {key!r} has no values")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "use letters, digits, '_', '-' and '.' (starting with a letter or digit)"
            )
        return value


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    steps: list[Step] = Field(min_length=1)
    schedule: str | None = None
    #: the pipeline file's folder: the base of every path and the steps' working directory
    root: Path = Path(".")
    source: Path = Path("pipeline.yaml")

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise PipelineError(
            f"pipeline {self.name!r} has no step {name!r}; its steps are "
            f"{', '.join(s.name for s in self.steps)}."
        )

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()


def named_paths(pipeline: Pipeline) -> list[tuple[str, str, Path]]:
    """Every path the pipeline reads, writes or runs in, as ``(field, as written, resolved)``,
    resolved exactly as a run resolves it (:meth:`Pipeline.path`: against the pipeline file's
    folder, symlinks followed): the pipeline file, its folder (the steps' working directory),
    and each step's notebook, inputs and outputs (grid steps expanded, ``{param}`` filled in).
    A caller that must keep runs inside a folder checks these before the run."""
    out: list[tuple[str, str, Path]] = [
        ("pipeline file", str(pipeline.source), pipeline.source.resolve()),
        ("working directory", str(pipeline.root), pipeline.root.resolve()),
    ]
    for step in pipeline.steps:
        out.append((f"steps[{step.name}].notebook", step.notebook, pipeline.path(step.notebook)))
        for kind in ("inputs", "outputs"):
            for i, written in enumerate(getattr(step, kind)):
                out.append((f"steps[{step.name}].{kind}[{i}]", written, pipeline.path(written)))
    return out


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location."""
    current = node
    line = getattr(node, "start_mark", None)
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            match = next((v for k, v in current.value if k.value == part), None)
            key = next((k for k, _ in current.value if k.value == part), None)
            if match is None:
                break
            line = key.start_mark if key is not None else line
            current = match
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                break
            current = current.value[part]
            line = current.start_mark
        else:
            break
    return line.line + 1 if line is not None else None


def load_pipeline(
    path: str | Path, *, confine: Callable[[Pipeline], object] | None = None
) -> Pipeline:
    """The pipeline ``path`` (a ``pipeline.yaml``, or the folder holding one) names, checked
    (names, needs, cycles, schedule, grids expanded) and each step's notebook found.

    ``confine`` sees the checked pipeline (:func:`named_paths` lists what it names) before
    anything it names is looked at; what it raises ends the load. JupyterLab's API passes
    its server-root check there, so a notebook outside the root is refused the same way
    whether it exists or not."""
    path = Path(path)
    if path.is_dir():
        path = path / "pipeline.yaml"
    if not path.is_file():
        raise PipelineError(f"pipeline file {str(path)!r} does not exist; check the path.")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise PipelineError(
            f"{path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}."
        ) from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path} must be a mapping with `name` and `steps`.")
    try:
        pipeline = Pipeline(**data, root=path.parent.resolve(), source=path.resolve())
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = _line_of(node, loc)
        field = ".".join(str(p) for p in loc)
        if loc and loc[0] == "steps" and len(loc) > 1 and isinstance(loc[1], int):
            steps = data.get("steps") or []
            step = steps[loc[1]] if loc[1] < len(steps) else {}
            name = step.get("name") if isinstance(step, dict) else None
            if name:
                field = f"steps[{name}]." + ".".join(str(p) for p in loc[2:])
        raise PipelineError(
            f"{path}, line {line}: {field}: {first['msg']}"
            if line
            else f"{path}: {field}: {first['msg']}"
        ) from None
    check(pipeline)
    expanded = expand_grids(pipeline)
    if confine is not None:
        confine(expanded)
    check_notebooks(pipeline)
    return expanded


def expand_grids(pipeline: Pipeline) -> Pipeline:
    """A step with a ``grid`` becomes one step per combination, named ``step[k=v,...]``;
    a step that needs it needs every one of them. ``{k}`` in its inputs and outputs takes
    the combination's value."""
    import itertools

    variants: dict[str, list[Step]] = {}
    for step in pipeline.steps:
        if not step.grid:
            variants[step.name] = [step]
            continue
        keys = sorted(step.grid)
        expanded = []
        for values in itertools.product(*(step.grid[k] for k in keys)):
            combo = dict(zip(keys, values, strict=True))
            label = ",".join(f"{k}={v}" for k, v in combo.items())
            try:
                paths = {
                    "inputs": [p.format(**combo) for p in step.inputs],
                    "outputs": [p.format(**combo) for p in step.outputs],
                }
            except (KeyError, IndexError, ValueError) as exc:
                raise PipelineError(
                    f"{pipeline.source}: step {step.name!r}: a path uses {{{exc}}}, which is "
                    f"not one of its grid parameters ({', '.join(keys)})."
                ) from None
            expanded.append(
                step.model_copy(
                    update={
                        "name": f"{step.name}[{label}]",
                        "params": {**step.params, **combo},
                        "grid": {},
                        **paths,
                    }
                )
            )
        outputs = [o for s in expanded for o in s.outputs]
        shared = sorted({o for o in outputs if outputs.count(o) > 1})
        if shared:
            raise PipelineError(
                f"{pipeline.source}: grid step {step.name!r} writes {shared[0]!r} in every "
                f"combination; put a grid parameter in the path, e.g. "
                f"{{{sorted(step.grid)[0]}}}."
            )
        variants[step.name] = expanded
    steps = [
        s.model_copy(update={"needs": [v.name for n in s.needs for v in variants[n]]})
        for group in variants.values()
        for s in group
    ]
    return pipeline.model_copy(update={"steps": steps})


def check(pipeline: Pipeline) -> None:
    """What the spec alone tells (nothing on disk is looked at): names, needs, cycles,
    schedule. :func:`check_notebooks` then looks for the notebooks."""
    names = [s.name for s in pipeline.steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PipelineError(f"{pipeline.source}: step name {duplicates[0]!r} is used twice.")
    for step in pipeline.steps:
        for need in step.needs:
            if need not in names:
                raise PipelineError(
                    f"{pipeline.source}: step {step.name!r} needs {need!r}, which is not a step; "
                    f"the steps are {', '.join(names)}."
                )
    topological_order(pipeline)
    if pipeline.schedule:
        from mlnb.pipeline._schedule import ScheduleError, parse_cron

        try:
            parse_cron(pipeline.schedule)
        except ScheduleError as exc:
            raise PipelineError(f"{pipeline.source}: schedule: {exc}") from None


def check_notebooks(pipeline: Pipeline) -> None:
    """Each step's notebook exists."""
    for step in pipeline.steps:
        notebook = pipeline.path(step.notebook)
        if not notebook.is_file():
            raise PipelineError(
                f"{pipeline.source}: step {step.name!r}: notebook {step.notebook!r} does not exist "
                f"(looked for {notebook})."
            )


def topological_order(pipeline: Pipeline) -> list[Step]:
    """Steps in an order where every step comes after what it needs; a cycle is an error."""
    remaining = {s.name: set(s.needs) for s in pipeline.steps}
    order: list[Step] = []
    while remaining:
        ready = sorted(n for n, needs in remaining.items() if not needs)
        if not ready:
            cycle = _find_cycle({n: sorted(d) for n, d in remaining.items()})
            raise PipelineError(
                f"{pipeline.source}: the steps' `needs` form a cycle: {' -> '.join(cycle)}; "
                "remove one of these needs."
            )
        for name in ready:
            order.append(pipeline.step(name))
            del remaining[name]
        for needs in remaining.values():
            needs.difference_update(ready)
    return order


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    for start in sorted(graph):
        path = [start]
        seen = {start}
        node = start
        while graph.get(node):
            node = graph[node][0]
            if node in seen:
                return [*path[path.index(node) :], node]
            seen.add(node)
            path.append(node)
    return sorted(graph)  # pragma: no cover
