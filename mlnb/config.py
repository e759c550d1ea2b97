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

Reading ``MLNB_*`` variables (every face reads its own through these, once, into one
settings object: :class:`Settings` here, ``mlnb.serve.ServeSettings`` for a service):
:func:`env_flag`, :func:`env_int`, :func:`env_float`, :func:`env_choice` and
:func:`env_str`. The failure policy is one: an unset or empty variable takes its documented
default; any other value that is not one the setting accepts is an error (``ConfigError``,
or the face's own subclass of ``MlnbError``) raised where the settings are read, at
start-up, whose message is one line naming the variable, the bad value, the values allowed
and the fix. No value is silently replaced by a default.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, overload

from mlnb.exceptions import ConfigError, MlnbError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "FLAG_OFF",
    "FLAG_ON",
    "HOME_DIRNAME",
    "Settings",
    "env_choice",
    "env_flag",
    "env_float",
    "env_int",
    "env_str",
    "find_project_root",
    "get_settings",
    "parse_flag",
    "reset_settings",
]

HOME_DIRNAME = ".mlnb"

#: the spellings of a flag (case and surrounding spaces do not matter)
FLAG_ON = ("1", "true", "yes", "on")
FLAG_OFF = ("0", "false", "no", "off")

_Default = TypeVar("_Default")


def _raw(name: str) -> str | None:
    """The variable's value, None when unset or only spaces (both mean: the default)."""
    value = os.environ.get(name)
    return value if value is not None and value.strip() else None


def _shown(default: object) -> str:
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, float) else str(default)


def parse_flag(text: str) -> bool | None:
    """``True`` for :data:`FLAG_ON`, ``False`` for :data:`FLAG_OFF`, else None."""
    value = text.strip().lower()
    if value in FLAG_ON:
        return True
    if value in FLAG_OFF:
        return False
    return None


@overload
def env_flag(name: str, default: bool, *, error: type[MlnbError] = ...) -> bool: ...
@overload
def env_flag(name: str, default: None, *, error: type[MlnbError] = ...) -> bool | None: ...
def env_flag(
    name: str, default: bool | None, *, error: type[MlnbError] = ConfigError
) -> bool | None:
    """A flag: one of :data:`FLAG_ON` or :data:`FLAG_OFF`; ``default`` when unset."""
    raw = _raw(name)
    if raw is None:
        return default
    value = parse_flag(raw)
    if value is None:
        raise error(
            f"{name}={raw!r} is not a flag; use one of {', '.join(FLAG_ON)} (on) or "
            f"{', '.join(FLAG_OFF)} (off), or unset it for the default ({_shown(default)})."
        )
    return value


@overload
def env_int(
    name: str, default: int, *, minimum: int | None = ..., error: type[MlnbError] = ...
) -> int: ...
@overload
def env_int(
    name: str, default: None, *, minimum: int | None = ..., error: type[MlnbError] = ...
) -> int | None: ...
def env_int(
    name: str,
    default: int | None,
    *,
    minimum: int | None = None,
    error: type[MlnbError] = ConfigError,
) -> int | None:
    """A whole number (``_`` may group digits: ``64_000_000``), at least ``minimum``;
    ``default`` when unset."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value: int | None = int(raw.strip().replace("_", ""))
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" of at least {minimum}"
        example = default if default is not None else (minimum if minimum is not None else 1)
        raise error(
            f"{name}={raw!r} is not a whole number{bound}; set it to one (e.g. "
            f"{name}={example}) or unset it for the default ({_shown(default)})."
        )
    return value


@overload
def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = ...,
    above: float | None = ...,
    maximum: float | None = ...,
    error: type[MlnbError] = ...,
) -> float: ...
@overload
def env_float(
    name: str,
    default: None,
    *,
    minimum: float | None = ...,
    above: float | None = ...,
    maximum: float | None = ...,
    error: type[MlnbError] = ...,
) -> float | None: ...
def env_float(
    name: str,
    default: float | None,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    error: type[MlnbError] = ConfigError,
) -> float | None:
    """A finite number, at least ``minimum``, more than ``above``, at most ``maximum``;
    ``default`` when unset."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value: float | None = float(raw)
    except ValueError:
        value = None
    if (
        value is None
        or not math.isfinite(value)
        or (minimum is not None and value < minimum)
        or (above is not None and value <= above)
        or (maximum is not None and value > maximum)
    ):
        bounds = [
            *([f"at least {minimum:g}"] if minimum is not None else []),
            *([f"more than {above:g}"] if above is not None else []),
            *([f"at most {maximum:g}"] if maximum is not None else []),
        ]
        kind = "a number" + (f" {' and '.join(bounds)}" if bounds else "")
        example = _shown(default) if default is not None else _shown(minimum or above or 1.0)
        raise error(
            f"{name}={raw!r} is not {kind}; set it to one (e.g. {name}={example}) or unset it "
            f"for the default ({_shown(default)})."
        )
    return value


def env_choice(
    name: str,
    default: _Default,
    choices: tuple[str, ...],
    *,
    hint: str = "",
    error: type[MlnbError] = ConfigError,
) -> str | _Default:
    """One of ``choices`` (case and spaces do not matter); ``default`` when unset."""
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise error(
            f"{name}={raw!r} is not a known setting; use one of {', '.join(choices)}"
            f"{f' ({hint})' if hint else ''}, or leave it unset for {_shown(default)}."
        )
    return value


def env_str(name: str) -> str | None:
    """The variable's text (surrounding spaces kept), None when unset or empty."""
    return _raw(name)


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
            flag = parse_flag(str(value))
            if flag is None:
                raise ValueError(value)
            return flag
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
