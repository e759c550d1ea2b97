"""The SQLite store's lifecycle with real processes, real kills and a real full disk:
created whole or not at all, broken stores detected and repaired with their runs, many
writers at once. Every test counts broken stores and lost records and asserts 0."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlnb.config import get_settings
from mlnb.exceptions import StoreError, StoreNeedsRepairError
from mlnb.tracking import check_store, ensure_store, get_client, repair_store, store_path
from mlnb.tracking._store import (
    HALF_MIGRATED,
    MISSING,
    OUTDATED,
    READY,
    UNREADABLE,
    forget_checked,
)
from tests.conftest import run_mlnb
from tests.disks import fill, small_tmpfs

#: variables that would point a child process at another store
_CLEARED = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "MLNB_PROJECT_ROOT",
    "_MLFLOW_SERVER_ARTIFACT_ROOT",
)


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env["MLNB_CACHE_DIR"] = str(cache)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _project(parent: Path, name: str = "project") -> Path:
    root = parent / name
    (root / ".mlnb").mkdir(parents=True)
    return root


def _uri(root: Path) -> str:
    return f"sqlite:///{root / '.mlnb' / 'mlflow.db'}"


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder already holding the empty store of this MLflow (made once)."""
    cache = tmp_path_factory.mktemp("mlnb-cache")
    root = _project(tmp_path_factory.mktemp("warm"))
    saved = os.environ.get("MLNB_CACHE_DIR")
    os.environ["MLNB_CACHE_DIR"] = str(cache)
    try:
        status = ensure_store(_uri(root))
    finally:
        if saved is None:
            os.environ.pop("MLNB_CACHE_DIR")
        else:
            os.environ["MLNB_CACHE_DIR"] = saved
    assert status is not None and status.ready
    return cache


