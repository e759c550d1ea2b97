"""The test lanes: which marks a test gets from what it uses, and the guard that keeps the
fast lane (``pytest -m "not slow"``, ``make test-fast``) free of processes.

A test is marked by what it reaches, never by hand:

- a fixture in ``FIXTURE_MARKS`` anywhere in its fixture closure (``usefixtures`` counts),
  or a parametrized value in ``PARAM_MARKS`` (``backend=postgres``);
- a *spawner* reached from the test's code or from any of its fixtures' code, through the
  functions of the ``tests`` package they call (found by name, statically): the
  ``subprocess`` module, and the library and helper functions in ``SPAWNERS`` (papermill,
  a kernel manager, ``mlnb``'s pipeline runner, the helpers of ``tests/servers.py``...).

The guard makes the marks trustworthy: while a test without ``slow`` runs (set-up, call and
tear-down), an audit hook fails any process it starts (``subprocess.Popen``, ``os.fork``,
``os.posix_spawn``), except the few cheap tools in ``CHEAP_TOOLS``, with a message naming
the fix. So a test that starts a kernel, a server or ``python -m mlnb`` without going
through a fixture or helper of the slow lane fails in every run, in both lanes; it cannot
drift into the fast lane unnoticed. The terminal summary lists the fast lane's tests that
took over ``FAST_BUDGET`` seconds (the fast lane's time budget is a report, not a test).
A slow test's hang guard is ``SLOW_TIMEOUT`` unless it names its own.
"""

from __future__ import annotations

import dis
import functools
import importlib
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: fixtures that start something expensive, and the marks a test using them gets
FIXTURE_MARKS: dict[str, tuple[str, ...]] = {
    "postgres_tracking_uri": ("slow", "postgres"),
    "lab": ("slow", "lab"),
    "browser": ("slow", "lab"),
    "kernels": ("slow",),  # library calls that start Jupyter kernels (tests/conftest.py)
    "processes": ("slow",),  # library calls that start processes of their own
}
#: (parameter, value) of a parametrized fixture -> marks (``backend`` picks PostgreSQL late)
PARAM_MARKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("backend", "postgres"): ("slow", "postgres"),
}
#: what starts processes when called, by the name users import it under: a module (then
#: anything reached through it) or a function or class (matched as the same object)
SPAWNERS: frozenset[str] = frozenset(
    {
        "subprocess",
        "multiprocessing",
        "concurrent.futures.ProcessPoolExecutor",
        "papermill",
        "nbclient",
        "jupyter_client.KernelManager",
        "jupyter_client.manager.start_new_kernel",
        "playwright.sync_api",
        "uvicorn",
        "mlnb.pipeline.run_pipeline",
    }
)
#: in-process calls that cost seconds each (training data logged as a model, a notebook
#: exported with its environment): slow too, though the guard does not see them
HEAVY: frozenset[str] = frozenset(
    {
        "mlnb.log_model",
        "mlnb.export.export_notebook",
        "mlflow.sklearn.log_model",
        "mlflow.pyfunc.log_model",
    }
)
#: programs a fast test may start: they cost milliseconds (mlnb reads ``git`` provenance;
#: tests/disks.py mounts a small tmpfs for the full-disk tests; the standard library probes
#: the system with ``file`` in ``platform.architecture`` and ``ldconfig``/``gcc``/``ld`` in
#: ``ctypes.util.find_library``)
CHEAP_TOOLS = frozenset({"git", "mount", "umount", "file", "ldconfig", "gcc", "cc", "ld", "uname"})
#: seconds over which a fast-lane test is listed in the summary
FAST_BUDGET = 1.0
#: the hang guard of a slow test, in seconds (pytest-timeout; the fast lane's is the 120 s
#: of pyproject.toml). A guard, not a budget: a test of real kernels and servers that takes
#: 40-80 s alone takes three times that beside the corpus on CI's 2 cores.
SLOW_TIMEOUT = 400
_TESTS = Path(__file__).resolve().parent


@functools.cache
def _spawner_objects() -> dict[int, str]:
    """id -> name of each function or class in ``SPAWNERS`` that imports here."""
    found: dict[int, str] = {}
    for name in SPAWNERS | HEAVY:
        module, _, attr = name.rpartition(".")
        if not module:
            continue
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue  # a module, or a part that is not installed here
        if not isinstance(obj, types.ModuleType):
            found[id(obj)] = name
    return found


