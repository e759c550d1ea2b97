"""Running a pipeline: each step a papermill run of its notebook, in dependency order, in
parallel where the DAG allows, skipped when its fingerprint and outputs are unchanged.

Every step is an MLflow run nested under one pipeline run; the kernel's mlnb (``%load_ext
mlnb``) writes into it through ``MLNB_RUN_ID``. Executed notebooks are kept in
``.mlnb/runs/<pipeline run id>/<step>.ipynb``; source notebooks are never modified. The state
of the last run of each step (fingerprint, its parts, outputs' hashes, run id, status) is
kept in ``.mlnb/pipelines/<name>.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlnb.config import get_settings
from mlnb.pipeline._fingerprint import code_hash, fingerprint, input_hashes
from mlnb.pipeline._kernels import KernelPool, kernel_env
from mlnb.pipeline._progress import EventHandler, StepEvent, TerminalProgress
from mlnb.pipeline._spec import Pipeline, PipelineError, Step, load_pipeline, topological_order
from mlnb.pipeline._step import StepResult, kernel_name, load_papermill, run_step

__all__ = ["PipelineResult", "StepResult", "parse_overrides", "pipeline_status", "run_pipeline"]

Report = Callable[[str], None]


@dataclass
class PipelineResult:
    name: str
    run_id: str | None
    folder: Path
    steps: dict[str, StepResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.status in {"ok", "cached"} for s in self.steps.values())


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
    from mlnb.tracking._cells import assigned_names

    doc = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in doc.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return set(assigned_names("".join(source) if isinstance(source, list) else source))
    return None


def _effective_params(
    pipeline: Pipeline, overrides: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
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


class _State:
    def __init__(self, pipeline: Pipeline) -> None:
        self.path = get_settings().home / "pipelines" / f"{pipeline.name}.json"
        self.data: dict[str, Any] = {"steps": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                self.data = {"steps": {}}  # a damaged state only means re-running

    def step(self, name: str) -> dict[str, Any]:
        return dict(self.data["steps"].get(name, {}))

    def save_step(self, name: str, record: dict[str, Any]) -> None:
        self.data["steps"][name] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


class _Context:
    def __init__(self, pipeline: Pipeline, params: dict[str, dict[str, Any]]) -> None:
        from mlnb.tracking._provenance import environment_info
        from mlnb.versioning._hashing import StatCache

        self.pipeline = pipeline
        self.params = params
        self.state = _State(pipeline)
        self.cache = StatCache(get_settings().home / "cache" / "stat.sqlite")
        self.environment = environment_info().packages_hash
        self.fingerprints: dict[str, str] = {}

    def parts(self, step: Step) -> dict[str, Any]:
        inputs = input_hashes({p: self.pipeline.path(p) for p in step.inputs}, self.cache)
        return {
            "code": code_hash(self.pipeline.path(step.notebook)),
            "params": self.params[step.name],
            "inputs": inputs,
            "upstream": {
                n: self.fingerprints.get(n) or self.state.step(n).get("fingerprint")
                for n in sorted(step.needs)
            },
            "environment": self.environment,
        }

    def outputs_intact(self, step: Step, recorded: dict[str, Any]) -> list[str]:
        """Outputs missing or changed since the recorded run (empty: all intact)."""
        current = input_hashes({p: self.pipeline.path(p) for p in step.outputs}, self.cache)
        return [
            p for p in step.outputs if current.get(p) is None or current.get(p) != recorded.get(p)
        ]


def _reasons(ctx: _Context, step: Step, parts: dict[str, Any]) -> list[str]:
    last = ctx.state.step(step.name)
    if not last:
        return ["never ran"]
    if last.get("status") != "ok":
        return [f"last run {last.get('status')}"]
    before = last.get("parts", {})
    reasons = []
    for key in ("code", "params", "environment"):
        if before.get(key) != parts[key]:
            reasons.append(f"{key} changed")
    changed_inputs = [k for k, v in parts["inputs"].items() if before.get("inputs", {}).get(k) != v]
    if changed_inputs:
        reasons.append(f"inputs changed: {', '.join(changed_inputs)}")
    changed_up = [k for k, v in parts["upstream"].items() if before.get("upstream", {}).get(k) != v]
    if changed_up:
        reasons.append(f"upstream changed: {', '.join(changed_up)}")
    missing = ctx.outputs_intact(step, last.get("outputs", {}))
    if missing:
        reasons.append(f"outputs missing or changed: {', '.join(missing)}")
    return reasons


def pipeline_status(
    path: str | Path, overrides: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Each step: up to date or not, and why."""
    pipeline = load_pipeline(path)
    ctx = _Context(pipeline, _effective_params(pipeline, overrides or {}))
    rows = []
    for step in topological_order(pipeline):
        parts = ctx.parts(step)
        ctx.fingerprints[step.name] = fingerprint(parts)
        reasons = _reasons(ctx, step, parts)
        last = ctx.state.step(step.name)
        rows.append(
            {
                "step": step.name,
                "up_to_date": not reasons,
                "reasons": reasons,
                "last_run_id": last.get("run_id"),
                "last_status": last.get("status"),
            }
        )
    return rows


