"""A service started from JupyterLab keeps its port from one export to the next (an open
/docs tab goes on working); only when another process holds the port is a new one chosen,
and the answer says so. Real ``mlnb serve`` processes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlnb.export import export_notebook
from mlnb.labserver._actions import Services, port_note, remembered_port
from tests.serving import code, write_notebook

CELLS = (
    code("import pandas as pd", "mlnb:export"),
    code(
        "def predict(df: pd.DataFrame) -> list[float]:\n    return df['x'].tolist()",
        "mlnb:export",
    ),
    code("example = pd.DataFrame({'x': [1.0, 2.0]})", "mlnb:example"),
)


@pytest.fixture
def services() -> Iterator[Services]:
    started = Services()
    yield started
    started.stop()


def _export(project: Path) -> Path:
    notebook = write_notebook(project / "echo.ipynb", *CELLS)
    return export_notebook(notebook, project / "build" / "services" / "echo", force=True).folder


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.usefixtures("processes")  # the export check and the services are processes
def test_a_re_export_keeps_the_port_and_a_taken_port_is_said(
    project: Path, services: Services
) -> None:
    folder = _export(project)
    url, note = services.start(folder)
    assert note is None  # its first start: nothing to keep
    record = json.loads((folder.parent / ".echo.serve.json").read_text())
    assert record == {"folder": "echo", "port": _port(url)}

    folder = _export(project)  # the folder is replaced; the port is remembered beside it
    again, note = services.start(folder)
    assert (again, note) == (url, None)
    assert httpx.get(f"{again}/healthz", timeout=10).status_code == 200

    services.stop(folder)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:  # another server's
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        other.bind(("127.0.0.1", _port(url)))
        other.listen()
        moved, note = services.start(folder)
    assert moved != url
    assert note == (
        f"port {_port(url)}, which this service had before, is taken by another process; the "
        f"service now runs on port {_port(moved)}: open its docs at {moved}/docs (tabs on the "
        "old port no longer reach it)"
    )
    assert remembered_port(folder) == _port(moved)  # the new one is kept from now on


def test_a_broken_port_record_means_a_new_port(tmp_path: Path) -> None:
    folder = tmp_path / "svc"
    (tmp_path / ".svc.serve.json").write_text("not json")
    assert remembered_port(folder) is None
    (tmp_path / ".svc.serve.json").write_text('{"port": 70000}')
    assert remembered_port(folder) is None
    assert port_note(None, 8123) is None and port_note(8123, 8123) is None
