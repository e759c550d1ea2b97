"""Profiles of training data: statistics, defaults, range checks, files, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlnb.exceptions import MlnbError, MonitorError
from mlnb.monitor import OTHER, Profile, profile


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "height": rng.normal(170, 10, 1000),
            "rooms": rng.integers(1, 6, 1000),
            "city": rng.choice(["paris", "lyon", "nice"], 1000, p=[0.6, 0.3, 0.1]),
            "member": rng.random(1000) < 0.25,
            "label": rng.integers(0, 2, 1000),
        }
    )
    frame.loc[:99, "height"] = np.nan  # 10% missing
    frame.loc[:49, "city"] = None  # 5% missing
    return frame


def test_numbers_categories_and_missing_values() -> None:
    prof = profile(_frame(), "houses", target="label", log=False)
    assert prof.name == "houses" and prof.rows == 1000 and prof.target == "label"
    assert list(prof.features) == ["height", "rooms", "city", "member"]
    assert prof.target_profile is not None and prof.target_profile.name == "label"
    height = prof.features["height"]
    assert (height.kind, height.dtype, height.count) == ("number", "float64", 900)
    assert height.missing_rate == pytest.approx(0.1)
    assert height.min is not None and height.max is not None and height.median is not None
    assert height.min < 150 < 170 < 190 < height.max
    assert height.mean == pytest.approx(170, abs=1.5) and height.std == pytest.approx(10, abs=1)
    assert len(height.bin_edges) == 11 and height.bin_edges == sorted(height.bin_edges)
    assert height.bin_edges[0] == height.min and height.bin_edges[-1] == height.max
    assert sum(height.bin_fractions) == pytest.approx(1.0)
    assert all(f == pytest.approx(0.1, abs=0.01) for f in height.bin_fractions)
    assert height.default == height.median
    rooms = prof.features["rooms"]
    assert rooms.kind == "number" and rooms.bin_edges == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert isinstance(rooms.default, int) and rooms.default == 3  # an integer column
    city = prof.features["city"]
    assert (city.kind, city.count, city.missing_rate) == ("category", 950, 0.05)
    assert set(city.categories) == {"paris", "lyon", "nice"}
    assert sum(city.categories.values()) == pytest.approx(1.0)
    assert city.categories["paris"] == pytest.approx(0.6, abs=0.04)
    assert city.most_frequent == city.default == "paris"
    member = prof.features["member"]
    assert member.kind == "category" and set(member.categories) == {"True", "False"}
    assert member.default is False


def test_defaults_given_in_the_notebook_win() -> None:
    prof = profile(_frame(), defaults={"city": "nice", "height": 160.0}, log=False)
    assert prof.name == "training"
    defaults = prof.defaults()
    assert defaults["city"] == "nice" and defaults["height"] == 160.0
    assert defaults["rooms"] == 3 and defaults["member"] is False
    with pytest.raises(MonitorError, match=r"defaults given for unknown column\(s\) \['town'\]"):
        profile(_frame(), defaults={"town": "x"}, log=False)


def test_out_of_range_flags_far_numbers_unseen_categories_and_non_numbers() -> None:
    prof = profile(_frame(), log=False)
    height = prof.features["height"]
    assert height.max is not None and height.iqr is not None
    inside = {"height": 175.0, "rooms": 2, "city": "lyon", "member": True}
    assert prof.out_of_range(inside) == []
    assert prof.out_of_range({"height": height.max + height.iqr}) == []  # near the range
    far = {"height": 1e6, "rooms": -40, "city": "tokyo", "member": "maybe"}
    assert prof.out_of_range(far) == ["height", "rooms", "city", "member"]
    assert prof.out_of_range({"height": "tall"}) == ["height"]
    assert prof.out_of_range({"height": None, "city": None, "unknown": 1e9}) == []


def test_rare_categories_are_pooled_and_then_not_flagged() -> None:
    frame = pd.DataFrame({"code": [f"c{i % 30}" for i in range(300)] + ["c0"] * 100})
    prof = profile(frame, top_k=5, log=False)
    codes = prof.features["code"]
    assert len(codes.categories) == 6 and OTHER in codes.categories
    assert codes.most_frequent == "c0"
    assert sum(codes.categories.values()) == pytest.approx(1.0)
    assert prof.out_of_range({"code": "never-seen"}) == []  # could be a pooled one


def test_other_tabular_shapes() -> None:
    records = [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}, {"a": None, "b": "x"}]
    by_records = profile(records, log=False)
    by_columns = profile({"a": [1.0, 2.0, None], "b": ["x", "y", "x"]}, log=False)
    assert by_records.to_dict()["features"] == by_columns.to_dict()["features"]
    assert by_records.features["a"].missing_rate == pytest.approx(1 / 3)
    array = profile(np.arange(20.0).reshape(10, 2), columns=["u", "v"], log=False)
    assert list(array.features) == ["u", "v"] and array.features["v"].max == 19.0
    unnamed = profile(np.zeros((4, 3)), log=False)
    assert list(unnamed.features) == ["x0", "x1", "x2"]
    assert unnamed.features["x0"].bin_edges == [0.0, 0.0]  # a constant column


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    prof = profile(_frame(), "houses", target="label", log=False)
    path = prof.save(tmp_path / "sub" / "houses.json")
    json.loads(path.read_text())  # plain JSON
    assert Profile.load(path) == prof


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame(), r"the data is empty \(0 rows, 0 columns\)"),
        (pd.DataFrame({"a": []}), r"the data is empty \(0 rows, 1 columns\)"),
        ("train.csv", r"is a str, not a table"),
        (42, r"is a int, not a table"),
        (np.arange(5.0), r"is a 1-D array"),
        ([1, 2, 3], r"list whose items are not all dicts"),
        ({"a": 1}, r"dict whose values are not all lists"),
        ({"a": [1, 2], "b": [1]}, r"cannot be read as a table"),
    ],
)
def test_bad_data_is_refused_clearly(data: object, message: str) -> None:
    with pytest.raises(MonitorError, match=message) as info:
        profile(data, log=False)
    assert isinstance(info.value, MlnbError) and info.value.exit_code == 2


def test_a_column_with_no_values() -> None:
    prof = profile({"empty": [None, None], "x": [1.0, 2.0]}, log=False)
    empty = prof.features["empty"]
    assert (empty.count, empty.missing_rate, empty.default, empty.bin_edges) == (0, 1.0, None, [])
    assert prof.out_of_range({"empty": 3.0}) == []
    from mlnb.monitor import drift_report

    report = drift_report(prof, {"empty": ["a", "b"] * 100, "x": [1.0, 2.0] * 100})
    assert report.drifted == [] and report.features["empty"].statistic == 0.0


def test_bad_target_and_column_names() -> None:
    with pytest.raises(MonitorError, match=r"duplicate column name\(s\) \['a'\]"):
        profile(pd.DataFrame([[1, 2]], columns=["a", "a"]), log=False)
    with pytest.raises(MonitorError, match=r"target 'y' is not a column of the data"):
        profile(_frame(), target="y", log=False)
    with pytest.raises(MonitorError, match=r"3 columns but 2 column names"):
        profile(np.zeros((2, 3)), columns=["a", "b"], log=False)


def test_profile_files_that_are_not_profiles(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match=r"does not exist; record one with mlnb.profile"):
        Profile.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(MonitorError, match=r"broken.json' is not JSON .* line 1"):
        Profile.load(broken)
    other = tmp_path / "other.json"
    other.write_text('{"model": "bc"}')
    with pytest.raises(MonitorError, match=r"not an mlnb profile \(no 'features' mapping\)"):
        Profile.load(other)
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"features": {"a": {"name": "a"}}}')
    with pytest.raises(MonitorError, match=r"the profile is malformed"):
        Profile.load(malformed)


def test_monitor_imports_without_jupyter_and_loads_numpy_on_use() -> None:
    code = (
        "import sys, mlnb.monitor; heavy = {'IPython', 'ipykernel', 'pandas', 'numpy', "
        "'mlflow', 'scipy'}; print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
