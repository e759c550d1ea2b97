"""The drift report widget on reports computed by mlnb.monitor, as objects, dicts and URLs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlnb.exceptions import MonitorError
from mlnb.monitor import drift_report as compute_drift
from mlnb.monitor import profile
from mlnb.widgets import DriftSummary, DriftView, drift_report
from tests.servers import free_port


@pytest.fixture(scope="module")
def report() -> Any:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 2000),
            "income": rng.normal(50, 5, 2000),
            "city": rng.choice(["a", "b", "c"], 2000, p=[0.5, 0.3, 0.2]),
        }
    )
    live = pd.DataFrame(
        {
            "age": rng.normal(55, 10, 800),  # shifted by 1.5 sigma
            "income": rng.normal(50, 5, 800),
            "city": rng.choice(["a", "b", "c"], 800, p=[0.5, 0.3, 0.2]),
        }
    )
    prof = profile(train, "train", log=False)
    return compute_drift(prof, live)


def test_widget_shows_every_feature_drifted_first_with_histograms(report: Any) -> None:
    view = drift_report(report)
    assert isinstance(view, DriftView)
    assert view.drifted == ["age"]
    assert view.order[0] == "age"
    assert set(view.order) == {"age", "income", "city"}
    html = view.to_html()
    assert "1 of 3 features drifted" in html
    assert html.count("<svg") == 3
    # numbers: the profile's bins plus the two open outer bins, training and live bars
    age = report.features["age"]
    assert html.count("<rect") >= 2 * len(age.expected)
    assert "training a:" in html  # category bars are labelled by category
    assert "age" in view.to_text() and "DRIFTED" in view.to_text()
    assert "text/html" in view._repr_mimebundle_()
    static = drift_report(report, static=True)
    assert isinstance(static, DriftSummary) and static.to_html() == html


def test_widget_takes_the_json_shape(report: Any) -> None:
    data = json.loads(json.dumps(report.to_dict()))  # as GET /monitor/drift sends it
    view = drift_report(data)
    assert view.drifted == ["age"]
    assert view.static.features["city"]["method"] in {"chi2", "js"}


class _Drift(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self) -> None:
        if self.path != "/monitor/drift":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def service(report: Any) -> Iterator[str]:
    """A stand-in for a service's GET /monitor/drift on 127.0.0.1 (the widget's part is the
    HTTP client; the service's own endpoint is tested with mlnb.serve)."""
    handler = type("Handler", (_Drift,), {"body": json.dumps(report.to_dict()).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_widget_reads_a_running_service(service: str) -> None:
    assert drift_report(service).drifted == ["age"]
    assert drift_report(service + "/monitor/drift/").drifted == ["age"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"features": {"x": {"method": "psi"}}}, "this is not a drift report"),
        ([1, 2], "takes a DriftReport, its dict or a service URL, not a list"),
        ("service.local:8000", "is not a service URL"),
    ],
)
def test_bad_sources_get_one_clear_error(source: Any, message: str) -> None:
    with pytest.raises(MonitorError, match=message):
        drift_report(source)


def test_a_service_that_is_not_there_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MonitorError, match=rf"cannot reach {url}/monitor/drift"):
        drift_report(url)


def test_each_feature_shows_the_rule_that_decided_it() -> None:
    rng = np.random.default_rng(1)
    train = pd.DataFrame(
        {"x": rng.normal(0, 1, 5000), "c": rng.choice(list("abc"), 5000, p=[0.5, 0.3, 0.2])}
    )
    prof = profile(train, "t", log=False)
    # 120 values shifted by 0.3 sigma: PSI above 0.1 but not significant, so stable
    few = compute_drift(prof, pd.DataFrame({"x": np.random.default_rng(0).normal(0.3, 1, 120)}))
    view = drift_report(few, static=True)
    (rule,) = view.to_html().split('class="mlnb-decision">')[1:]
    assert rule.startswith("PSI 0.289 &gt; 0.1 and p 0.00037 ≥ 1e-05: the shift is not")
    assert "stable" in view.to_html() and "PSI 0.289 > 0.1 and p" in view.to_text()
    # a large sample with a small change of shares: significant but too small to flag
    many = np.random.default_rng(0).choice(list("abc"), 200_000, p=[0.53, 0.29, 0.18])
    small = drift_report(compute_drift(prof, pd.DataFrame({"c": many})), static=True)
    assert small.drifted == []
    assert "chi-square p 1.1e-09 &lt; 1e-05 but the change is small (JS distance &lt; 0.05)" in (
        small.to_html()
    )
    assert "the Jensen-Shannon distance is at least 0.05" in small.to_html()  # the rules


def test_drifted_features_first_and_open_stable_ones_folded(report: Any) -> None:
    html = drift_report(report, static=True).to_html()
    folded = html.split('<details class="mlnb-stable">')
    assert len(folded) == 2 and "<svg" in folded[0]  # age's histogram open
    assert "2 stable features: histograms" in folded[1] and folded[1].count("<svg") == 2
    assert folded[0].index("<b>age</b>") < folded[0].index("<b>city</b>")


def test_no_traffic_says_what_to_do(report: Any) -> None:
    from mlnb.monitor import DriftMonitor

    empty = DriftMonitor(profile(pd.DataFrame({"x": [1.0, 2.0, 3.0]}), "t", log=False)).check()
    view = drift_report(empty, static=True)
    html, text = view.to_html(), view.to_text()
    assert "0 of 0" not in html and "<table" not in html and "<svg" not in html
    assert "drift against profile t: no live data yet" in text
    assert "over the last 500 inputs that the service receives" in text
    assert "send requests to its POST /predict" in text
    # the body of a service before any request (GET /monitor/drift), and one with drift off
    body = {"profile": "t", "n": 0, "features": {}, "drifted": [], "window": 200, "seen": 0}
    assert "the last 200 inputs" in drift_report(body, static=True).to_text()
    off = {**body, "detail": "drift is off (MLNB_DRIFT=off)"}
    assert "No drift to show: drift is off (MLNB_DRIFT=off)." in drift_report(off).to_html()