class _Tracker:
    """The pipeline's MLflow runs: one parent, one nested run per executed step."""

    def __init__(self, pipeline: Pipeline) -> None:
        from mlnb.tracking._client import ensure_experiment, get_client

        settings = get_settings()
        self.client = get_client(settings)
        self.experiment = ensure_experiment(self.client, settings, pipeline.name)
        run = self.client.create_run(
            self.experiment,
            run_name=f"{pipeline.name}",
            tags={
                "mlnb.pipeline": pipeline.name,
                "mlnb.pipeline.file": str(pipeline.source),
                "mlnb.runner": "pipeline",
            },
        )
        self.run_id: str = run.info.run_id
        self.client.log_artifact(self.run_id, str(pipeline.source), "mlnb")

    def step_run(
        self, step: Step, fp: str, upstream: dict[str, str | None], params: dict[str, Any]
    ) -> str:
        run = self.client.create_run(
            self.experiment,
            run_name=step.name,
            tags={
                "mlflow.parentRunId": self.run_id,
                "mlnb.step": step.name,
                "mlnb.step.fingerprint": fp,
                "mlnb.step.upstream_runs": json.dumps(upstream),
                "mlnb.runner": "pipeline",
            },
        )
        return str(run.info.run_id)

    def finish_step(self, run_id: str, notebook: Path | None, ok: bool) -> None:
        if notebook is not None and notebook.is_file():
            self.client.log_artifact(run_id, str(notebook), "mlnb")
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def finish(self, result: PipelineResult) -> None:
        import re

        from mlflow.entities import RunTag

        def key(name: str) -> str:  # MLflow tag keys: no [ ] = , (grid step names have them)
            return "mlnb.step." + re.sub(r"[^\w.\- :/]", "_", name)

        tags = [
            RunTag(key(n), f"{s.status} {s.run_id or ''}".strip()) for n, s in result.steps.items()
        ]
        self.client.log_batch(self.run_id, tags=tags)
        self.client.set_terminated(self.run_id, "FINISHED" if result.ok else "FAILED")


