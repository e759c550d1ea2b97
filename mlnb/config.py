"""One place that resolves where mlnb keeps things and how it talks to MLflow.

Resolution order for every setting, last wins:

1. built-in defaults (the embedded store under ``<root>/.mlnb``);
2. ``[tool.mlnb]`` in the project's ``pyproject.toml``;
3. environment variables (``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``,
   ``MLFLOW_EXPERIMENT_NAME`` and the ``MLNB_*`` variables below).

The project root is found by walking up from the working directory to the nearest folder
holding a ``pyproject.toml`` with a ``[tool.mlnb]`` table, a ``.mlnb/`` folder or ``.git``;
``MLNB_PROJECT_ROOT`` overrides the search. Without any of them the working directory is
the root.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlnb.exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["HOME_DIRNAME", "Settings", "find_project_root", "get_settings", "reset_settings"]

HOME_DIRNAME = ".mlnb"

#: ``[tool.mlnb]`` keys and the environment variables that override them
_ENV = {
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "registry_uri": "MLFLOW_REGISTRY_URI",
    "experiment": "MLFLOW_EXPERIMENT_NAME",
    "artifact_root": "MLNB_ARTIFACT_ROOT",
    "flush_interval": "MLNB_FLUSH_INTERVAL",
    "commit_interval": "MLNB_COMMIT_INTERVAL",
    "shutdown_timeout": "MLNB_SHUTDOWN_TIMEOUT",
    "idle_timeout": "MLNB_IDLE_TIMEOUT",
    "http_timeout": "MLNB_HTTP_TIMEOUT",
    "http_retries": "MLNB_HTTP_RETRIES",
    "autolog_params": "MLNB_AUTOLOG_PARAMS",
    "remote": "MLNB_REMOTE",
}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one project. Build it with :func:`get_settings`."""

    root: Path
    tracking_uri: str
    registry_uri: str | None = None
    #: where runs of the embedded store keep their artifacts (a local folder)
    artifact_root: Path | None = None
    #: experiment used when a run starts without one (else the notebook's name)
    experiment: str | None = None
    #: kept for older configurations; writes are journaled every ``commit_interval``
    flush_interval: float = 1.0
    #: the journal's group-commit window in seconds: a kill -9 loses at most this much
    commit_interval: float = 0.05
    #: seconds a kernel shutdown spends sending what is left (the rest stays journaled)
    shutdown_timeout: float = 1.5
    #: an interactive run ends after this many seconds without an executed cell (0: never)
    idle_timeout: float = 1800.0
    #: seconds before a request to a tracking server is given up (the journal keeps the writes)
    http_timeout: int = 10
    #: retries of a request to a tracking server before it counts as unreachable
    http_retries: int = 1
    #: log the notebook's ``parameters`` cell (and papermill's injected values) as params
    autolog_params: bool = True
    #: default remote of ``mlnb push`` / ``mlnb pull`` (an fsspec URL)
    remote: str | None = None
    #: where each setting came from, for ``mlnb init`` and ``%mlnb status``
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def home(self) -> Path:
        """The project's ``.mlnb`` folder."""
        return self.root / HOME_DIRNAME

    @property
    def journal_dir(self) -> Path:
        """The write-ahead journal of tracking writes (see ``mlnb.tracking._journal``)."""
        return self.home / "journal"

    @property
    def outbox_dir(self) -> Path:  # the name of earlier versions
        return self.journal_dir

    @property
    def embedded(self) -> bool:
        """True when tracking goes to the embedded SQLite store of this project."""
        return self.tracking_uri == default_tracking_uri(self.root)

    @property
    def is_remote(self) -> bool:
        """True when tracking goes to an MLflow server over HTTP(S)."""
        return self.tracking_uri.startswith(("http://", "https://"))


def default_tracking_uri(root: Path) -> str:
    """The embedded default store: MLflow's SQLite store in ``<root>/.mlnb/mlflow.db``."""
    return f"sqlite:///{(root / HOME_DIRNAME / 'mlflow.db').as_posix()}"


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """Nearest folder at or above ``start`` that looks like a project root.

    A folder qualifies when it holds a ``.mlnb/`` folder, a ``pyproject.toml`` with a
    ``[tool.mlnb]`` table, or ``.git``. ``MLNB_PROJECT_ROOT`` wins over the search.
    """
    env_root = os.environ.get("MLNB_PROJECT_ROOT")
    if env_root:
        path = Path(env_root).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(
                f"MLNB_PROJECT_ROOT={env_root!r} is not a folder; "
                "point it at your project or unset it."
            )
        return path
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / HOME_DIRNAME).is_dir():
            return folder
        if _has_tool_mlnb(folder / "pyproject.toml"):
            return folder
        if (folder / ".git").exists():
            return folder
    return here