@pytest.fixture
def cache(warm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLNB_CACHE_DIR", str(warm_cache))
    for key in _CLEARED:
        monkeypatch.delenv(key, raising=False)
    return warm_cache


def _log_a_run(uri: str) -> None:
    """A store that works: MLflow itself starts, writes, ends and reads back a run."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run = client.create_run("0", run_name="after")
    client.log_metric(run.info.run_id, "x", 1.5, step=3)
    client.set_terminated(run.info.run_id)
    again = client.get_run(run.info.run_id)
    assert (again.info.status, again.data.metrics) == ("FINISHED", {"x": 1.5})


# -- kill -9 during the first creation ---------------------------------------------------
_CREATOR = """
import mlflow.store.db.utils  # MLflow's migration code: imported before "ready"
from mlnb.tracking import _schema
_schema.schema()
print("ready", flush=True)
from mlnb.cli import main
main(["init"])
print("done", flush=True)
"""


def test_kill_9_during_the_first_creation_never_leaves_a_broken_store(
    tmp_path: Path, cache: Path
) -> None:
    rng = random.Random(1208)
    broken: list[tuple[int, list[str]]] = []
    interrupted = 0
    for wave in range(2):  # 8 kills, 4 processes at a time
        started: list[tuple[int, Path, Path, subprocess.Popen[str]]] = []
        for attempt in range(wave * 4, wave * 4 + 4):
            root = _project(tmp_path, f"p{attempt}")
            # even attempts: MLflow builds the cached empty store in a fresh cache folder;
            # odd ones: no usable cache folder, so MLflow builds the store in the project
            own = tmp_path / f"cache{attempt}" if attempt % 2 == 0 else Path("/dev/null/x")
            child = subprocess.Popen(
                [sys.executable, "-c", _CREATOR],
                cwd=root,
                env=_env(own),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            started.append((attempt, root, own, child))
        timers = []
        for _attempt, _root, _own, child in started:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.communicate()[1]
            timer = threading.Timer(rng.uniform(0.1, 3.0), child.send_signal, [signal.SIGKILL])
            timer.start()
            timers.append(timer)
        for timer, (attempt, root, own, child) in zip(timers, started, strict=True):
            out, _err = child.communicate(timeout=300)
            timer.join()
            if "done" not in out:
                interrupted += 1
            db = root / ".mlnb" / "mlflow.db"
            made = [db, *own.glob("store-*.db")] if own.is_dir() else [db]
            states = [check_store(path).state for path in made]
            if any(state not in {MISSING, READY} for state in states):
                broken.append((attempt, states))
            # the next first use (here: this process) finds a whole store or makes one
            status = ensure_store(_uri(root))
            assert status is not None and status.ready and status.journal_mode == "wal"
            assert not list(db.parent.glob("mlflow.db.creating-*"))
            _log_a_run(_uri(root))
    assert broken == [], f"broken stores after kill -9: {broken}"
    assert interrupted >= 1, "no kill landed before the creation finished"


def test_init_creates_the_store_and_says_so(tmp_path: Path, cache: Path) -> None:
    root = _project(tmp_path)
    done = run_mlnb(root, "init", MLNB_CACHE_DIR=str(cache))
    assert done.returncode == 0, done.stderr
    db = root / ".mlnb" / "mlflow.db"
    assert re.search(rf"created +{re.escape(str(db))} \(ready: MLflow schema \w+", done.stdout)
    status = check_store(db)
    assert status.ready and status.journal_mode == "wal"
    again = run_mlnb(root, "init", MLNB_CACHE_DIR=str(cache))
    assert again.returncode == 0 and f"exists   {db}" in again.stdout


# -- many first writers at once ----------------------------------------------------------
_WRITER = """
import sys, time
from pathlib import Path
import mlflow  # imported before the start signal, as a warm kernel has it
import mlnb
from mlnb.config import get_settings
index, count, go = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
STEPS = 50
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
mlnb.start_run(run_name=f"writer-{index}")
for j in range(count):
    mlnb.log_metric(f"m{j:03d}", index * 1_000_000 + j, step=j)
mlnb.end_run()
# a pipeline step's way of writing: MLflow's client, one transaction per write
client = mlflow.MlflowClient(get_settings().tracking_uri)
run = client.create_run("0", run_name=f"step-{index}")
for j in range(STEPS):
    client.log_metric(run.info.run_id, "loss", index + j / 1000, step=j)
client.set_terminated(run.info.run_id)
print("done", flush=True)
"""


@pytest.mark.parametrize("writers", [2, 4])
def test_first_runs_of_a_fresh_store_at_the_same_time_lose_nothing(
    tmp_path: Path, cache: Path, writers: int
) -> None:
    root = _project(tmp_path)
    db = root / ".mlnb" / "mlflow.db"
    go = tmp_path / "go"
    metrics = 500
    # with 2 writers, a fresh cache folder: one of them runs MLflow's migrations (seconds)
    # while the other waits; with 4, the empty store is cached and copied (milliseconds)
    env = _env(tmp_path / "fresh-cache" if writers == 2 else cache)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(i), str(metrics), str(go)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.communicate()[1]
    go.touch()
    results = [child.communicate(timeout=400) for child in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0 and "done" in out, err[-3000:]
        assert "database is locked" not in err and "Traceback" not in err, err[-3000:]
        # MLflow's migrations ran in one of them (2 writers): nothing of it was printed
        for noise in ("Creating initial MLflow database tables", "Updating database", "alembic"):
            assert noise not in out + err

    assert check_store(db).ready
    from mlflow import MlflowClient

    client = MlflowClient(_uri(root))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_name = {run.info.run_name: run for run in runs}
    lost = 0
    for i in range(writers):
        run = by_name[f"writer-{i}"]
        assert run.info.status == "FINISHED"
        expected = {f"m{j:03d}": float(i * 1_000_000 + j) for j in range(metrics)}
        lost += sum(1 for key, value in expected.items() if run.data.metrics.get(key) != value)
        assert by_name[f"step-{i}"].info.status == "FINISHED"
    with sqlite3.connect(db) as conn:
        rows = dict(
            conn.execute("SELECT run_uuid, count(*) FROM metrics GROUP BY run_uuid").fetchall()
        )
    conn.close()
    written = {by_name[f"writer-{i}"].info.run_id: metrics for i in range(writers)}
    written |= {by_name[f"step-{i}"].info.run_id: 50 for i in range(writers)}
    lost += sum(max(0, n - rows.get(run_id, 0)) for run_id, n in written.items())
    duplicated = sum(max(0, rows.get(run_id, 0) - n) for run_id, n in written.items())
    assert (lost, duplicated) == (0, 0)


# -- stores broken by an older MLflow or by a kill during MLflow's own migration ----------
_OLD_EXPERIMENT = "old-experiment"
#: MLflow's own upgrade of an old store, killed (-9) right after a statement that SQLite
#: committed on its own (no transaction open) and that matches the pattern
_KILLED_UPGRADE = """
import os, re, signal, sys
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.pool import NullPool
from mlflow.store.db import utils
path, pattern = sys.argv[1], re.compile(sys.argv[2])
engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=NullPool)