def run_pipeline(
    path: str | Path | Pipeline,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    force: bool = False,
    only: str | None = None,
    from_step: str | None = None,
    workers: int = 1,
    executor: str = "local",
    report: Report | None = None,
    on_event: EventHandler | None = None,
    warm_kernels: bool | None = None,
) -> PipelineResult:
    """Run the pipeline; see the module docstring. ``executor`` is ``local`` (threads here)
    or ``dask://HOST:PORT`` (tasks of a Dask distributed cluster).

    Progress goes to ``on_event`` (a :class:`StepEvent` per change, cells included) and, as
    lines, to ``report``; with neither, to the terminal. ``warm_kernels`` (default on, or
    ``MLNB_PIPELINE_WARM_KERNELS``) starts the next step's fresh kernel while a step runs.
    ``path`` may also be a :class:`Pipeline` already loaded (and checked) by the caller, so
    what runs is what was checked, even if the file changes meanwhile."""
    pipeline = path if isinstance(path, Pipeline) else load_pipeline(path)
    params = _effective_params(pipeline, overrides or {})
    order = topological_order(pipeline)
    if workers < 1:
        raise PipelineError("--workers must be at least 1.")
    selected = {s.name for s in order}
    forced: set[str] = set(selected) if force else set()
    if only:
        pipeline.step(only)
        selected, forced = {only}, {only}
    elif from_step:
        pipeline.step(from_step)
        selected = {from_step} | _descendants(pipeline, from_step)
        forced = set(selected)
    ctx = _Context(pipeline, params)
    project_root = get_settings().root
    runner = _executor(executor, workers)  # an address that does not answer fails here
    workers = runner.workers
    for name in {s.name for s in order} - selected:  # taken as they are
        last = ctx.state.step(name)
        if last.get("status") != "ok":
            runner.close()
            raise PipelineError(
                f"step {name!r} has no successful run to build on; run the whole pipeline first."
            )
        ctx.fingerprints[name] = last["fingerprint"]
    if warm_kernels is None:
        warm_kernels = os.environ.get("MLNB_PIPELINE_WARM_KERNELS", "1").strip().lower() not in {
            "0", "false", "no", "off"
        }  # fmt: skip
    pool = None
    if not runner.remote:
        pool = KernelPool(
            pipeline.root, kernel_env(project_root), warm=warm_kernels, spares=workers
        )
    # The MLflow side (and its ~2 s import) only when a step has to run: a pipeline whose
    # steps are all up to date answers at once.
    trackers: list[_Tracker] = []
    result = PipelineResult(pipeline.name, None, get_settings().home / "runs")

    def tracker() -> _Tracker:
        if not trackers:
            trackers.append(_Tracker(pipeline))
            result.run_id = trackers[0].run_id
            result.folder = get_settings().home / "runs" / trackers[0].run_id
            result.folder.mkdir(parents=True, exist_ok=True)
        return trackers[0]

    handlers: list[EventHandler] = []
    terminal = None
    if on_event is not None:
        handlers.append(on_event)
    if report is not None:
        handlers.append(TerminalProgress(report, live=False))
    if not handlers:
        terminal = TerminalProgress()
        handlers.append(terminal)
    started = time.perf_counter()

    def emit(step: str, state: str, cell: str | None = None, message: str | None = None) -> None:
        event = StepEvent(step, state, time.perf_counter() - started, cell, message)
        for handler in handlers:
            handler(event)

    pending = [s for s in order if s.name in selected]
    running: dict[Future[StepResult], Step] = {}
    parts_of: dict[Future[StepResult], dict[str, Any]] = {}
    try:
        while pending or running:
            for step in list(pending):
                states = [
                    result.steps[n].status
                    if n in result.steps
                    else ("ok" if n not in selected else None)
                    for n in step.needs
                ]
                if any(s in {"failed", "skipped"} for s in states):
                    pending.remove(step)
                    result.steps[step.name] = StepResult(
                        step.name, "skipped", error="an upstream step failed"
                    )
                    emit(step.name, "skipped", message="skipped (an upstream step failed)")
                    if pool is not None:
                        pool.drop()
                    continue
                if any(s is None for s in states) or len(running) >= workers:
                    continue
                pending.remove(step)
                parts = ctx.parts(step)
                fp = fingerprint(parts)
                ctx.fingerprints[step.name] = fp
                last = ctx.state.step(step.name)
                if step.name not in forced and not _reasons(ctx, step, parts):
                    result.steps[step.name] = StepResult(
                        step.name, "cached", fp, last.get("run_id"), notebook=last.get("notebook")
                    )
                    emit(step.name, "cached", message=f"up to date (run {last.get('run_id')})")
                    if pool is not None:
                        pool.drop()
                    continue
                if pool is not None:
                    # kernels start while MLflow and papermill load and the step run is made
                    pool.plan(len(pending) + 1)
                    pool.prestart(_kernel_of(pipeline, step))
                upstream = {
                    n: (
                        result.steps[n].run_id
                        if n in result.steps
                        else ctx.state.step(n).get("run_id")
                    )
                    for n in step.needs
                }
                run_id = tracker().step_run(step, fp, upstream, params[step.name])
                if not runner.remote:
                    load_papermill()  # here, not in the step threads: imports race in threads
                emit(step.name, "running")
                future = runner.submit(
                    run_step,
                    pipeline,
                    step,
                    params[step.name],
                    result.folder,
                    run_id,
                    project_root,
                    None if runner.remote else emit,
                    pool,
                )
                running[future] = step
                parts_of[future] = parts
            if not running:
                continue
            finished = runner.wait(running)
            for future in finished:
                step = running.pop(future)
                outcome = future.result()
                outcome.fingerprint = ctx.fingerprints[step.name]
                result.steps[step.name] = outcome
                tracker().finish_step(
                    outcome.run_id or "",
                    Path(outcome.notebook) if outcome.notebook else None,
                    outcome.status == "ok",
                )
                outputs = input_hashes({p: pipeline.path(p) for p in step.outputs}, ctx.cache)
                if outcome.status == "ok":
                    missing = [p for p, h in outputs.items() if h is None]
                    if missing:
                        outcome.status, outcome.error = (
                            "failed",
                            f"declared outputs were not written: {', '.join(missing)}",
                        )
                ctx.state.save_step(
                    step.name,
                    {
                        "status": outcome.status,
                        "fingerprint": outcome.fingerprint,
                        "parts": parts_of.pop(future),
                        "outputs": outputs,
                        "run_id": outcome.run_id,
                        "notebook": outcome.notebook,
                        "error": outcome.error,
                        "finished_at": time.time(),
                    },
                )
                if outcome.status == "ok":
                    emit(step.name, "done", message=f"done in {outcome.seconds:.1f} s")
                else:
                    emit(step.name, "failed", message=f"FAILED: {outcome.error}")
    finally:
        runner.close()
        if pool is not None:
            pool.close()
        if terminal is not None:
            terminal.close()
    ctx.cache.save()
    if trackers:
        trackers[0].finish(result)
    failed = [s for s in result.steps.values() if s.status == "failed"]
    if failed:
        first = failed[0]
        where = f" (executed notebook kept: {first.notebook})" if first.notebook else ""
        raise PipelineFailed(
            f"pipeline {pipeline.name!r}: step {first.name!r} failed: {first.error}{where}. "
            "Fix it and run `mlnb pipeline resume` to re-run only what failed and what "
            "depends on it.",
            result,
        )
    return result


