"""The server-root check over HTTP, in a real ``jupyter lab``: a pipeline spec inside the root
that names a notebook or data outside it is a 403 and runs nothing; every endpoint taking a
path refuses one outside the root (by ``..``, through a symlink); paths inside still work."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.lab.conftest import Lab
from tests.serving import code, write_notebook


def _forbidden(response: httpx.Response, *says: str) -> str:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "hint", "cell"}, body
    assert "outside the server root" in body["error"], body
    assert "server root" in body["hint"]
    for part in says:
        assert part in body["error"], body
    return str(body["error"])


def _outside(lab: Lab) -> Path:
    folder = lab.root.parent / "outside"
    folder.mkdir(exist_ok=True)
    return folder


def _marker_notebook(path: Path, marker: Path) -> Path:
    """A notebook that leaves ``marker`` behind when it runs."""
    return write_notebook(
        path, code(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')")
    )


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "inside"])
def test_pipeline_notebook_outside_the_root_never_runs(lab: Lab, how: str) -> None:
    outside = _outside(lab)
    marker = outside / f"ran-{how}"
    evil = _marker_notebook(outside / f"evil-{how}.ipynb", marker)
    folder = lab.root / f"escape-{how}"
    folder.mkdir()
    if how == "dotdot":
        notebook = f"../../outside/{evil.name}"
    elif how == "absolute":
        notebook = str(evil)
    elif how == "symlink":
        (folder / "step.ipynb").symlink_to(evil)
        notebook = "step.ipynb"
    else:  # the same notebook inside the root: it runs, and leaves the marker
        _marker_notebook(folder / "step.ipynb", marker)
        notebook = "step.ipynb"
    (folder / "pipeline.yaml").write_text(
        f"name: escape-{how}\nsteps:\n  - {{name: run, notebook: {json.dumps(notebook)}}}\n"
    )
    state = lab.root / ".mlnb" / "pipelines" / f"escape-{how}.json"
    with lab.client() as client:
        response = client.post("/mlnb/pipelines", json={"path": f"escape-{how}/pipeline.yaml"})
        if how != "inside":
            error = _forbidden(response, f"escape-{how}/pipeline.yaml: steps[run].notebook")
            assert repr(notebook) in error and str(evil) in error
            assert not marker.exists() and not state.exists()  # refused before the run
            return
        assert response.status_code == 202, response.text
        job = response.json()
        deadline = time.monotonic() + 120
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            job = client.get(f"/mlnb/pipelines/{job['job_id']}").json()
    assert job["status"] == "succeeded", json.dumps(job, indent=1) + lab.log_tail()
    assert marker.read_text() == "ran" and state.is_file()


@pytest.mark.parametrize(
    ("step", "says"),
    [
        ("inputs: [../../outside/secret.csv]", "steps[s].inputs[0]: '../../outside/secret.csv'"),
        ("outputs: [OUTSIDE/written.csv]", "steps[s].outputs[0]"),
        ("outputs: ['../../{k}.csv'], grid: {k: [x]}", "steps[s[k=x]].outputs[0]"),
        ("inputs: [data]", "'data' holds the symlink 'leak.csv'"),
    ],
)
def test_pipeline_data_outside_the_root(lab: Lab, step: str, says: str) -> None:
    outside = _outside(lab)
    (outside / "secret.csv").write_text("a\n1\n")
    folder = lab.root / "data-escape"
    if not folder.exists():
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "leak.csv").symlink_to(outside / "secret.csv")
        _marker_notebook(folder / "step.ipynb", folder / "ran")
    step = step.replace("OUTSIDE", str(outside))
    (folder / "pipeline.yaml").write_text(
        f"name: data-escape\nsteps:\n  - {{name: s, notebook: step.ipynb, {step}}}\n"
    )
    with lab.client() as client:
        response = client.post("/mlnb/pipelines", json={"path": "data-escape/step.ipynb"})
    _forbidden(response, "data-escape/pipeline.yaml: ", says)
    assert not (folder / "ran").exists()
    assert not (outside / "written.csv").exists()


def _links(lab: Lab) -> Path:
    """In the root: ``linked.ipynb`` and ``linked.csv`` to files outside, ``linked-dir`` to
    the outside folder, ``holder/`` with a link out, ``linked-flow/pipeline.yaml`` to a spec
    outside."""
    outside = _outside(lab)
    if not (lab.root / "linked.ipynb").is_symlink():
        write_notebook(outside / "nb.ipynb", code("x = 1"))
        (outside / "data.csv").write_text("a\n1\n")
        spec = "name: o\nsteps:\n  - {name: a, notebook: nb.ipynb}\n"
        (outside / "pipeline.yaml").write_text(spec)
        (lab.root / "linked.ipynb").symlink_to(outside / "nb.ipynb")
        (lab.root / "linked.csv").symlink_to(outside / "data.csv")
        (lab.root / "linked-dir").symlink_to(outside, target_is_directory=True)
        (lab.root / "holder").mkdir()
        (lab.root / "holder" / "ok.csv").write_text("a\n2\n")
        (lab.root / "holder" / "out.csv").symlink_to(outside / "data.csv")
        (lab.root / "linked-flow").mkdir()
        write_notebook(lab.root / "linked-flow" / "step.ipynb", code("x = 1"))
        (lab.root / "linked-flow" / "pipeline.yaml").symlink_to(outside / "pipeline.yaml")
    return outside


@pytest.mark.parametrize(
    ("method", "url", "body", "says"),
    [
        ("GET", "/mlnb/runs?path=linked.ipynb", None, "path: 'linked.ipynb'"),
        ("GET", "/mlnb/runs?path=sub/../../outside/nb.ipynb", None, "goes above it"),
        ("POST", "/mlnb/export", {"path": "linked.ipynb"}, "through a symlink it leads to"),
        ("POST", "/mlnb/export", {"path": "linked-dir/nb.ipynb"}, "through a symlink it leads to"),
        (
            "POST",
            "/mlnb/export",
            {"path": "serve.ipynb", "output": "linked-dir/svc"},
            "output: 'linked-dir/svc'",
        ),
        ("POST", "/mlnb/export", {"path": "serve.ipynb", "output": "/../../svc"}, "output:"),
        ("POST", "/mlnb/pipelines", {"path": "linked-dir/pipeline.yaml"}, "path:"),
        ("POST", "/mlnb/pipelines", {"path": "linked-flow/pipeline.yaml"}, "path:"),
        ("POST", "/mlnb/pipelines", {"path": "linked-flow/step.ipynb"}, "pipeline file:"),
        ("POST", "/mlnb/version", {"path": "linked.csv"}, "path: 'linked.csv'"),
        ("POST", "/mlnb/version", {"path": "../outside/data.csv"}, "path:"),
        ("POST", "/mlnb/version", {"path": "holder"}, "'holder' holds the symlink 'out.csv'"),
    ],
)
def test_every_endpoint_refuses_paths_outside_the_root(
    lab: Lab, method: str, url: str, body: dict[str, str] | None, says: str
) -> None:
    outside = _links(lab)
    before = sorted(p.name for p in outside.iterdir())
    versions = lab.root / ".mlnb" / "versions.db"
    stamp = versions.stat().st_mtime_ns if versions.exists() else None
    with lab.client() as client:
        _forbidden(client.request(method, url, json=body), says)
    assert sorted(p.name for p in outside.iterdir()) == before  # nothing written there
    assert (versions.stat().st_mtime_ns if versions.exists() else None) == stamp


def test_paths_inside_the_root_and_api_path_spellings(lab: Lab) -> None:
    _links(lab)
    (lab.root / "inside.csv").write_text("a\n3\n")
    with lab.client() as client:
        for path in ("inside.csv", "/inside.csv", "holder/../inside.csv"):
            response = client.post("/mlnb/version", json={"path": path})
            assert response.status_code == 200, response.text
            assert response.json()["name"] == "inside.csv"
        runs = client.get("/mlnb/runs", params={"path": "/train.ipynb"})
        assert runs.status_code == 200 and runs.json()["notebook"] == "train.ipynb", runs.text
        # "~" is a name, as in Jupyter's contents API: not the home folder
        home = client.post("/mlnb/version", json={"path": "~/inside.csv"})
        assert home.status_code == 404 and "under the server root" in home.json()["error"]
        hidden = client.post("/mlnb/version", json={"path": ".mlnb/mlflow.db"})
        assert hidden.status_code == 403 and "is hidden" in hidden.json()["error"]
        assert "allow_hidden" in hidden.json()["hint"]


@pytest.mark.parametrize("how", ["dotdot", "symlink"])
def test_export_never_copies_a_file_the_cells_read_outside_the_root(lab: Lab, how: str) -> None:
    """The export is confined to the server root: cells that read a file outside it (by
    ``..``, or through a symlink in the root) get a 403 and nothing is copied into the root."""
    from tests.export.test_confine import SPECIES, lookup_notebook

    outside = _outside(lab)
    secret = outside / f"secret-{how}.csv"
    secret.write_text(SPECIES)
    folder = lab.root / f"export-{how}"
    folder.mkdir()
    if how == "dotdot":
        read = f"../../outside/{secret.name}"
    else:
        (folder / "species.csv").symlink_to(secret)
        read = "species.csv"
    lookup_notebook(folder / "lookup.ipynb", read)
    with lab.client() as client:
        response = client.post(
            "/mlnb/export", json={"path": f"export-{how}/lookup.ipynb", "output": f"svc-{how}"}
        )
    error = _forbidden(response, "the exported cells of", f"'{read}'", str(secret))
    assert "nothing was copied" in error
    assert not (lab.root / f"svc-{how}").exists() and not list(lab.root.glob(f".svc-{how}-*"))
    copies = [p for p in lab.root.rglob(secret.name) if not p.is_symlink()]
    assert copies == [], copies


@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_a_missing_notebook_outside_the_root_is_403_not_400(lab: Lab, how: str) -> None:
    """Whether a path outside the root exists is not told: the root check comes first."""
    missing = _outside(lab) / "never-written.ipynb"
    assert not missing.exists()
    notebook = "../../outside/never-written.ipynb" if how == "dotdot" else str(missing)
    folder = lab.root / f"missing-{how}"
    folder.mkdir()
    (folder / "pipeline.yaml").write_text(
        f"name: missing-{how}\nsteps:\n  - {{name: run, notebook: {json.dumps(notebook)}}}\n"
    )
    with lab.client() as client:
        response = client.post("/mlnb/pipelines", json={"path": f"missing-{how}/pipeline.yaml"})
    error = _forbidden(response, f"missing-{how}/pipeline.yaml: steps[run].notebook")
    assert "does not exist" not in error and str(missing) in error
    # the same spec naming a missing notebook inside the root still says it does not exist
    (folder / "pipeline.yaml").write_text(
        f"name: missing-{how}\nsteps:\n  - {{name: run, notebook: absent.ipynb}}\n"
    )
    with lab.client() as client:
        inside = client.post("/mlnb/pipelines", json={"path": f"missing-{how}/pipeline.yaml"})
    assert inside.status_code == 400, inside.text
    assert "notebook 'absent.ipynb' does not exist" in inside.json()["error"]
