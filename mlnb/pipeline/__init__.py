"""Notebook pipelines on papermill: a DAG of parameterized notebooks, skipped when unchanged
by content, run in parallel where independent, every step a nested MLflow run.

>>> from mlnb.pipeline import run_pipeline
>>> run_pipeline("notebooks/pipeline.yaml", workers=2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlnb._lazy import lazy_names
from mlnb.pipeline._executors import Executor, executors
from mlnb.pipeline._progress import StepEvent
from mlnb.pipeline._runner import (
    PipelineFailed,
    PipelineResult,
    StepResult,
    own_process,
    parse_overrides,
    pipeline_status,
    run_pipeline,
)
from mlnb.pipeline._spec import Pipeline, PipelineError, Step, load_pipeline, named_paths
from mlnb.pipeline._state import pipeline_history

if TYPE_CHECKING:
    from mlnb.pipeline._schedule import (
        Schedule,
        add_schedule,
        list_schedules,
        next_runs,
        remove_schedule,
        run_scheduler,
    )

__all__ = [
    "Executor",
    "Pipeline",
    "PipelineError",
    "PipelineFailed",
    "PipelineResult",
    "Schedule",
    "Step",
    "StepEvent",
    "StepResult",
    "add_schedule",
    "executors",
    "list_schedules",
    "load_pipeline",
    "named_paths",
    "next_runs",
    "own_process",
    "parse_overrides",
    "pipeline_history",
    "pipeline_status",
    "remove_schedule",
    "run_pipeline",
    "run_scheduler",
]

# Schedules (`mlnb schedule`) load on first use.
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "Schedule": "._schedule",
        "add_schedule": "._schedule",
        "list_schedules": "._schedule",
        "next_runs": "._schedule",
        "remove_schedule": "._schedule",
        "run_scheduler": "._schedule",
    },
)
