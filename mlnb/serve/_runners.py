"""How an endpoint function is called: DataFrame endpoints take records (micro-batched
when vectorized), typed endpoints take their validated body. One :class:`Slot` holds the
callers of every endpoint of one loaded copy of the service code (the champion, the
challenger, or a new champion being swapped in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlnb.serve._batching import Batcher, to_list
from mlnb.serve._schemas import EndpointShape
from mlnb.serve._service import Service

__all__ = ["EndpointPlan", "Runner", "Slot", "build_slot", "frame_runner", "typed_runner"]


def frame_runner(function: Any, columns: list[str]) -> Callable[[list[dict[str, Any]]], list[Any]]:
    import pandas as pd

    def run(records: list[dict[str, Any]]) -> list[Any]:
        frame = pd.DataFrame.from_records(records, columns=columns)
        return to_list(function(frame))

    return run


def typed_runner(function: Any, shape: EndpointShape) -> Callable[[Any], Any]:
    def call(payload: Any) -> Any:
        if shape.single_model:
            result = function(payload)
        else:
            result = function(**{k: getattr(payload, k) for k in shape.params})
        if shape.returns is not None:
            return shape.returns.dump_python(result, mode="json")
        return result

    return call


@dataclass
class EndpointPlan:
    """What is fixed for an endpoint whichever model answers: its shape and batching."""

    path: str
    shape: EndpointShape
    batching: bool
    max_rows: int = 512
    on_batch: Callable[[int, int], None] | None = None

    def runner_for(self, function: Any) -> Callable[[Any], Any]:
        if self.shape.kind == "dataframe":
            return frame_runner(function, self.shape.columns)
        return typed_runner(function, self.shape)


class Runner:
    def __init__(self, run: Callable[[Any], Any], batcher: Batcher | None) -> None:
        self.run = run
        self.batcher = batcher

    async def __call__(self, body: Any) -> Any:
        if self.batcher is not None:
            return await self.batcher.submit(body)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self.run, body)


@dataclass
class Slot:
    role: str  # champion or challenger
    model: dict[str, Any]  # name, version, uri, hash
    service: Service
    runners: dict[str, Runner] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.model.get('name')}/{self.model.get('version')}"

    def close(self) -> None:
        for runner in self.runners.values():
            if runner.batcher is not None:
                runner.batcher.close()


def model_of(service: Service) -> dict[str, Any]:
    models = service.metadata.get("models") or [{}]
    first = models[0]
    return {
        "name": first.get("name"),
        "version": first.get("version"),
        "uri": first.get("uri"),
        "hash": first.get("hash"),
    }


def build_slot(service: Service, role: str, plans: dict[str, EndpointPlan]) -> Slot:
    """Callers for every planned endpoint of ``service`` (a missing one is an error)."""
    from mlnb.serve._service import ServiceError

    functions = {e.path: e.function for e in service.endpoints}
    slot = Slot(role, model_of(service), service)
    for path, plan in plans.items():
        function = functions.get(path)
        if function is None:
            raise ServiceError(f"the {role}'s code has no endpoint {path}.")
        run = plan.runner_for(function)
        batcher = Batcher(run, plan.max_rows, on_batch=plan.on_batch) if plan.batching else None
        slot.runners[path] = Runner(run, batcher)
    return slot