def _module_spawner(module: str) -> str | None:
    for name in SPAWNERS:
        if module == name or module.startswith(name + "."):
            return name
    return None


def _spawner(obj: object) -> str | None:
    if isinstance(obj, types.ModuleType):
        return _module_spawner(obj.__name__)
    hit = _spawner_objects().get(id(obj))
    if hit is not None:
        return hit
    module = getattr(obj, "__module__", None)
    return _module_spawner(module) if isinstance(module, str) else None


def _ours(obj: object) -> bool:
    """A function or class of the tests package (its code is followed)."""
    try:
        source = inspect.getsourcefile(inspect.unwrap(obj))  # type: ignore[arg-type]
    except (TypeError, OSError, ValueError):
        return False
    return source is not None and Path(source).resolve().is_relative_to(_TESTS)


def _codes(obj: object) -> Iterator[tuple[types.CodeType, dict[str, Any]]]:
    """Each code object of a function, or of a class's methods, with nested code (inner
    functions, lambdas, comprehensions), and the globals its names resolve in."""
    if isinstance(obj, type):
        for member in vars(obj).values():
            member = getattr(member, "__func__", member)  # classmethod, staticmethod
            if inspect.isfunction(member):
                yield from _codes(member)
        return
    func = inspect.unwrap(obj)  # type: ignore[arg-type]
    code = getattr(func, "__code__", None)
    namespace: dict[str, Any] = getattr(func, "__globals__", {})
    stack = [code] if isinstance(code, types.CodeType) else []
    while stack:
        code = stack.pop()
        yield code, namespace
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


def _imports(code: types.CodeType) -> Iterator[str]:
    """Modules and names imported inside ``code`` (``import x.y``, ``from x import y``)."""
    module = ""
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME":
            module = str(instruction.argval)
            yield module
        elif instruction.opname == "IMPORT_FROM":
            yield f"{module}.{instruction.argval}"


_REACHED: dict[int, tuple[object, str | None]] = {}


_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FAST", "LOAD_DEREF"})
_STORES = frozenset({"STORE_FAST", "STORE_NAME", "STORE_DEREF", "STORE_GLOBAL"})


def _module_attributes(code: types.CodeType, namespace: dict[str, Any]) -> Iterator[object]:
    """``module.name`` read in ``code`` (``mlnb.log_model(...)``, ``mlnb.export.export_notebook``),
    for a module that is a global or imported inside the function."""
    local: dict[str, object] = {}
    imported: str | None = None
    chain: object = None  # the module the next LOAD_ATTR reads from
    for instruction in dis.get_instructions(code):
        op, arg = instruction.opname, str(instruction.argval)
        if op in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(chain, types.ModuleType):
            chain = getattr(chain, arg, None)
            if chain is not None:
                yield chain
            continue
        chain = None
        if op in _STORES and imported is not None:
            top = imported.split(".")[0]
            if top in sys.modules:
                local[arg] = sys.modules[top]
        imported = arg if op == "IMPORT_NAME" else None
        if op in _LOADS:
            chain = local.get(arg, namespace.get(arg))


def reaches_spawner(func: object) -> str | None:
    """The first spawner that ``func`` calls, directly or through functions and classes of
    the tests package, by name; None when it reaches none. Names are resolved statically in
    the globals of the code that uses them; imports inside a function count too."""
    known = _REACHED.get(id(func))
    if known is None or known[0] is not func:
        known = _REACHED[id(func)] = (func, _reach(func, set()))
    return known[1]


def _reach(func: object, seen: set[int]) -> str | None:
    if id(func) in seen:
        return None
    seen.add(id(func))
    for code, namespace in _codes(func):
        for imported in _imports(code):
            hit = _module_spawner(imported)
            if hit is None:
                module, _, attr = imported.rpartition(".")
                target = sys.modules.get(module)
                obj = getattr(target, attr, None) if target is not None else None
                hit = _spawner(obj) if obj is not None else None
                if hit is None and (inspect.isfunction(obj) or inspect.isclass(obj)) and _ours(obj):
                    hit = _reach(obj, seen)
            if hit is not None:
                return hit
        for found in _module_attributes(code, namespace):
            hit = _spawner(found)
            if hit is not None:
                return hit
        for name in code.co_names:
            found = namespace.get(name)
            if found is None:
                continue
            if callable(found) and hasattr(found, "__wrapped__"):  # functools.cache, wraps
                found = inspect.unwrap(found)
            hit = _spawner(found)
            if hit is not None:
                return hit
            if (inspect.isfunction(found) or inspect.isclass(found)) and _ours(found):
                hit = _reach(found, seen)
                if hit is not None:
                    return hit
    return None


