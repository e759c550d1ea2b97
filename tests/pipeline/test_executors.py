"""The registry of pipeline executors: names looked up, an executor registered by another
package (by ``register`` or by an entry point) running real steps."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from mlnb.pipeline import PipelineError, _executors, run_pipeline
from mlnb.pipeline._executors import (
    ENTRY_POINT_GROUP,
    Executor,
    LocalExecutor,
    PipelineExecutors,
    executors,
)
from mlnb.pipeline._step import StepResult
from tests.pipeline.test_runner import _notebook, _write


class InlineExecutor(Executor):
    """Steps one at a time in the calling thread: a real executor, as a plugin would be."""

    made: list[InlineExecutor] = []

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.submitted: list[str] = []
        self.closed = False
        InlineExecutor.made.append(self)

    @classmethod
    def from_spec(cls, spec: str, workers: int) -> InlineExecutor:
        return cls(spec)

    def submit(self, fn: Callable[..., StepResult], *args: Any) -> Any:
        self.submitted.append(args[1].name)  # run_step(pipeline, step, ...)
        future: Future[StepResult] = Future()
        future.set_result(fn(*args))
        return future

    def wait(self, futures: Any) -> set[Any]:
        return {f for f in futures if f.done()}

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> PipelineExecutors:
    """A registry of this test's own, with the built-in executors, in place of the shared
    one (so what a test registers is gone after it)."""
    own = PipelineExecutors()
    own._factories.update(executors._factories)
    own._usage.update(executors._usage)
    monkeypatch.setattr(_executors, "executors", own)
    return own


def test_the_built_in_executors_are_found_by_name_and_scheme() -> None:
    local = executors.get_executor("local", 3)
    try:
        assert isinstance(local, LocalExecutor) and local.workers == 3 and not local.remote
    finally:
        local.close()
    assert isinstance(executors.get_executor("", 1), LocalExecutor)
    with pytest.raises(
        PipelineError, match=r"unknown executor 'local://x': use local or dask://HOST:PORT\.$"
    ):
        executors.get_executor("local://x", 1)
    with pytest.raises(
        PipelineError, match=r"unknown executor 'ray://h:1': use local or dask://HOST:PORT\.$"
    ):
        executors.get_executor("ray://h:1", 1)


def test_a_registered_executor_runs_the_steps(project: Path, registry: PipelineExecutors) -> None:
    _notebook(project / "flow" / "one.ipynb", "name = 'x'", "open(f'{name}.txt', 'w').write(name)")
    spec = _write(
        project,
        "name: inline\nsteps:\n"
        "  - {name: a, notebook: one.ipynb, params: {name: a}, outputs: [a.txt]}\n"
        "  - {name: b, notebook: one.ipynb, needs: [a], params: {name: b}, outputs: [b.txt]}\n",
    )
    registry.register("inline", InlineExecutor.from_spec, "inline")
    InlineExecutor.made.clear()
    result = run_pipeline(spec, executor="inline", report=lambda _: None)
    assert {n: s.status for n, s in result.steps.items()} == {"a": "ok", "b": "ok"}
    (used,) = InlineExecutor.made
    assert used.submitted == ["a", "b"] and used.closed
    assert (project / "flow" / "b.txt").read_text() == "b"
    with pytest.raises(PipelineError, match=r"use local or dask://HOST:PORT or inline\.$"):
        run_pipeline(spec, executor="nope", report=lambda _: None)


def test_an_executor_declared_as_an_entry_point_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: PipelineExecutors
) -> None:
    dist = tmp_path / "site" / "mlnb_inline-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mlnb-inline\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ninline = {__name__}:InlineExecutor.from_spec\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = registry.get_executor("inline://somewhere", 1)
    assert isinstance(found, InlineExecutor) and found.spec == "inline://somewhere"
    assert isinstance(registry.get_executor("inline", 1), InlineExecutor)
    with pytest.raises(PipelineError, match=r"use local or dask://HOST:PORT or inline\.$"):
        registry.get_executor("other", 1)
