"""Running a pipeline: each step a papermill run of its notebook, in dependency order, in
parallel where the DAG allows, skipped when its fingerprint and outputs are unchanged.

Every step is an MLflow run nested under one pipeline run; the kernel's mlnb (``%load_ext
mlnb``) writes into it through ``MLNB_RUN_ID``. Executed notebooks are kept in
``.mlnb/runs/<pipeline run id>/<step>.ipynb``; source notebooks are never modified. The state
of the last run of each step (fingerprint, its parts, outputs' hashes, run id, status) is
kept in ``.mlnb/pipelines/<name>.json`` (:mod:`mlnb.pipeline._state`).

:func:`run_pipeline` reads as four named steps:

- **plan** (:func:`plan_run`): load and check the pipeline, give each step its params, pick
  the steps to consider (all, ``only``, or ``from_step`` and what depends on it) and those
  forced; a step taken as it is must have a successful run to build on.
- **decide** (:meth:`_Run.consider`): a step whose needs are done is skipped (an upstream
  step failed), taken as it is (:func:`mlnb.pipeline._cache.decide` finds no reason to run
  it), or run.
- **submit** (:meth:`_Run.submit`): its nested MLflow run is made, the next kernels are
  started ahead, and the step goes to the executor (:mod:`mlnb.pipeline._executors`).
- **record** (:meth:`_Run.record`): the step's result, its MLflow run ended, its declared
  outputs hashed (a missing one fails the step), its state saved, its event given.

Guarantees: the MLflow side (and its ~2 s import) is touched only when a step has to run,
so a pipeline whose steps are all up to date answers at once; a step's state is saved as
soon as it ends; the executor, the kernels started ahead and the terminal display are
closed before this returns or raises; a failed step raises :class:`PipelineFailed` once
every step that could still run has run, naming the first failure and the fix
(``mlnb pipeline resume``).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.config import get_settings
from mlnb.exceptions import PipelineFailed
from mlnb.pipeline._cache import Decision, StepKeys, decide
from mlnb.pipeline._executors import Executor, get_executor
from mlnb.pipeline._kernels import KernelPool, kernel_env
from mlnb.pipeline._params import effective_params, parse_overrides
from mlnb.pipeline._progress import EventHandler, Events, Report
from mlnb.pipeline._spec import Pipeline, PipelineError, Step, load_pipeline, topological_order
from mlnb.pipeline._state import PipelineResult, PipelineState, pipeline_status, record_run
from mlnb.pipeline._step import StepResult, kernel_name, load_papermill, own_process, run_step

__all__ = [
    "PipelineFailed",
    "PipelineResult",
    "Plan",
    "StepResult",
    "own_process",
    "parse_overrides",
    "pipeline_status",
    "plan_run",
    "run_pipeline",
]


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
    or ``dask://HOST:PORT`` (tasks of a Dask distributed cluster), or another executor
    registered in :data:`mlnb.pipeline.executors`.

    Progress goes to ``on_event`` (a :class:`StepEvent` per change, cells included) and, as
    lines, to ``report``; with neither, to the terminal. ``warm_kernels`` (default on, or
    ``MLNB_PIPELINE_WARM_KERNELS``) starts the next step's fresh kernel while a step runs.
    ``path`` may also be a :class:`Pipeline` already loaded (and checked) by the caller, so
    what runs is what was checked, even if the file changes meanwhile."""
    plan = plan_run(path, overrides, force=force, only=only, from_step=from_step, workers=workers)
    runner = get_executor(executor, workers)  # an address that does not answer fails here
    try:
        plan.take_the_rest()
    except PipelineError:
        runner.close()
        raise
    run = _Run(plan, runner, _warm(warm_kernels), on_event, report)
    try:
        while run.pending or run.running:
            for step in list(run.pending):
                run.consider(step)  # decide, then submit
            if run.running:
                for future in runner.wait(run.running):
                    run.record(future)
    finally:
        run.close()
    return run.finish()


