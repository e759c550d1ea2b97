"""Notebook widgets (ipywidgets 8): run panel, run comparison, pipeline progress, drift.

>>> from mlnb import widgets
>>> widgets.runs_panel()                    # runs of the active experiment, live while one runs
>>> widgets.compare(["<run id>", "<run id>"])
>>> widgets.run_pipeline("notebooks/pipeline.yaml", workers=2)
>>> widgets.drift_report("http://127.0.0.1:8000")   # or a DriftReport, or its dict

A face: it reads through :mod:`mlnb.tracking`, :mod:`mlnb.pipeline` and :mod:`mlnb.monitor`
and adds no logic. Every widget's display bundle also holds its content as ``text/html``
and ``text/plain`` (what nbconvert shows without widget state). Where no widget frontend can
run (a kernel started by papermill, a pipeline step; ``MLNB_WIDGETS=0``) the functions
return the static view (``RunsTable``, ``Comparison``, ``StepsProgress``, ``DriftSummary``)
instead, so output notebooks hold plain HTML tables.
"""

from __future__ import annotations

from mlnb.widgets._base import headless
from mlnb.widgets._compare import CompareView, Comparison, compare
from mlnb.widgets._drift import DriftSummary, DriftView, drift_report
from mlnb.widgets._pipeline import PipelineProgress, StepsProgress, run_pipeline
from mlnb.widgets._runs import RunsPanel, RunsTable, runs_panel

__all__ = [
    "CompareView",
    "Comparison",
    "DriftSummary",
    "DriftView",
    "PipelineProgress",
    "RunsPanel",
    "RunsTable",
    "StepsProgress",
    "compare",
    "drift_report",
    "headless",
    "run_pipeline",
    "runs_panel",
]
