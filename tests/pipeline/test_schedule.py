"""Pipeline schedules: the schedules file, cron validation, which times are due, and the
foreground scheduler driven by a fake clock (real croniter, real files, no real waiting)."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlnb.pipeline._schedule import (
    Schedule,
    ScheduleError,
    add_schedule,
    due,
    list_schedules,
    next_runs,
    parse_cron,
    remove_schedule,
    run_scheduler,
    schedules_file,
)

UTC = timezone.utc
EXAMPLE = re.escape('"*/15 * * * *" (5 fields: minute hour day month weekday')


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 5, 1, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / ".mlnb"


@pytest.fixture
def pipe(tmp_path: Path) -> Path:
    path = tmp_path / "train" / "pipeline.yaml"
    path.parent.mkdir()
    path.write_text("steps: []\n", encoding="utf-8")
    return path


@pytest.fixture
def pipe2(tmp_path: Path) -> Path:
    path = tmp_path / "report" / "pipeline.yaml"
    path.parent.mkdir()
    path.write_text("steps: []\n", encoding="utf-8")
    return path


class FakeTime:
    """A clock that only moves when the scheduler sleeps (or a fake run takes time)."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        assert len(self.sleeps) < 1000, "the scheduler loops without getting anywhere"
        self.now += timedelta(seconds=seconds)


def hourly(created: datetime, last_fired: datetime | None = None) -> Schedule:
    return Schedule(
        id="abcd1234",
        pipeline="/p/pipeline.yaml",
        cron="0 * * * *",
        created_at=created.timestamp(),
        last_fired=None if last_fired is None else last_fired.timestamp(),
    )


# -- the schedules file ------------------------------------------------------------------
def test_add_list_remove_round_trip(home: Path, pipe: Path, pipe2: Path) -> None:
    first = add_schedule(pipe, "*/15  * * * *", home, now=at(9, 30))
    second = add_schedule(pipe2, "0 6 * * mon-fri", home, now=at(9, 31))

    assert re.fullmatch(r"[0-9a-f]{8}", first.id)
    assert first.id != second.id
    assert first == Schedule(
        id=first.id,
        pipeline=str(pipe.resolve()),
        cron="*/15 * * * *",  # normalised
        created_at=at(9, 30).timestamp(),
        last_fired=None,
        enabled=True,
    )
    assert list_schedules(home) == [first, second]
    stored = json.loads((home / "schedules.json").read_text(encoding="utf-8"))
    assert stored["version"] == 1
    assert [s["id"] for s in stored["schedules"]] == [first.id, second.id]

    assert remove_schedule(first.id, home) == first
    assert list_schedules(home) == [second]
    assert remove_schedule(second.id, home) == second
    assert list_schedules(home) == []
    assert sorted(p.name for p in home.iterdir()) == ["schedules.json", "schedules.json.lock"]


def test_no_file_means_no_schedules(home: Path) -> None:
    assert list_schedules(home) == []
    assert not home.exists()


def test_default_home_is_the_projects_mlnb_folder(
    tmp_path: Path, pipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlnb.config import reset_settings

    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv("MLNB_PROJECT_ROOT", str(root))
    reset_settings()
    try:
        schedule = add_schedule(pipe, "@hourly")
        assert schedules_file() == root / ".mlnb" / "schedules.json"
        assert list_schedules(root / ".mlnb") == [schedule]
    finally:
        reset_settings()


def test_a_relative_pipeline_path_is_stored_absolute(
    home: Path, pipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pipe.parent.parent)
    schedule = add_schedule(Path("train/pipeline.yaml"), "@daily", home)
    assert schedule.pipeline == str(pipe.resolve())


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("61 * * * *", "out of range"),
        ("every day", "it has 2 fields, not 5"),
        ("* * *", "it has 3 fields, not 5"),
        ("* * * * * *", "it has 6 fields, not 5"),
        ("", "it has 0 fields, not 5"),
        ("0 0 31 2 *", "failed to find next date"),  # 31 February never comes
        ("@sometimes", ""),
    ],
)
def test_bad_cron_expression(home: Path, pipe: Path, expr: str, reason: str) -> None:
    kept = add_schedule(pipe, "0 * * * *", home)
    with pytest.raises(ScheduleError, match=re.escape(f"bad cron expression {expr!r}")) as info:
        add_schedule(pipe, expr, home)
    assert re.search(EXAMPLE, str(info.value))
    assert reason in str(info.value)
    assert info.value.exit_code == 2
    assert list_schedules(home) == [kept]  # nothing recorded is lost, nothing added


