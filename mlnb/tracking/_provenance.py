"""Provenance: where a run came from and what each cell of the notebook recorded.

- at the start of a run, :func:`context_tags` (mlnb version, notebook, runner, host, pid)
  go with the run's creation, and :func:`record_environment` (git state, Python, platform,
  installed packages) follows from a background thread: it never breaks or slows the
  user's run, and a failure is a warning;
- while it runs, :func:`note` keeps which cell logged what (``provenance.json``);
- at its end, :func:`write_run_artifacts` writes the execution flags (out of order,
  re-executed, errors), the code, cells, notebook snapshot and provenance under ``mlnb/``
  of the run.

Every write goes through the run's journal (:class:`~mlnb.tracking._writer.BatchWriter`),
so provenance is as durable as the run's own records.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.config import Settings
from mlnb.tracking._cells import CellRecorder, _papermill_input
from mlnb.tracking._validation import MAX_TAG_LENGTH
from mlnb.tracking._writer import BatchWriter, _warn

if TYPE_CHECKING:
    from mlnb.tracking._lifecycle import Run

__all__ = [
    "ARTIFACT_DIR",
    "EnvironmentInfo",
    "GitInfo",
    "context_tags",
    "environment_info",
    "git_info",
    "log_texts",
    "note",
    "record_environment",
    "where",
    "write_run_artifacts",
]

#: the run's artifact folder for provenance (code, cells, notebook, environment)
ARTIFACT_DIR = "mlnb"


@dataclass
class GitInfo:
    commit: str
    branch: str | None
    repo_url: str | None
    dirty: bool
    diff: str  # `git diff HEAD` of tracked files
    untracked: list[str] = field(default_factory=list)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_info(path: Path) -> GitInfo | None:
    """Git state of the repository holding ``path``, or None outside one (or without git)."""
    commit = _git(["rev-parse", "HEAD"], path)
    if not commit:
        return None
    branch = (_git(["rev-parse", "--abbrev-ref", "HEAD"], path) or "").strip() or None
    url = (_git(["config", "--get", "remote.origin.url"], path) or "").strip() or None
    diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff"], path) or ""
    untracked = (_git(["ls-files", "--others", "--exclude-standard"], path) or "").splitlines()
    return GitInfo(
        commit=commit.strip(),
        branch=None if branch == "HEAD" else branch,
        repo_url=url,
        dirty=bool(diff.strip()) or bool(untracked),
        diff=diff,
        untracked=untracked,
    )


@dataclass
class EnvironmentInfo:
    python: str
    implementation: str
    platform: str
    executable: str
    packages: list[str]  # "name==version", sorted

    @property
    def packages_hash(self) -> str:
        return hashlib.sha256("\n".join(self.packages).encode()).hexdigest()


def _installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted.

    Reading every distribution's metadata takes a few hundred milliseconds, paid by every
    run and every pipeline step; the answer only changes when a package is installed,
    upgraded or removed, which changes the modification time of its ``site-packages``
    folder. So it is cached per interpreter, keyed by those folders and their times."""
    from importlib import metadata

    cache = environment_cache("packages")
    cached = read_cache(cache)
    if isinstance(cached, list) and all(isinstance(p, str) for p in cached):
        return cached
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    packages = sorted(seen.values(), key=str.lower)
    write_cache(cache, packages)
    return packages


def environment_cache(kind: str) -> Path:
    """Where a fact about the installed environment (``kind``) is cached for this
    interpreter: keyed by the ``sys.path`` folders that hold installed distributions
    (``*.dist-info``, ``*.egg-info``) and their modification times, which change when a
    package is installed, upgraded or removed. Other folders on the path (the working
    directory, a project's own code) change all the time and install nothing."""
    import json
    import os

    folders = [p for p in sys.path if p and os.path.isdir(p) and _holds_distributions(p)]
    key = hashlib.sha256(
        json.dumps([sys.executable, [(p, os.stat(p).st_mtime_ns) for p in folders]]).encode()
    ).hexdigest()[:24]
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache_home) / "mlnb" / f"{kind}-{key}.json"


