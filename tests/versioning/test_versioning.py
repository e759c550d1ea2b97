"""Versioning files, folders, DataFrames and configs by content, on a real project store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from blake3 import blake3
from mlflow import MlflowClient

import mlnb
from mlnb.config import get_settings
from mlnb.exceptions import (
    CorruptObjectError,
    InvalidValueError,
    VersioningError,
    VersionNotFoundError,
)
from mlnb.tracking import lineage, version, versions
from mlnb.versioning import Project, _hashing, checkout, gc, load, render_lineage
from mlnb.versioning._frames import fingerprint_dataframe


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _objects(project: Path) -> set[str]:
    return set(Project.current().store)


def test_a_file_is_stored_once_by_its_blake3_hash(project: Path) -> None:
    data = _write(project / "data" / "train.csv", "a,b\n1,2\n3,4\n")
    first = version(data, run=False)
    assert first.name == "data/train.csv"
    assert first.hash == blake3(data.read_bytes()).hexdigest()
    assert (first.number, first.kind, first.size) == (1, "file", 12)
    assert first.schema == {"columns": {"a": "int64", "b": "int64"}}
    again = version(data, run=False)  # unchanged: the same version, stored once
    assert (again.number, again.hash) == (1, first.hash)
    assert _objects(project) == {first.hash}
    _write(data, "a,b\n1,2\n3,5\n")
    second = version(data, run=False)
    assert second.number == 2 and second.hash != first.hash
    assert [v.hash for v in versions("data/train.csv")] == [first.hash, second.hash]
    stored = Project.current().store.path(first.hash)
    assert stored.read_bytes() == b"a,b\n1,2\n3,4\n"
    assert not os.access(stored, os.W_OK) or os.geteuid() == 0  # objects are read-only


def test_checkout_restores_any_version_and_protects_unversioned_changes(project: Path) -> None:
    data = _write(project / "data.csv", "v1\n")
    version(data, run=False)
    _write(data, "v2\n")
    version(data, run=False)
    assert checkout("data.csv@1") == data
    assert data.read_text() == "v1\n"
    assert checkout("data.csv") == data  # latest
    assert data.read_text() == "v2\n"
    out = checkout(f"data.csv@{versions('data.csv')[0].hash[:8]}", project / "copy.csv")
    assert out.read_text() == "v1\n"
    _write(data, "edited, not versioned\n")
    with pytest.raises(VersioningError, match=r"has changes that are not versioned.*--force"):
        checkout("data.csv@1")
    assert data.read_text() == "edited, not versioned\n"  # nothing lost
    checkout("data.csv@1", force=True)
    assert data.read_text() == "v1\n"


def test_a_folder_hash_is_the_hash_of_its_sorted_manifest(project: Path) -> None:
    folder = project / "images"
    for name, text in {"b.txt": "bee", "a.txt": "ay", "sub/c.txt": "sea"}.items():
        _write(folder / name, text)
    record = version(folder, run=False)
    assert record.kind == "folder" and record.meta == {"files": 3} and record.size == 8
    entries = [
        _hashing.TreeEntry(p, blake3(t.encode()).hexdigest(), len(t))
        for p, t in [("a.txt", "ay"), ("b.txt", "bee"), ("sub/c.txt", "sea")]
    ]
    assert record.hash == blake3(_hashing.tree_manifest(entries)).hexdigest()
    _write(folder / "sub" / "c.txt", "see")
    changed = version(folder, run=False)
    assert changed.hash != record.hash and changed.number == 2
    (folder / "a.txt").unlink()
    with pytest.raises(VersioningError, match="changes that are not versioned"):
        checkout("images@1")
    checkout("images@1", force=True)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "a.txt",
        "b.txt",
        "sub/c.txt",
    ]
    assert (folder / "sub" / "c.txt").read_text() == "sea"


def test_dataframe_fingerprint_covers_every_cell(project: Path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(50_000, 4)), columns=list("abcd"))
    df["city"] = rng.choice(["Oslo", "Lima", "Pune"], size=len(df))
    record = version(df, "frame", run=False)
    assert record.kind == "dataframe"
    assert record.schema == {
        "columns": {
            **{c: "float64" for c in "abcd"},
            "city": str(df["city"].dtype),  # "str" or "object", by pandas version
        },
        "rows": 50_000,
        "index": "int64",
    }
    assert version(df.copy(), "frame", run=False).hash == record.hash
    changed = df.copy()
    changed.iloc[40_000, 2] += 1e-9  # one cell, far beyond any sample
    assert version(changed, "frame", run=False).hash != record.hash
    assert version(df.astype({"a": "float32"}), "frame", run=False).hash != record.hash
    assert version(df.iloc[::-1], "frame", run=False).hash != record.hash  # order and index
    renamed = df.rename(columns={"a": "alpha"})
    assert version(renamed, "frame", run=False).hash != record.hash
    pd.testing.assert_frame_equal(load("frame@1"), df)
    assert [v.number for v in versions("frame")] == [1, 2, 3, 4, 5]


def test_dataframe_hash_is_content_not_layout_and_counts_types(project: Path) -> None:
    rng = np.random.default_rng(1)
    values = rng.standard_normal((1_000, 3))
    df = pd.DataFrame(values, columns=["a", "b", "c"])
    df["when"] = pd.date_range("2024-01-01", periods=1_000, freq="h", tz="UTC")
    first = version(df, "f", run=False).hash
    by_columns = pd.DataFrame({c: df[c].to_numpy().copy() for c in df.columns})
    from_fortran = pd.DataFrame(np.asfortranarray(values), columns=["a", "b", "c"])
    from_fortran["when"] = df["when"]
    for same in (by_columns, from_fortran, df.copy()):  # other block layouts, same cells
        assert version(same, "f", run=False).hash == first
    differing = {
        "one tz-aware cell": df.assign(when=df["when"].where(df.index != 999)),
        "int column names": df.set_axis([0, 1, 2, 3], axis=1),
        "a MultiIndex": df.set_index(["a", "b"]),
    }
    hashes = {why: version(frame, "f", run=False).hash for why, frame in differing.items()}
    assert first not in hashes.values() and len(set(hashes.values())) == len(hashes)

    assert fingerprint_dataframe(pd.DataFrame({1: [1]})) != fingerprint_dataframe(
        pd.DataFrame({"1": [1]})
    )
    assert fingerprint_dataframe(pd.DataFrame({"o": [1, "x"]})) != fingerprint_dataframe(
        pd.DataFrame({"o": ["1", "x"]})
    )
    long = np.arange(5_000)
    changed = long.copy()
    changed[2_500] = -1  # hidden in the middle of str(array)'s "..."
    assert fingerprint_dataframe(pd.DataFrame({"o": [long, None]})) != fingerprint_dataframe(
        pd.DataFrame({"o": [changed, None]})
    )
    before = len(versions("f"))
    for frame, why in (
        (df.rename(columns={"a": 1}), "column names of mixed type"),
        (pd.DataFrame({"c": [1 + 2j]}), "complex128"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "Duplicate column names"),
    ):
        with pytest.raises(InvalidValueError, match=rf"cannot be written as Parquet.*{why}"):
            version(frame, "f", run=False)
    assert len(versions("f")) == before  # nothing recorded


def test_dataframe_with_unhashable_cells(project: Path) -> None:
    df = pd.DataFrame({"tags": [["a"], ["b", "c"]], "n": [1, 2]})
    first = version(df, "tagged", run=False)
    df.at[1, "tags"] = ["b"]
    assert version(df, "tagged", run=False).hash != first.hash


def test_configs_dicts_and_files(project: Path) -> None:
    params = {"lr": 0.1, "layers": [64, 32]}
    record = version(params, "params", run=False)
    assert record.kind == "config"
    assert version({"layers": [64, 32], "lr": 0.1}, "params", run=False).hash == record.hash
    assert load("params") == params
    yaml = version(_write(project / "conf" / "train.yaml", "lr: 0.1\n"), run=False)
    assert yaml.kind == "config" and yaml.name == "conf/train.yaml"


def test_stat_cache_skips_unchanged_files(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = project / "many"
    for i in range(20):
        _write(folder / f"{i}.bin", f"content {i}" * 100)
    version(folder, run=False)
    calls: list[Path] = []
    real = _hashing.hash_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(_hashing, "hash_file", counting)
    from mlnb.versioning import _core

    monkeypatch.setattr(_core, "hash_tree", _hashing.hash_tree)
    version(folder, run=False)  # a new cache object, loaded from .mlnb/cache
    assert calls == []
    _write(folder / "7.bin", "changed")
    version(folder, run=False)
    assert calls == [folder / "7.bin"]


def test_bad_input_is_refused_clearly(project: Path) -> None:
    with pytest.raises(InvalidValueError, match=r"'missing.csv' does not exist"):
        version("missing.csv", run=False)
    with pytest.raises(InvalidValueError, match="a DataFrame needs a name"):
        version(pd.DataFrame({"a": [1]}), run=False)
    with pytest.raises(InvalidValueError, match="cannot version a int"):
        version(3, "x", run=False)
    with pytest.raises(InvalidValueError, match="version name 'bad@name' is not allowed"):
        version({"a": 1}, "bad@name", run=False)
    os.mkfifo(project / "pipe")
    with pytest.raises(InvalidValueError, match="not a regular file or folder"):
        version(project / "pipe", run=False)
    with pytest.raises(VersionNotFoundError, match="no versions of 'nothing' are recorded"):
        checkout("nothing")
    version({"a": 1}, "cfg", run=False)
    with pytest.raises(VersionNotFoundError, match=r"'cfg' has no version '7'; it has 1: @1"):
        load("cfg@7")


def test_a_corrupted_object_is_refused_and_named(project: Path) -> None:
    data = _write(project / "d.txt", "good content\n")
    record = version(data, run=False)
    stored = Project.current().store.path(record.hash)
    stored.chmod(0o644)
    stored.write_text("bad content\n")
    data.unlink()
    with pytest.raises(CorruptObjectError, match=rf"object {record.hash[:12]} .* `mlnb pull`"):
        checkout("d.txt")
    assert not data.exists()  # nothing half-written


def test_interrupted_writes_never_look_like_objects(project: Path) -> None:
    store = Project.current().store
    digest = store.put_bytes(b"kept")
    leftover = store.folder / digest[:2] / ".tmp-crashed"
    leftover.write_bytes(b"half an obj")
    assert list(store) == [digest]
    os.utime(leftover, (0, 0))  # an old leftover: gc cleans it
    version({"keep": 1}, "keep", run=False)
    gc()
    assert not leftover.exists()


def test_gc_removes_only_unreferenced_objects(project: Path) -> None:
    folder = project / "f"
    _write(folder / "x.txt", "x")
    kept_tree = version(folder, run=False)
    stray = Project.current().store.put_bytes(b"nobody refers to me")
    dry = gc(dry_run=True)
    assert dry.removed == [stray] and Project.current().store.has(stray)
    done = gc()
    assert done.removed == [stray] and done.freed == len(b"nobody refers to me")
    assert not Project.current().store.has(stray)
    checkout("f", project / "restored")
    assert (project / "restored" / "x.txt").read_text() == "x"
    assert Project.current().store.has(kept_tree.hash)


def test_versions_are_linked_to_the_run_and_shown_in_mlflow(project: Path) -> None:
    data = _write(project / "data" / "train.csv", "a,b\n1,2\n")
    with mlnb.start_run(experiment_name="versioned") as active:
        record = version(data)
        out = version({"threshold": 0.5}, "decision", role="output")
        mlnb.end_run()
    client = MlflowClient(get_settings().tracking_uri)
    run = client.get_run(active.info.run_id)
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert dataset.name == "data/train.csv"
    assert dataset.digest == record.hash[:36]
    assert json.loads(dataset.profile)["hash"] == record.hash
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "input"
    assert run.data.tags["mlnb.input.data/train.csv"] == f"1 {record.hash}"
    assert run.data.tags["mlnb.output.decision"] == f"1 {out.hash}"
    assert versions("data/train.csv")[0].run_id == active.info.run_id


def test_model_hash_and_lineage_from_data_to_consumers(project: Path) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    train = X.assign(target=y)
    mlnb.start_run(experiment_name="lineage", run_name="train")
    data = version(train, "bc-train")
    model = LogisticRegression(max_iter=5000).fit(X, y)
    info = mlnb.log_model(model, "model", registered_model_name="bc-clf")
    train_run = mlnb.active_run().info.run_id
    mlnb.end_run()
    assert info.hash is not None and len(info.hash) == 64
    client = MlflowClient(get_settings().tracking_uri)
    assert client.get_model_version("bc-clf", "1").tags["mlnb.hash"] == info.hash
    model_record = versions("bc-clf")[0]
    assert (model_record.kind, model_record.hash) == ("model", info.hash)

    mlnb.start_run(experiment_name="lineage", run_name="score")
    mlnb.load_model("models:/bc-clf/1")
    score_run = mlnb.active_run().info.run_id
    mlnb.end_run()

    doc = lineage("bc-train")
    assert doc["hash"] == data.hash
    (reader,) = doc["downstream"]
    assert (reader["run_id"], reader["run_name"]) == (train_run, "train")
    (wrote,) = reader["wrote"]
    assert (wrote["name"], wrote["hash"], wrote["registered_version"]) == ("bc-clf", info.hash, "1")
    (consumer,) = wrote["downstream"]
    assert consumer["run_id"] == score_run
    up = lineage("bc-clf")["upstream"]
    assert up[0]["run_id"] == train_run and up[0]["read"][0]["name"] == "bc-train"
    text = render_lineage(doc)
    assert f"-> read by run train ({train_run})" in text
    assert "-> wrote bc-clf@1" in text and "= models:/bc-clf/1" in text
    assert f"run score ({score_run})" in text


def test_version_magic_uses_the_variable_name(project: Path) -> None:
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "mlnb")
    try:
        ip.user_ns["frame"] = pd.DataFrame({"a": [1, 2, 3]})
        ip.run_line_magic("mlnb", "version frame")
        _write(project / "raw.txt", "raw")
        ip.run_line_magic("mlnb", "version raw.txt --name raw --output")
        run_id = mlnb.active_run().info.run_id
        ip.run_line_magic("mlnb", "end")
    finally:
        ip.extension_manager.unload_extension("mlnb")
        ip.user_ns.pop("frame", None)
    assert versions("frame")[0].run_id == run_id
    tags = MlflowClient(get_settings().tracking_uri).get_run(run_id).data.tags
    assert tags["mlnb.output.raw"].startswith("1 ")
    assert tags["mlnb.input.frame"].startswith("1 ")
