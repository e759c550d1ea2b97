"""mlnb and MLflow's fluent API are one run, in a kernel that loaded ``%load_ext mlnb``.

A notebook that already calls MLflow gets mlnb's run and provenance without changing a line:

- ``mlflow.log_param/log_metric/...`` without ``start_run``, and ``mlflow.autolog()``, write to
  the kernel's mlnb run: it is MLflow's active run of the kernel's main thread.
- The notebook's first top-level ``mlflow.start_run()`` *is* the mlnb run (its name, tags and
  description are applied to it); leaving the ``with`` block does not end it. A later
  top-level ``start_run()`` (a loop of runs) ends the current one and starts the next, each
  with mlnb's provenance. ``start_run(nested=True)`` and ``start_run(run_id=...)`` are MLflow's
  own: nested runs are children of the mlnb run.
- ``mlflow.set_tracking_uri(...)`` and ``mlflow.set_experiment(...)`` are followed: the kernel's
  run moves there (an empty automatic run is deleted, one with records is ended), said once.

The patches wrap MLflow's functions in place (``mlflow.X`` and ``mlflow.tracking.fluent.X``);
each wrapper keeps MLflow's own function as ``__mlnb_original__`` and falls back to it
whenever mlnb has no kernel run, so code outside notebooks is unaffected.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["install", "patch_mlflow"]

_PATCHED = (
    "start_run",
    "end_run",
    "active_run",
    "_get_or_start_run",
    "set_tracking_uri",
    "set_experiment",
)
_said: set[str] = set()
_local = threading.local()


def _session() -> Any:
    from mlnb.tracking._session import session

    return session()


def _say_once(key: str, message: str) -> None:
    if key not in _said:
        _said.add(key)
        print(f"mlnb: {message}", file=sys.stderr, flush=True)


def _joined() -> Any:
    """The session when MLflow's calls should land in mlnb's kernel run, else None."""
    if getattr(_local, "inside", False):
        return None  # mlnb's own use of MLflow
    current = _session()
    return current if current.kernel_mode else None


def _wrap(original: Callable[..., Any], replacement: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current = _joined()
        if current is None:
            return original(*args, **kwargs)
        _local.inside = True
        try:
            return replacement(current, original, *args, **kwargs)
        finally:
            _local.inside = False

    wrapper.__mlnb_original__ = original  # type: ignore[attr-defined]
    return wrapper


# -- the replacements ------------------------------------------------------------------
def _start_run(
    current: Any,
    original: Callable[..., Any],
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
    **kwargs: Any,
) -> Any:
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    run = current.run
    ours = (
        run is not None and run.real is not None and any(r.info.run_id == run.real for r in stack)
    )
    foreign = [r for r in stack if run is None or r.info.run_id != run.real]
    if run_id is not None or parent_run_id is not None or foreign or (nested and not ours):
        if run_id is not None and (run is None or run_id != run.real):
            _say_once(
                f"resume:{run_id}",
                f"the notebook resumed MLflow run {run_id} itself; MLflow's calls go there, "
                "and mlnb's provenance stays in this kernel's run"
                + (f" {run.run_id}." if run is not None else "."),
            )
        return original(
            run_id=run_id,
            experiment_id=experiment_id,
            run_name=run_name,
            nested=nested,
            parent_run_id=parent_run_id,
            tags=tags,
            description=description,
            log_system_metrics=log_system_metrics,
            **kwargs,
        )
    if nested:  # a child of the mlnb run: MLflow's own nested run
        current.mlflow_run()
        return original(
            experiment_id=experiment_id,
            run_name=run_name,
            nested=True,
            tags=tags,
            description=description,
            log_system_metrics=log_system_metrics,
            **kwargs,
        )
    with current._lock:
        run = current.run
        if run is not None and run.kernel and run.claimed == "open" and ours:
            from mlflow.exceptions import MlflowException

            raise MlflowException(
                f"Run with UUID {run.real} is already active. To start a new run, first end "
                "the current run with mlflow.end_run(). To start a nested run, call "
                "start_run with nested=True"
            )
        experiment = _experiment_name(experiment_id)
        fresh = run is None or not run.kernel or run.claimed == "ended"
        moved = experiment is not None and run is not None and experiment != run.experiment
        if run is not None and run.kernel and (fresh or moved):
            if not (moved and current.discard_empty_kernel_run()):
                current.end_run("FINISHED", timeout=0.0)
            run = None
        if run is None or not run.kernel:
            current.start_run(
                wait=False,
                kernel=True,
                auto=False,
                run_name=run_name,
                experiment_name=experiment,
                tags=tags,
                description=description,
            )
            run = current.run
        else:  # the kernel's automatic run becomes the notebook's run
            extra = {k: str(v) for k, v in (tags or {}).items()}
            if run_name:
                extra["mlflow.runName"] = run_name
                run.name = run_name
            if description:
                extra["mlflow.note.content"] = description
            if extra:
                current.set_tags(extra)
        run.claimed = "open"
        run.auto = False  # the notebook's own run now
    active = current.mlflow_run()
    if run_name:
        active.info._run_name = run_name
    return active


def _experiment_name(experiment_id: str | None) -> str | None:
    if experiment_id is None:
        return None
    from mlflow import MlflowClient

    return str(MlflowClient().get_experiment(experiment_id).name)


def _end_run(current: Any, original: Callable[..., Any], status: str = "FINISHED") -> None:
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    run = current.run
    if run is None or run.real is None or not stack or stack[-1].info.run_id != run.real:
        original(status)  # a run of the notebook's own (nested, resumed)
        return None
    if run.kernel:
        # The notebook's block ended; the kernel's run goes on (it ends with the kernel,
        # or when the next top-level start_run begins the next run).
        run.claimed = "ended" if run.claimed else run.claimed
        if status != "FINISHED":
            current.set_tags({"mlnb.mlflow.end_status": status})
        return None
    current.end_run(status)
    return None


def _active_run(current: Any, original: Callable[..., Any]) -> Any:
    active = original()
    if active is not None or current.run is None:
        return active
    try:  # autolog and fluent calls find the kernel's run (created by now, or soon)
        return current.mlflow_run()
    except Exception:
        return None


def _get_or_start_run(current: Any, original: Callable[..., Any]) -> Any:
    """MLflow's fluent log calls without a run write to the kernel's run (not claimed: a
    later ``start_run`` block still takes it over)."""
    from mlflow.tracking import fluent

    if fluent._active_run_stack.get() or current.run is None:
        return original()
    return current.mlflow_run()


def _set_tracking_uri(current: Any, original: Callable[..., Any], uri: Any) -> None:
    from mlnb.config import get_settings

    before = get_settings().tracking_uri
    original(uri)
    after = get_settings().tracking_uri
    if after == before:
        return
    run = current.run
    if run is not None and run.kernel and not current.discard_empty_kernel_run():
        current.end_run("FINISHED", timeout=0.0)
    _say_once(
        f"uri:{after}",
        f"the notebook set the tracking URI to {after}; this kernel's runs go there now.",
    )
    if current.run is None:
        current.start_run(wait=False, kernel=True, auto=True)


def _set_experiment(
    current: Any,
    original: Callable[..., Any],
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    **kwargs: Any,
) -> Any:
    experiment = original(experiment_name=experiment_name, experiment_id=experiment_id, **kwargs)
    current.experiment_override = experiment.name
    run = current.run
    if run is None or not run.kernel or run.experiment == experiment.name:
        return experiment
    if run.claimed == "open":
        return experiment  # MLflow's rule: the active run stays where it is
    if not current.discard_empty_kernel_run():
        current.end_run("FINISHED", timeout=0.0)
    current.start_run(wait=False, kernel=True, auto=True, experiment_name=experiment.name)
    return experiment


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "start_run": _start_run,
    "end_run": _end_run,
    "active_run": _active_run,
    "_get_or_start_run": _get_or_start_run,
    "set_tracking_uri": _set_tracking_uri,
    "set_experiment": _set_experiment,
}


def unlock_import_hook_finder() -> None:
    """Keep MLflow's post-import-hook finder from deadlocking another thread's import.

    ``mlflow.utils.import_hooks.ImportHookFinder`` (inlined from wrapt) takes MLflow's hook
    locks in ``find_spec``, which the import system calls while it holds its global import
    lock; ``mlflow.autolog()`` holds the same hook locks while it imports. A module imported
    by another thread during ``mlflow.autolog()`` then deadlocks both threads (seen in a
    kernel: the journal's sender importing ``mlnb.versioning`` beside a notebook's
    ``mlflow.autolog()``). A module no hook waits for (nearly every import) is answered at
    once without the locks, as the finder would answer it; the rest take them as before.
    Idempotent."""
    from mlflow.utils import import_hooks as hooks

    finder = getattr(hooks, "ImportHookFinder", None)
    if finder is None or getattr(finder, "_mlnb_unlocked", False):
        return
    for name in ("find_spec", "find_module"):
        locked = getattr(finder, name, None)
        if locked is None:
            continue

        def unlocked(self: Any, fullname: str, *args: Any, _locked: Any = locked, **kw: Any) -> Any:
            if (
                fullname not in hooks._post_import_hooks
                and fullname not in hooks._import_error_hooks
            ):
                return None
            return _locked(self, fullname, *args, **kw)

        setattr(finder, name, unlocked)
    finder._mlnb_unlocked = True


def patch_mlflow(mlflow: ModuleType) -> None:
    """Wrap MLflow's fluent functions (idempotent)."""
    from mlflow.tracking import fluent

    try:
        unlock_import_hook_finder()
    except Exception:  # pragma: no cover - MLflow moved its import hooks
        pass

    for name in _PATCHED:
        modules: list[ModuleType] = [mlflow, fluent]
        if name.startswith("_"):
            modules = [fluent]
        if name == "set_tracking_uri":
            import mlflow.tracking as tracking_module

            modules = [mlflow, tracking_module]
        for module in modules:
            func = getattr(module, name, None)
            if func is None or hasattr(func, "__mlnb_original__"):
                continue
            setattr(module, name, _wrap(func, _REPLACEMENTS[name]))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches MLflow right after the notebook (or mlnb) imports it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "mlflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                loader = spec.loader

                def exec_and_patch(module: ModuleType, run: Any = loader.exec_module) -> None:
                    run(module)
                    patch_mlflow(module)

                loader.exec_module = exec_and_patch  # type: ignore[method-assign]
                return spec
        return None


_installed: list[_PatchOnImport] = []


def install() -> None:
    """Join MLflow's fluent API to mlnb's kernel run, now or when MLflow is imported."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and hasattr(mlflow, "start_run"):
        patch_mlflow(mlflow)
        return
    if not _installed:
        finder = _PatchOnImport()
        _installed.append(finder)
        sys.meta_path.insert(0, finder)
