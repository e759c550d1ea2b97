"""Adaptive micro-batching for DataFrame endpoints.

Requests are queued; one worker takes everything queued (up to ``max_rows`` rows), builds one
DataFrame, calls the model once in a dedicated thread and splits the answers back in order.
There is no fixed wait: an idle service answers at once, and the requests that arrive while
the model is busy form the next batch, so batches grow only with concurrency.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["Batcher", "to_list"]


def to_list(result: Any) -> list[Any]:
    """A model's answer for n rows as a list of n JSON-ready items."""
    if hasattr(result, "to_dict") and hasattr(result, "columns"):  # DataFrame
        return list(result.to_dict(orient="records"))
    if hasattr(result, "tolist"):  # numpy array, pandas Series
        return list(result.tolist())
    return list(result)


class Batcher:
    def __init__(
        self,
        predict: Callable[[list[dict[str, Any]]], list[Any]],
        max_rows: int = 512,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.predict = predict  # records -> one answer per record
        self.max_rows = max_rows
        self.on_batch = on_batch
        self._queue: deque[tuple[list[dict[str, Any]], asyncio.Future[list[Any]]]] = deque()
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlnb-model")

    async def submit(self, records: list[dict[str, Any]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((records, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._work())
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch: list[tuple[list[dict[str, Any]], asyncio.Future[list[Any]]]] = []
                rows = 0
                while self._queue and (not batch or rows + len(self._queue[0][0]) <= self.max_rows):
                    item = self._queue.popleft()
                    batch.append(item)
                    rows += len(item[0])
                records: list[dict[str, Any]] = (
                    [r for rows_, _ in batch for r in rows_] if len(batch) > 1 else batch[0][0]
                )
                try:
                    answers = await loop.run_in_executor(self._executor, self.predict, records)
                    if len(answers) != rows:
                        raise ValueError(
                            f"the endpoint returned {len(answers)} answers for {rows} rows"
                        )
                except BaseException as exc:
                    if len(batch) == 1:
                        if not batch[0][1].done():
                            batch[0][1].set_exception(exc)
                        continue
                    # One request's rows may be what failed: answer each request on its own.
                    for rows_alone, future in batch:
                        try:
                            alone = await loop.run_in_executor(
                                self._executor, self.predict, rows_alone
                            )
                            if not future.done():
                                future.set_result(alone)
                        except BaseException as single:
                            if not future.done():
                                future.set_exception(single)
                    continue
                if self.on_batch is not None:
                    self.on_batch(len(batch), rows)
                start = 0
                for part, future in batch:
                    end = start + len(part)
                    if not future.done():
                        future.set_result(answers[start:end])
                    start = end
        finally:
            self._running = False

    def close(self) -> None:
        self._executor.shutdown(wait=False)
