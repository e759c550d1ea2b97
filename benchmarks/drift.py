"""Online drift: how fast a shift is flagged, how often unshifted data raises an alarm, and
what watching costs per request.

What is measured is what a service runs: :class:`mlnb.monitor.DriftMonitor` built with
``mlnb.serve.ServeSettings().drift_options()`` (the keyword arguments ``mlnb serve`` builds
its monitor with, at their defaults: a window of ``MLNB_DRIFT_WINDOW`` = 500 inputs, a check
every ``MLNB_DRIFT_EVERY`` = 100 requests, PSI threshold ``MLNB_DRIFT_THRESHOLD`` for numbers,
p-value ``MLNB_DRIFT_P_VALUE`` for categories), with the same ``check()`` its background
thread calls when due. Only the clock is left out: the stream here is not in real time, so
the time-based check (``MLNB_DRIFT_SECONDS``) is pushed out of reach and checks come every
100 requests, as they do under load. One row a request, on a profile of 1,000 training rows
of 10 standard normal features and one categorical feature of 5 values (seeded):

* ``detect`` - the stream first fills the window with unshifted rows, then the mean of ONE
  feature moves by 0.5 standard deviations; the figure is the number of requests after the
  shift until a check flags that feature (median and worst over 40 seeds; a seed that has
  not flagged it after 3,000 requests counts as missed). Also: the share of fresh windows of
  500 shifted rows flagged at their first check. Target: every seed flagged.
* ``false alarms`` - unshifted rows from the training distribution for 400 windows (200,000
  requests, 2,000 checks); the figure is the number of checks that flagged any feature, per
  100 windows. The same with a profile of only 455 training rows (the demo's breast-cancer
  training split). Target: under 1 per 100 windows.
* ``cost`` - ``observe`` of one 11-feature record plus, every 100 requests, ``check()``:
  the mean time per request, against sklearn ``LogisticRegression.predict`` on one row
  (what a request costs without monitoring). Target: under 25% of one predict.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._common import fmt_time, median, module_main, percentile, row

FEATURES = 10
TRAIN_ROWS = 1000
SEEDS = 40
MAX_AFTER_SHIFT = 3000


def _frame(rng: Any, rows: int, shift: float = 0.0) -> Any:
    import pandas as pd

    data = rng.normal(size=(rows, FEATURES))
    data[:, 0] += shift
    frame = pd.DataFrame(data, columns=[f"f{i}" for i in range(FEATURES)])
    frame["kind"] = rng.choice(list("abcde"), rows, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    return frame


def _profile(seed: int, rows: int = TRAIN_ROWS) -> Any:
    import numpy as np

    from mlnb.monitor import profile

    return profile(_frame(np.random.default_rng(seed), rows), "bench", log=False)


def _service_monitor(profile: Any) -> Any:
    """The drift monitor of a service with the default settings (no clock: see above)."""
    from mlnb.monitor import DriftMonitor
    from mlnb.serve import ServeSettings

    options = ServeSettings().drift_options()
    return DriftMonitor(profile, **{**options, "check_seconds": 1e9, "min_seconds": 0.0})


def _detect(seed: int) -> int | None:
    import numpy as np

    rng = np.random.default_rng(1000 + seed)
    monitor = _service_monitor(_profile(seed))
    monitor.observe(_frame(rng, monitor.window).to_dict("records"))
    monitor.check()
    shifted = _frame(rng, MAX_AFTER_SHIFT, shift=0.5).to_dict("records")
    for i, record in enumerate(shifted, start=1):
        report = monitor.observe_and_check([record])
        if report is not None and "f0" in report.drifted:
            return i
    return None


def _fresh_windows(seeds: int) -> float:
    import numpy as np

    flagged = 0
    for seed in range(seeds):
        rng = np.random.default_rng(2000 + seed)
        monitor = _service_monitor(_profile(seed))
        monitor.observe(_frame(rng, monitor.window, shift=0.5).to_dict("records"))
        flagged += "f0" in monitor.check().drifted
    return flagged / seeds


def _false_alarms(rows: int, windows: int = 400) -> tuple[float, int, float]:
    """(alarms per 100 windows, checks, the largest PSI of a full window)."""
    import numpy as np

    rng = np.random.default_rng(7)
    monitor = _service_monitor(_profile(11, rows))
    alarms = checks = 0
    worst = 0.0
    for _ in range(windows):
        for record in _frame(rng, monitor.window).to_dict("records"):
            report = monitor.observe_and_check([record])
            if report is not None:
                checks += 1
                alarms += bool(report.drifted)
                full = [f.statistic for f in report.features.values() if f.method == "psi"]
                if report.n == monitor.window:
                    worst = max(worst, *full)
    return alarms * 100 / windows, checks, worst


def _cost() -> tuple[float, float]:
    """(seconds per request of observe + check every 100, seconds of one predict)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    train = _frame(rng, TRAIN_ROWS)
    train = train.drop(columns=["kind"])
    model = LogisticRegression().fit(train, (train["f0"] > 0).astype(int))
    records = _frame(rng, 5000).to_dict("records")
    monitor = _service_monitor(_profile(3))
    monitor.observe(records[:500])
    started = time.perf_counter()
    for record in records:
        monitor.observe_and_check([record])
    per_request = (time.perf_counter() - started) / len(records)
    one = train.iloc[:1]
    model.predict(one)
    times = []
    for _ in range(300):
        t0 = time.perf_counter()
        model.predict(one)
        times.append(time.perf_counter() - t0)
    return per_request, median(times)


