"""The exceptions mlnb raises.

Every error mlnb raises on purpose derives from :class:`MlnbError`, and its message names
what went wrong and what to do about it. The command line maps them to exit codes in one
place (``mlnb.cli``); the magics show them as one line without a traceback.

    MlnbError
    ├── ConfigError            settings, project root, pyproject.toml [tool.mlnb]
    ├── TrackingError          the MLflow side of a run
    │   ├── TrackingUnavailableError   the tracking server cannot be reached
    │   ├── NoActiveRunError           an operation needs a run and there is none
    │   └── InvalidValueError          a value MLflow cannot record (a DataFrame as a metric…)
    ├── ModelError             logging, registering or loading a model
    └── NotebookError          a notebook that cannot be read or understood
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InvalidValueError",
    "MlnbError",
    "ModelError",
    "NoActiveRunError",
    "NotebookError",
    "TrackingError",
    "TrackingUnavailableError",
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


class NoActiveRunError(TrackingError):
    """The operation needs an active run and there is none."""


class InvalidValueError(TrackingError):
    """A value that MLflow cannot record, e.g. a DataFrame given as a metric."""

    exit_code = 2


class ModelError(MlnbError):
    """A model could not be logged, registered or loaded."""


class NotebookError(MlnbError):
    """A notebook could not be read or does not have the expected shape."""
