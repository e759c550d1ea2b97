"""Notebook pipelines on papermill: a DAG of parameterized notebooks, skipped when unchanged
by content, run in parallel where independent, every step a nested MLflow run.

>>> from mlnb.pipeline import run_pipeline
>>> run_pipeline("notebooks/pipeline.yaml", workers=2)
"""

from __future__ import annotations

from mlnb.pipeline._progress import StepEvent
from mlnb.pipeline._runner import (
    PipelineFailed,
    PipelineResult,
    StepResult,
    parse_overrides,
    pipeline_status,
    run_pipeline,
)
from mlnb.pipeline._spec import Pipeline, PipelineError, Step, load_pipeline, named_paths

__all__ = [
    "Pipeline",
    "PipelineError",
    "PipelineFailed",
    "PipelineResult",
    "Step",
    "StepEvent",
    "StepResult",
    "load_pipeline",
    "named_paths",
    "parse_overrides",
    "pipeline_status",
    "run_pipeline",
]
