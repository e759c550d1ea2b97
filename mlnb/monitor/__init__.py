"""Data profiles of training data, drift of live inputs against them, and drift reports.

>>> import mlnb
>>> prof = mlnb.profile(X_train, name="breast-cancer")   # recorded on the active run
>>> prof.defaults()                                       # fill values for missing features
>>> prof.out_of_range({"mean radius": 1e6})               # ['mean radius']
>>> from mlnb.monitor import drift_report, render_html
>>> report = drift_report(prof, live_frame)               # PSI (numbers), chi-square (categories)
>>> report.drifted
>>> html = render_html(report, prof)
>>> monitor = DriftMonitor(prof)                          # in a service: a rolling window
>>> monitor.observe_and_check(records)                   # a DriftReport every 100 inputs

Core part: imports without Jupyter, numpy and pandas load on first use. The service
runtime (``mlnb.serve``) keeps a rolling window of inputs and calls :func:`drift_report`
with the defaults below; ``mlnb monitor report DIR|URL`` renders the HTML report.
"""

from __future__ import annotations

from mlnb.monitor._defaults import (
    DEFAULT_BINS,
    DEFAULT_CHECK_EVERY,
    DEFAULT_CHECK_SECONDS,
    DEFAULT_JS_THRESHOLD,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_P_VALUE,
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_RANGE_K,
    DEFAULT_TOP_K,
    DEFAULT_WINDOW,
    OTHER,
)
from mlnb.monitor._drift import (
    MIN_EFFECT_JS,
    DriftReport,
    FeatureDrift,
    drift_report,
    feature_drift,
)
from mlnb.monitor._online import DriftMonitor
from mlnb.monitor._profile import FeatureProfile, Profile, find_profile, profile
from mlnb.monitor._report import (
    describe_drift,
    load_audit_records,
    render_html,
    report_from_dir,
    report_from_source,
    report_from_url,
)

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_CHECK_EVERY",
    "DEFAULT_CHECK_SECONDS",
    "DEFAULT_JS_THRESHOLD",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_PSI_THRESHOLD",
    "DEFAULT_P_VALUE",
    "DEFAULT_RANGE_K",
    "DEFAULT_TOP_K",
    "DEFAULT_WINDOW",
    "MIN_EFFECT_JS",
    "OTHER",
    "DriftMonitor",
    "DriftReport",
    "FeatureDrift",
    "FeatureProfile",
    "Profile",
    "describe_drift",
    "drift_report",
    "feature_drift",
    "find_profile",
    "load_audit_records",
    "profile",
    "render_html",
    "report_from_dir",
    "report_from_source",
    "report_from_url",
]
