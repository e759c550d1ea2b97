"""Data quality and online drift of a service, against the training data's profile.

The profile is the file named by ``"profile"`` in ``mlnb-service.json`` (written by
``mlnb export`` from ``mlnb.profile(X_train, ...)``), relative to the service folder.

* Defaults: whether a field may be left out of a record (or sent as null) comes from the
  profile, not from the notebook's example (:class:`Quality`). A feature with a default
  declared in ``mlnb.profile(defaults=...)`` is filled with it; a feature the training data
  had missing values in reaches the model as missing, as in training; any other profiled
  feature is filled with its median or most frequent value. A filled feature is listed under
  ``filled_fields`` in the answer. A column the profile does not cover stays required.
* Range: values far outside the training range (``Profile.out_of_range``) are answered
  normally but flagged under ``out_of_range`` and counted in ``mlnb_out_of_range_total``.
* Drift of the live inputs is ``mlnb.monitor.DriftMonitor``'s, owned by ``_drift``.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from mlnb.serve._schemas import FieldRules, column_zone, normalise_datetime

__all__ = ["Quality", "load_profile"]

log = logging.getLogger("mlnb.serve.quality")


def load_profile(folder: Path, metadata: dict[str, Any]) -> tuple[Any, str | None]:
    """The service's profile (or None) and, when it cannot be read, why."""
    name = metadata.get("profile")
    if not name:
        return None, None
    path = folder / str(name)
    try:
        from mlnb.monitor import Profile

        return Profile.load(path), None
    except Exception as exc:  # a broken profile must not stop the service
        reason = (
            f"the profile {path} cannot be read ({type(exc).__name__}: {exc}); defaults, range "
            "checks and drift are off. Export the notebook again with a valid profile."
        )
        log.error(reason)
        return None, reason


def _source(feature: Any) -> str:
    if feature.kind == "number":
        return "the training median"
    return "the most frequent training value"


def _typed(value: Any, kind: str | None, dtype: str) -> Any:
    """A profile's default as the field's type (date-times in the training convention)."""
    if kind == "datetime" and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return normalise_datetime(parsed, column_zone(dtype))
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Quality:
    """Defaults and range checks for one DataFrame endpoint (``columns``: its schema's
    columns, ``{"name", "type", "dtype", ...}``), and which of its fields may be left out:

    * a declared default (``mlnb.profile(defaults=...)``): may be left out or null, filled;
    * training data with missing values in the feature (``missing_rate > 0``): may be left
      out or null, and reaches the model as missing, as those training rows did;
    * any other profiled feature with a default (median, most frequent): may be left out
      or null, filled.
    """

    def __init__(self, profile: Any, columns: list[dict[str, Any]]) -> None:
        self.profile = profile
        profiled = set(profile.features)
        names = [str(c["name"]) for c in columns]
        self.features = [c for c in names if c in profiled]
        self.mismatch = {
            "only_in_profile": sorted(profiled - set(names)),
            "only_in_requests": [c for c in names if c not in profiled],
        }
        types = {str(c["name"]): c.get("type") for c in columns}
        self.defaults: dict[str, Any] = {}
        self.missing: dict[str, float] = {}  # passed to the model as missing: training rate
        self.notes: dict[str, str] = {}
        for name in self.features:
            feature = profile.features[name]
            declared = bool(getattr(feature, "default_declared", False))
            rate = float(feature.missing_rate or 0.0)
            if feature.default is not None and (declared or rate == 0):
                value = _typed(feature.default, types[name], feature.dtype)
                self.defaults[name] = value
                source = "the declared default" if declared else _source(feature)
                self.notes[name] = (
                    f"May be left out or null: filled with {value!r} ({source}) and listed "
                    "in filled_fields."
                )
            elif rate > 0:
                self.missing[name] = rate
                self.notes[name] = (
                    "May be left out or null: reaches the model as missing, as in "
                    f"{rate:.1%} of the training rows."
                )
        self.datetime_dtypes = {
            n: profile.features[n].dtype for n in self.features if types[n] == "datetime"
        }

    @property
    def optional(self) -> set[str]:
        return set(self.defaults) | set(self.missing)

    def rules(self) -> FieldRules:
        """The contract of the endpoint's fields, for its request schema."""
        return FieldRules(frozenset(self.optional), dict(self.notes), dict(self.datetime_dtypes))

    def apply(
        self, records: list[dict[str, Any]]
    ) -> tuple[list[list[str]] | None, list[list[str]] | None]:
        """Fill missing features in place; the filled and the out-of-range fields per record
        (None when there are none)."""
        filled: list[list[str]] = []
        any_filled = False
        defaults = self.defaults
        for record in records:
            names = [c for c, v in defaults.items() if _is_missing(record.get(c))]
            for c in names:
                record[c] = defaults[c]
            if names:
                any_filled = True
            filled.append(names)
        flagged: list[list[str]] = []
        any_flagged = False
        for record in records:
            names = [str(n) for n in self.profile.out_of_range(record)]
            if names:
                any_flagged = True
            flagged.append(names)
        return (filled if any_filled else None), (flagged if any_flagged else None)
