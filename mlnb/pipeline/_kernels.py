"""Kernels for pipeline steps: every step gets a fresh kernel, started before it is needed.

Reusing one kernel for several steps cannot be made safe: a step's globals, imported and
monkey-patched modules, threads, open files and working directory would all reach the next
step, and its result would depend on what ran before it, which breaks caching by content.
So a kernel runs exactly one step and is shut down after it. What is reused is the waiting:
while a step runs, the pool starts the kernel for the next one (``warm``) and has it import
mlnb and MLflow, which any step that tracks imports anyway. Nothing of a notebook runs in
a kernel before its step takes it; the step's own settings (its MLflow run id, its notebook
path) are set when it is taken.

``MLNB_PIPELINE_WARM_KERNELS=0`` (or ``run_pipeline(warm_kernels=False)``) starts each
kernel when its step starts instead.
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlnb._net import PORT_RACE_ATTEMPTS, lost_port_race
from mlnb.exceptions import KernelStartError

__all__ = ["KernelPool", "KernelStartError", "prepare_kernel", "start_kernel"]

# Imported in a warm kernel while it waits: what `%load_ext mlnb`, its first write and the
# end of its run load. Not nbformat: mlnb in a kernel does without it, and its import
# (jsonschema, which builds rfc3987-syntax's grammar) cost 3.5 s of CPU per kernel here,
# taken from the steps running beside it on a 2-core machine.
WARM_IMPORTS = ("mlnb.magics", "mlnb.tracking", "mlflow")
START_TIMEOUT = 60.0


_import_lock = threading.Lock()


def import_jupyter_client() -> None:
    """Import jupyter_client in one thread at a time: the pool's threads and the step
    threads start at once, and two threads importing the same package cycle can see it
    half-initialized."""
    with _import_lock:
        import jupyter_client.blocking.client
        import jupyter_client.manager  # noqa: F401
        import jupyter_core.utils  # noqa: F401


def _sync(coroutine_function: Any) -> Any:
    from jupyter_core.utils import run_sync

    return run_sync(coroutine_function)


def start_kernel(name: str, cwd: Path, env: Mapping[str, str]) -> Any:
    """A started kernel named ``name`` in ``cwd`` that has answered: an
    ``AsyncKernelManager``, the kind nbclient makes itself (with it, nbclient notices a kernel
    that died instead of waiting forever).

    Jupyter picks a kernel's ports in this process and the kernel binds them later, so a
    kernel started at the same moment by another process can take one first (jupyter_client
    issue 154): the kernel dies with ``Address already in use`` before it answers. That
    kernel ran nothing, so a new one on new ports is started in its place, a few times."""
    for attempt in range(1, PORT_RACE_ATTEMPTS + 1):
        km = _launch(name, cwd, env)
        kc = _client(km)
        try:
            _wait_for_ready(km, kc)
            return km
        except KernelStartError as exc:
            said = _kernel_log(km)
            shutdown(km, now=True)
            _close_log(km)
            if lost_port_race(said) and attempt < PORT_RACE_ATTEMPTS:
                continue
            detail = f"; it said: {said.strip()[-400:]}" if said.strip() else ""
            raise KernelStartError(f"the kernel {name!r} did not start: {exc}{detail}") from None
        finally:
            kc.stop_channels()
    raise AssertionError("unreachable")  # the loop returns or raises


def _wait_for_ready(km: Any, kc: Any) -> None:
    """Wait for the kernel's first answer; a kernel that dies meanwhile is seen within a
    second (a client made from connection info alone cannot tell a dead kernel from a slow
    one)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            kc.wait_for_ready(timeout=min(1.0, max(deadline - time.monotonic(), 0.1)))
            return
        except (RuntimeError, TimeoutError):
            if not is_alive(km):
                raise KernelStartError("it died before it answered") from None
            if time.monotonic() >= deadline:
                raise KernelStartError(f"it did not answer in {START_TIMEOUT:.0f} s") from None


