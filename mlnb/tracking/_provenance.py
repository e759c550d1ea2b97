"""Where a run came from: git state, Python, platform and installed packages."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EnvironmentInfo", "GitInfo", "environment_info", "git_info"]


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
    import json
    import os
    import tempfile
    from importlib import metadata

    folders = [p for p in sys.path if p and os.path.isdir(p)]
    key = hashlib.sha256(
        json.dumps([sys.executable, [(p, os.stat(p).st_mtime_ns) for p in folders]]).encode()
    ).hexdigest()[:24]
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    cache = Path(cache_home) / "mlnb" / f"packages-{key}.json"
    try:
        packages = json.loads(cache.read_text(encoding="utf-8"))
        if isinstance(packages, list) and all(isinstance(p, str) for p in packages):
            return packages
    except (OSError, ValueError):
        pass
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    packages = sorted(seen.values(), key=str.lower)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=cache.parent, delete=False, suffix=".tmp", encoding="utf-8"
        ) as tmp:
            json.dump(packages, tmp)
        os.replace(tmp.name, cache)
    except OSError:  # a read-only home only costs the scan next time
        pass
    return packages


def environment_info() -> EnvironmentInfo:
    return EnvironmentInfo(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        executable=sys.executable,
        packages=_installed_packages(),
    )