def _holds_distributions(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(e.name.endswith((".dist-info", ".egg-info")) for e in entries)
    except OSError:
        return False


def read_cache(cache: Path) -> Any:
    """The JSON value in ``cache``, or None when it is missing or unreadable."""
    try:
        return json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_cache(cache: Path, value: Any) -> None:
    """Write ``value`` to ``cache`` atomically; a read-only home only costs the work later."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=cache.parent, delete=False, suffix=".tmp", encoding="utf-8"
        ) as tmp:
            json.dump(value, tmp)
        os.replace(tmp.name, cache)
    except OSError:
        pass


def environment_info() -> EnvironmentInfo:
    return EnvironmentInfo(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        executable=sys.executable,
        packages=_installed_packages(),
    )


def where(recorder: CellRecorder | None) -> dict[str, Any]:
    """The cell running now (index, execution count, id), or nothing outside a notebook."""
    cell = recorder.current if recorder else None
    if cell is None:
        return {}
    out: dict[str, Any] = {"cell_index": cell.index, "execution_count": cell.execution_count}
    if cell.cell_id:
        out["cell_id"] = cell.cell_id
    return out


def note(run: Run, recorder: CellRecorder | None, kind: str, key: str) -> None:
    """Keep that the current cell recorded ``key`` (a metric, param, tag, artifact...)."""
    run.provenance.append({"kind": kind, "key": key, **where(recorder)})


def context_tags(recorder: CellRecorder | None, settings: Settings) -> dict[str, str]:
    """The tags a run is created with: mlnb's version, the notebook, the runner, host, pid."""
    tags: dict[str, str] = {"mlnb.version": _mlnb_version()}
    notebook = recorder.notebook_path if recorder else None
    if notebook is not None:
        try:
            source = str(notebook.relative_to(settings.root))
        except ValueError:
            source = str(notebook)
        tags["mlflow.source.name"] = source
        tags["mlflow.source.type"] = "NOTEBOOK"
        tags["mlnb.notebook"] = str(notebook)
    if recorder is not None:
        tags["mlnb.runner"] = "papermill" if _papermill_input() else "jupyter"
    else:
        tags["mlnb.runner"] = "script"
    tags["mlnb.host"] = _host()
    tags["mlnb.pid"] = str(os.getpid())
    return tags


def record_environment(
    writer: BatchWriter, run: Run, settings: Settings, *, warm_flavors: bool
) -> None:
    """Git and environment provenance, off the caller's path (run it in a thread); with
    ``warm_flavors``, then the model flavors' warm-up in a thread of its own."""
    try:
        files: dict[str, str] = {}
        git = git_info(settings.root)
        if git is not None:
            tags = {
                "mlflow.source.git.commit": git.commit,
                "mlflow.source.git.dirty": str(git.dirty).lower(),
                "mlnb.git.dirty": str(git.dirty).lower(),
            }
            if git.branch:
                tags["mlflow.source.git.branch"] = git.branch
            if git.repo_url:
                tags["mlflow.source.git.repoURL"] = git.repo_url
            for key, value in tags.items():
                writer.submit(run.key, "tag", (key, value))
            if git.dirty:
                files["git_diff.patch"] = git.diff + "".join(
                    f"# untracked: {name}\n" for name in git.untracked
                )
        env = environment_info()
        for key, value in {
            "mlnb.python.version": env.python,
            "mlnb.python.implementation": env.implementation,
            "mlnb.platform": env.platform,
            "mlnb.packages.hash": env.packages_hash,
        }.items():
            writer.submit(run.key, "tag", (key, value))
        files["environment.txt"] = (
            f"# python {env.python} ({env.implementation}) on {env.platform}\n"
            f"# executable {env.executable}\n# packages hash {env.packages_hash}\n"
            + "\n".join(env.packages)
            + "\n"
        )
        log_texts(writer, run, files)
        # Not part of the run's background work: the end of the run does not wait for it.
        # Never in a kernel: importing sklearn or lightgbm there beside the notebook's own
        # imports of them can deadlock or see a half-initialised module.
        if warm_flavors:
            from mlnb._ast import serialize_ast
            from mlnb.tracking._warmup import warm_model_flavors

            serialize_ast()
            threading.Thread(target=warm_model_flavors, name="mlnb-warm", daemon=True).start()
    except Exception as exc:  # provenance must never break the user's run
        _warn(f"could not record git/environment provenance: {exc}")


def log_texts(writer: BatchWriter, run: Run, files: Mapping[str, str]) -> None:
    """Write small text files as artifacts under ``mlnb/`` of the run."""
    if not files:
        return
    folder = Path(tempfile.mkdtemp(prefix="mlnb-artifacts-"))
    try:
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        writer.send_or_journal(
            {"op": "log_artifact", "run": run.key, "artifact_path": ARTIFACT_DIR},
            files={"src": folder},
        )
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def write_run_artifacts(writer: BatchWriter, run: Run, recorder: CellRecorder | None) -> None:
    """At the end of ``run``: the execution flags as tags, and the code, cells, notebook
    snapshot and provenance records as artifacts under ``mlnb/``."""

    def tag(key: str, value: str) -> None:
        writer.submit(run.key, "tag", (key, value[:MAX_TAG_LENGTH]))

    files: dict[str, str] = {}
    if recorder is not None and recorder.cells:
        flags = recorder.execution_flags()
        tag("mlnb.execution.out_of_order", str(flags["out_of_order"]).lower())
        tag("mlnb.execution.reexecuted_cells", ",".join(flags["reexecuted"])[:MAX_TAG_LENGTH])
        tag(
            "mlnb.execution.reexecuted",
            str(bool(flags["reexecuted"] or flags["reexecuted_without_id"])).lower(),
        )
        tag("mlnb.execution.cells", str(len(recorder.cells)))
        failed = [c for c in recorder.cells[run.first_cell :] if c.error]
        if failed:
            tag("mlnb.execution.errors", str(len(failed)))
        files["code.py"] = recorder.code_text()
        files["cells.json"] = json.dumps(recorder.cells_json(), indent=1)
        try:
            snapshot = recorder.snapshot()
            files["notebook.ipynb"] = json.dumps(snapshot, indent=1, ensure_ascii=False)
        except Exception as exc:
            _warn(f"could not snapshot the notebook: {exc}")
    files["provenance.json"] = json.dumps(
        {
            "notebook": str(recorder.notebook_path)
            if recorder and recorder.notebook_path
            else None,
            "records": run.provenance,
        },
        indent=1,
    )
    log_texts(writer, run, files)


def _host() -> str:
    import socket

    return socket.gethostname()


def _mlnb_version() -> str:
    from mlnb._version import __version__

    return __version__
