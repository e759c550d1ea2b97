"""What the pipeline panel asks for: a pipeline's DAG with each step's last run, the history
of its runs, its cron schedules, and a read-only view of a step's executed notebook.

Every pipeline is loaded with the server-root check (``confine=root.pipeline``), so a spec
naming a path outside the root is a 403 before anything it names is read. Run ids are given
in full, with a link into the MLflow UI (:func:`mlnb.labserver._actions.ui_base`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.labserver._errors import LabError
from mlnb.labserver._models import (
    HistoryRun,
    HistoryStep,
    PipelineGraph,
    PipelineHistory,
    ScheduleInfo,
    ScheduleRequest,
    SchedulesResponse,
    StepNode,
)
from mlnb.labserver._paths import ServerRoot

if TYPE_CHECKING:
    from mlnb.pipeline import Pipeline, Schedule

__all__ = [
    "RunLinks",
    "add_schedule",
    "executed_notebook_html",
    "graph",
    "history",
    "load",
    "remove_schedule",
    "schedules",
]

#: what the schedule list says about firing them
SCHEDULER_HINT = (
    "schedules fire while `mlnb schedule run` runs in the project (times are UTC); "
    "start it in a terminal or as a service"
)


def load(root: ServerRoot, path: str) -> Pipeline:
    """The pipeline file ``path`` (or the pipeline.yaml next to a notebook), checked."""
    from mlnb.labserver._actions import find_pipeline
    from mlnb.pipeline import load_pipeline

    return load_pipeline(find_pipeline(root, path), confine=root.pipeline)


class RunLinks:
    """Links to the MLflow UI for the runs of one pipeline (its experiment, looked up once,
    only when there is a run to link to)."""

    def __init__(self, pipeline_name: str, configured_ui: str) -> None:
        from mlnb.config import get_settings
        from mlnb.labserver._actions import ui_base

        self.settings = get_settings()
        self.base, self.hint = ui_base(self.settings.tracking_uri, configured_ui)
        self.name = pipeline_name
        self._experiment: str | None = None
        self._looked = False

    def url(self, run_id: str | None) -> str | None:
        if not run_id:
            return None
        if not self._looked:
            self._looked = True
            try:
                from mlnb.tracking import get_client

                found = get_client(self.settings).get_experiment_by_name(self.name)
                self._experiment = str(found.experiment_id) if found is not None else None
            except Exception:  # no tracking server: the run id is still shown, with copy
                self._experiment = None
        if self._experiment is None:
            return None
        return f"{self.base}/#/experiments/{self._experiment}/runs/{run_id}"


def _shown(root: ServerRoot, path: str | None) -> str | None:
    return root.relative(Path(path)) if path else None


def graph(root: ServerRoot, path: str, configured_ui: str, job_id: str | None) -> PipelineGraph:
    from mlnb.pipeline import pipeline_status

    pipeline = load(root, path)
    rows = {row["step"]: row for row in pipeline_status(pipeline.source)}
    links = RunLinks(pipeline.name, configured_ui)
    steps = []
    for step in pipeline.steps:
        row = rows[step.name]
        steps.append(
            StepNode(
                name=step.name,
                notebook=root.relative(pipeline.path(step.notebook)),
                needs=list(step.needs),
                up_to_date=bool(row["up_to_date"]),
                reasons=list(row["reasons"]),
                last_status=row["last_status"],
                last_run_id=row["last_run_id"],
                last_notebook=_shown(root, row["last_notebook"]),
                last_url=links.url(row["last_run_id"]),
            )
        )
    return PipelineGraph(
        pipeline=root.relative(pipeline.source),
        name=pipeline.name,
        schedule=pipeline.schedule,
        steps=steps,
        job_id=job_id,
        ui_url=links.base,
        ui_hint=links.hint,
    )


def history(root: ServerRoot, path: str, configured_ui: str, limit: int = 50) -> PipelineHistory:
    from mlnb.pipeline import pipeline_history

    pipeline = load(root, path)
    links = RunLinks(pipeline.name, configured_ui)
    runs = [
        HistoryRun(
            run_id=entry.get("run_id"),
            status=str(entry.get("status", "failed")),
            started_at=float(entry.get("started_at", 0.0)),
            finished_at=float(entry.get("finished_at", 0.0)),
            steps=[_history_step(root, links, s) for s in entry.get("steps", [])],
        )
        for entry in pipeline_history(pipeline, limit=limit)
    ]
    return PipelineHistory(pipeline=root.relative(pipeline.source), runs=runs)


def _history_step(root: ServerRoot, links: RunLinks, step: dict[str, Any]) -> HistoryStep:
    return HistoryStep(
        name=str(step.get("name", "?")),
        status=str(step.get("status", "failed")),
        run_id=step.get("run_id"),
        notebook=_shown(root, step.get("notebook")),
        url=links.url(step.get("run_id")),
        seconds=float(step.get("seconds") or 0.0),
        error=step.get("error"),
    )


# -- schedules ---------------------------------------------------------------------------
def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="minutes")


def _info(root: ServerRoot, schedule: Schedule) -> ScheduleInfo:
    from mlnb.pipeline import next_runs

    try:
        upcoming: str | None = next_runs(schedule, datetime.now(timezone.utc)).isoformat(
            timespec="minutes"
        )
    except Exception:  # a schedules file edited by hand: shown, its next time unknown
        upcoming = None
    return ScheduleInfo(
        id=schedule.id,
        pipeline=root.relative(Path(schedule.pipeline)),
        cron=schedule.cron,
        next_run=upcoming,
        last_fired=_iso(schedule.last_fired),
        enabled=schedule.enabled,
    )


def _under_root(root: ServerRoot, schedule: Schedule) -> bool:
    full = Path(schedule.pipeline).resolve()
    return full.is_relative_to(root.root)


def schedules(root: ServerRoot, path: str) -> SchedulesResponse:
    """The schedules of the pipeline ``path`` (every schedule under the root without one)."""
    from mlnb.pipeline import list_schedules

    found = [s for s in list_schedules() if _under_root(root, s)]
    if path:
        source = str(load(root, path).source)
        found = [s for s in found if str(Path(s.pipeline).resolve()) == source]
    return SchedulesResponse(
        schedules=[_info(root, s) for s in found], scheduler_hint=SCHEDULER_HINT
    )


def add_schedule(root: ServerRoot, request: ScheduleRequest) -> SchedulesResponse:
    """Schedule the pipeline (checked as a run from the UI would be); a bad cron expression
    is mlnb.pipeline's own error (400), naming the problem and an example."""
    from mlnb.pipeline import add_schedule as add

    pipeline = load(root, request.path)
    add(pipeline.source, request.cron)
    return schedules(root, request.path)