@dataclass
class Plan:
    """What one run of a pipeline considers: the steps in order, their params, the names
    of those it may run (``selected``) and of those it runs whatever the cache says."""

    pipeline: Pipeline
    params: dict[str, dict[str, Any]]
    order: list[Step]
    selected: set[str]
    forced: set[str]
    keys: StepKeys

    def take_the_rest(self) -> None:
        """Steps not selected are taken as they are: each must have a successful run to
        build on, whose fingerprint the selected steps that need it are keyed on."""
        for name in {s.name for s in self.order} - self.selected:
            last = self.keys.state.step(name)
            if last.get("status") != "ok":
                raise PipelineError(
                    f"step {name!r} has no successful run to build on; run the whole "
                    "pipeline first."
                )
            self.keys.fingerprints[name] = last["fingerprint"]


def plan_run(
    path: str | Path | Pipeline,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    force: bool = False,
    only: str | None = None,
    from_step: str | None = None,
    workers: int = 1,
) -> Plan:
    """The :class:`Plan` of :func:`run_pipeline` with these arguments; raises
    :class:`PipelineError` for a bad pipeline, param, step name or number of workers."""
    pipeline = path if isinstance(path, Pipeline) else load_pipeline(path)
    params = effective_params(pipeline, overrides or {})
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
    keys = StepKeys(pipeline, params, PipelineState(pipeline))
    return Plan(pipeline, params, order, selected, forced, keys)


def _warm(warm_kernels: bool | None) -> bool:
    if warm_kernels is not None:
        return warm_kernels
    from mlnb.config import env_flag

    return env_flag("MLNB_PIPELINE_WARM_KERNELS", True, error=PipelineError)