@event.listens_for(engine, "after_cursor_execute")
def kill(conn, cursor, statement, parameters, context, executemany):
    committed = not conn.connection.dbapi_connection.in_transaction
    if committed and pattern.match(" ".join(statement.split())):
        os.kill(os.getpid(), signal.SIGKILL)

utils._upgrade_db(engine)
"""


def _old_revision() -> str:
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils

    script = ScriptDirectory.from_config(utils._get_alembic_config(db_url=""))
    revisions = [rev.revision for rev in script.walk_revisions()]  # newest first
    return revisions[len(revisions) // 2]


@pytest.fixture(scope="module")
def old_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A store with three runs, made as MLflow 1.0 made stores and then migrated by an
    MLflow halfway between that and the installed one (MLflow's own migration code)."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
    from sqlalchemy.pool import NullPool

    from mlnb.tracking._schema import build_schema

    path = tmp_path_factory.mktemp("old") / "mlflow.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=NullPool)
    InitialBase.metadata.create_all(engine)
    now = 1_700_000_000_000
    runs: dict[str, dict[str, Any]] = {}
    with engine.begin() as conn:
        for eid, name in ((0, "Default"), (1, _OLD_EXPERIMENT)):
            conn.execute(
                sqlalchemy.text(
                    "INSERT INTO experiments (experiment_id, name, artifact_location, "
                    "lifecycle_stage) VALUES (:i, :n, :a, 'active')"
                ),
                {"i": eid, "n": name, "a": f"file:///tmp/old-artifacts/{eid}"},
            )
        for k in range(3):
            run_id = uuid.uuid4().hex
            runs[run_id] = {
                "name": f"old-run-{k}",
                "params": {"lr": str(0.1 * (k + 1)), "depth": str(k + 2)},
                "tags": {"mlflow.runName": f"old-run-{k}", "team": f"t{k}"},
                "acc": [0.5 + k / 10 + i / 100 for i in range(5)],
            }
            conn.execute(
                sqlalchemy.text(
                    "INSERT INTO runs (run_uuid, name, source_type, source_name, "
                    "entry_point_name, user_id, status, start_time, end_time, "
                    "source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES "
                    "(:r, :n, 'LOCAL', 'train.py', '', 'alice', 'FINISHED', :s, :e, '', "
                    "'active', :a, 1)"
                ),
                {"r": run_id, "n": f"old-run-{k}", "s": now + k, "e": now + k + 500, "a": "x"},
            )
            for key, value in runs[run_id]["params"].items():
                conn.execute(
                    sqlalchemy.text("INSERT INTO params VALUES (:k, :v, :r)"),
                    {"k": key, "v": value, "r": run_id},
                )
            for key, value in runs[run_id]["tags"].items():
                conn.execute(
                    sqlalchemy.text("INSERT INTO tags VALUES (:k, :v, :r)"),
                    {"k": key, "v": value, "r": run_id},
                )
            for i, value in enumerate(runs[run_id]["acc"]):
                conn.execute(
                    sqlalchemy.text("INSERT INTO metrics VALUES ('acc', :v, :t, :r)"),
                    {"v": value, "t": now + i, "r": run_id},
                )
    engine.dispose()
    build_schema(path, revision=_old_revision())  # what an older MLflow left
    return path, runs


def _kill_mlflow_upgrade(path: Path, pattern: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_UPGRADE, str(path), pattern],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, (
        f"MLflow's upgrade ran no committed statement matching {pattern!r}: {done.stderr[-2000:]}"
    )


def _assert_runs_kept(uri: str, runs: dict[str, dict[str, Any]]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(_OLD_EXPERIMENT)
    assert experiment is not None
    found = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    assert set(found) == set(runs)
    for run_id, expected in runs.items():
        run = found[run_id]
        assert run.info.status == "FINISHED"
        assert run.data.params == expected["params"]
        assert {k: run.data.tags[k] for k in expected["tags"]} == expected["tags"]
        history = sorted(m.value for m in client.get_metric_history(run_id, "acc"))
        assert history == sorted(expected["acc"])
        assert run.data.metrics["acc"] == expected["acc"][-1]  # latest by timestamp


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    return names


@pytest.mark.parametrize(
    ("breakage", "state", "message", "action"),
    [
        (
            "older MLflow",
            OUTDATED,
            r"its schema revision \w+ is older than MLflow [\d.]+'s \w+",
            "upgraded",
        ),
        (
            "killed after a leftover table",
            HALF_MIGRATED,
            r"leftover table _alembic_tmp_\w+",
            "salvaged",
        ),
        ("killed after an added column", OUTDATED, r"or its migration was interrupted", "salvaged"),
    ],
)
def test_a_broken_store_is_named_then_repaired_with_its_runs_and_a_backup(
    tmp_path: Path,
    cache: Path,
    old_store: tuple[Path, dict[str, Any]],
    breakage: str,
    state: str,
    message: str,
    action: str,
) -> None:
    template, runs = old_store
    root = _project(tmp_path)
    db = root / ".mlnb" / "mlflow.db"
    shutil.copyfile(template, db)
    if breakage == "killed after a leftover table":
        _kill_mlflow_upgrade(db, r"CREATE TABLE _alembic_tmp_")
    elif breakage == "killed after an added column":
        _kill_mlflow_upgrade(db, r"ALTER TABLE \S+ ADD COLUMN")
    before = check_store(db)
    assert before.state == state
    broken_tables = _tables(db)
    uri = _uri(root)

    with pytest.raises(StoreNeedsRepairError, match=r"needs `mlnb doctor --repair`: .*" + message):
        ensure_store(uri)
    with pytest.raises(StoreNeedsRepairError, match=message):  # what every mlnb path opens
        get_client(get_settings(root))
    if breakage == "killed after a leftover table":  # the commands a user types
        checked = run_mlnb(root, "doctor", MLNB_CACHE_DIR=str(cache))
        assert checked.returncode == StoreNeedsRepairError.exit_code
        lines = checked.stderr.strip().splitlines()
        assert len(lines) == 1 and re.match(
            rf"mlnb: error: the MLflow store {re.escape(str(db))} needs `mlnb doctor --repair`: "
            r"it is half-migrated \(leftover table _alembic_tmp_\w+ of an interrupted",
            lines[0],
        ), checked.stderr
        # a run made while the store is broken: its writes wait in the journal, named
        wrote = subprocess.run(
            [sys.executable, "-c", _WHILE_BROKEN],
            cwd=root,
            env=_env(cache),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert wrote.returncode == 0 and "needs `mlnb doctor --repair`" in wrote.stderr
        repaired = run_mlnb(root, "doctor", "--repair", MLNB_CACHE_DIR=str(cache))
        assert repaired.returncode == 0, repaired.stderr
        backup = Path(re.search(r"backup +(\S+)", repaired.stdout).group(1))  # type: ignore[union-attr]
        assert f"repaired {db}: rebuilt its schema and copied every row" in repaired.stdout
        assert re.search(r"rows +experiments 2->2, runs 3->3, params 6->6", repaired.stdout)
        # sent by `mlnb sync`, or by the journal's hand-off process retrying meanwhile (then
        # sync leaves them to it: exit 3)
        synced = run_mlnb(root, "sync", MLNB_CACHE_DIR=str(cache))
        assert synced.returncode in {0, 3}, synced.stderr
        assert _metric_history_when_sent(uri, "while-broken") == [i / 10 for i in range(20)]
    else:
        report = repair_store(uri)
        assert report.action == action and report.backup is not None
        assert report.counts["runs"] == (3, 3)
        backup = report.backup

    after = check_store(db)
    assert after.ready and after.journal_mode == "wal"
    assert not list(db.parent.glob("mlflow.db.repairing-*"))
    # the backup is the store exactly as it was found
    assert check_store(backup).state == state and _tables(backup) == broken_tables
    ensure_store(uri)
    _assert_runs_kept(uri, runs)
    _log_a_run(uri)


_WHILE_BROKEN = """
import mlnb
mlnb.start_run(run_name="while-broken")
for i in range(20):
    mlnb.log_metric("m", i / 10, step=i)