@pytest.mark.parametrize(
    ("expr", "normal"),
    [
        ("*/15 * * * *", "*/15 * * * *"),
        (" 0  9 * * mon-fri ", "0 9 * * mon-fri"),
        ("@hourly", "@hourly"),
    ],
)
def test_parse_cron_normalises_good_expressions(expr: str, normal: str) -> None:
    assert parse_cron(expr) == normal


def test_missing_pipeline_file(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "pipeline.yaml"
    with pytest.raises(ScheduleError, match=re.escape(f"pipeline file {missing} does not exist")):
        add_schedule(missing, "0 * * * *", home)
    with pytest.raises(ScheduleError, match="does not exist"):
        add_schedule(tmp_path, "0 * * * *", home)  # a folder is not a pipeline file
    assert not (home / "schedules.json").exists()


def test_remove_unknown_id_names_the_known_ones(home: Path, pipe: Path, pipe2: Path) -> None:
    with pytest.raises(ScheduleError, match="no schedule with id 'deadbeef'; known ids: none"):
        remove_schedule("deadbeef", home)
    a = add_schedule(pipe, "0 * * * *", home)
    b = add_schedule(pipe2, "0 * * * *", home)
    with pytest.raises(
        ScheduleError, match=re.escape(f"no schedule with id 'deadbeef'; known ids: {a.id}, {b.id}")
    ):
        remove_schedule("deadbeef", home)
    assert list_schedules(home) == [a, b]


def test_an_unreadable_file_is_an_error_and_is_left_alone(home: Path, pipe: Path) -> None:
    home.mkdir()
    path = home / "schedules.json"
    path.write_text('{"schedules": [{"id": "x"', encoding="utf-8")
    with pytest.raises(ScheduleError, match="is not a valid schedules file"):
        list_schedules(home)
    with pytest.raises(ScheduleError, match="fix it or move it away"):
        add_schedule(pipe, "0 * * * *", home)
    assert path.read_text(encoding="utf-8") == '{"schedules": [{"id": "x"'


def test_concurrent_adds_are_all_kept(home: Path, pipe: Path) -> None:
    errors: list[BaseException] = []

    def add() -> None:
        try:
            for _ in range(5):
                add_schedule(pipe, "0 * * * *", home)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({s.id for s in list_schedules(home)}) == 40


# -- due times ------------------------------------------------------------------------------
def test_nothing_due_before_the_first_time() -> None:
    schedule = hourly(created=at(9, 30))
    assert due(schedule, at(9, 30)) == (None, [])
    assert due(schedule, at(9, 59, 59)) == (None, [])


def test_exactly_one_due_at_the_scheduled_minute() -> None:
    schedule = hourly(created=at(9, 30))
    assert due(schedule, at(10)) == (at(10), [])
    assert due(schedule, at(10, 59, 59)) == (at(10), [])


def test_a_fired_time_is_not_due_again() -> None:
    schedule = hourly(created=at(9, 30), last_fired=at(10))
    assert due(schedule, at(10)) == (None, [])
    assert due(schedule, at(10, 59)) == (None, [])
    assert due(schedule, at(11)) == (at(11), [])


def test_a_time_equal_to_the_creation_is_not_due() -> None:
    assert due(hourly(created=at(10)), at(10, 30)) == (None, [])


def test_three_hours_late_runs_the_latest_and_reports_the_missed() -> None:
    schedule = hourly(created=at(7, 30))
    assert due(schedule, at(10, 30)) == (at(10), [at(8), at(9)])


def test_due_takes_naive_times_as_utc_and_converts_others() -> None:
    schedule = hourly(created=at(7, 30))
    assert due(schedule, datetime(2024, 5, 1, 8, 0)) == (at(8), [])
    plus_two = timezone(timedelta(hours=2))
    assert due(schedule, datetime(2024, 5, 1, 10, 0, tzinfo=plus_two)) == (at(8), [])


def test_next_runs() -> None:
    assert next_runs(hourly(created=at(9, 30)), at(10)) == at(11)
    assert next_runs(hourly(created=at(9, 30)), at(10, 0, 1)) == at(11)
    every15 = Schedule(id="x", pipeline="/p", cron="*/15 * * * *", created_at=0.0)
    assert next_runs(every15, at(10, 7)) == at(10, 15)


# -- the scheduler ------------------------------------------------------------------------
def test_scheduler_started_late_fires_once_and_reports_the_missed(home: Path, pipe: Path) -> None:
    add_schedule(pipe, "0 * * * *", home, now=at(7, 30))
    fake = FakeTime(at(10, 30))
    runs: list[Path] = []
    reports: list[str] = []

    def run(path: Path) -> int:
        runs.append(path)
        return 0

    # the first tick, then a second one at the same time (the clock does not move)
    ticks = iter([False, True])
    run_scheduler(
        run,
        home=home,
        clock=fake.clock,
        sleep=fake.sleep,
        stop=lambda: next(ticks),
        report=reports.append,
    )
    p = str(pipe.resolve())
    assert runs == [pipe.resolve()]
    assert reports == [
        f"missed run of {p} at 2024-05-01 08:00 UTC (the scheduler was not running)",
        f"missed run of {p} at 2024-05-01 09:00 UTC (the scheduler was not running)",
        f"running {p} (scheduled for 2024-05-01 10:00 UTC)",
        f"run of {p} scheduled for 2024-05-01 10:00 UTC succeeded (exit code 0)",
    ]
    assert fake.sleeps == [30.0]
    assert list_schedules(home)[0].last_fired == at(10).timestamp()


def test_scheduler_runs_once_per_due_time_and_sleeps_until_the_next(home: Path, pipe: Path) -> None:
    add_schedule(pipe, "0 * * * *", home, now=at(9, 30))
    fake = FakeTime(at(9, 30))
    runs: list[tuple[Path, datetime]] = []
    reports: list[str] = []
    codes = iter([0, 3, 0])

    def run(path: Path) -> int:
        runs.append((path, fake.now))
        return next(codes)

    run_scheduler(
        run,
        home=home,
        clock=fake.clock,
        sleep=fake.sleep,
        stop=lambda: fake.now >= at(12),
        report=reports.append,
        max_sleep=3600,
    )
    p = str(pipe.resolve())
    assert runs == [(pipe.resolve(), at(10)), (pipe.resolve(), at(11)), (pipe.resolve(), at(12))]
    assert fake.sleeps == [1800.0, 3600.0, 3600.0]
    assert reports == [
        f"running {p} (scheduled for 2024-05-01 10:00 UTC)",
        f"run of {p} scheduled for 2024-05-01 10:00 UTC succeeded (exit code 0)",
        f"running {p} (scheduled for 2024-05-01 11:00 UTC)",
        f"run of {p} scheduled for 2024-05-01 11:00 UTC failed (exit code 3)",
        f"running {p} (scheduled for 2024-05-01 12:00 UTC)",
        f"run of {p} scheduled for 2024-05-01 12:00 UTC succeeded (exit code 0)",
    ]


def test_scheduler_sleeps_at_most_max_sleep(home: Path, pipe: Path) -> None:
    add_schedule(pipe, "0 * * * *", home, now=at(9, 30))
    fake = FakeTime(at(9, 30))
    runs: list[datetime] = []

    def run(path: Path) -> int:
        runs.append(fake.now)
        return 0

    run_scheduler(
        run,
        home=home,
        clock=fake.clock,
        sleep=fake.sleep,
        stop=lambda: fake.now >= at(12),
        report=lambda line: None,
    )
    assert runs == [at(10), at(11), at(12)]
    assert len(fake.sleeps) == 300  # 2.5 h in 30 s steps
    assert set(fake.sleeps) == {30.0}


def test_the_fired_time_is_recorded_before_the_run_starts(home: Path, pipe: Path) -> None:
    add_schedule(pipe, "0 * * * *", home, now=at(9, 30))
    seen: list[float | None] = []

    def crash(path: Path) -> int:
        seen.append(list_schedules(home)[0].last_fired)
        raise KeyboardInterrupt  # the scheduler is killed during the run

    fake = FakeTime(at(10, 5))
    with pytest.raises(KeyboardInterrupt):
        run_scheduler(crash, home=home, clock=fake.clock, sleep=fake.sleep, report=print)
    assert seen == [at(10).timestamp()]

    # restarted in the same hour: the 10:00 run is not fired a second time
    runs: list[Path] = []
    run_scheduler(
        lambda path: runs.append(path) or 0,
        home=home,
        clock=fake.clock,
        sleep=fake.sleep,
        stop=lambda: True,
        report=print,
    )
    assert runs == []


def test_an_exception_in_run_does_not_stop_the_loop(home: Path, pipe: Path) -> None:
    add_schedule(pipe, "0 * * * *", home, now=at(9, 30))
    fake = FakeTime(at(9, 30))
    calls: list[datetime] = []
    reports: list[str] = []

    def run(path: Path) -> int:
        calls.append(fake.now)
        if len(calls) == 1:
            raise RuntimeError("kernel died")
        return 0

    run_scheduler(
        run,
        home=home,
        clock=fake.clock,
        sleep=fake.sleep,
        stop=lambda: fake.now >= at(11),
        report=reports.append,
    )
    p = str(pipe.resolve())
    assert calls == [at(10), at(11)]
    assert reports == [
        f"running {p} (scheduled for 2024-05-01 10:00 UTC)",
        f"run of {p} scheduled for 2024-05-01 10:00 UTC raised RuntimeError: kernel died",
        f"running {p} (scheduled for 2024-05-01 11:00 UTC)",
        f"run of {p} scheduled for 2024-05-01 11:00 UTC succeeded (exit code 0)",
    ]


def test_times_passed_during_a_long_run_are_reported_as_busy(home: Path, pipe: Path) -> None:
    add_schedule(pipe, "0 * * * *", home, now=at(9, 30))
    fake = FakeTime(at(9, 30))
    calls: list[datetime] = []
    reports: list[str] = []

    def slow_run(path: Path) -> int:
        calls.append(fake.now)
        if len(calls) == 1:
            fake.now += timedelta(hours=2, minutes=30)  # 10:00 -> 12:30
        return 0

    run_scheduler(
        slow_run,
        home=home,
        clock=fake.clock,
        sleep=fake.sleep,
        stop=lambda: len(calls) == 2,
        report=reports.append,
    )
    p = str(pipe.resolve())
    assert calls == [at(10), at(12, 30)]
    assert (
        f"missed run of {p} at 2024-05-01 11:00 UTC (the scheduler was busy with another run)"
        in reports
    )
    assert f"running {p} (scheduled for 2024-05-01 12:00 UTC)" in reports
    assert fake.sleeps[-1] == 0.0  # the 11:00 and 12:00 times were already due after the run


def test_a_schedule_added_while_the_loop_runs_is_picked_up(
    home: Path, pipe: Path, pipe2: Path
) -> None:
    add_schedule(pipe, "0 * * * *", home, now=at(9, 30))
    fake = FakeTime(at(9, 30))
    runs: list[tuple[Path, datetime]] = []
    added: list[Schedule] = []

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if not added and fake.now >= at(10, 15):  # `mlnb schedule add` in another terminal
            added.append(add_schedule(pipe2, "30 * * * *", home, now=fake.now))

    def run(path: Path) -> int:
        runs.append((path, fake.now))
        return 0

    run_scheduler(
        run,
        home=home,
        clock=fake.clock,
        sleep=sleep,
        stop=lambda: fake.now >= at(11, 45),
        report=lambda line: None,
    )
    assert len(added) == 1
    assert runs == [
        (pipe.resolve(), at(10)),
        (pipe2.resolve(), at(10, 30)),
        (pipe.resolve(), at(11)),
        (pipe2.resolve(), at(11, 30)),
    ]


def test_removed_and_disabled_schedules_do_not_fire(home: Path, pipe: Path, pipe2: Path) -> None:
    gone = add_schedule(pipe, "0 * * * *", home, now=at(9, 30))
    off = add_schedule(pipe2, "0 * * * *", home, now=at(9, 30))
    path = home / "schedules.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["schedules"][1]["enabled"] = False
    path.write_text(json.dumps(data), encoding="utf-8")
    fake = FakeTime(at(9, 30))
    runs: list[Path] = []

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if fake.now == at(9, 45):
            remove_schedule(gone.id, home)

    run_scheduler(
        lambda p: runs.append(p) or 0,
        home=home,
        clock=fake.clock,
        sleep=sleep,
        stop=lambda: fake.now >= at(11),
        report=lambda line: None,
    )
    assert runs == []
    assert list_schedules(home) == [Schedule(**data["schedules"][1])]
    assert list_schedules(home)[0].id == off.id


def test_an_unreadable_file_is_reported_and_the_loop_goes_on(home: Path, pipe: Path) -> None:
    home.mkdir()
    path = home / "schedules.json"
    path.write_text("not json", encoding="utf-8")
    fake = FakeTime(at(9, 30))
    reports: list[str] = []
    runs: list[datetime] = []

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if path.read_text(encoding="utf-8") == "not json":  # the user fixes the file
            path.unlink()
            add_schedule(pipe, "0 * * * *", home, now=fake.now)

    run_scheduler(
        lambda p: runs.append(fake.now) or 0,
        home=home,
        clock=fake.clock,
        sleep=sleep,
        stop=lambda: fake.now >= at(10),
        report=reports.append,
    )
    assert reports[0].startswith(f"cannot read the schedules: {path} is not a valid schedules file")
    assert runs == [at(10)]