class _Run:
    """One run of a :class:`Plan` on an executor: the steps pending and running, the
    kernels started ahead, the MLflow runs (made on first need) and the result so far."""

    def __init__(
        self,
        plan: Plan,
        executor: Executor,
        warm: bool,
        on_event: EventHandler | None,
        report: Report | None,
    ) -> None:
        self.plan = plan
        self.executor = executor
        self.project_root = get_settings().root
        self.pool: KernelPool | None = None
        if not executor.remote:
            env = kernel_env(self.project_root)
            self.pool = KernelPool(plan.pipeline.root, env, warm=warm, spares=executor.workers)
        self.tracker: _Tracker | None = None
        self.result = PipelineResult(plan.pipeline.name, None, get_settings().home / "runs")
        self.events = Events(on_event, report)
        self.pending = [s for s in plan.order if s.name in plan.selected]
        self.running: dict[Future[StepResult], tuple[Step, Decision]] = {}
        self.started_at = time.time()

    def runs(self) -> _Tracker:
        """The pipeline's MLflow runs, made the first time a step has to run."""
        if self.tracker is None:
            self.tracker = _Tracker(self.plan.pipeline)
            self.result.run_id = self.tracker.run_id
            self.result.folder = get_settings().home / "runs" / self.tracker.run_id
            self.result.folder.mkdir(parents=True, exist_ok=True)
        return self.tracker

    def consider(self, step: Step) -> None:
        """A pending step: skipped if a step it needs failed, left pending while one is not
        done or every worker is busy, else decided: taken as it is, or submitted."""
        needs = [self._status_of(n) for n in step.needs]
        if any(s in {"failed", "skipped"} for s in needs):
            self.pending.remove(step)
            self.result.steps[step.name] = StepResult(
                step.name, "skipped", error="an upstream step failed"
            )
            self.events(step.name, "skipped", message="skipped (an upstream step failed)")
            self._no_kernel_for(step)
            return
        if any(s is None for s in needs) or len(self.running) >= self.executor.workers:
            return
        self.pending.remove(step)
        decision = decide(self.plan.keys, step, forced=step.name in self.plan.forced)
        if not decision.cached:
            self.submit(step, decision)
            return
        run_id, notebook = decision.last.get("run_id"), decision.last.get("notebook")
        self.result.steps[step.name] = StepResult(
            step.name, "cached", decision.fingerprint, run_id, notebook=notebook
        )
        self.events(
            step.name,
            "cached",
            message=f"up to date (run {run_id})",
            run_id=run_id,
            notebook=notebook,
        )
        self._no_kernel_for(step)

    def _status_of(self, name: str) -> str | None:
        """A needed step's status this run: None while it has not ended (a step not
        selected is taken as it is: ok)."""
        if name in self.result.steps:
            return self.result.steps[name].status
        return "ok" if name not in self.plan.selected else None

    def _no_kernel_for(self, step: Step) -> None:
        if self.pool is not None:
            self.pool.drop()  # one kernel fewer is needed

    def submit(self, step: Step, decision: Decision) -> None:
        """Make the step's MLflow run and hand the step to the executor."""
        if self.pool is not None:
            # kernels start while MLflow and papermill load and the step run is made
            self.pool.plan(len(self.pending) + 1)
            self.pool.prestart(_kernel_of(self.plan.pipeline, step))
        upstream = {
            n: (
                self.result.steps[n].run_id
                if n in self.result.steps
                else self.plan.keys.state.step(n).get("run_id")
            )
            for n in step.needs
        }
        params = self.plan.params[step.name]
        run_id = self.runs().step_run(step, decision.fingerprint, upstream, params)
        remote = self.executor.remote
        if not remote:
            load_papermill()  # here, not in the step threads: imports race in threads
        self.events(step.name, "running", run_id=run_id)
        future = self.executor.submit(
            run_step,
            self.plan.pipeline,
            step,
            params,
            self.result.folder,
            run_id,
            self.project_root,
            None if remote else self.events,
            self.pool,
        )
        self.running[future] = (step, decision)

    def record(self, future: Future[StepResult]) -> None:
        """A step that ended: its result, its MLflow run ended, its outputs checked, its
        state saved, its event given."""
        step, decision = self.running.pop(future)
        outcome = future.result()
        outcome.fingerprint = decision.fingerprint
        self.result.steps[step.name] = outcome
        self.runs().finish_step(
            outcome.run_id or "",
            Path(outcome.notebook) if outcome.notebook else None,
            outcome.status == "ok",
        )
        outputs = self.plan.keys.hashes(step.outputs)
        if outcome.status == "ok":
            missing = [p for p, h in outputs.items() if h is None]
            if missing:
                outcome.status, outcome.error = (
                    "failed",
                    f"declared outputs were not written: {', '.join(missing)}",
                )
        self.plan.keys.state.record(step.name, outcome, decision.parts, outputs)
        done = outcome.status == "ok"
        self.events(
            step.name,
            "done" if done else "failed",
            message=f"done in {outcome.seconds:.1f} s" if done else f"FAILED: {outcome.error}",
            run_id=outcome.run_id,
            notebook=outcome.notebook,
        )

    def close(self) -> None:
        self.executor.close()
        if self.pool is not None:
            self.pool.close()
        self.events.close()

    def finish(self) -> PipelineResult:
        """Save the stat cache, end the pipeline's MLflow run; :class:`PipelineFailed` if a
        step failed."""
        self.plan.keys.save()
        if self.tracker is not None:
            self.tracker.finish(self.result)
        record_run(self.plan.pipeline, self.result, self.started_at, time.time())
        failed = [s for s in self.result.steps.values() if s.status == "failed"]
        if failed:
            first = failed[0]
            where = f" (executed notebook kept: {first.notebook})" if first.notebook else ""
            raise PipelineFailed(
                f"pipeline {self.plan.pipeline.name!r}: step {first.name!r} failed: "
                f"{first.error}{where}. Fix it and run `mlnb pipeline resume` to re-run only "
                "what failed and what depends on it.",
                self.result,
            )
        return self.result


def _kernel_of(pipeline: Pipeline, step: Step) -> str:
    try:
        doc = json.loads(pipeline.path(step.notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    return kernel_name(doc.get("metadata", {}), step)


def _descendants(pipeline: Pipeline, name: str) -> set[str]:
    out: set[str] = set()
    frontier = {name}
    while frontier:
        children = {s.name for s in pipeline.steps if set(s.needs) & frontier} - out
        out |= children
        frontier = children
    return out


class _Tracker:
    """The pipeline's MLflow runs: one parent, one nested run per executed step."""

    def __init__(self, pipeline: Pipeline) -> None:
        from mlnb.tracking import ensure_experiment, get_client

        settings = get_settings()
        self.pipeline = pipeline
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
                # as a kernel's own run is tagged: the notebook's runs list its step runs
                "mlnb.notebook": str(self.pipeline.path(step.notebook)),
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
