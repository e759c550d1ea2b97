"""One syntax tree at a time on CPython 3.11.0-3.11.7 and 3.12.0-3.12.1 (gh-106905):
``mlnb._ast.serialize_ast`` makes ``ast.parse`` and IPython's cell compiler wait for each
other, and changes nothing they return.

The race itself cannot be provoked on demand (it needs a thread switch inside the C
converter), so the tests check what prevents it: while another thread holds the lock, a
parse and a cell wait for it. They run in a fresh interpreter, where nothing else wraps
``ast.parse`` (this suite's conftest does, for its own threads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mlnb._ast import affected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ((3, 10, 13), False),
        ((3, 11, 0), True),
        ((3, 11, 2), True),  # Debian 12
        ((3, 11, 7), True),
        ((3, 11, 8), False),
        ((3, 12, 0), True),
        ((3, 12, 1), True),
        ((3, 12, 2), False),
        ((3, 13, 0), False),
    ],
)
def test_the_affected_versions_are_those_of_gh_106905(
    version: tuple[int, int, int], expected: bool
) -> None:
    assert affected(version) is expected


_PROBE = textwrap.dedent(
    """
    import ast, json, threading
    from IPython.core.interactiveshell import InteractiveShell
    from mlnb._ast import LOCK, affected, serialize_ast

    original = ast.parse
    shell = InteractiveShell.instance()
    done = {"serialized": serialize_ast(shell), "again": serialize_ast(shell)}
    done["class"] = type(shell.compile).__name__
    holding, released, order = threading.Event(), threading.Event(), []

    def hold():
        with LOCK:
            holding.set()
            released.wait(timeout=30)
            order.append("released")

    def parse_then_run():
        holding.wait(timeout=30)
        tree = ast.parse("x = 1 + 1")
        order.append("parsed")
        result = shell.run_cell("from __future__ import annotations\\ny = 40 + 2")
        order.append("cell")
        done["cell"] = [result.success, shell.user_ns.get("y"), type(tree).__name__]

    holder = threading.Thread(target=hold)
    holder.start()
    worker = threading.Thread(target=parse_then_run)
    worker.start()
    holding.wait(timeout=30)
    worker.join(timeout=0.5)  # no timing is asserted: the order below says who waited
    if done["serialized"]:
        order.append("releasing")
    released.set()
    holder.join()
    worker.join(timeout=30)
    # a __future__ import still holds for the next cells (the compiler keeps its flags)
    later = shell.run_cell("def f(x: not_defined_anywhere) -> None: pass")
    done.update(order=order, later=later.success, unchanged=ast.parse is original)
    print(json.dumps(done))
    """
)


def test_a_parse_and_a_cell_wait_for_a_tree_being_built_in_another_thread() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cell"] == [True, 42, "Module"]
    assert result["later"] is True  # postponed annotations: the flag carried over
    if not affected():
        assert result["serialized"] is False and result["unchanged"] is True
        return
    assert result["serialized"] is True and result["again"] is True
    assert result["class"] == "SerializedCachingCompiler"
    assert result["unchanged"] is False
    # the worker could not parse while the lock was held: it parsed after the release
    assert result["order"] == ["releasing", "released", "parsed", "cell"], result["order"]


_FORK = textwrap.dedent(
    """
    import ast, os, sys, threading, time
    from mlnb._ast import serialize_ast
    import mlnb._ast as guard

    serialize_ast()
    holding, release = threading.Event(), threading.Event()

    def hold():
        with guard.LOCK:
            holding.set()
            release.wait(timeout=60)

    threading.Thread(target=hold, daemon=True).start()
    holding.wait(timeout=30)
    pid = os.fork()  # as multiprocessing's fork start method does, mid-parse of another thread
    if pid == 0:
        ast.parse("x = 1")  # the child's lock is its own and free
        os._exit(0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        status = -1
    release.set()
    print("child", "parsed" if status == 0 else f"hung or failed ({status})")
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_child_forked_while_another_thread_parses_can_parse() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FORK], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "child parsed"
