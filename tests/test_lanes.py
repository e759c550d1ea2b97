"""The lanes' own rules (tests/lanes.py): what marks a test as slow from its code, and the
guard that fails a fast test starting a process."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlnb
from mlnb.pipeline import run_pipeline
from tests import lanes
from tests.conftest import run_mlnb


def _runs_a_command() -> None:
    subprocess.run(["true"], check=False)


def _through_a_helper(tmp: Path) -> None:
    run_mlnb(tmp, "--version")


def _imports_inside() -> None:
    from papermill import execute_notebook

    execute_notebook("in.ipynb", "out.ipynb")


class _Starter:
    def start(self) -> None:
        _runs_a_command()


def _uses_a_class() -> None:
    _Starter().start()


@contextlib.contextmanager
def _serving() -> Iterator[None]:
    _runs_a_command()
    yield


def _uses_a_context_manager() -> None:
    with _serving():
        pass


def _imports_a_helper_inside() -> None:
    from tests.conftest import run_mlnb as run

    run(Path.cwd(), "--version")


def _runs_a_pipeline() -> None:
    run_pipeline("pipeline.yaml")


def _logs_a_model() -> None:
    mlnb.log_model(object(), "model")


def _exports_with_a_local_import() -> None:
    import mlnb.export

    mlnb.export.export_notebook("n.ipynb", "svc")


@functools.cache
def _cached_run() -> None:
    _runs_a_command()


def _through_a_cached_helper() -> None:
    _cached_run()


def _pure(values: list[int]) -> int:
    return sum(values) + len(str(Path.cwd()))


class _Outcome:
    papermill = "an attribute that only shares a spawner's name"


def _reads_an_attribute(outcome: _Outcome) -> str:
    return outcome.papermill


@pytest.mark.parametrize(
    ("func", "spawner"),
    [
        (_runs_a_command, "subprocess"),
        (_through_a_helper, "subprocess"),
        (_imports_inside, "papermill"),
        (_uses_a_class, "subprocess"),
        (_uses_a_context_manager, "subprocess"),  # followed behind its decorator
        (_imports_a_helper_inside, "subprocess"),
        (_runs_a_pipeline, "mlnb.pipeline.run_pipeline"),
        (_logs_a_model, "mlnb.log_model"),  # in-process, but seconds: slow too
        (_exports_with_a_local_import, "mlnb.export.export_notebook"),  # matched by its public name
        (_through_a_cached_helper, "subprocess"),  # followed behind functools.cache
        (_pure, None),
        (_reads_an_attribute, None),
    ],
)
def test_a_spawner_is_found_through_helpers_classes_and_local_imports(
    func: object, spawner: str | None
) -> None:
    assert lanes.reaches_spawner(func) == spawner


def test_a_fast_test_that_starts_a_process_fails_with_the_fix_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLNB_LANES_RECORD", raising=False)
    monkeypatch.setattr(lanes, "_GUARDED", ["tests/x.py::test_y"])
    with pytest.raises(lanes.FastLaneSpawn, match=r"tests/x.py::test_y .*fast lane.*python"):
        lanes._audit("subprocess.Popen", (None, [sys.executable, "-c", "pass"], None, None))
    assert lanes._GUARDED == []  # one failure per test


def test_the_guard_lets_cheap_tools_and_slow_tests_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLNB_LANES_RECORD", raising=False)
    monkeypatch.setattr(lanes, "_GUARDED", ["tests/x.py::test_y"])
    lanes._audit("subprocess.Popen", ("/usr/bin/git", ["git", "status"], None, None))
    assert lanes._GUARDED == ["tests/x.py::test_y"]
    monkeypatch.setattr(lanes, "_GUARDED", [])  # a slow test: nothing is guarded
    lanes._audit("subprocess.Popen", (None, [sys.executable, "-c", "pass"], None, None))


def test_the_guard_catches_what_the_code_does_not_show(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.posix_spawn`` is no spawner by name, so this test is in the fast lane; the audit
    hook still stops the process."""
    monkeypatch.delenv("MLNB_LANES_RECORD", raising=False)
    assert request.node.get_closest_marker("slow") is None
    assert [request.node.nodeid] == lanes._GUARDED
    with pytest.raises(lanes.FastLaneSpawn, match="started a process"):
        os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], dict(os.environ))
    lanes._CAUGHT.remove(request.node.nodeid)  # caught, and expected here: the test passes


def test_fixtures_mark_by_use(pytestconfig: pytest.Config) -> None:
    assert lanes.FIXTURE_MARKS["postgres_tracking_uri"] == ("slow", "postgres")
    assert lanes.FIXTURE_MARKS["lab"] == ("slow", "lab")
    for marks in (*lanes.FIXTURE_MARKS.values(), *lanes.PARAM_MARKS.values()):
        for mark in marks:  # each is declared (pytest runs with --strict-markers)
            assert any(line.startswith(f"{mark}:") for line in pytestconfig.getini("markers"))


def test_a_spawn_in_a_background_thread_fails_the_test_all_the_same(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    monkeypatch.delenv("MLNB_LANES_RECORD", raising=False)
    monkeypatch.setattr(lanes, "_CAUGHT", [])
    errors: list[BaseException] = []

    def spawn() -> None:
        try:
            os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], dict(os.environ))
        except lanes.FastLaneSpawn as exc:
            errors.append(exc)

    thread = threading.Thread(target=spawn)
    thread.start()
    thread.join()
    assert len(errors) == 1  # the library's thread may swallow it ...
    assert [request.node.nodeid] == lanes._CAUGHT  # ... the test still fails after its call
    lanes._CAUGHT.clear()  # (this test expects the spawn: it passes)


def test_a_slow_test_gets_the_slow_hang_guard_unless_it_names_its_own(
    request: pytest.FixtureRequest,
) -> None:
    items = [
        i
        for i in request.session.items
        if i.nodeid.startswith("tests/pipeline/test_runner.py::test_run_caches")
    ]
    for item in items:  # present when this session collected it (not in `-k` runs)
        assert item.get_closest_marker("slow") is not None
        guard = item.get_closest_marker("timeout")
        assert guard is not None and guard.args == (lanes.SLOW_TIMEOUT,)
    mine = request.node.get_closest_marker("timeout")
    assert mine is None  # a fast test keeps pyproject.toml's 120 s
    assert request.config.getini("timeout") == "120"
    assert lanes.SLOW_TIMEOUT > 120
