"""Data profiles: per-feature statistics of the training data, recorded with the run."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlnb._text import first_line, print_warning, slug
from mlnb.exceptions import MonitorError
from mlnb.monitor._data import to_frame
from mlnb.monitor._defaults import DEFAULT_BINS, DEFAULT_RANGE_K, DEFAULT_TOP_K, OTHER

__all__ = [
    "ARTIFACT_DIR",
    "FORMAT_VERSION",
    "FeatureProfile",
    "Profile",
    "find_profile",
    "profile",
]

#: where profiles live among a run's artifacts
ARTIFACT_DIR = "mlnb/profiles"
#: the version of the profile JSON document
FORMAT_VERSION = 1


@dataclass
class FeatureProfile:
    """Statistics of one feature (column) of the training data.

    ``kind`` is ``"number"`` for numeric columns (not bool) and ``"category"`` otherwise.
    ``count`` counts the values that are not missing. Numbers have ``min``, ``max``,
    ``mean``, ``std``, ``median``, ``iqr`` and quantile ``bin_edges`` (about
    :data:`DEFAULT_BINS` bins, fewer when values repeat) with the training share of values
    in each bin ``bin_fractions`` (bins are ``[e0, e1], (e1, e2], ...``). Categories have
    ``categories``: the share of each value (as text) among the non-missing values, the
    :data:`DEFAULT_TOP_K` most frequent kept and the rest pooled under ``"__other__"``.
    ``default`` fills a missing value: the one given to :func:`profile` (then
    ``default_declared`` is true), else the median (rounded for integer columns) or the most
    frequent value.
    """

    name: str
    kind: Literal["number", "category"]
    dtype: str
    count: int
    missing_rate: float
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    median: float | None = None
    iqr: float | None = None
    bin_edges: list[float] = field(default_factory=list)
    bin_fractions: list[float] = field(default_factory=list)
    categories: dict[str, float] = field(default_factory=dict)
    most_frequent: Any = None
    default: Any = None
    default_declared: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureProfile:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def capped(self) -> bool:
        """True when rare categories were pooled (an unseen value may be one of them)."""
        return OTHER in self.categories

    def out_of_range(self, value: Any, k: float = DEFAULT_RANGE_K) -> bool:
        """True for a number far outside the training range (beyond ``[min - k*IQR,
        max + k*IQR]``, or not a number at all) or a category never seen in training.
        Missing values are not out of range (they get the default)."""
        if _missing(value):
            return False
        if self.kind == "number":
            number = _as_float(value)
            if number is None:
                return True
            if self.min is None or self.max is None:
                return False
            span = self.iqr or self.std or abs(self.max - self.min) or 1.0
            return bool(number < self.min - k * span or number > self.max + k * span)
        if self.capped or not self.categories:  # pooled rare values, or nothing seen
            return False
        return _category_key(value) not in self.categories


@dataclass
class Profile:
    """The profile of a training data set: one :class:`FeatureProfile` per input column.

    ``target`` names the target column, profiled separately in ``target_profile`` (it is
    not a service input). ``rows`` counts the rows, ``created`` is an ISO 8601 UTC time and
    ``run_id`` the run it was recorded on (None when no run was active).
    """

    name: str
    features: dict[str, FeatureProfile]
    target: str | None = None
    rows: int = 0
    created: str = ""
    target_profile: FeatureProfile | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mlnb_profile": FORMAT_VERSION,
            "name": self.name,
            "target": self.target,
            "rows": self.rows,
            "created": self.created,
            "run_id": self.run_id,
            "features": {k: f.to_dict() for k, f in self.features.items()},
            "target_profile": self.target_profile.to_dict() if self.target_profile else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """A profile from :meth:`to_dict`'s shape; MonitorError naming what is wrong."""
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), Mapping):
            raise MonitorError(
                "this is not an mlnb profile (no 'features' mapping); make one with "
                "mlnb.profile(df) or %mlnb profile VAR."
            )
        try:
            features = {str(k): FeatureProfile.from_dict(v) for k, v in data["features"].items()}
            target = data.get("target_profile")
            return cls(
                name=str(data.get("name") or "training"),
                features=features,
                target=data.get("target"),
                rows=int(data.get("rows") or 0),
                created=str(data.get("created") or ""),
                target_profile=FeatureProfile.from_dict(target) if target else None,
                run_id=data.get("run_id"),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise MonitorError(
                f"the profile is malformed ({first_line(exc)}); record it again with "
                "mlnb.profile(df)."
            ) from exc

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON to ``path``; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n", "utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Read a profile written by :meth:`save`; MonitorError if missing or not a profile."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MonitorError(
                f"profile {str(path)!r} does not exist; record one with mlnb.profile(df) and "
                "export again, or pass the right path."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MonitorError(f"cannot read profile {str(path)!r}: {first_line(exc)}.") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MonitorError(
                f"profile {str(path)!r} is not JSON ({exc.msg} at line {exc.lineno}); "
                "record it again with mlnb.profile(df)."
            ) from None
        return cls.from_dict(data)

    def record(self) -> str | None:
        """Record the profile on the active run (artifact ``mlnb/profiles/<name>.json``, tag
        ``mlnb.profile.<name>``, version ``profiles/<name>``); returns the run id, or None
        when no run is active (nothing is started)."""
        _record(self)
        return self.run_id

    def defaults(self) -> dict[str, Any]:
        """The value filled in for each feature when a request leaves it out."""
        return {name: f.default for name, f in self.features.items()}

    def out_of_range(self, record: Mapping[str, Any], k: float = DEFAULT_RANGE_K) -> list[str]:
        """Names of the features of ``record`` far outside the training data: numbers beyond
        ``[min - k*IQR, max + k*IQR]`` (or not numbers), categories never seen in training.
        Columns the profile does not know and missing values are ignored."""
        return [
            name
            for name, value in record.items()
            if name in self.features and self.features[name].out_of_range(value, k)
        ]


def profile(
    data: Any,
    name: str | None = None,
    *,
    target: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    log: bool = True,
    columns: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
) -> Profile:
    """Profile the training ``data`` (a DataFrame, a dict of lists, a list of dicts, or a 2-D
    numpy array with ``columns=``).

    With an active mlnb run and ``log=True`` the profile is recorded on the run as the
    artifact ``mlnb/profiles/<name>.json`` with the tag ``mlnb.profile.<name>``, and versioned
    as ``profiles/<name>`` (an output of the run) when versioning is usable; ``mlnb export``
    then copies it into the service. Without an active run nothing is started: the profile is
    only returned (``save`` it yourself). ``defaults`` gives the value to fill in for a
    missing feature (else the median or the most frequent value). ``name`` defaults to
    ``"training"`` (``%mlnb profile VAR`` uses the variable's name).
    """
    frame = to_frame(data, columns, what="the data to profile")
    name = name or "training"
    if len(frame) == 0 or len(frame.columns) == 0:
        raise MonitorError(
            f"cannot profile {name!r}: the data is empty ({len(frame)} rows, "
            f"{len(frame.columns)} columns); profile the training data after loading it."
        )
    if target is not None and target not in frame.columns:
        raise MonitorError(
            f"target {target!r} is not a column of the data (columns: "
            f"{', '.join(map(str, frame.columns[:10]))}{'…' if len(frame.columns) > 10 else ''})."
        )
    given = dict(defaults or {})
    unknown = [k for k in given if k not in frame.columns]
    if unknown:
        raise MonitorError(f"defaults given for unknown column(s) {unknown}; check the names.")
    features = {
        str(col): _feature(str(col), frame[col], given, bins, top_k)
        for col in frame.columns
        if col != target
    }
    result = Profile(
        name=name,
        features=features,
        target=target,
        rows=len(frame),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        target_profile=_feature(target, frame[target], {}, bins, top_k) if target else None,
    )
    if log:
        _record(result)
    return result


def _feature(
    name: str, column: Any, defaults: Mapping[str, Any], bins: int, top_k: int
) -> FeatureProfile:
    import numpy as np
    import pandas as pd

    rows = len(column)
    present = column.dropna()
    count = len(present)
    missing_rate = (rows - count) / rows if rows else 0.0
    dtype = str(column.dtype)
    is_number = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    most_frequent = _plain(present.mode().iloc[0]) if count else None
    if is_number:
        values = present.to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        feature = FeatureProfile(name, "number", dtype, count, missing_rate)
        feature.most_frequent = most_frequent
        if len(values):
            q1, median, q3 = (float(v) for v in np.quantile(values, [0.25, 0.5, 0.75]))
            edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
            if len(edges) == 1:
                edges = np.array([edges[0], edges[0]])
            counts = np.bincount(bin_index(edges, values), minlength=len(edges) + 1)
            feature.min, feature.max = float(values.min()), float(values.max())
            feature.mean, feature.std = float(values.mean()), float(values.std())
            feature.median, feature.iqr = median, q3 - q1
            feature.bin_edges = [float(e) for e in edges]
            feature.bin_fractions = [float(c) / len(values) for c in counts[1:-1]]
            integer = pd.api.types.is_integer_dtype(column)
            feature.default = round(median) if integer else median
    else:
        keys = present.map(_category_key)
        shares = keys.value_counts(normalize=True)
        kept = shares.iloc[:top_k]
        categories = {str(k): float(v) for k, v in kept.items()}
        if len(shares) > top_k:
            categories[OTHER] = float(shares.iloc[top_k:].sum())
        feature = FeatureProfile(name, "category", dtype, count, missing_rate)
        feature.categories = categories
        feature.most_frequent = most_frequent
        feature.default = most_frequent
    if name in defaults:
        feature.default = _plain(defaults[name])
        feature.default_declared = True
    return feature


def bin_index(edges: Any, values: Any) -> Any:
    """The bin of each value for a profile's ``bin_edges``: 0 below the first edge, ``i`` in
    ``(e[i-1], e[i]]`` (the first edge itself in bin 1), ``len(edges)`` above the last."""
    import numpy as np

    index = np.searchsorted(edges, values, side="left")
    index[values == edges[0]] = 1
    return index


def _category_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value (numpy scalars unwrapped, NaN as None)."""
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and math.isnan(value)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _record(result: Profile) -> None:
    """Record ``result`` on the active run (artifact, tag, version); nothing without a run."""
    from mlnb.tracking import session

    current = session()
    if current.run is None:
        return
    run_id = current.run.run_id
    result.run_id = run_id
    file_name = slug(result.name, "training")
    path = current.settings.home / "profiles" / run_id / f"{file_name}.json"
    result.save(path)
    current.log_artifact(path, ARTIFACT_DIR)
    current.set_tags({f"mlnb.profile.{file_name}"[:250]: f"{ARTIFACT_DIR}/{file_name}.json"})
    try:
        from mlnb.tracking import version

        version(result.to_dict(), name=f"profiles/{file_name}", role="output")
    except Exception as exc:  # the profile is on the run; its version is a bonus
        print_warning(f"could not version profile {result.name!r}: {first_line(exc)}")


def find_profile(
    run_id: str, name: str | None = None, *, dst: str | Path | None = None
) -> Path | None:
    """Download the profile recorded on run ``run_id`` (the one called ``name`` when given
    and present, else the first by name) and return its local path; None when the run has
    none. ``dst`` is the folder to download into (default: a cache under ``.mlnb``)."""
    from mlnb.config import get_settings
    from mlnb.tracking import get_client, run_artifact_folder, session

    session().flush()  # a profile just logged in this process may still be queued
    settings = get_settings()
    local = run_artifact_folder(run_id)  # the embedded store: read without MLflow
    client = None
    try:
        if local is not None:
            listed = [
                f"{ARTIFACT_DIR}/{p.name}"
                for p in (local / ARTIFACT_DIR).glob("*.json")
                if p.is_file()
            ]
        else:
            client = get_client(settings)
            listed = [
                a.path
                for a in client.list_artifacts(run_id, ARTIFACT_DIR)
                if not a.is_dir and a.path.endswith(".json")
            ]
    except Exception as exc:
        raise MonitorError(
            f"cannot list the profiles of run {run_id!r}: {first_line(exc)}; check the run id "
            "and the tracking store."
        ) from exc
    if not listed:
        return None
    listed.sort()
    wanted = f"{ARTIFACT_DIR}/{slug(name, 'training')}.json" if name else None
    chosen = wanted if wanted in listed else listed[0]
    folder = Path(dst) if dst is not None else settings.home / "cache" / "profiles" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    if local is not None:
        target = folder / chosen  # where MLflow's download puts it too
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local / chosen, target)
        return target
    assert client is not None
    try:
        return Path(client.download_artifacts(run_id, chosen, str(folder)))
    except Exception as exc:
        raise MonitorError(
            f"cannot download profile {chosen!r} of run {run_id!r}: {first_line(exc)}."
        ) from exc
