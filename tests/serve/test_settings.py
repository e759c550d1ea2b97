"""ServeSettings: every knob of a service read once, documented in the README, one failure
policy (no server is started here: these are the settings alone)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mlnb.serve import ServeSettings, ServiceError
from mlnb.serve._settings import KNOBS, settings_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    for knob in KNOBS:
        monkeypatch.delenv(knob.env, raising=False)


def test_every_field_is_a_documented_knob() -> None:
    fields = [f.name for f in dataclasses.fields(ServeSettings)]
    assert [k.field for k in KNOBS] == fields
    assert len({k.env for k in KNOBS}) == len(KNOBS)
    assert ServeSettings.from_env() == ServeSettings()  # unset: the documented defaults


@pytest.mark.parametrize("knob", KNOBS, ids=lambda k: k.env)
def test_each_knob_is_read_from_its_variable(knob: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlnb.serve._settings import Knob

    assert isinstance(knob, Knob)
    monkeypatch.setenv(knob.env, knob.example)
    read = getattr(ServeSettings.from_env(), knob.field)
    assert read != getattr(ServeSettings(), knob.field), (knob.env, read)
    monkeypatch.setenv(knob.env, "  ")  # empty: the default
    assert getattr(ServeSettings.from_env(), knob.field) == getattr(ServeSettings(), knob.field)


def test_the_readme_table_is_the_knobs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- settings:serve -->\n(.*?)<!-- /settings:serve -->", readme, re.S)
    assert table is not None, "README.md lost its <!-- settings:serve --> table"
    assert table.group(1) == settings_table(), "run python -m mlnb.serve._settings"
    # no variable documented for the service that the service does not read
    service_part = readme[readme.index("## Turn the notebook into a service") :]
    service_part = service_part[: service_part.index("\n## JupyterLab")]
    documented = set(re.findall(r"MLNB_[A-Z_]+[A-Z]", service_part))
    assert documented - {k.env for k in KNOBS} == set()


def test_only_the_settings_module_reads_the_environment() -> None:
    """Read once: no other module of mlnb.serve reads an MLNB_* variable (``serve()``
    writes two for its workers; ``signing_key()`` is the exporter's reader too)."""
    readers = re.compile(r"os\.environ(\.get)?[\[(]|os\.getenv\(|env_(flag|int|float|str|choice)\(")
    found = []
    for path in sorted((ROOT / "mlnb" / "serve").glob("*.py")):
        if path.name == "_settings.py":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if readers.search(line) and "os.environ[" not in line.split("=")[0]:
                found.append(f"{path.name}: {line.strip()}")
    assert found == ["_signing.py: raw = env_str(ENV_KEY) if raw is None else raw"], found


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLNB_AUDIT", "maybe", r"MLNB_AUDIT='maybe' is not a flag; use one of 1, true, yes, on"),
        ("MLNB_BATCHING", "sometimes", r"MLNB_BATCHING='sometimes' is not a flag.*\(none\)"),
        ("MLNB_DRIFT_EVERY", "0", r"MLNB_DRIFT_EVERY='0' is not a whole number of at least 1"),
        ("MLNB_DRIFT_SECONDS", "soon", r"MLNB_DRIFT_SECONDS='soon' is not a number more than 0"),
        ("MLNB_DRIFT_P_VALUE", "2", r"MLNB_DRIFT_P_VALUE='2' is not a number more than 0 and at"),
        ("MLNB_CANARY_WEIGHT", "nan", r"MLNB_CANARY_WEIGHT='nan' is not a number at least 0"),
        ("MLNB_ROUTING", "blue", r"MLNB_ROUTING='blue' is not a known setting; use one of off, "),
        ("MLNB_LOG_LEVEL", "loud", r"MLNB_LOG_LEVEL='loud' is not a known setting; use one of"),
        ("MLNB_CORS_ORIGINS", "*", r"MLNB_CORS_ORIGINS: '\*' is not an origin"),
        ("MLNB_RESOURCE_INTERVAL", "0", r"MLNB_RESOURCE_INTERVAL='0' is not a number more than 0"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_the_fix(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ServiceError, match=message) as caught:
        ServeSettings.from_env()
    text = str(caught.value)
    assert "\n" not in text
    assert "unset it" in text or "leave it unset" in text or "list origins" in text


def test_drift_thresholds_keep_their_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLNB_DRIFT_THRESHOLD", "0.25")
    monkeypatch.setenv("MLNB_DRIFT_P_VALUE", "0.001")
    options = ServeSettings.from_env().drift_options()
    assert options["threshold"] == 0.25 and options["p_value"] == 0.001


def test_routing_comes_from_the_settings_then_the_export() -> None:
    assert ServeSettings().routing_for({}) == ("shadow", 0.1)
    assert ServeSettings().routing_for({"routing": "Canary", "canary_weight": 0.3}) == (
        "canary",
        0.3,
    )
    chosen = ServeSettings(routing="off", canary_weight=0.0)
    assert chosen.routing_for({"routing": "canary", "canary_weight": 0.3}) == ("off", 0.0)


def test_secrets_are_not_shown() -> None:
    settings = ServeSettings(api_key="s3cret", signing_key="k3y")
    assert "s3cret" not in repr(settings) and "k3y" not in repr(settings)
