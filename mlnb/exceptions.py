"""The exceptions mlnb raises.

Every error mlnb raises on purpose derives from :class:`MlnbError`, and its message names
what went wrong and what to do about it. The command line maps them to exit codes in one
place (``mlnb.cli``); the magics show them as one line without a traceback.

    MlnbError
    ├── ConfigError            settings, project root, pyproject.toml [tool.mlnb]
    ├── TrackingError          the MLflow side of a run
    │   ├── TrackingUnavailableError   the tracking server cannot be reached
    │   ├── StoreError                 the local SQLite store cannot be created or opened
    │   │   └── StoreNeedsRepairError  half-migrated, or migrated by an older MLflow
    │   ├── NoActiveRunError           an operation needs a run and there is none
    │   └── InvalidValueError          a value MLflow cannot record (a DataFrame as a metric…)
    ├── GateError              promotion gates, promote and rollback: bad input or state
    │   └── GatesFailed            a hard gate failed (the report says which); nothing promoted
    ├── ModelError             logging, registering or loading a model
    │   ├── ModelFormatError       a serialization format that cannot save this model
    │   └── UntrustedModelError    model files that reference more than was trusted at logging
    ├── MonitorError           data profiles, drift reports and their inputs
    ├── NotebookError          a notebook that cannot be read or understood
    │   └── OutsideReadError       exported cells read a file outside the folder the export
    │                              may copy from (the project, or the folder it is confined to)
    ├── VersioningError        the content-addressed store of data, models and configs
    │   ├── VersionNotFoundError   a name, version or object that does not exist
    │   ├── CorruptObjectError     an object whose content no longer has its hash
    │   └── RemoteError            a push/pull remote that cannot be used
    └── DiskFullError          no space left (ENOSPC, EDQUOT, SQLite "disk is full")

Warnings: :class:`MlnbWarning` (a ``UserWarning``) and :class:`ObjectHealedWarning`, shown
by the command line as one ``mlnb: warning:`` line.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CorruptObjectError",
    "DiskFullError",
    "GateError",
    "GatesFailed",
    "InvalidValueError",
    "MlnbError",
    "MlnbWarning",
    "ModelError",
    "ModelFormatError",
    "MonitorError",
    "NoActiveRunError",
    "NotebookError",
    "ObjectHealedWarning",
    "OutsideReadError",
    "RemoteError",
    "StoreError",
    "StoreNeedsRepairError",
    "TrackingError",
    "TrackingUnavailableError",
    "UntrustedModelError",
    "VersionNotFoundError",
    "VersioningError",
]


class MlnbError(Exception):
    """Root of every error mlnb raises on purpose."""

    #: exit status of the ``mlnb`` command when this error ends it
    exit_code = 1


class ConfigError(MlnbError):
    """The configuration (environment, ``[tool.mlnb]``) is wrong."""

    exit_code = 2


class TrackingError(MlnbError):
    """Something failed on the tracking side of a run."""


class TrackingUnavailableError(TrackingError):
    """The tracking server cannot be reached (refused, timed out, or answered 5xx)."""

    exit_code = 3


class StoreError(TrackingError):
    """The local SQLite tracking store (``.mlnb/mlflow.db`` or a ``sqlite:///`` URI) cannot
    be created, opened or repaired: a full disk, a read-only folder, a newer MLflow's schema."""

    exit_code = 8


class StoreNeedsRepairError(StoreError):
    """The SQLite store is half-migrated (an interrupted MLflow schema migration) or was
    migrated by an older MLflow; ``mlnb doctor --repair`` fixes it and keeps a backup."""

    exit_code = 9


class NoActiveRunError(TrackingError):
    """The operation needs an active run and there is none."""


class InvalidValueError(TrackingError):
    """A value that MLflow cannot record, e.g. a DataFrame given as a metric."""

    exit_code = 2


class GateError(MlnbError):
    """Promotion gates, ``promote`` or ``rollback`` cannot run: missing holdout data, an
    unknown column, no champion or no previous version to go back to."""

    exit_code = 2


class GatesFailed(GateError):
    """The gates ran and at least one hard gate failed; nothing was promoted."""

    exit_code = 7  # 6 is ServiceError (mlnb.serve)

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        #: the :class:`mlnb.gates.GateReport` that failed
        self.report = report


class ModelError(MlnbError):
    """A model could not be logged, registered or loaded."""


class ModelFormatError(ModelError):
    """The serialization format asked for cannot save this model (or is not one mlnb knows);
    the message names the formats that would work. Nothing was logged."""

    exit_code = 2


class UntrustedModelError(ModelError):
    """A model's files ask for more than was trusted when it was logged (types skops was not
    told to trust, another serialization format, a changed list of trusted types): the files
    changed after logging. Nothing was loaded."""


class MonitorError(MlnbError):
    """A data profile or drift report that cannot be made, read or fetched."""

    exit_code = 2


class NotebookError(MlnbError):
    """A notebook could not be read or does not have the expected shape."""


class OutsideReadError(NotebookError):
    """The exported cells read files outside ``folder``, the folder the export may copy
    from (the project, or the folder the export is confined to); nothing was copied.

    ``reads`` describes each, e.g. ``"'data/key' (read by cell 2), a symlink to
    /home/me/.ssh/id_rsa"``; ``confined`` is True when ``folder`` is the confinement folder
    the caller passed (``export_notebook(..., confine=...)``) rather than the project."""

    def __init__(self, message: str, *, folder: str, reads: list[str], confined: bool) -> None:
        super().__init__(message)
        self.folder = folder
        self.reads = reads
        self.confined = confined


class VersioningError(MlnbError):
    """Something failed in the store of versioned data, models and configs."""


class VersionNotFoundError(VersioningError):
    """A name, version or object that does not exist."""

    exit_code = 4


class CorruptObjectError(VersioningError):
    """An object in the store whose content no longer matches its hash."""

    exit_code = 5


class RemoteError(VersioningError):
    """A remote for push/pull that cannot be reached or used."""

    exit_code = 3


class DiskFullError(MlnbError):
    """No space left on the disk (or in the quota) holding a folder mlnb writes to. The
    message names the folder, the space needed when it is known and the space free; what
    was being written was not kept half-written, and everything recorded before is intact."""

    exit_code = 10

    def __init__(self, message: str, folder: str | None = None, needed: int | None = None) -> None:
        super().__init__(message)
        #: the folder that could not be written
        self.folder = folder
        #: bytes the write needed, when known
        self.needed = needed


class MlnbWarning(UserWarning):
    """Root of the warnings mlnb gives: something worked, and something needs saying."""


class ObjectHealedWarning(MlnbWarning):
    """An object of the versioning store was corrupted or truncated, and was rewritten from
    the good copy being versioned (the message names the object and what was versioned)."""
