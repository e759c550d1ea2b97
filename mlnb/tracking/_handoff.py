"""Finish sending a kernel's journal after the kernel is gone: ``python -m
mlnb.tracking._handoff PID FOLDER``.

A kernel has about 2.5 s between the shutdown request and jupyter_client's SIGTERM. What it
could not send by then (a first run that waits for MLflow's import and a new store, a slow
or hung server) is already durable in its journal segment; this detached process waits for
the kernel to exit (which frees the segment's lease), then replays the segment exactly as
the next mlnb command would, retrying an unreachable store for a few minutes. Whatever is
still left after that waits for ``mlnb sync``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

RETRY_FOR = 300.0  # seconds an unreachable store is retried


def _segment_of(folder: Path, pid: int) -> bool:
    return any(folder.glob(f"*-{pid}-*.jsonl"))


def main(argv: list[str]) -> int:
    pid, folder = int(argv[0]), Path(argv[1])
    deadline = time.monotonic() + 60
    from mlnb.tracking._journal import process_alive

    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlnb.tracking._writer import recover_dead

    give_up = time.monotonic() + RETRY_FOR
    pause = 0.5
    while True:
        result = recover_dead(folder, force=True)
        print(
            f"mlnb handoff for process {pid}: {result.segments} segment(s), {result.sent} "
            f"sent, {result.killed} killed, {result.remaining} remaining"
            + (f", error: {result.error}" if result.error is not None else ""),
            flush=True,
        )
        if result.error is None and result.segments == 0 and _segment_of(folder, pid):
            time.sleep(pause)  # its lease is not free yet: the process is still exiting
            pause = min(pause * 2, 15.0)
            if time.monotonic() < give_up:
                continue
        if result.error is None or time.monotonic() > give_up:
            return 0 if result.error is None else 3
        time.sleep(pause)
        pause = min(pause * 2, 15.0)


if __name__ == "__main__":  # pragma: no cover - run as a detached process
    sys.exit(main(sys.argv[1:]))