def _launch(name: str, cwd: Path, env: Mapping[str, str], **manager: Any) -> Any:
    """A started ``AsyncKernelManager`` for kernel ``name`` (``manager``: more of its
    options, e.g. ``shell_port``), its output kept in a temporary file, not shown."""
    import_jupyter_client()
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=name, **manager)
    # The kernel's own output (warnings, teardown noise) is not the user's terminal; what a
    # notebook prints is in its output notebook.
    log = tempfile.TemporaryFile(prefix="mlnb-kernel-")  # noqa: SIM115 (lives with km)
    try:
        _sync(km.start_kernel)(cwd=str(cwd), env=dict(env), stdout=log, stderr=log)
    except NoSuchKernel:
        log.close()
        raise KernelStartError(
            f"no Jupyter kernel named {name!r} is installed; `jupyter kernelspec list` shows "
            "the installed ones (set the step's `kernel:` or the notebook's kernelspec)."
        ) from None
    km.mlnb_log = log  # type: ignore[attr-defined]  # closed with the manager
    return km


def _kernel_log(km: Any) -> str:
    """What the kernel's process printed so far."""
    log = getattr(km, "mlnb_log", None)
    if log is None:
        return ""
    try:
        log.flush()
        log.seek(0)
        return bytes(log.read()).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def _close_log(km: Any) -> None:
    log = getattr(km, "mlnb_log", None)
    if log is not None:
        log.close()


def _client(km: Any) -> Any:
    """A blocking client of our own on the kernel, channels started."""
    from jupyter_client.blocking.client import BlockingKernelClient

    kc = BlockingKernelClient()
    kc.load_connection_info(km.get_connection_info())
    kc.start_channels(hb=False)  # the manager knows whether the process lives
    return kc


def _run_silently(km: Any, code: str) -> None:
    """Run ``code`` in the kernel without a trace: no execution count, no history, no
    output in any notebook."""
    kc = _client(km)
    try:
        kc.wait_for_ready(timeout=START_TIMEOUT)
        reply = kc.execute_interactive(
            code, silent=True, store_history=False, timeout=START_TIMEOUT, output_hook=_ignore
        )
    except (RuntimeError, TimeoutError) as exc:
        raise KernelStartError(f"the kernel did not answer: {exc}") from None
    finally:
        kc.stop_channels()
    content = reply.get("content", {})
    if content.get("status") != "ok":
        raise KernelStartError(
            f"the kernel failed to prepare: {content.get('ename')}: {content.get('evalue')}"
        )


def _ignore(message: dict[str, Any]) -> None:
    """Outputs of silent code go nowhere."""


def _warm_code(modules: tuple[str, ...]) -> str:
    # Only sys.modules changes: no name is bound in the user's namespace.
    return (
        f"for __mlnb_m in {list(modules)!r}:\n"
        "    try:\n"
        "        __import__(__mlnb_m)\n"
        "    except Exception:\n"
        "        pass\n"
        "del __mlnb_m\n"
    )


def prepare_kernel(km: Any, env: Mapping[str, str]) -> None:
    """Give a started kernel its step's environment variables (before any of its cells)."""
    code = f"__import__('os').environ.update({json.dumps(dict(env))})"
    _run_silently(km, code)


def shutdown(km: Any, now: bool = False) -> None:
    """Stop a kernel; ``now=False`` lets it finish (mlnb ends its run in ``do_shutdown``)."""
    try:
        _sync(km.shutdown_kernel)(now=now)
    except Exception:  # already dead: nothing to stop
        pass


def finish(km: Any, timeout: float = 120.0) -> None:
    """End a step's kernel: ask it to shut down and wait for its answer, which comes after
    mlnb in the kernel has ended and flushed the step's run (its ``do_shutdown``). The exit
    of the process (interpreter teardown, half a second with MLflow loaded) is awaited in
    the background, off the pipeline's path."""
    kc = _client(km)
    try:
        msg_id = kc.shutdown()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply = kc.control_channel.get_msg(timeout=1.0)
            except queue.Empty:
                if not is_alive(km):
                    break
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
    finally:
        kc.stop_channels()
    try:
        km.cleanup_connection_file()  # nothing is left behind if this process ends first
    except OSError:
        pass
    # A daemon: the kernel exits by itself (it was told to, and it watches its parent).
    threading.Thread(target=_reap, args=(km,), name="mlnb-kernel-reap", daemon=True).start()


