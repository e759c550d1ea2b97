"""Progress of a pipeline run: events for each step, and their display on a terminal.

``run_pipeline(on_event=...)`` calls back with a :class:`StepEvent` at every change: a step
queued, cached, started, entering a cell, retried, done, failed or skipped. The terminal
display (``mlnb pipeline run``) prints one line per change; on a TTY it also keeps a status
line under them with every running step, its elapsed time and its current cell.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from mlnb._text import first_code_line

__all__ = ["STATES", "Events", "StepEvent", "TerminalProgress"]

STATES = ("queued", "running", "cached", "done", "failed", "skipped", "retrying")


@dataclass(frozen=True)
class StepEvent:
    step: str
    state: str  # one of STATES
    elapsed: float  # seconds since the pipeline run started
    cell: str | None = None  # the running cell: "3/7 model.fit(X, y)"
    message: str | None = None  # for people: "done in 3.2 s", "FAILED: cell In [3] ..."
    run_id: str | None = None  # the step's MLflow run (running, cached, done, failed)
    notebook: str | None = None  # its executed notebook, once written (cached, done, failed)


EventHandler = Callable[[StepEvent], None]
#: a line of progress for people (``run_pipeline(report=print)``)
Report = Callable[[str], None]


def cell_label(index: int, total: int, source: str) -> str:
    return f"{index + 1}/{total} {first_code_line(source, 48)}".rstrip()


class TerminalProgress:
    """Lines for state changes; on a TTY, a live status line of the running steps."""

    def __init__(
        self, write: Callable[[str], None] | None = None, live: bool | None = None
    ) -> None:
        self.stream: TextIO = sys.stdout
        self.write = write
        self.live = self.stream.isatty() if live is None else live
        self.running: dict[str, tuple[float, str | None]] = {}  # step -> (since, cell)
        self.started = time.perf_counter()
        self._lock = threading.Lock()
        self._status_shown = False
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def __call__(self, event: StepEvent) -> None:
        with self._lock:
            if event.state == "running":
                since = self.running.get(event.step, (event.elapsed, None))[0]
                known = event.step in self.running
                self.running[event.step] = (since, event.cell)
                if known:  # a new cell: only the status line changes
                    self._draw_status()
                    return
                text = event.message or "running"
            else:
                self.running.pop(event.step, None)
                text = event.message or event.state
            self._line(f"[{event.elapsed:7.1f}s] {event.step:<16} {text}")
            if self.live and self.running and self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()

    def _line(self, text: str) -> None:
        self._clear_status()
        if self.write is not None:
            self.write(text)
        else:
            self.stream.write(text + "\n")
        self._draw_status()

    def _status(self) -> str:
        now = time.perf_counter() - self.started
        parts = []
        for step, (since, cell) in self.running.items():
            part = f"{step} {now - since:.0f}s"
            if cell:
                part += f" · cell {cell}"
            parts.append(part)
        text = "  running: " + " | ".join(parts)
        width = shutil.get_terminal_size((100, 20)).columns
        return text if len(text) < width else text[: width - 2] + "…"

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[2K")
            self._status_shown = False

    def _draw_status(self) -> None:
        if not self.live:
            return
        self._clear_status()
        if self.running:
            self.stream.write(self._status())
            self._status_shown = True
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self.running:
                    self._draw_status()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._clear_status()
            self.stream.flush()


class Events:
    """A run's events, given to every handler: ``on_event`` (each :class:`StepEvent`) and
    ``report`` (as lines); with neither, to a :class:`TerminalProgress` of its own. Elapsed
    times count from when this is made. Called as ``events(step, state, cell, message)``,
    the shape :func:`mlnb.pipeline._step.run_step` reports in, from any thread."""

    def __init__(self, on_event: EventHandler | None, report: Report | None) -> None:
        self.handlers: list[EventHandler] = []
        self.terminal: TerminalProgress | None = None
        if on_event is not None:
            self.handlers.append(on_event)
        if report is not None:
            self.handlers.append(TerminalProgress(report, live=False))
        if not self.handlers:
            self.terminal = TerminalProgress()
            self.handlers.append(self.terminal)
        self.started = time.perf_counter()

    def __call__(
        self,
        step: str,
        state: str,
        cell: str | None = None,
        message: str | None = None,
        *,
        run_id: str | None = None,
        notebook: str | None = None,
    ) -> None:
        elapsed = time.perf_counter() - self.started
        event = StepEvent(step, state, elapsed, cell, message, run_id, notebook)
        for handler in self.handlers:
            handler(event)

    def close(self) -> None:
        """Stop the terminal's status line, if this made one."""
        if self.terminal is not None:
            self.terminal.close()
