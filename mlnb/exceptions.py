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
    ├── PipelineError          a pipeline that cannot run: spec, cycle, params, executor
    │   ├── PipelineFailed         a step failed (``result`` holds every step's outcome)
    │   ├── ScheduleError          a schedule that cannot be added, found or read
    │   └── KernelStartError       a step's kernel did not start or did not answer
    ├── ServiceError           an exported service that cannot start (mlnb.serve)
    │   ├── SignatureError         the export's signature is missing or does not match
    │   ├── AuditUnavailable       a request's audit record could not be written (a 503)
    │   ├── NoFallback             the breaker is open and the endpoint has no fallback (a 503)
    │   └── FeedbackError          a feedback label that cannot be used (its ``status``)
    ├── LabError               an /mlnb/ action refused to the browser (``status``, ``hint``)
    ├── MlnbUsageError         a magic's bad input, also IPython's UsageError (mlnb.magics)
    └── DiskFullError          no space left (ENOSPC, EDQUOT, SQLite "disk is full")

Every class is defined here and importable from here, and also from where it is raised
(``mlnb.pipeline.PipelineError``, ``mlnb.serve._service.ServiceError``…), except
:class:`MlnbUsageError`, which derives from IPython's ``UsageError`` and so lives in
``mlnb.magics``: this module imports nothing at run time, so any part (``mlnb.serve``
without Jupyter included) may import it. ``tests/test_public_api.py`` checks that this
drawing names every exception class defined in mlnb, under its parent.

Private signals, raised and caught inside one module, never seen by a caller (they derive
from ``Exception``, as control flow, not from MlnbError):

    _TooLarge      mlnb.serve._app: a request body over the size limit, answered 413
    _SkopsCannot   mlnb.tracking._formats: skops cannot save this model; another format is tried

Warnings: :class:`MlnbWarning` (a ``UserWarning``) and :class:`ObjectHealedWarning`, shown
by the command line as one ``mlnb: warning:`` line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlnb.pipeline import PipelineResult

__all__ = [
    "AuditUnavailable",
    "ConfigError",
    "CorruptObjectError",
    "DiskFullError",
    "FeedbackError",
    "GateError",
    "GatesFailed",
    "InvalidValueError",
    "KernelStartError",
    "LabError",
    "MlnbError",
    "MlnbWarning",
    "ModelError",
    "ModelFormatError",
    "MonitorError",
    "NoActiveRunError",
    "NoFallback",
    "NotebookError",
    "ObjectHealedWarning",
    "OutsideReadError",
    "PipelineError",
    "PipelineFailed",
    "RemoteError",
    "ScheduleError",
    "ServiceError",
    "SignatureError",
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

    exit_code = 7  # 6 is ServiceError

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
    """A notebook could not be read or does not have the expected shape.

    ``cell`` is the position (from 0, in the notebook's list of cells) of the cell the error
    is about, when it is about one: JupyterLab makes it the active cell ("Go to cell"). The
    message names it as a user counts cells, from 1 (``cell 7 [5] "first line"``)."""

    def __init__(self, message: str, *, cell: int | None = None) -> None:
        super().__init__(message)
        self.cell = cell


class OutsideReadError(NotebookError):
    """The exported cells read files outside ``folder``, the folder the export may copy
    from (the project, or the folder the export is confined to); nothing was copied.

    ``reads`` describes each, e.g. ``"'data/key' (read by cell 2), a symlink to
    /home/me/.ssh/id_rsa"``; ``confined`` is True when ``folder`` is the confinement folder
    the caller passed (``export_notebook(..., confine=...)``) rather than the project."""

    def __init__(
        self,
        message: str,
        *,
        folder: str,
        reads: list[str],
        confined: bool,
        cell: int | None = None,
    ) -> None:
        super().__init__(message, cell=cell)
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


class PipelineError(MlnbError):
    """A pipeline that cannot run: a bad spec, a cycle, a missing notebook, a failed step."""

    exit_code = 2


class PipelineFailed(PipelineError):
    """A step of the pipeline failed; the steps that could run have run and their state is
    saved. ``result`` (a :class:`mlnb.pipeline.PipelineResult`) holds every step's outcome."""

    exit_code = 1

    def __init__(self, message: str, result: PipelineResult) -> None:
        super().__init__(message)
        self.result = result


class ScheduleError(PipelineError):
    """A schedule that cannot be added, found or read (bad cron, missing pipeline…)."""

    exit_code = 2


class KernelStartError(PipelineError):
    """A kernel that did not start or did not answer (the step it was for fails)."""

    exit_code = 1


class ServiceError(MlnbError):
    """An exported service that cannot start (missing files, a model that fails its hash);
    its subclasses also name what stops one request from being answered."""

    exit_code = 6


class SignatureError(ServiceError):
    """The export's signature is missing, does not match, or does not cover its files."""


class AuditUnavailable(ServiceError):
    """The audit record of a request could not be written: it must not be answered as if
    it had been recorded."""


class NoFallback(ServiceError):
    """The breaker is open and the endpoint has no fallback: a 503."""


class FeedbackError(ServiceError):
    """A feedback label that cannot be used (unknown request id, wrong shape); ``status``
    is the HTTP status it is answered with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LabError(MlnbError):
    """An error answered to the browser as ``{"error": ..., "hint": ..., "cell": ...}`` with
    ``status`` (:mod:`mlnb.labserver`); ``cell`` is the position (from 0) of the notebook
    cell it is about, if any (the dialog's "Go to cell")."""

    def __init__(self, status: int, error: str, hint: str, cell: int | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.hint = hint
        self.cell = cell


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
