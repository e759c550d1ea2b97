"""What MLflow's SQL schema is, and MLflow's own code to build or upgrade it in a file.

:func:`schema` answers "which revision does this MLflow need, which tables, which
revisions does it know" without importing MLflow (which costs over a second): the answer
is computed once from MLflow's alembic scripts and kept in ``schema-mlflow-<version>.json``
in mlnb's cache folder, keyed on MLflow's version and the modification time of its
migration scripts, so a changed MLflow install is noticed. Without a writable cache it is
computed once per process.

:func:`build_schema` and :func:`upgrade_schema` run MLflow's own migration code
(``_initialize_tables``, ``_upgrade_db``) on a file with MLflow's and alembic's INFO lines
silenced, so "Creating initial MLflow database tables" never lands in a notebook cell.
They are not atomic (MLflow's migrations are not); :mod:`mlnb.tracking._store` only runs
them on a temporary file.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.exceptions import StoreError

__all__ = [
    "Schema",
    "build_schema",
    "cache_dir",
    "quiet_migration_logs",
    "schema",
    "upgrade_schema",
]

_QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration")


@dataclass(frozen=True)
class Schema:
    """The SQL schema of the installed MLflow."""

    mlflow_version: str
    #: the alembic revision a store must be at
    head: str
    #: the tables MLflow expects (``Base.metadata.tables``)
    tables: frozenset[str]
    #: every revision MLflow's migration scripts know
    revisions: frozenset[str]


def cache_dir() -> Path:
    """mlnb's cache folder on this machine: ``$MLNB_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mlnb`` or ``~/.cache/mlnb``."""
    explicit = os.environ.get("MLNB_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mlnb"


def _install_key() -> tuple[str, int]:
    """MLflow's version and the mtime of its migration scripts, found without importing it."""
    version = importlib.metadata.version("mlflow")
    spec = importlib.util.find_spec("mlflow")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    scripts = Path(locations[0]) / "store" / "db_migrations" / "versions" if locations else None
    return version, (scripts.stat().st_mtime_ns if scripts is not None else 0)


@functools.lru_cache(maxsize=1)
def schema() -> Schema:
    """The installed MLflow's schema (cached on disk per MLflow install, see above)."""
    version, mtime = _install_key()
    cache = cache_dir() / f"schema-mlflow-{version}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data["mlflow_version"] == version and data["scripts_mtime_ns"] == mtime:
            return Schema(
                version, str(data["head"]), frozenset(data["tables"]), frozenset(data["revisions"])
            )
    found = _schema_from_mlflow(version)
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "mlflow_version": version,
                    "scripts_mtime_ns": mtime,
                    "head": found.head,
                    "tables": sorted(found.tables),
                    "revisions": sorted(found.revisions),
                }
            ),
            encoding="utf-8",
        )
        os.replace(tmp, cache)
    return found


def _schema_from_mlflow(version: str) -> Schema:
    from alembic.script import ScriptDirectory
    from mlflow.store.db import utils
    from mlflow.store.db.base_sql_model import Base

    script = ScriptDirectory.from_config(utils._get_alembic_config(db_url=""))
    heads = script.get_heads()
    if len(heads) != 1:  # what MLflow's own _get_latest_schema_revision refuses too
        raise StoreError(
            f"MLflow {version}'s migration scripts have {len(heads)} head revisions "
            f"({', '.join(heads)}); reinstall MLflow (pip install --force-reinstall mlflow)."
        )
    revisions = frozenset(rev.revision for rev in script.walk_revisions())
    return Schema(version, heads[0], frozenset(Base.metadata.tables), revisions)


@contextlib.contextmanager
def quiet_migration_logs() -> Iterator[None]:
    """Silence MLflow's and alembic's INFO lines about creating and migrating tables, and
    the SQLAlchemy warnings MLflow's migration scripts raise (nothing a user can act on)."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in _QUIET_LOGGERS]
    for logger, _ in saved:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def _engine(path: Path) -> Any:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    return sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=NullPool)


def build_schema(path: Path, revision: str | None = "heads") -> None:
    """MLflow's tables in the SQLite file ``path``, made by MLflow's own code: its initial
    tables, then its alembic migrations up to ``revision`` ("heads": MLflow's
    ``_initialize_tables``; None: the initial tables only)."""
    from alembic import command
    from mlflow.store.db import utils
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = _engine(path)
    try:
        with quiet_migration_logs():
            if revision == "heads":
                utils._initialize_tables(engine)
                return
            InitialBase.metadata.create_all(engine)
            if revision is not None:
                config = utils._get_alembic_config(str(engine.url))
                with engine.begin() as connection:
                    config.attributes["connection"] = connection
                    command.upgrade(config, revision)
    finally:
        engine.dispose()


def upgrade_schema(path: Path) -> None:
    """MLflow's own upgrade (``_upgrade_db``: every migration after the recorded revision)
    of the SQLite file ``path``."""
    from mlflow.store.db import utils

    engine = _engine(path)
    try:
        with quiet_migration_logs():
            utils._upgrade_db(engine)
    finally:
        engine.dispose()