def _kernel_of(pipeline: Pipeline, step: Step) -> str:
    try:
        doc = json.loads(pipeline.path(step.notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    return kernel_name(doc.get("metadata", {}), step)


class _LocalExecutor:
    """Steps in threads of this process (each step is a papermill process of its own)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlnb-step")
        self.remote = False

    def submit(self, fn: Callable[..., StepResult], *args: Any) -> Any:
        return self.pool.submit(fn, *args)

    def wait(self, futures: Any) -> set[Any]:
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return set(done)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class _DaskExecutor:
    """Steps as tasks of a Dask distributed cluster (``dask://host:port``); the workers need
    mlnb and the notebooks' packages, and the project folder at the same path."""

    def __init__(self, address: str, workers: int | None) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise PipelineError(
                "--executor dask://... needs the `distributed` package: pip install "
                "'dask[distributed]'."
            ) from None
        try:
            self.client = Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise PipelineError(
                f"the Dask scheduler at {address} does not answer ({exc}); start it "
                "(`dask scheduler`, then `dask worker ADDRESS`) or use --executor local."
            ) from None
        slots = sum(self.client.nthreads().values())
        if not slots:
            self.client.close()
            raise PipelineError(f"the Dask scheduler at {address} has no workers; start one.")
        self.workers = workers or slots
        self.remote = True

    def submit(self, fn: Callable[..., StepResult], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait(self, futures: Any) -> set[Any]:
        # distributed.wait() wants a default client; this one is not (global dask state
        # stays the user's), so poll: steps take seconds, 50 ms is nothing.
        while True:
            done = {future for future in futures if future.done()}
            if done:
                return done
            time.sleep(0.05)

    def close(self) -> None:
        self.client.close()


def _executor(spec: str, workers: int) -> _LocalExecutor | _DaskExecutor:
    if spec in {"", "local"}:
        return _LocalExecutor(workers)
    if spec.startswith(("dask://", "tcp://")):
        address = "tcp://" + spec.split("://", 1)[1]
        return _DaskExecutor(address, workers if workers > 1 else None)
    raise PipelineError(f"unknown executor {spec!r}: use local or dask://HOST:PORT.")


class PipelineFailed(PipelineError):
    exit_code = 1

    def __init__(self, message: str, result: PipelineResult) -> None:
        super().__init__(message)
        self.result = result


def _descendants(pipeline: Pipeline, name: str) -> set[str]:
    out: set[str] = set()
    frontier = {name}
    while frontier:
        children = {s.name for s in pipeline.steps if set(s.needs) & frontier} - out
        out |= children
        frontier = children
    return out
