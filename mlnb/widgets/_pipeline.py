"""Step progress of a pipeline run: a table fed by :class:`mlnb.pipeline.StepEvent`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Protocol

from mlnb.widgets._base import Panel, Static, headless, widgets
from mlnb.widgets._render import STYLE, badge, fmt_duration, table

__all__ = ["PipelineProgress", "StepEventLike", "StepsProgress", "run_pipeline"]

_FINAL = {"cached", "done", "failed", "skipped"}


class StepEventLike(Protocol):
    """What :class:`mlnb.pipeline.StepEvent` carries (all this widget reads)."""

    @property
    def step(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def cell(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...


@dataclass
class _StepRow:
    name: str
    state: str = "pending"
    started: float | None = None  # pipeline-elapsed seconds when it started running
    seconds: float | None = None
    cell: str | None = None
    message: str | None = None
    attempts: int = 0


class StepsProgress(Static):
    """The state of every step of one pipeline run, fed by :class:`StepEventLike` events
    (call it with each one: it is an ``on_event`` handler). Thread-safe: events may come
    from the runner's worker threads."""

    def __init__(self, name: str = "pipeline", steps: Sequence[str] = ()) -> None:
        self.name = name
        self.steps: dict[str, _StepRow] = {s: _StepRow(s) for s in steps}
        self.elapsed = 0.0
        self.outcome: str | None = None  # None while running, then "ok" or the failure
        self._lock = threading.Lock()

    def __call__(self, event: StepEventLike) -> None:
        with self._lock:
            row = self.steps.get(event.step)
            if row is None:
                row = self.steps[event.step] = _StepRow(event.step)
            self.elapsed = max(self.elapsed, event.elapsed)
            if event.state in {"running", "retrying"}:
                if row.state not in {"running", "retrying"} or row.started is None:
                    row.started = event.elapsed
                    row.attempts += 1
                row.cell = event.cell or row.cell
            elif event.state in _FINAL:
                if row.started is not None:
                    row.seconds = event.elapsed - row.started
                row.cell = event.cell if event.state == "failed" else None
            if event.state == "retrying":
                row.started = None
            row.state = event.state
            if event.message:
                row.message = event.message

    def finish(self, error: str | None = None) -> None:
        """The run is over: steps that never started are marked, the summary says how."""
        with self._lock:
            for row in self.steps.values():
                if row.state == "pending":
                    row.state, row.message = "skipped", "not selected"
            self.outcome = error or "ok"

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.steps.values():
            out[row.state] = out.get(row.state, 0) + 1
        return out

    def summary(self) -> str:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(self.counts.items()))
        if self.outcome is None:
            status = "running"
        elif self.outcome == "ok":
            status = "finished"
        else:
            status = f"failed: {self.outcome}"
        return f"pipeline {self.name}: {status} after {fmt_duration(self.elapsed)} ({counts})"

    def table_html(self) -> str:
        rows = []
        with self._lock:
            for row in self.steps.values():
                seconds = row.seconds
                if row.state in {"running", "retrying"} and row.started is not None:
                    seconds = self.elapsed - row.started
                rows.append(
                    [
                        f"<b>{escape(row.name)}</b>",
                        badge(row.state),
                        fmt_duration(seconds),
                        f"<code>{escape(row.cell)}</code>" if row.cell else "",
                        escape(row.message or ""),
                    ]
                )
        return table(["step", "state", "time", "cell", "message"], rows)

    def to_html(self) -> str:
        return f"<div><h4>{escape(self.summary())}</h4>{self.table_html()}</div>"

    def to_text(self) -> str:
        lines = [self.summary()]
        for row in list(self.steps.values()):
            lines.append(f"  {row.name:<20} {row.state:<9} {row.message or ''}")
        return "\n".join(lines)


class PipelineProgress(Panel):
    """The live view of a :class:`StepsProgress` (``progress.static``); call it with each
    :class:`mlnb.pipeline.StepEvent`."""

    static: StepsProgress

    def __init__(self, name: str = "pipeline", steps: Sequence[str] = ()) -> None:
        self.static = StepsProgress(name, steps)
        self.header = widgets.HTML()
        self.body = widgets.HTML()
        self._drawing = threading.Lock()  # a stale drawing never overwrites a newer one
        super().__init__(children=[self.header, self.body])
        self._draw()

    def __call__(self, event: StepEventLike) -> None:
        with self._drawing:
            self.static(event)
            self._draw()

    def finish(self, error: str | None = None) -> None:
        with self._drawing:
            self.static.finish(error)
            self._draw()

    @property
    def steps(self) -> dict[str, _StepRow]:
        return self.static.steps

    @property
    def counts(self) -> dict[str, int]:
        return self.static.counts

    def _draw(self) -> None:
        self.header.value = f"{STYLE}<b>mlnb</b> {escape(self.static.summary())}"
        self.body.value = self.static.table_html()


def run_pipeline(
    path: str | Path,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    show: bool = True,
    static: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, PipelineProgress | StepsProgress]:
    """Run a pipeline (as :func:`mlnb.pipeline.run_pipeline`, same keyword arguments) while a
    :class:`PipelineProgress` shows its steps (a :class:`StepsProgress`, shown when the run
    is over, where no widget frontend runs or when ``static``). Returns the result and the
    view; a failed pipeline raises :class:`mlnb.pipeline.PipelineFailed` after the view
    shows it."""
    from mlnb.pipeline import PipelineError, load_pipeline
    from mlnb.pipeline import run_pipeline as run

    pipeline = load_pipeline(path)
    names = [s.name for s in pipeline.steps]
    progress: PipelineProgress | StepsProgress
    if static or (static is None and headless()):
        progress = StepsProgress(pipeline.name, names)
    else:
        progress = PipelineProgress(pipeline.name, names)
    handle = None
    if show:
        from IPython.display import display

        handle = display(progress, display_id=True)
    try:
        result = run(path, overrides, on_event=progress, **kwargs)
    except PipelineError as exc:
        progress.finish(str(exc).split("\n", 1)[0])
        raise
    else:
        progress.finish()
    finally:
        if handle is not None:  # the HTML/text fallback kept by papermill: the final state
            handle.update(progress)
    return result, progress
