"""Cron schedules of pipelines and the small foreground scheduler that fires them.

Schedules live in ``<home>/schedules.json`` (``home`` is the project's ``.mlnb`` folder).
Every change is a read-modify-write under an exclusive lock (``schedules.json.lock``)
written to a temporary file and renamed into place, so a concurrent ``mlnb schedule add``
and the scheduler never lose each other's changes and a crash never leaves half a file. A
file that cannot be read is an error and is left untouched.

Time is UTC throughout: cron expressions are interpreted in UTC, and the times stored and
reported are UTC.

Each scheduled time fires **at most once**. The scheduler records a time as fired
(``last_fired``) *before* the run starts: a crash or a kill during the run does not fire
that time again when the scheduler restarts (the run is lost, not doubled). Times that
passed while the scheduler was not running (or busy with another run) are not run late;
only the latest one is, and the earlier ones are reported as missed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from croniter import croniter  # type: ignore[import-untyped]  # no py.typed; stubs optional

from mlnb.exceptions import ScheduleError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CRON_EXAMPLE",
    "Schedule",
    "ScheduleError",
    "add_schedule",
    "due",
    "list_schedules",
    "next_runs",
    "now_utc",
    "parse_cron",
    "remove_schedule",
    "run_scheduler",
    "schedules_file",
]

UTC = timezone.utc
CRON_EXAMPLE = '"*/15 * * * *" (5 fields: minute hour day month weekday; times are UTC)'
#: longest pause of the scheduler between two looks at the schedules file, in seconds
MAX_SLEEP = 30.0
#: missed runs reported one line each; more are summarised in one line
_LISTED_MISSED = 10

_T = TypeVar("_T")


@dataclass
class Schedule:
    """One pipeline run on a cron expression."""

    id: str
    #: absolute path of the ``pipeline.yaml``
    pipeline: str
    cron: str
    #: epoch seconds; scheduled times up to this one are not due
    created_at: float
    #: epoch seconds of the scheduled time last fired (not when its run ended)
    last_fired: float | None = None
    enabled: bool = True


def now_utc() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def parse_cron(expr: str) -> str:
    """Check a cron expression (5 fields or an alias like ``@hourly``); return it normalised.

    Raises :class:`ScheduleError` naming the expression and showing an example.
    """
    fields = expr.split()
    if not expr.strip().startswith("@") and len(fields) != 5:
        reason = f"it has {len(fields)} field{'s' if len(fields) != 1 else ''}, not 5"
    else:
        try:
            croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
            return " ".join(fields)
        except (ValueError, TypeError, KeyError) as exc:  # croniter's errors are ValueErrors
            reason = str(exc) or type(exc).__name__
    raise ScheduleError(f"bad cron expression {expr!r}: {reason}; use e.g. {CRON_EXAMPLE}")


def schedules_file(home: Path | None = None) -> Path:
    """Where the schedules are kept: ``<home>/schedules.json``."""
    if home is None:
        from mlnb.config import get_settings

        home = get_settings().home
    return home / "schedules.json"


def list_schedules(home: Path | None = None) -> list[Schedule]:
    """Every schedule, in the order they were added."""
    return _read(schedules_file(home))


def add_schedule(
    pipeline: Path, cron: str, home: Path | None = None, *, now: datetime | None = None
) -> Schedule:
    """Schedule ``pipeline`` (a ``pipeline.yaml``) on ``cron``; the first due time is the
    first one after ``now`` (default: the current time)."""
    cron = parse_cron(cron)
    path = Path(pipeline).expanduser().resolve()
    if not path.is_file():
        raise ScheduleError(f"pipeline file {path} does not exist; give a pipeline.yaml")
    created = _utc(now if now is not None else now_utc()).timestamp()

    def add(schedules: list[Schedule]) -> Schedule:
        taken = {s.id for s in schedules}
        new_id = secrets.token_hex(4)
        while new_id in taken:  # pragma: no cover - 1 in 4 billion
            new_id = secrets.token_hex(4)
        schedule = Schedule(id=new_id, pipeline=str(path), cron=cron, created_at=created)
        schedules.append(schedule)
        return schedule

    return _update(schedules_file(home), add)


def remove_schedule(schedule_id: str, home: Path | None = None) -> Schedule:
    """Remove the schedule with this id and return it."""

    def remove(schedules: list[Schedule]) -> Schedule:
        for index, schedule in enumerate(schedules):
            if schedule.id == schedule_id:
                return schedules.pop(index)
        known = ", ".join(s.id for s in schedules) or "none, there are no schedules"
        raise ScheduleError(f"no schedule with id {schedule_id!r}; known ids: {known}")

    return _update(schedules_file(home), remove)


def next_runs(schedule: Schedule, now: datetime) -> datetime:
    """The first scheduled time strictly after ``now`` (UTC)."""
    return _times_after(schedule.cron, _utc(now))()


def due(schedule: Schedule, now: datetime) -> tuple[datetime | None, list[datetime]]:
    """``(to_run, missed)`` at ``now``: the latest scheduled time ``<= now`` not fired yet
    (``None`` if there is none), and the earlier unfired times, to report but not to run.

    Unfired means after ``last_fired``, or after ``created_at`` for a schedule never fired.
    """
    now = _utc(now)
    following = _times_after(schedule.cron, _anchor(schedule))
    times: list[datetime] = []
    while (when := following()) <= now:
        times.append(when)
    if not times:
        return None, []
    return times[-1], times[:-1]


def run_scheduler(
    run: Callable[[Path], int],
    *,
    home: Path | None = None,
    clock: Callable[[], datetime] = now_utc,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], bool] = lambda: False,
    report: Callable[[str], None] = print,
    max_sleep: float = MAX_SLEEP,
) -> None:
    """Fire due schedules with ``run(pipeline_path) -> exit code`` until ``stop()``.

    Each tick re-reads the schedules file (schedules added or removed meanwhile count),
    fires each enabled schedule's due time once and reports the missed ones, then sleeps
    until the next scheduled time (at most ``max_sleep`` seconds). A failing or raising
    ``run`` is reported and the loop goes on.
    """
    path = schedules_file(home)
    started = _utc(clock())
    while True:
        try:
            schedules = _read(path)
        except ScheduleError as exc:
            report(f"cannot read the schedules: {exc}")
            schedules = []
        for schedule in schedules:
            if schedule.enabled:
                _fire(schedule, path, run, clock, report, started)
        if stop():
            return
        sleep(_pause(schedules, _utc(clock()), max_sleep))


# -- the scheduler's steps ---------------------------------------------------------------
def _fire(
    schedule: Schedule,
    path: Path,
    run: Callable[[Path], int],
    clock: Callable[[], datetime],
    report: Callable[[str], None],
    started: datetime,
) -> None:
    try:
        when, missed = due(schedule, clock())
    except ScheduleError as exc:
        report(f"schedule {schedule.id} ({schedule.pipeline}) is skipped: {exc}")
        return
    if when is None or not _claim(path, schedule.id, when):
        return
    schedule.last_fired = when.timestamp()
    name = schedule.pipeline
    for line in _missed_lines(name, missed, started):
        report(line)
    report(f"running {name} (scheduled for {_fmt(when)})")
    try:
        code = run(Path(name))
    except Exception as exc:
        report(f"run of {name} scheduled for {_fmt(when)} raised {type(exc).__name__}: {exc}")
        return
    outcome = "succeeded" if code == 0 else "failed"
    report(f"run of {name} scheduled for {_fmt(when)} {outcome} (exit code {code})")


def _claim(path: Path, schedule_id: str, when: datetime) -> bool:
    """Record ``when`` as fired, unless the schedule is gone, disabled or already past it
    (another scheduler fired it). Persisted before the run starts: at most once."""
    stamp = when.timestamp()

    def claim(schedules: list[Schedule]) -> bool:
        for schedule in schedules:
            if schedule.id == schedule_id and schedule.enabled:
                if schedule.last_fired is not None and schedule.last_fired >= stamp:
                    return False
                schedule.last_fired = stamp
                return True
        return False

    return _update(path, claim)


def _missed_lines(name: str, missed: list[datetime], started: datetime) -> list[str]:
    def why(when: datetime) -> str:
        return "not running" if when < started else "busy with another run"

    if len(missed) > _LISTED_MISSED:
        first, last = missed[0], missed[-1]
        reason = why(first) if why(first) == why(last) else "not running or busy"
        return [
            f"missed {len(missed)} runs of {name} from {_fmt(first)} to {_fmt(last)}"
            f" (the scheduler was {reason})"
        ]
    return [f"missed run of {name} at {_fmt(t)} (the scheduler was {why(t)})" for t in missed]


def _pause(schedules: list[Schedule], now: datetime, max_sleep: float) -> float:
    """Seconds until the next unfired time of any enabled schedule, capped at ``max_sleep``."""
    pause = max_sleep
    for schedule in schedules:
        if schedule.enabled:
            with contextlib.suppress(ScheduleError):  # reported by _fire
                upcoming = next_runs(schedule, _anchor(schedule))
                pause = min(pause, (upcoming - now).total_seconds())
    return max(pause, 0.0)


# -- times --------------------------------------------------------------------------------
def _utc(when: datetime) -> datetime:
    """``when`` in UTC; a naive datetime is taken to be UTC already."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _anchor(schedule: Schedule) -> datetime:
    stamp = schedule.created_at if schedule.last_fired is None else schedule.last_fired
    return datetime.fromtimestamp(stamp, UTC)


def _fmt(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _times_after(cron: str, start: datetime) -> Callable[[], datetime]:
    """A function returning the scheduled times strictly after ``start``, one per call."""
    iterator = croniter(parse_cron(cron), start)

    def following() -> datetime:
        when: datetime = iterator.get_next(datetime)
        return when

    return following


# -- the file -----------------------------------------------------------------------------
def _read(path: Path) -> list[Schedule]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        return [Schedule(**entry) for entry in json.loads(text)["schedules"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ScheduleError(
            f"{path} is not a valid schedules file ({type(exc).__name__}: {exc});"
            " it is left as it is: fix it or move it away"
        ) from exc


def _write(path: Path, schedules: list[Schedule]) -> None:
    data = {"version": 1, "schedules": [asdict(s) for s in schedules]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the schedules file against other processes (POSIX; no lock on Windows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield  # the lock goes with the file's closing


def _update(path: Path, change: Callable[[list[Schedule]], _T]) -> _T:
    """Read, ``change`` in place and write back the schedules under the lock. Nothing is
    written if reading or ``change`` fails."""
    with _locked(path):
        schedules = _read(path)
        result = change(schedules)
        _write(path, schedules)
        return result