def _has_tool_mlnb(pyproject: Path) -> bool:
    if not pyproject.is_file():
        return False
    return "mlnb" in _read_pyproject(pyproject).get("tool", {})


def _read_pyproject(pyproject: Path) -> dict[str, Any]:
    try:
        with pyproject.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject} is not valid TOML ({exc}); fix the file.") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {pyproject}: {exc.strerror}.") from exc


def _coerce(name: str, value: Any, origin: str) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = str(kinds[name])
    try:
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("Path"):
            return Path(str(value)).expanduser()
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: {name} = {value!r} is not a valid {kind.split(' ')[0]}; fix or remove it."
        ) from None


def _settings_for(root: Path) -> Settings:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        table = _read_pyproject(pyproject).get("tool", {}).get("mlnb", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{pyproject}: [tool.mlnb] must be a table.")
        unknown = sorted(set(table) - set(_ENV))
        if unknown:
            raise ConfigError(
                f"{pyproject}: unknown key(s) in [tool.mlnb]: {', '.join(unknown)}; "
                f"known keys are {', '.join(sorted(_ENV))}."
            )
        for key, value in table.items():
            values[key] = _coerce(key, value, f"{pyproject} [tool.mlnb]")
            sources[key] = f"{pyproject.name} [tool.mlnb]"
    for key, env in _ENV.items():
        raw = os.environ.get(env)
        if raw:
            values[key] = _coerce(key, raw, f"environment variable {env}")
            sources[key] = f"${env}"

    tracking_uri = values.pop("tracking_uri", None) or default_tracking_uri(root)
    sources.setdefault("tracking_uri", "default (embedded SQLite store)")
    artifact_root = values.pop("artifact_root", None)
    if artifact_root is not None and not Path(artifact_root).is_absolute():
        artifact_root = root / artifact_root
    if artifact_root is None:
        artifact_root = root / HOME_DIRNAME / "artifacts"
    if tracking_uri.startswith("sqlite:///") is False and "://" not in tracking_uri:
        raise ConfigError(
            f"tracking URI {tracking_uri!r} ({sources['tracking_uri']}) has no scheme; use "
            "http://host:port for an MLflow server or sqlite:///path/to/mlflow.db."
        )
    return Settings(
        root=root,
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        sources=sources,
        **values,
    )


_cache: dict[tuple[Path, tuple[tuple[str, str | None], ...]], Settings] = {}


def get_settings(start: str | os.PathLike[str] | None = None) -> Settings:
    """Settings of the project that contains ``start`` (default: the working directory).

    Cached per root and environment, so calling it on every operation is cheap.
    """
    root = find_project_root(start)
    key = (root, tuple((env, os.environ.get(env)) for env in _ENV.values()))
    cached = _cache.get(key)
    if cached is None:
        cached = _cache[key] = _settings_for(root)
    return cached


def reset_settings() -> None:
    """Forget cached settings (after ``pyproject.toml`` changed)."""
    _cache.clear()


def init_project(root: Path | None = None) -> list[str]:
    """Create ``.mlnb/`` in the project and say what was done, one line per action."""
    settings = get_settings(root)
    done: list[str] = []
    for folder in (settings.home, settings.journal_dir, settings.artifact_root):
        assert folder is not None
        if folder.is_dir():
            done.append(f"exists   {folder}")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            done.append(f"created  {folder}")
    ignore = settings.home / ".gitignore"
    if not ignore.exists():
        # The store is local state: keep it out of git unless the user decides otherwise.
        ignore.write_text("*\n", encoding="utf-8")
        done.append(f"created  {ignore} (keeps the local store out of git)")
    done.append(f"tracking {settings.tracking_uri}  [{settings.sources['tracking_uri']}]")
    if settings.embedded:
        done.append(f"artifacts {settings.artifact_root}")
    reset_settings()
    return done