def remove_schedule(root: ServerRoot, schedule_id: str, path: str) -> SchedulesResponse:
    from mlnb.pipeline import list_schedules
    from mlnb.pipeline import remove_schedule as remove

    for schedule in list_schedules():
        if schedule.id == schedule_id and not _under_root(root, schedule):
            raise LabError(
                403,
                f"schedule {schedule_id} runs {schedule.pipeline}, outside the server root "
                f"{root.root}",
                "remove it with `mlnb schedule remove` in its project",
            )
    remove(schedule_id)
    return schedules(root, path)


# -- executed notebooks --------------------------------------------------------------------
def executed_notebook_html(root: ServerRoot, path: str) -> str:
    """A step's executed notebook (``.mlnb/runs/<run>/<step>.ipynb``, hidden from the file
    browser) as read-only HTML; any other path is refused."""
    from mlnb.config import get_settings

    runs = (get_settings().home / "runs").resolve()
    full = ServerRoot(root.root, allow_hidden=True).request_path(
        path, what="executed notebook", suffix=".ipynb"
    )
    if not full.is_relative_to(runs):
        raise LabError(
            403,
            f"path: {path!r} is not an executed notebook of a pipeline run (those are in "
            f"{root.relative(runs)}/)",
            "the pipeline panel links to its steps' executed notebooks; open any other "
            "notebook from the file browser",
        )
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(full, as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    return str(body)
