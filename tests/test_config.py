from __future__ import annotations

from pathlib import Path

import pytest

from mlnb.config import find_project_root, get_settings, init_project, reset_settings
from mlnb.exceptions import ConfigError


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MLFLOW_TRACKING_URI", "MLNB_PROJECT_ROOT", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(key, raising=False)
    for key in ("MLNB_FLUSH_INTERVAL", "MLNB_HTTP_TIMEOUT", "MLNB_AUTOLOG_PARAMS"):
        monkeypatch.delenv(key, raising=False)
    reset_settings()


@pytest.mark.parametrize("marker", [".mlnb", ".git", "pyproject"])
def test_root_is_the_nearest_marked_folder(tmp_path: Path, marker: str) -> None:
    root = tmp_path / "repo"
    deep = root / "notebooks" / "sub"
    deep.mkdir(parents=True)
    if marker == "pyproject":
        (root / "pyproject.toml").write_text("[tool.mlnb]\n")
    else:
        (root / marker).mkdir()
    assert find_project_root(deep) == root


def test_pyproject_without_tool_mlnb_is_not_a_root(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    sub = tmp_path / "a"
    sub.mkdir()
    assert find_project_root(sub) == sub.resolve()


def test_default_is_the_embedded_sqlite_store(tmp_path: Path) -> None:
    (tmp_path / ".mlnb").mkdir()
    settings = get_settings(tmp_path)
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/.mlnb/mlflow.db"
    assert settings.artifact_root == tmp_path / ".mlnb" / "artifacts"
    assert settings.embedded and not settings.is_remote


def test_pyproject_then_environment_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mlnb]\ntracking_uri = "http://127.0.0.1:5999"\nexperiment = "churn"\n'
        "flush_interval = 0.5\nautolog_params = false\n"
    )
    settings = get_settings(tmp_path)
    assert settings.tracking_uri == "http://127.0.0.1:5999"
    assert settings.experiment == "churn"
    assert settings.flush_interval == 0.5
    assert settings.autolog_params is False
    assert settings.sources["tracking_uri"] == "pyproject.toml [tool.mlnb]"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:6000")
    monkeypatch.setenv("MLNB_AUTOLOG_PARAMS", "yes")
    settings = get_settings(tmp_path)
    assert settings.tracking_uri == "http://127.0.0.1:6000"
    assert settings.autolog_params is True
    assert settings.sources["tracking_uri"] == "$MLFLOW_TRACKING_URI"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[tool.mlnb]\nflush_interval = 'soon'\n", "flush_interval = 'soon' is not a valid float"),
        ("[tool.mlnb]\ntracking_url = 'x'\n", "unknown key.*tracking_url.*known keys"),
        ("[tool.mlnb\n", "not valid TOML"),
        ("[tool.mlnb]\ntracking_uri = 'localhost:5000'\n", "has no scheme; use http://host:port"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        get_settings(tmp_path)


def test_project_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLNB_PROJECT_ROOT", str(tmp_path))
    assert find_project_root("/") == tmp_path
    monkeypatch.setenv("MLNB_PROJECT_ROOT", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="is not a folder"):
        find_project_root()


def test_init_creates_the_home_and_says_so(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    lines = init_project(tmp_path)
    assert (tmp_path / ".mlnb" / "journal").is_dir()
    assert (tmp_path / ".mlnb" / ".gitignore").read_text() == "*\n"
    assert any(line.startswith("created") and line.endswith(".mlnb") for line in lines)
    assert any(line.startswith("tracking sqlite:///") for line in lines)
    again = init_project(tmp_path)
    assert any(line.startswith("exists") for line in again)
