"""What an export may copy: only files inside the project once symlinks are followed, and,
with ``confine=``, only files under that folder too. A link in the project to a file outside
(a secret) stops the export, naming the read, the file it leads to and the fix, and nothing
is copied; links that stay inside the project are pinned as plain copies."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from mlnb.exceptions import NotebookError, OutsideReadError
from mlnb.export import export_notebook
from tests.serving import code, write_notebook

SPECIES = "code,name\n0,setosa\n1,versicolor\n2,virginica\n"


def lookup_notebook(path: Path, read: str) -> Path:
    """Exported cells that ``pd.read_csv`` the path ``read`` names (relative to ``path``)."""
    return write_notebook(
        path,
        code(f"import pandas as pd\nspecies = pd.read_csv({read!r})", "mlnb:export"),
        code(
            "def predict(df: pd.DataFrame) -> list[str]:\n"
            "    return [str(species.iloc[0, 1])] * len(df)",
            "mlnb:export",
        ),
        code("import pandas as pd\nexample = pd.DataFrame({'x': [1.0]})", "mlnb:example"),
    )


def _nothing_written(root: Path, name: str, secret: Path) -> None:
    assert not (root / name).exists()
    leftovers = [p for p in root.rglob("*") if p.name == secret.name and not p.is_symlink()]
    assert leftovers == [], leftovers  # no copy of the secret anywhere in the project
    assert not list(root.glob(f".{name}-*"))  # the staging folder is gone too


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_symlink_to_a_file_outside_the_project_is_not_copied(
    project: Path, tmp_path: Path, link: str
) -> None:
    secret = tmp_path / "home" / ".ssh" / "species.csv"  # what a link to a secret leads to
    secret.parent.mkdir(parents=True)
    secret.write_text(SPECIES)
    if link == "file":
        (project / "data").mkdir()
        (project / "data" / "species.csv").symlink_to(secret)
    else:
        (project / "data").symlink_to(secret.parent, target_is_directory=True)
    notebook = lookup_notebook(project / "lookup.ipynb", "data/species.csv")
    with pytest.raises(OutsideReadError) as caught:
        export_notebook(notebook, project / "svc", verify=False)
    message = str(caught.value)
    named = project / "data" / "species.csv"
    assert f"read 1 file(s) outside the project {project}: {named} (read by cell 2 " in message
    assert f"as 'data/species.csv'), which leads through a symlink to {secret}. " in message
    assert "nothing was copied" in message
    assert f"cp --remove-destination {secret} {named}" in message
    assert "mlnb.load_version" in message
    assert caught.value.reads and not caught.value.confined
    assert caught.value.folder == str(project)
    _nothing_written(project, "svc", secret)


def test_a_symlink_that_stays_inside_the_project_is_pinned_as_a_copy(project: Path) -> None:
    (project / "data" / "v2").mkdir(parents=True)
    (project / "data" / "v2" / "species.csv").write_text(SPECIES)
    (project / "data" / "species.csv").symlink_to(Path("v2") / "species.csv")
    notebook = lookup_notebook(project / "lookup.ipynb", "data/species.csv")
    result = export_notebook(notebook, project / "svc", verify=False)
    (pinned,) = result.metadata["files"]
    assert pinned["source"] == "data/species.csv"  # where the code reads it from
    copy = result.folder / pinned["path"]
    assert not copy.is_symlink() and copy.read_text() == SPECIES


def test_confine_refuses_project_files_outside_the_folder(project: Path) -> None:
    """JupyterLab started in ``lab/`` of the project: ``../data`` is in the project, not in
    the folder the export is confined to. The plain export (confined to the project) pins it."""
    (project / "data").mkdir()
    (project / "data" / "species.csv").write_text(SPECIES)
    lab = project / "lab"
    lab.mkdir()
    notebook = lookup_notebook(lab / "lookup.ipynb", "../data/species.csv")
    with pytest.raises(OutsideReadError) as caught:
        export_notebook(notebook, lab / "svc", verify=False, confine=lab)
    message = str(caught.value)
    assert (
        f"read 1 file(s) outside the folder this export is confined to, {lab}: "
        f"{project / 'data' / 'species.csv'} (read by cell 2 "
    ) in message
    assert "as '../data/species.csv'). " in message
    assert f"Copy the file under {lab}" in message
    assert caught.value.confined and caught.value.folder == str(lab)
    assert not (lab / "svc").exists() and not list(lab.glob(".svc-*"))

    plain = export_notebook(notebook, lab / "svc", verify=False)
    assert [f["source"] for f in plain.metadata["files"]] == ["data/species.csv"]
    shutil.rmtree(lab / "svc")
    with pytest.raises(NotebookError, match="outside the folder this export is confined to"):
        export_notebook(notebook, lab / "svc", verify=False, confine=str(lab))  # str as well


def test_confine_follows_symlinks_inside_the_project(project: Path) -> None:
    """A link under the confinement folder to a project file outside it is refused too."""
    (project / "data").mkdir()
    (project / "data" / "species.csv").write_text(SPECIES)
    lab = project / "lab"
    lab.mkdir()
    (lab / "species.csv").symlink_to(project / "data" / "species.csv")
    notebook = lookup_notebook(lab / "lookup.ipynb", "species.csv")
    refused = (
        re.escape(f"confined to, {lab}: {lab / 'species.csv'} (read by cell 2 ")
        + ".*"
        + (re.escape(" as 'species.csv'), which leads through a symlink to "))
        + re.escape(f"{project / 'data' / 'species.csv'}. ")
    )
    with pytest.raises(OutsideReadError, match=refused):
        export_notebook(notebook, lab / "svc", verify=False, confine=lab)
    assert not (lab / "svc").exists()
