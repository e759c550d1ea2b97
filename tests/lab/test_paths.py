"""ServerRoot, the one check every ``/mlnb/`` path goes through, on real folders and symlinks
(no server: the handler tests in test_handlers.py drive the same checks over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnb.labserver._errors import LabError
from mlnb.labserver._paths import ServerRoot
from mlnb.pipeline import load_pipeline, named_paths
from tests.serving import code, write_notebook


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp/outside/`` (a notebook, a data file) next to ``tmp/root/`` (the server root)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    write_notebook(outside / "evil.ipynb", code("x = 1"))
    (outside / "secret.csv").write_text("a\n1\n")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    write_notebook(root / "sub" / "ok.ipynb", code("x = 1"))
    (root / "data.csv").write_text("a\n2\n")
    return root


def test_request_paths_are_api_paths_under_the_root(tree: Path) -> None:
    root = ServerRoot(tree)
    assert root.request_path("sub/ok.ipynb") == tree / "sub" / "ok.ipynb"
    assert root.request_path("/sub/ok.ipynb") == tree / "sub" / "ok.ipynb"  # as Jupyter's
    assert root.request_path("sub//./x/../ok.ipynb") == tree / "sub" / "ok.ipynb"
    assert root.request_path("/") == tree
    assert root.relative(tree / "sub" / "ok.ipynb") == "sub/ok.ipynb"


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("../outside/evil.ipynb", 403, r"path: '\.\./outside/evil\.ipynb' is outside the server"),
        ("sub/../../outside/secret.csv", 403, "outside the server root .*: it goes above it"),
        ("/../outside/secret.csv", 403, "is outside the server root"),
        ("", 400, "no file path given"),
        ("  ", 400, "no file path given"),
        ("a\x00b", 400, "NUL byte"),
        ("~/secret.csv", 404, r"'~/secret\.csv' does not exist under the server root"),
        ("/etc/hostname", 404, "does not exist under the server root"),  # root/etc/hostname
        (".mlnb/mlflow.db", 403, "is hidden"),
        ("sub/../.cache/x", 403, "is hidden"),
    ],
)
def test_bad_request_paths(tree: Path, path: str, status: int, says: str) -> None:
    with pytest.raises(LabError, match=says) as caught:
        ServerRoot(tree).request_path(path)
    assert caught.value.status == status
    assert caught.value.hint


def test_hidden_paths_follow_allow_hidden(tree: Path) -> None:
    (tree / ".cache").mkdir()
    (tree / ".cache" / "x.csv").write_text("a\n")
    with pytest.raises(LabError, match=r"is hidden .* does not allow hidden files") as caught:
        ServerRoot(tree).request_path(".cache/x.csv")
    assert caught.value.status == 403
    assert "--ContentsManager.allow_hidden=True" in caught.value.hint
    assert ServerRoot(tree, allow_hidden=True).request_path(".cache/x.csv").is_file()


def test_symlinks_are_followed(tree: Path) -> None:
    outside = tree.parent / "outside"
    (tree / "link.ipynb").symlink_to(outside / "evil.ipynb")
    (tree / "out").symlink_to(outside, target_is_directory=True)
    (tree / "alias.csv").symlink_to(tree / "data.csv")  # inside to inside: fine
    root = ServerRoot(tree)
    with pytest.raises(LabError, match=r"through a symlink it leads to .*outside/evil\.ipynb"):
        root.request_path("link.ipynb")
    with pytest.raises(LabError, match="outside the server root") as caught:
        root.request_path("out/secret.csv")
    assert caught.value.status == 403
    with pytest.raises(LabError, match="outside the server root"):  # even if missing
        root.request_path("out/missing.csv", must_exist=False)
    assert root.request_path("alias.csv") == tree / "data.csv"


def test_a_root_reached_through_a_symlink(tree: Path) -> None:
    (tree.parent / "root-link").symlink_to(tree, target_is_directory=True)
    root = ServerRoot(tree.parent / "root-link")
    assert root.root == tree
    assert root.request_path("sub/ok.ipynb") == tree / "sub" / "ok.ipynb"
    with pytest.raises(LabError, match="outside the server root"):
        root.request_path("../outside/secret.csv")
    # out by ".." and back in through a link outside: refused, as Jupyter's contents API does
    with pytest.raises(LabError, match="goes above it"):
        root.request_path("../root-link/sub/ok.ipynb")


def test_folders_holding_symlinks_that_leave(tree: Path) -> None:
    deep = tree / "data" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "fine.csv").symlink_to(tree / "data.csv")
    root = ServerRoot(tree)
    root.tree(tree / "data", field="path", written="data")  # inside links only: no error
    (deep / "leak.csv").symlink_to(tree.parent / "outside" / "secret.csv")
    with pytest.raises(LabError, match=r"'data' holds the symlink 'a/b/leak\.csv' to .*secret"):
        root.tree(tree / "data", field="path", written="data")
    (deep / "leak.csv").unlink()
    (deep / "dir").symlink_to(tree.parent / "outside", target_is_directory=True)
    with pytest.raises(LabError, match="holds the symlink 'a/b/dir'"):
        root.tree(tree / "data", field="path", written="data")


def _spec(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.yaml").write_text(text)
    return folder / "pipeline.yaml"


def test_named_paths_resolve_against_the_spec_folder(tree: Path) -> None:
    spec = _spec(
        tree / "sub" / "flow",
        "name: flow\nsteps:\n"
        "  - {name: a, notebook: ../ok.ipynb, inputs: [../../data.csv], outputs: ['out/{k}.csv'],"
        " grid: {k: [1, 2]}}\n",
    )
    pipeline = load_pipeline(spec)
    named = {field: (written, path) for field, written, path in named_paths(pipeline)}
    assert named["steps[a[k=1]].notebook"] == ("../ok.ipynb", tree / "sub" / "ok.ipynb")
    assert named["steps[a[k=2]].inputs[0]"] == ("../../data.csv", tree / "data.csv")
    assert named["steps[a[k=2]].outputs[0]"][1] == tree / "sub" / "flow" / "out" / "2.csv"
    assert named["pipeline file"][1] == spec and named["working directory"][1] == spec.parent
    ServerRoot(tree).pipeline(pipeline)  # all inside: no error


@pytest.mark.parametrize(
    ("step", "says"),
    [
        ("{name: a, notebook: ../../outside/evil.ipynb}", r"steps\[a\]\.notebook: '\.\./\.\./"),
        ("{name: a, notebook: OUTSIDE/evil.ipynb}", r"steps\[a\]\.notebook: '/"),
        ("{name: a, notebook: link.ipynb}", "through a symlink it leads to .*evil.ipynb"),
        (
            "{name: a, notebook: ok.ipynb, inputs: [../../outside/secret.csv]}",
            r"steps\[a\]\.inputs\[0\]",
        ),
        ("{name: a, notebook: ok.ipynb, outputs: [OUTSIDE/new.csv]}", r"steps\[a\]\.outputs\[0\]"),
        (
            "{name: a, notebook: ok.ipynb, outputs: ['../../{k}/x.csv'], grid: {k: [v]}}",
            r"steps\[a\[k=v\]\]\.outputs\[0\]: '\.\./\.\./v/x\.csv'",
        ),
        ("{name: a, notebook: ok.ipynb, inputs: [data]}", "'data' holds the symlink 'leak.csv'"),
    ],
)
def test_pipeline_paths_outside_the_root(tree: Path, step: str, says: str) -> None:
    outside = tree.parent / "outside"
    folder = tree / "sub"
    (folder / "link.ipynb").symlink_to(outside / "evil.ipynb")
    (folder / "data").mkdir()
    (folder / "data" / "leak.csv").symlink_to(outside / "secret.csv")
    spec = _spec(folder, f"name: p\nsteps:\n  - {step.replace('OUTSIDE', str(outside))}\n")
    with pytest.raises(LabError, match=says) as caught:
        ServerRoot(tree).pipeline(load_pipeline(spec))
    assert caught.value.status == 403
    assert "sub/pipeline.yaml: " in caught.value.error
    assert "outside the server root" in caught.value.error


@pytest.mark.parametrize("notebook", ["../../outside/never.ipynb", "OUTSIDE/never.ipynb"])
def test_the_root_check_runs_before_the_loader_looks_for_notebooks(
    tree: Path, notebook: str
) -> None:
    """``load_pipeline(confine=...)``: a missing notebook outside the root is a 403 like an
    existing one (whether it exists is not told); without the hook, it does not exist."""
    from mlnb.pipeline import PipelineError

    outside = tree.parent / "outside"
    written = notebook.replace("OUTSIDE", str(outside))
    spec = _spec(tree / "sub", f"name: p\nsteps:\n  - {{name: a, notebook: {written}}}\n")
    with pytest.raises(LabError, match=r"steps\[a\]\.notebook: .*never\.ipynb") as caught:
        load_pipeline(spec, confine=ServerRoot(tree).pipeline)
    assert caught.value.status == 403 and "outside the server root" in caught.value.error
    with pytest.raises(PipelineError, match=r"notebook '.*never\.ipynb' does not exist"):
        load_pipeline(spec)
    seen: list[str] = []
    inside = _spec(tree / "in", "name: q\nsteps:\n  - {name: a, notebook: absent.ipynb}\n")
    with pytest.raises(PipelineError, match=r"notebook 'absent\.ipynb' does not exist"):
        load_pipeline(inside, confine=lambda p: seen.append(p.name))
    assert seen == ["q"]  # the hook ran, then the loader looked for the notebook