def _fixture_funcs(item: pytest.Item) -> Iterable[tuple[str, Callable[..., Any]]]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return
    for name in item.fixturenames:  # type: ignore[attr-defined]
        for definition in info.name2fixturedefs.get(name, ()):
            yield name, definition.func


def lane_marks(item: pytest.Item) -> dict[str, str]:
    """Mark name -> why, for one collected test."""
    why: dict[str, str] = {}
    for name in getattr(item, "fixturenames", ()):
        for mark in FIXTURE_MARKS.get(name, ()):
            why.setdefault(mark, f"uses the fixture {name!r}")
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for (param, value), marks in PARAM_MARKS.items():
            if str(callspec.params.get(param)) == value:
                for mark in marks:
                    why.setdefault(mark, f"runs with {param}={value}")
    if "slow" not in why:
        candidates = [(None, getattr(item, "obj", None)), *_fixture_funcs(item)]
        for fixture, func in candidates:
            if func is None:
                continue
            hit = reaches_spawner(func)
            if hit is not None:
                where = f"its fixture {fixture!r}" if fixture else "it"
                why["slow"] = f"{where} calls {hit}"
                break
    return why


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        present = {mark.name for mark in item.iter_markers()}
        for mark in lane_marks(item):
            if mark not in present:
                item.add_marker(mark)
        if "timeout" not in present and item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


# -- the guard ---------------------------------------------------------------------------
_GUARDED: list[str] = []  # the nodeid of the fast test running now (one at most)
_CAUGHT: list[str] = []  # the fast tests that started a process
_SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty"})


class FastLaneSpawn(RuntimeError):
    """A test of the fast lane started a process."""


def _program(event: str, args: tuple[Any, ...]) -> str:
    if event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        first = executable or (argv if isinstance(argv, (str, bytes)) else (argv or [""])[0])
        return os.fsdecode(first)
    if event == "os.posix_spawn":
        return os.fsdecode(args[0])
    return event


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _GUARDED or event not in _SPAWN_EVENTS:
        return
    program = _program(event, args)
    if Path(program).name in CHEAP_TOOLS:
        return
    nodeid = _GUARDED[0]
    record = os.environ.get("MLNB_LANES_RECORD")
    if record:  # survey mode: list the spawns instead of failing them
        with open(record, "a", encoding="utf-8") as out:
            out.write(f"{nodeid}\t{program}\n")
        return
    _GUARDED.clear()  # fail once; what the test does while unwinding is not checked again
    _CAUGHT.append(nodeid)  # a spawn in a background thread fails the test all the same
    raise FastLaneSpawn(
        f"{nodeid} is in the fast lane but started a process ({program}, {event}). "
        "Start it through a fixture or helper of the slow lane (tests/lanes.py: "
        "FIXTURE_MARKS, SPAWNERS; e.g. `@pytest.mark.usefixtures('kernels')` for a test "
        "whose library calls start kernels), so the test is marked `slow` by what it uses."
    )


_hooked = False


def install_guard() -> None:
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    guarded = item.get_closest_marker("slow") is None
    if guarded:
        _GUARDED[:] = [item.nodeid]
    try:
        return (yield)
    finally:
        _GUARDED.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if nextitem is None:
        # The session's last test also tears down the session's fixtures (a PostgreSQL
        # server stopped with pg_ctl): their processes are theirs, not this test's.
        _GUARDED.clear()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    if item.nodeid in _CAUGHT:  # whatever the test made of the exception, it fails
        raise FastLaneSpawn(f"{item.nodeid} started a process in the fast lane (see above)")
    return result


# -- the fast lane's time ----------------------------------------------------------------
_FAST_TIMES: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "slow" in report.keywords:
        return
    _FAST_TIMES[report.nodeid] = _FAST_TIMES.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    over = sorted(((t, n) for n, t in _FAST_TIMES.items() if t > FAST_BUDGET), reverse=True)
    if not over:
        return
    terminalreporter.section(f"fast-lane tests over {FAST_BUDGET:.0f} s (set-up+call+tear-down)")
    for seconds, nodeid in over:
        terminalreporter.line(f"{seconds:7.2f}s {nodeid}")
