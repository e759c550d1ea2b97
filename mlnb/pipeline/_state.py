"""A pipeline's state between runs, and the status of its steps.

The state of the last run of each step is kept in ``.mlnb/pipelines/<name>.json``::

    {"steps": {"<step>": {"status": "ok" | "failed",
                          "fingerprint": "<hash of the parts>",
                          "parts": {"code": ..., "params": ..., "inputs": ...,
                                    "upstream": ..., "environment": ...},
                          "outputs": {"<path>": "<content hash>" | null},
                          "run_id": "<MLflow run id>", "notebook": "<executed copy>",
                          "error": "<why it failed>" | null,
                          "finished_at": <epoch seconds>}}}

Guarantees: a step's record is written once its run has ended (never for a cached or
skipped step), by replacing the whole file (written beside it, then renamed), so a reader
sees the old state or the new one, never half of one; a damaged or unreadable file only
means every step runs again. :func:`pipeline_status` reads the state and runs nothing.

Each run of the pipeline (all its steps cached included) also adds one line to
``.mlnb/pipelines/<name>.history.jsonl``: when it started and ended, its status, its MLflow
run, and each step's status (``ok``, ``cached``, ``failed``, ``skipped``), run id, executed
notebook, seconds and error. Lines are appended whole; the file keeps the last
:data:`HISTORY_KEPT` runs; :func:`pipeline_history` reads it, newest first, skipping a line it
cannot read.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.config import get_settings
from mlnb.pipeline._cache import StepKeys, decide
from mlnb.pipeline._params import effective_params
from mlnb.pipeline._spec import Pipeline, load_pipeline, topological_order
from mlnb.pipeline._step import StepResult

__all__ = ["HISTORY_KEPT", "PipelineResult", "PipelineState", "pipeline_history", "pipeline_status"]

#: runs kept in a pipeline's history file (older ones are dropped as new ones are added)
HISTORY_KEPT = 200


@dataclass
class PipelineResult:
    """What one :func:`mlnb.pipeline.run_pipeline` did: the pipeline run's MLflow id (None
    when no step had to run), the folder of its executed notebooks, and each step's result
    (``ok``, ``cached``, ``failed`` or ``skipped``)."""

    name: str
    run_id: str | None
    folder: Path
    steps: dict[str, StepResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(s.status in {"ok", "cached"} for s in self.steps.values())


class PipelineState:
    """``.mlnb/pipelines/<name>.json``: the record of each step's last run."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.path = get_settings().home / "pipelines" / f"{pipeline.name}.json"
        self.data: dict[str, Any] = {"steps": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                self.data = {"steps": {}}  # a damaged state only means re-running

    def step(self, name: str) -> dict[str, Any]:
        """The record of the step's last run (a copy; {} if it never ran)."""
        return dict(self.data["steps"].get(name, {}))

    def record(
        self,
        name: str,
        outcome: StepResult,
        parts: dict[str, Any],
        outputs: dict[str, str | None],
    ) -> None:
        """Keep the run of step ``name`` that just ended as its last run."""
        self.save_step(
            name,
            {
                "status": outcome.status,
                "fingerprint": outcome.fingerprint,
                "parts": parts,
                "outputs": outputs,
                "run_id": outcome.run_id,
                "notebook": outcome.notebook,
                "error": outcome.error,
                "finished_at": time.time(),
            },
        )

    def save_step(self, name: str, record: dict[str, Any]) -> None:
        self.data["steps"][name] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


def pipeline_status(
    path: str | Path, overrides: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Each step: up to date or not, and why."""
    pipeline = load_pipeline(path)
    keys = StepKeys(pipeline, effective_params(pipeline, overrides or {}), PipelineState(pipeline))
    rows = []
    for step in topological_order(pipeline):
        decision = decide(keys, step)
        rows.append(
            {
                "step": step.name,
                "up_to_date": decision.cached,
                "reasons": decision.reasons,
                "last_run_id": decision.last.get("run_id"),
                "last_status": decision.last.get("status"),
                "last_notebook": decision.last.get("notebook"),
                "last_finished_at": decision.last.get("finished_at"),
            }
        )
    return rows


def _history_file(pipeline: Pipeline) -> Path:
    return get_settings().home / "pipelines" / f"{pipeline.name}.history.jsonl"


def record_run(
    pipeline: Pipeline, result: PipelineResult, started_at: float, finished_at: float
) -> None:
    """Add this run of ``pipeline`` to its history (see the module docstring)."""
    entry = {
        "pipeline": str(pipeline.source),
        "run_id": result.run_id,
        "status": "succeeded" if result.ok else "failed",
        "started_at": started_at,
        "finished_at": finished_at,
        "steps": [
            {
                "name": s.name,
                "status": s.status,
                "run_id": s.run_id,
                "notebook": s.notebook,
                "seconds": s.seconds,
                "error": s.error,
            }
            for s in result.steps.values()
        ],
    }
    path = _history_file(pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, default=str) + "\n")
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) > 2 * HISTORY_KEPT:  # trimmed now and then, not at every run
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines[-HISTORY_KEPT:]) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def pipeline_history(path: str | Path | Pipeline, limit: int = 50) -> list[dict[str, Any]]:
    """The last ``limit`` runs of the pipeline ``path`` names, newest first: each a dict
    with ``run_id``, ``status`` (``succeeded``/``failed``), ``started_at`` and
    ``finished_at`` (epoch seconds) and ``steps`` (``name``, ``status``, ``run_id``,
    ``notebook``, ``seconds``, ``error``), as :func:`mlnb.pipeline.run_pipeline` recorded them.
    Runs of another pipeline file with the same name are left out."""
    pipeline = path if isinstance(path, Pipeline) else load_pipeline(path)
    history = _history_file(pipeline)
    if not history.is_file():
        return []
    source = str(pipeline.source)
    runs: list[dict[str, Any]] = []
    for line in reversed(history.read_text(encoding="utf-8").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(entry, dict) and entry.get("pipeline") == source:
            runs.append(entry)
            if len(runs) >= limit:
                break
    return runs