def _reap(km: Any, grace: float = 10.0) -> None:
    """Wait for a kernel that was told to shut down to exit, then clean up after it."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None:
        try:
            process.wait(timeout=grace)
        except Exception:  # still running after the grace period: killed below
            pass
    shutdown(km, now=True)


def kill(km: Any) -> None:
    """Kill the kernel's process at once, from any thread (a step past its timeout); the
    step's nbclient then sees a dead kernel."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None:
        try:
            process.kill()
        except OSError:
            pass


def is_alive(km: Any) -> bool:
    try:
        return bool(_sync(km.is_alive)())
    except Exception:
        return False


class KernelPool:
    """Fresh kernels for the steps of one pipeline run, started ahead when ``warm``."""

    def __init__(self, cwd: Path, env: Mapping[str, str], *, warm: bool, spares: int) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.warm = warm
        self.spares = max(0, spares)
        self._lock = threading.Condition()
        self._ready: dict[str, list[Any]] = {}
        self._starting: dict[str, int] = {}
        self._waiting: dict[str, int] = {}  # steps waiting in take()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._wanted = 0  # kernels the rest of the run may still need
        self._planned = False

    def plan(self, steps: int) -> None:
        """At most ``steps`` more steps will take a kernel (set once, when the first one
        is about to run); :meth:`take` and :meth:`drop` count down from it."""
        with self._lock:
            if not self._planned:
                self._planned = True
                self._wanted = max(0, steps)

    def drop(self, steps: int = 1) -> None:
        """``steps`` of the planned steps will not run (cached, or skipped after a failure)."""
        with self._lock:
            if self._planned:
                self._wanted = max(0, self._wanted - steps)

    def _spare_start(self, name: str) -> None:
        def start() -> None:
            km = None
            try:
                km = start_kernel(name, self.cwd, self.env)
                with self._lock:
                    awaited = self._waiting.get(name, 0) > 0
                if not awaited:  # a step waiting for it now imports what it needs itself
                    _run_silently(km, _warm_code(WARM_IMPORTS))
            except Exception:
                if km is not None:
                    shutdown(km, now=True)
                km = None
            with self._lock:
                self._starting[name] -= 1
                if km is not None and not self._closed:
                    self._ready.setdefault(name, []).append(km)
                    km = None
                self._lock.notify_all()
            if km is not None:
                shutdown(km, now=True)

        thread = threading.Thread(target=start, name="mlnb-kernel-warm", daemon=True)
        self._threads.append(thread)
        thread.start()

    def prestart(self, name: str) -> None:
        """Start spare kernels for ``name`` now, until those ready and starting cover the
        steps that may still need one (at most ``spares``)."""
        if not self.warm:
            return
        with self._lock:
            if self._closed:
                return
            have = len(self._ready.get(name, [])) + self._starting.get(name, 0)
            want = min(self.spares, self._wanted)
            missing = max(0, want - have)
            self._starting[name] = self._starting.get(name, 0) + missing
        for _ in range(missing):
            self._spare_start(name)

    def take(self, name: str) -> tuple[Any, bool]:
        """A kernel no step has used, and whether it was warm. The caller shuts it down."""
        with self._lock:
            # A kernel already starting is ready sooner than a new one.
            self._waiting[name] = self._waiting.get(name, 0) + 1
            while not self._ready.get(name) and self._starting.get(name, 0) > 0:
                self._lock.wait(timeout=START_TIMEOUT)
            self._waiting[name] -= 1
            ready = self._ready.get(name) or []
            km = ready.pop(0) if ready else None
            self._wanted = max(0, self._wanted - 1)
        self.prestart(name)
        if km is not None and is_alive(km):
            return km, True
        if km is not None:
            shutdown(km, now=True)
        return start_kernel(name, self.cwd, self.env), False

    def close(self) -> None:
        """Stop the spares no step took."""
        with self._lock:
            self._closed = True
            spares = [km for kms in self._ready.values() for km in kms]
            self._ready.clear()
        for km in spares:
            shutdown(km, now=True)
        for thread in self._threads:
            thread.join(timeout=START_TIMEOUT)


def kernel_env(project_root: Path) -> dict[str, str]:
    """The environment every step's kernel starts with."""
    return {**os.environ, "MLNB_PROJECT_ROOT": str(project_root)}
