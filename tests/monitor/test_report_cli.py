"""`mlnb monitor report DIR|URL` as a user runs it (a process of its own)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlnb.monitor import drift_report, load_audit_records, profile
from tests.conftest import run_mlnb
from tests.servers import free_port


def _service_folder(root: Path, shift: float) -> Path:
    """A service folder as export and the service leave it: profile.json and audit JSONL."""
    rng = np.random.default_rng(5)
    train = pd.DataFrame(
        {"x": rng.normal(0, 1, 1000), "kind": rng.choice(["a", "b"], 1000, p=[0.7, 0.3])}
    )
    folder = root / "svc"
    profile(train, "bc", log=False).save(folder / "profile.json")
    (folder / "audit").mkdir()
    live = pd.DataFrame({"x": rng.normal(shift, 1, 600), "kind": rng.choice(["a", "b"], 600)})
    records = live.to_dict("records")
    with (folder / "audit" / "predictions-0001.jsonl").open("w") as out:
        for i in range(0, 400, 4):  # batches of 4 records
            entry = {"request_id": f"r{i}", "inputs": records[i : i + 4], "outputs": [0] * 4}
            out.write(json.dumps(entry) + "\n")
        shadow = {"kind": "shadow", "inputs": records[:4], "outputs": [1] * 4}
        out.write(json.dumps(shadow) + "\n")  # the challenger's answer: not counted again
        out.write("this line is not JSON\n")
        out.write(json.dumps({"request_id": "no inputs"}) + "\n")
    with (folder / "audit" / "predictions-0002.jsonl").open("w") as out:
        for i in range(400, 600):
            out.write(json.dumps({"inputs": records[i]}) + "\n")  # one record, not a list
        out.write('{"inputs": [{"x": 1.0')  # cut off mid-write
    return folder


def test_report_of_a_service_folder(tmp_path: Path) -> None:
    folder = _service_folder(tmp_path, shift=1.0)
    audit = load_audit_records(folder)
    assert (len(audit.records), audit.files, audit.skipped) == (600, 2, 3)
    done = run_mlnb(tmp_path, "monitor", "report", str(folder), "-o", "report.html")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "600 live row(s) against profile 'bc': 2 of 2 feature(s) drifted; report in report.html"
    )
    assert lines[1].startswith("  drifted: x (psi ") and "n=600)" in lines[1]
    assert lines[2].startswith("  drifted: kind (chi2 ")
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg ") == 2 and "training: 1000 values" in page
    assert run_mlnb(tmp_path, "monitor", "report", str(folder), "--fail-on-drift").returncode == 1
    assert (tmp_path / "drift-report.html").exists()
    # an audit folder kept elsewhere (MLNB_AUDIT_DIR), with the profile given
    (folder / "audit" / "feedback.jsonl").write_text('{"request_id": "r0", "label": 1}\n')
    moved = (folder / "audit").rename(tmp_path / "elsewhere")
    args = ("monitor", "report", str(moved), "--profile", str(folder / "profile.json"))
    done = run_mlnb(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("600 live row(s) against profile 'bc'")


def test_report_of_the_newest_rows_only(tmp_path: Path) -> None:
    folder = _service_folder(tmp_path, shift=0.0)
    done = run_mlnb(tmp_path, "monitor", "report", str(folder), "--last", "300")
    assert done.returncode == 0, done.stderr
    assert "300 live row(s) against profile 'bc': 1 of 2 feature(s) drifted" in done.stdout
    assert "drifted: x" not in done.stdout and "drifted: kind" in done.stdout


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", r"is not a folder; give an exported service folder"),
        ("no-profile", r"has no profile.json: record a profile"),
        ("bad-profile", r"profile.json' is not JSON"),
        ("no-audit", r"no predictions in .*audit \(0 audit file\(s\)"),
    ],
)
def test_report_of_bad_folders(tmp_path: Path, setup: str, message: str) -> None:
    import re

    folder = tmp_path / "svc"
    if setup != "missing":
        folder.mkdir()
    if setup in {"bad-profile", "no-audit"}:
        (folder / "profile.json").write_text(
            "{oops"
            if setup == "bad-profile"
            else json.dumps(profile({"x": [1.0]}, log=False).to_dict())
        )
    done = run_mlnb(tmp_path, "monitor", "report", str(folder))
    assert done.returncode == 2
    assert re.search(message, done.stderr), done.stderr
    assert done.stderr.startswith("mlnb: error: ") and "Traceback" not in done.stderr
    assert not (tmp_path / "drift-report.html").exists()


@contextlib.contextmanager
def _drift_endpoint(body: bytes, status: int = 200) -> Iterator[str]:
    """A stand-in for a running service's GET /monitor/drift (the service itself is built by
    another part; this checks the client side and the shared JSON shape)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status if self.path == "/monitor/drift" else 404
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_report_of_a_service_url(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    prof = profile({"x": list(rng.normal(0, 1, 1000))}, "bc", log=False)
    report = drift_report(prof, {"x": list(rng.normal(2, 1, 500))})
    with _drift_endpoint(json.dumps(report.to_dict()).encode()) as url:
        done = run_mlnb(tmp_path, "monitor", "report", url + "/", "-o", "live.html")
    assert done.returncode == 0, done.stderr
    assert "500 live row(s) against profile 'bc': 1 of 1 feature(s) drifted" in done.stdout
    assert (tmp_path / "live.html").read_text().count("<svg ") == 1


def test_report_of_a_url_that_is_down_or_wrong(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run_mlnb(tmp_path, "monitor", "report", url)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot reach {url}/monitor/drift" in done.stderr
    assert "start the service (mlnb serve DIR)" in done.stderr
    with _drift_endpoint(b'{"detail": "no profile"}', status=404) as url:
        done = run_mlnb(tmp_path, "monitor", "report", url)
    assert done.returncode == 2 and "answered 404" in done.stderr
    with _drift_endpoint(b"<html>") as url:
        done = run_mlnb(tmp_path, "monitor", "report", url)
    assert done.returncode == 2 and "did not answer JSON" in done.stderr
    no_profile: dict[str, object] = {"profile": None, "n": 0, "features": {}, "drifted": []}
    no_profile["detail"] = "no profile"
    with _drift_endpoint(json.dumps(no_profile).encode()) as url:
        done = run_mlnb(tmp_path, "monitor", "report", url)
    assert done.returncode == 2 and "has no drift to report: no profile" in done.stderr
    with _drift_endpoint(b'{"profile": "bc"}') as url:
        done = run_mlnb(tmp_path, "monitor", "report", url)
    assert done.returncode == 2 and "not a drift report" in done.stderr
