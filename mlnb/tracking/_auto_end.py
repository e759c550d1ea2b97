"""Runs that end by themselves: a kernel's own run, idle interactive runs, and every run
at exit.

Guarantees: at kernel shutdown, papermill's end or interpreter exit, every run mlnb owns
is ended (FAILED when the last cell raised) and everything is journaled first, within
milliseconds; what could not be sent within ``shutdown_timeout`` (longer for a pipeline
step, whose runner waits) stays in the journal and a detached process sends it once this
one has exited (``mlnb sync`` too). An interactive run idle for ``idle_timeout`` ends at
the end of its last cell, and the next cell starts the next run; papermill runs and
pipeline steps never end for idleness.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from mlnb.exceptions import MlnbError
from mlnb.tracking._cells import _papermill_input
from mlnb.tracking._lifecycle import RunLifecycle
from mlnb.tracking._warmup import STOP_WARMING
from mlnb.tracking._writer import _warn

__all__ = ["AutoEnd"]


class AutoEnd(RunLifecycle):
    """Kernel runs, idle end and the end at exit (see the module's docstring)."""

    def begin_kernel_run(self) -> None:
        """The kernel's own run, started by ``%load_ext mlnb`` without waiting for the
        tracking store: experiment, run, params and early provenance are journaled now."""
        self.kernel_mode = True
        if self.run is not None and self.run.kernel:
            self.discard_empty_kernel_run()  # loaded again: the run takes the new context
        if self.run is None:
            self.start_run(wait=False, kernel=True, auto=True)
        self._watch_idle()

    def at_exit(self) -> None:
        """Kernel shutdown, papermill's end, or interpreter exit: finish the run.

        Everything is journaled first (milliseconds); then what is left is sent for at most
        ``shutdown_timeout`` seconds (jupyter_client SIGTERMs the kernel 2.5 s after asking
        it to stop). What could not be sent stays in the journal for the next mlnb process.
        """
        if self._finished:
            return  # ended at the kernel's shutdown request; this is the interpreter's exit
        self._exiting = True
        STOP_WARMING.set()
        self._idle_wake.set()
        budget = self.settings.shutdown_timeout
        if os.environ.get("MLNB_RUN_ID"):
            # A pipeline step: the runner waits for this kernel's answer (no SIGTERM at
            # 2.5 s) and the step counts as done only once its run is complete.
            budget = max(budget, self.settings.http_timeout + 60.0)
        started = time.monotonic()
        try:
            run = self.run
            if run is None and self.notebook_params and not self._ever_started:
                # A parameterized notebook that logged nothing itself is still recorded.
                self.start_run(wait=False)
                run = self.run
            while run is not None and run.owned:
                last = self.recorder.cells[-1] if self.recorder and self.recorder.cells else None
                self.end_run(
                    "FAILED" if last is not None and last.error else "FINISHED",
                    end_time=self._end_time(),
                    timeout=0.0,
                )
                run = self.run
            remaining = max(0.0, budget - (time.monotonic() - started))
            journal = self.journal
            if journal.flush(timeout=remaining):
                journal.close()
            else:
                left = journal.unsent + len(journal._queue)
                if left:
                    _hand_off(journal.folder)
                    why = "the tracking store is unreachable" if journal.offline else "no time"
                    _say(
                        f"mlnb: {left} tracking write(s) not sent yet ({why}); they are kept "
                        f"in {journal.folder} and sent in the background once this process "
                        "has exited (`mlnb sync` sends them too)."
                    )
        except MlnbError as exc:
            _warn(str(exc))
        except Exception as exc:  # pragma: no cover - last resort at exit
            _warn(f"could not finish the run at exit: {exc}")
        finally:
            self._exiting = False
            self._finished = self.kernel_mode and self.run is None

    def _end_time(self) -> int | None:
        """An interactive run ends when its last cell did, not when the kernel stops."""
        run = self.run
        if run is None or self.last_activity is None or not self.kernel_mode:
            return None
        if _papermill_input() or os.environ.get("MLNB_RUN_ID"):
            return None
        return int(self.last_activity * 1000)

    # -- interactive runs: idle end ----------------------------------------------------
    def before_cell(self) -> None:
        """Called before each cell: an interactive run idle for ``idle_timeout`` has ended
        (at the end of its last cell); this cell starts the next run."""
        self.in_cell = True
        if not self.kernel_mode:
            return
        with self._lock:
            if self.run is None and self._ever_started:
                self.start_run(wait=False, kernel=True, auto=True)
            else:
                self._end_if_idle(start_next=True)

    def _end_if_idle(self, start_next: bool) -> bool:
        run = self.run
        if run is None or self.last_activity is None:
            return False
        if self._idle_timeout is None:  # read once: settings cost ~0.1 ms, this runs per cell
            self._idle_timeout = self.settings.idle_timeout
        idle = self._idle_timeout
        if (
            run is None
            or not run.kernel
            or idle <= 0
            or self.last_activity is None
            or self.clock() - self.last_activity < idle
            or _papermill_input()
            or os.environ.get("MLNB_RUN_ID")
        ):
            return False
        self.end_run("FINISHED", end_time=int(self.last_activity * 1000), timeout=0.0)
        if start_next:
            self.start_run(wait=False, kernel=True, auto=True)
        return True

    def _watch_idle(self) -> None:
        if self._idle_watch is not None or self.settings.idle_timeout <= 0:
            return

        def watch() -> None:
            while not self._exiting:
                idle = self.settings.idle_timeout
                last = self.last_activity
                wait = idle if last is None else max(0.5, last + idle - self.clock())
                if self._idle_wake.wait(min(wait, 60.0)):
                    return
                with contextlib.suppress(Exception), self._lock:
                    self._end_if_idle(start_next=False)

        self._idle_watch = threading.Thread(target=watch, name="mlnb-idle", daemon=True)
        self._idle_watch.start()


def _hand_off(folder: Path) -> None:
    """Start a detached process that sends this journal once this process has exited."""
    import subprocess

    with contextlib.suppress(Exception):
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "handoff.log").open("a", encoding="utf-8") as log:
            subprocess.Popen(
                [sys.executable, "-m", "mlnb.tracking._handoff", str(os.getpid()), str(folder)],
                cwd=str(folder.parent.parent),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )


def _say(message: str) -> None:
    """A line on the terminal of the process (papermill's, for a kernel), at exit."""
    for stream in (sys.__stderr__, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                print(message, file=stream, flush=True)
                return
