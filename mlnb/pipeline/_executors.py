"""Where a pipeline's steps run: executors behind a small registry, as papermill's engines.

``run_pipeline(executor=SPEC)`` (``mlnb pipeline run --executor SPEC``) looks ``SPEC`` up in
:data:`executors`: a plain name (``local``) or, for an executor that takes an address, its
scheme (``dask://HOST:PORT``, also ``tcp://HOST:PORT``). Built in:

- ``local``: steps in threads of this process, each a papermill run against a kernel of
  this machine (started ahead by the :class:`~mlnb.pipeline._kernels.KernelPool`);
- ``dask://HOST:PORT``: steps as tasks of a Dask distributed cluster.

Another package adds one by subclassing :class:`Executor` (``mlnb.pipeline.Executor``)
and either calling ``mlnb.pipeline.executors.register("name", factory)`` or declaring an
entry point in the group ``mlnb.pipeline_executors`` (``ray = ray_mlnb:RayExecutor.from_spec``:
then ``ray`` and ``ray://ADDRESS`` name it), loaded the first time a name is not found. A
factory takes the spec and the ``workers`` asked for (``--workers``, default 1) and returns
the executor, or raises :class:`PipelineError` naming what is missing (a package, a server
that does not answer). The executor is made before any step is decided, so such an error
stops the run before anything is recorded; it is closed when the run ends, whatever happens.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from mlnb.pipeline._spec import PipelineError
from mlnb.pipeline._step import StepResult

__all__ = [
    "ENTRY_POINT_GROUP",
    "DaskExecutor",
    "Executor",
    "LocalExecutor",
    "PipelineExecutors",
    "executors",
    "get_executor",
]

#: the entry-point group other packages declare executors in
ENTRY_POINT_GROUP = "mlnb.pipeline_executors"


class Executor(ABC):
    """Runs steps (papermill's ``Engine``, for a whole step): ``submit(run_step, *args)``
    returns a future with ``done()`` and ``result()`` (a :class:`StepResult`), ``wait``
    returns the futures that are done (at least one), ``close`` ends the executor."""

    #: how many steps may run at once
    workers: int = 1
    #: True when steps run in other processes: no kernels are started ahead here, and
    #: there are no per-cell events (only started, done, failed)
    remote: bool = False

    @abstractmethod
    def submit(self, fn: Callable[..., StepResult], *args: Any) -> Any:
        """Start ``fn(*args)``; return its future."""

    @abstractmethod
    def wait(self, futures: Any) -> set[Any]:
        """Block until at least one of ``futures`` is done; return those that are."""

    @abstractmethod
    def close(self) -> None:
        """Wait for what was submitted and let go of the workers."""


ExecutorFactory = Callable[[str, int], Executor]


class LocalExecutor(Executor):
    """Steps in threads of this process (each step is a papermill process of its own)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlnb-step")

    @classmethod
    def from_spec(cls, spec: str, workers: int) -> LocalExecutor:
        return cls(workers)

    def submit(self, fn: Callable[..., StepResult], *args: Any) -> Any:
        return self.pool.submit(fn, *args)

    def wait(self, futures: Any) -> set[Any]:
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return set(done)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class DaskExecutor(Executor):
    """Steps as tasks of a Dask distributed cluster (``dask://host:port``); the workers need
    mlnb and the notebooks' packages, and the project folder at the same path."""

    remote = True

    def __init__(self, address: str, workers: int | None) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise PipelineError(
                "--executor dask://... needs the `distributed` package: pip install "
                "'dask[distributed]'."
            ) from None
        try:
            self.client = Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise PipelineError(
                f"the Dask scheduler at {address} does not answer ({exc}); start it "
                "(`dask scheduler`, then `dask worker ADDRESS`) or use --executor local."
            ) from None
        slots = sum(self.client.nthreads().values())
        if not slots:
            self.client.close()
            raise PipelineError(f"the Dask scheduler at {address} has no workers; start one.")
        self.workers = workers or slots

    @classmethod
    def from_spec(cls, spec: str, workers: int) -> DaskExecutor:
        """``dask://HOST:PORT`` or ``tcp://HOST:PORT``; ``workers`` 1 (the default) means as
        many steps at once as the cluster has threads."""
        address = "tcp://" + spec.split("://", 1)[1]
        return cls(address, workers if workers > 1 else None)

    def submit(self, fn: Callable[..., StepResult], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait(self, futures: Any) -> set[Any]:
        # distributed.wait() wants a default client; this one is not (global dask state
        # stays the user's), so poll: steps take seconds, 50 ms is nothing.
        while True:
            done = {future for future in futures if future.done()}
            if done:
                return done
            time.sleep(0.05)

    def close(self) -> None:
        self.client.close()


class PipelineExecutors:
    """The executors known by name (one instance: :data:`executors`)."""

    def __init__(self) -> None:
        self._factories: dict[str, ExecutorFactory] = {}
        self._usage: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str, factory: ExecutorFactory, usage: str | None = None) -> None:
        """Register ``factory`` under ``name``: a plain name (``"local"``), or a scheme
        ending in ``://`` (``"dask://"``) for executors given an address. ``usage`` is how
        the error for an unknown executor shows it (``"dask://HOST:PORT"``); an alias
        registered without one is not shown."""
        self._factories[name] = factory
        if usage is not None:
            self._usage[name] = usage

    def register_entry_points(self) -> None:
        """Register the executors other packages declare in :data:`ENTRY_POINT_GROUP`."""
        from importlib.metadata import entry_points

        self._entry_points_loaded = True
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name in self._factories or f"{entry.name}://" in self._factories:
                continue  # a name registered here comes first
            factory = entry.load()
            self.register(entry.name, factory, entry.name)
            self.register(f"{entry.name}://", factory)

    def get_executor(self, spec: str, workers: int) -> Executor:
        """The executor ``spec`` names, made for ``workers`` steps at once."""
        key = spec.split("://", 1)[0] + "://" if "://" in spec else (spec or "local")
        if key not in self._factories and not self._entry_points_loaded:
            self.register_entry_points()
        factory = self._factories.get(key)
        if factory is None:
            raise PipelineError(
                f"unknown executor {spec!r}: use {' or '.join(self._usage.values())}."
            )
        return factory(spec, workers)


#: the registry :func:`mlnb.pipeline.run_pipeline` looks executors up in
executors = PipelineExecutors()
executors.register("local", LocalExecutor.from_spec, "local")
executors.register("dask://", DaskExecutor.from_spec, "dask://HOST:PORT")
executors.register("tcp://", DaskExecutor.from_spec)


def get_executor(spec: str, workers: int) -> Executor:
    """``executors.get_executor(spec, workers)``."""
    return executors.get_executor(spec, workers)