mlnb.end_run()
"""


def _metric_history_when_sent(uri: str, run_name: str, deadline: float = 120.0) -> list[float]:
    """The values of metric ``m`` of the run, once it has been sent and ended (polled: the
    journal's background hand-off may be sending it too)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    until = time.monotonic() + deadline
    while True:
        experiments = [e.experiment_id for e in client.search_experiments()]
        found = client.search_runs(experiments, f"attributes.run_name = '{run_name}'")
        if (found and found[0].info.status == "FINISHED") or time.monotonic() > until:
            break
        time.sleep(0.5)
    assert len(found) == 1, f"{len(found)} runs named {run_name}"
    history = client.get_metric_history(found[0].info.run_id, "m")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


_REPAIRER = """
import sys
import mlflow.store.db.utils  # MLflow's migration code: imported before "ready"
from mlnb.tracking import _schema, repair_store
_schema.schema()
print("ready", flush=True)
repair_store(sys.argv[1])
print("done", flush=True)
"""


def test_kill_9_during_a_repair_leaves_the_store_as_it_was_or_repaired(
    tmp_path: Path, cache: Path, old_store: tuple[Path, dict[str, Any]]
) -> None:
    template, runs = old_store
    broken = tmp_path / "broken.db"
    shutil.copyfile(template, broken)
    _kill_mlflow_upgrade(broken, r"ALTER TABLE \S+ ADD COLUMN")  # repaired by salvage
    original = _sha(broken)
    rng = random.Random(77)
    outcomes = []
    children = []
    for attempt in range(2):  # two repairs at once, each killed at its own moment
        root = _project(tmp_path, f"p{attempt}")
        shutil.copyfile(broken, root / ".mlnb" / "mlflow.db")
        child = subprocess.Popen(
            [sys.executable, "-c", _REPAIRER, _uri(root)],
            cwd=root,
            env=_env(cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append((root, child))
    timers = []
    for _root, child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.communicate()[1]
        timer = threading.Timer(rng.uniform(0.1, 3.0), child.send_signal, [signal.SIGKILL])
        timer.start()
        timers.append(timer)
    for timer, (root, child) in zip(timers, children, strict=True):
        child.communicate(timeout=300)
        timer.join()
        db = root / ".mlnb" / "mlflow.db"
        status = check_store(db)
        if _sha(db) == original:
            outcomes.append("as it was")
        elif status.ready:
            outcomes.append("repaired")
        else:
            outcomes.append(f"broken: {status.state} {status.detail}")
        backups = list(db.parent.glob("mlflow.db.backup-*"))
        assert all(check_store(b).state == OUTDATED for b in backups)  # only whole backups
        # the next repair finishes the job and removes what the killed one left
        repair_store(_uri(root))
        assert not list(db.parent.glob("mlflow.db.repairing-*"))
        ensure_store(_uri(root))
        _assert_runs_kept(_uri(root), runs)
    assert all(o in {"as it was", "repaired"} for o in outcomes), outcomes
    assert "as it was" in outcomes, f"no kill landed before a repair finished: {outcomes}"


def test_a_store_of_a_newer_mlflow_is_refused_and_left_alone(tmp_path: Path, cache: Path) -> None:
    root = _project(tmp_path)
    uri = _uri(root)
    ensure_store(uri)
    db = root / ".mlnb" / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'fffffffff999'")
    conn.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    forget_checked()  # as a new process would
    with pytest.raises(StoreError, match=r"a newer MLflow made it\. Upgrade MLflow") as info:
        ensure_store(f"sqlite:///{db}?timeout=30")  # same file, another spelling of the URI
    assert not isinstance(info.value, StoreNeedsRepairError)
    with pytest.raises(StoreError, match="newer MLflow"):
        repair_store(uri)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_a_file_that_is_not_a_database_is_kept_as_the_backup(tmp_path: Path, cache: Path) -> None:
    root = _project(tmp_path)
    db = root / ".mlnb" / "mlflow.db"
    db.write_bytes(b"this is not SQLite\n" * 300)
    assert check_store(db).state == UNREADABLE
    with pytest.raises(
        StoreNeedsRepairError, match=r"needs `mlnb doctor --repair`: SQLite cannot read it"
    ):
        ensure_store(_uri(root))
    report = repair_store(_uri(root))
    assert report.action == "recreated" and report.backup is not None
    assert report.backup.read_bytes() == b"this is not SQLite\n" * 300
    _log_a_run(_uri(root))


def test_existing_stores_are_switched_to_wal_and_foreign_tables_kept(
    tmp_path: Path, cache: Path
) -> None:
    # a store made by MLflow itself (rollback journal), as older mlnb versions left them
    made = _project(tmp_path, "made-by-mlflow")
    db = made / ".mlnb" / "mlflow.db"
    shutil.copyfile(next(cache.glob("store-*.db")), db)
    assert check_store(db).journal_mode == "delete"
    assert ensure_store(_uri(made)).journal_mode == "wal"  # type: ignore[union-attr]
    # a SQLite file holding only the user's own table: MLflow's tables are added beside it
    own = _project(tmp_path, "own-tables")
    db = own / ".mlnb" / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
    conn.close()
    assert check_store(db).state == MISSING
    assert ensure_store(_uri(own)).ready  # type: ignore[union-attr]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT text FROM notes").fetchall() == [("keep me",)]
    conn.close()


def test_store_path_reads_sqlite_uris_as_sqlalchemy_does(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    for uri in (
        f"sqlite:///{tmp_path}/a b/mlflow.db",
        f"sqlite:///{tmp_path}/x%20y.db?timeout=30",
        "sqlite:///relative/mlflow.db",
    ):
        database = make_url(uri).database
        assert database is not None
        assert store_path(uri) == Path(os.path.abspath(database))
    for uri in ("sqlite://", "sqlite:///:memory:", "http://127.0.0.1:5000", "postgresql://x/y"):
        assert store_path(uri) is None
    assert ensure_store("http://127.0.0.1:5000") is None


# -- a full disk ---------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB file system, full disks as they happen."""
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        yield disk


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_on_a_full_disk_is_one_clear_line_and_leaves_nothing_half_made(
    small_disk: Path, cache: Path
) -> None:
    root = _project(small_disk)
    filler = fill(small_disk, leave=200_000)
    done = run_mlnb(root, "init", MLNB_CACHE_DIR=str(cache))
    assert done.returncode == StoreError.exit_code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"mlnb: error: no space left on the disk", lines[0])
    assert not (root / ".mlnb" / "mlflow.db").exists()
    assert not list((root / ".mlnb").glob("mlflow.db.creating-*"))
    filler.unlink()
    again = run_mlnb(root, "init", MLNB_CACHE_DIR=str(cache))
    assert again.returncode == 0 and check_store(root / ".mlnb" / "mlflow.db").ready


def test_writes_on_a_full_disk_fail_clearly_and_corrupt_nothing(
    small_disk: Path, cache: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from mlnb.tracking import describe_error

    root = _project(small_disk)
    uri = _uri(root)
    ensure_store(uri)
    client = MlflowClient(uri)
    run_id = client.create_run("0").info.run_id
    client.log_batch(run_id, metrics=[Metric("m", float(i), 1, i) for i in range(50)])
    filler = fill(small_disk)
    capfd.readouterr()
    with pytest.raises(Exception) as info:
        client.log_batch(run_id, metrics=[Metric("m", float(i), 2, i) for i in range(50, 2000)])
    error = describe_error(info.value, uri, "log metrics")
    assert len(str(error).splitlines()) == 1
    assert re.search(r"disk is full.*free some space", str(error))
    assert "SQLAlchemy database error" not in capfd.readouterr().err  # no traceback dump
    filler.unlink()
    db = root / ".mlnb" / "mlflow.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    assert len(client.get_metric_history(run_id, "m")) == 50  # all of it, or nothing of it
    client.log_batch(run_id, metrics=[Metric("m", float(i), 2, i) for i in range(50, 2000)])
    assert len(client.get_metric_history(run_id, "m")) == 2000


def test_repair_on_a_full_disk_changes_nothing(
    small_disk: Path, cache: Path, old_store: tuple[Path, dict[str, Any]]
) -> None:
    root = _project(small_disk)
    db = root / ".mlnb" / "mlflow.db"
    shutil.copyfile(old_store[0], db)
    digest = _sha(db)
    filler = fill(small_disk, leave=100_000)
    with pytest.raises(StoreError, match=r"no space left on the disk .* to repair the tracking"):
        repair_store(_uri(root))
    assert _sha(db) == digest
    leftovers = [p.name for p in db.parent.iterdir() if p.name.startswith("mlflow.db.")]
    assert leftovers == ["mlflow.db.lock"]
    filler.unlink()
    report = repair_store(_uri(root))
    assert report.action == "upgraded" and report.counts["runs"] == (3, 3)
    _assert_runs_kept(_uri(root), old_store[1])