def run() -> dict[str, Any]:
    from mlnb.serve import ServeSettings

    settings = ServeSettings()

    found = [_detect(seed) for seed in range(SEEDS)]
    hits = [n for n in found if n is not None]
    missed = len(found) - len(hits)
    fresh = _fresh_windows(SEEDS)
    alarms, checks, worst = _false_alarms(TRAIN_ROWS)
    alarms_small, _, worst_small = _false_alarms(455)
    per_request, predict = _cost()
    share = per_request / predict
    policy = (
        f"the service's monitor (ServeSettings().drift_options()): window "
        f"{settings.drift_window}, check every {settings.drift_every} requests, numbers PSI > "
        f"{settings.drift_threshold:g}, categories p < {settings.drift_p_value:g}"
    )
    rows = [
        row(
            "drift: requests to flag a 0.5-sigma shift (median / worst)",
            f"{median(hits):.0f} / {max(hits)}" if hits else "never",
            f"missed {missed}/{len(found)}",
            "-",
            "all flagged",
            missed == 0,
        ),
        row(
            "drift: fresh shifted windows flagged at first check",
            f"{fresh:.0%}",
            "-",
            "-",
            "100%",
            fresh == 1.0,
        ),
        row(
            "drift: false alarms per 100 windows (1,000 training rows)",
            f"{alarms:.2f}",
            f"{checks} checks",
            "-",
            "< 1",
            alarms < 1,
        ),
        row(
            "drift: false alarms per 100 windows (455 training rows)",
            f"{alarms_small:.2f}",
            f"{checks} checks",
            "-",
            "< 1",
            alarms_small < 1,
        ),
        row(
            "drift: observe + check per request vs predict (1 row)",
            fmt_time(per_request),
            fmt_time(predict),
            f"{share:.1%}",
            "< 25%",
            share < 0.25,
        ),
    ]
    notes = [
        f"drift policy: {policy}; {FEATURES} numeric features (shift in one) and one "
        f"categorical (chi-square); {SEEDS} seeds; "
        f"p90 requests to flag {percentile(hits, 90):.0f}"
        if hits
        else "drift: never flagged",
        f"drift: largest PSI of a full unshifted window {worst:.3f} (1,000 training rows), "
        f"{worst_small:.3f} (455 rows)",
    ]
    return {"rows": rows, "notes": notes}


if __name__ == "__main__":
    module_main(run, {})
