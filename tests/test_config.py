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


# -- the helpers every face reads its MLNB_* variables with ---------------------------------
def test_env_helpers_take_the_default_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlnb.config import env_choice, env_flag, env_float, env_int, env_str

    monkeypatch.delenv("MLNB_TEST_KNOB", raising=False)
    assert env_flag("MLNB_TEST_KNOB", True) is True and env_flag("MLNB_TEST_KNOB", None) is None
    assert env_int("MLNB_TEST_KNOB", 7) == 7 and env_float("MLNB_TEST_KNOB", None) is None
    assert (
        env_choice("MLNB_TEST_KNOB", "a", ("a", "b")) == "a" and env_str("MLNB_TEST_KNOB") is None
    )
    monkeypatch.setenv("MLNB_TEST_KNOB", " ")
    assert env_int("MLNB_TEST_KNOB", 7) == 7 and env_str("MLNB_TEST_KNOB") is None


@pytest.mark.parametrize(
    ("raw", "flag"),
    [("1", True), (" TRUE ", True), ("yes", True), ("On", True), ("0", False), ("off", False)],
)
def test_env_flag_spellings(raw: str, flag: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlnb.config import env_flag

    monkeypatch.setenv("MLNB_TEST_KNOB", raw)
    assert env_flag("MLNB_TEST_KNOB", not flag) is flag


def test_env_numbers_parse_and_check_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlnb.config import env_float, env_int

    monkeypatch.setenv("MLNB_TEST_KNOB", "64_000")
    assert env_int("MLNB_TEST_KNOB", 1, minimum=1) == 64_000
    monkeypatch.setenv("MLNB_TEST_KNOB", "0.5")
    assert env_float("MLNB_TEST_KNOB", 1.0, above=0, maximum=1) == 0.5


@pytest.mark.parametrize(
    ("call", "raw", "message"),
    [
        ("flag", "maybe", r"MLNB_TEST_KNOB='maybe' is not a flag; use one of 1, true, yes, on "
         r"\(on\) or 0, false, no, off \(off\), or unset it for the default \(on\)\."),
        ("int", "12MB", r"MLNB_TEST_KNOB='12MB' is not a whole number of at least 1; set it to "
         r"one \(e\.g\. MLNB_TEST_KNOB=5\) or unset it for the default \(5\)\."),
        ("int", "0", r"MLNB_TEST_KNOB='0' is not a whole number of at least 1"),
        ("float", "inf", r"MLNB_TEST_KNOB='inf' is not a number more than 0 and at most 1; set "
         r"it to one \(e\.g\. MLNB_TEST_KNOB=0\.5\) or unset it for the default \(0\.5\)\."),
        ("float", "0", r"MLNB_TEST_KNOB='0' is not a number more than 0"),
        ("choice", "Fsnyc", r"MLNB_TEST_KNOB='Fsnyc' is not a known setting; use one of fsync, "
         r"write, or leave it unset for fsync\."),
    ],
)  # fmt: skip
def test_a_bad_value_is_a_config_error_naming_the_variable_and_the_fix(
    call: str, raw: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlnb.config import env_choice, env_flag, env_float, env_int

    monkeypatch.setenv("MLNB_TEST_KNOB", raw)
    read = {
        "flag": lambda: env_flag("MLNB_TEST_KNOB", True),
        "int": lambda: env_int("MLNB_TEST_KNOB", 5, minimum=1),
        "float": lambda: env_float("MLNB_TEST_KNOB", 0.5, above=0, maximum=1),
        "choice": lambda: env_choice("MLNB_TEST_KNOB", "fsync", ("fsync", "write")),
    }[call]
    with pytest.raises(ConfigError, match=message):
        read()


def test_the_readme_documents_every_project_setting_and_no_other() -> None:
    """The ``[tool.mlnb]`` block of the README against :class:`Settings`' keys: each key
    with the variable that overrides it."""
    import re

    from mlnb.config import _ENV

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("```toml\n[tool.mlnb]\n") :]
    block = block[: block.index("```\n", 8)]
    documented = dict(re.findall(r"^(\w+) = .*?# (\w+)", block, re.M))
    assert documented == _ENV
