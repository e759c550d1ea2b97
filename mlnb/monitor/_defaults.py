"""Default window, check policy and thresholds for drift, shared by the service runtime.

Chosen with ``python -m benchmarks drift``: with a window of 500 inputs checked every 100
requests, a 0.5-sigma shift of the mean of one numeric feature is flagged within the first
full window, and unshifted data raised no false alarm in the windows measured (see the
benchmark's output for the figures on this machine).
"""

from __future__ import annotations

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
    "OTHER",
]

#: rolling window of live inputs kept per feature by the service
DEFAULT_WINDOW = 500
#: the service recomputes drift every this many requests ...
DEFAULT_CHECK_EVERY = 100
#: ... or after this many seconds, whichever comes first
DEFAULT_CHECK_SECONDS = 10.0
#: fewer live values than this in a window: drift is computed but never flagged
DEFAULT_MIN_SAMPLES = 100
#: quantile bins per numeric feature in a profile
DEFAULT_BINS = 10
#: categories kept per categorical feature; the rest are pooled under :data:`OTHER`
DEFAULT_TOP_K = 50
#: the pooled bucket of rare categories
OTHER = "__other__"
#: population stability index above which a numeric feature has drifted ...
DEFAULT_PSI_THRESHOLD = 0.1
#: ... provided the shift is also significant at this level (chi-square approximation);
#: for categories (chi-square test) the p-value threshold itself
DEFAULT_P_VALUE = 1e-5
#: Jensen-Shannon distance (base 2) above which a category feature has drifted, when
#: scipy is not installed
DEFAULT_JS_THRESHOLD = 0.1
#: a number is out of range beyond [min - k*IQR, max + k*IQR] of the training data
DEFAULT_RANGE_K = 1.5
