"""Versioning content whose object in the store is corrupted rewrites it from the good copy
in hand, says so, and checkout works again; intact objects are left as they are."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlnb.exceptions import CorruptObjectError, ObjectHealedWarning
from mlnb.tracking import version
from mlnb.versioning import Project, checkout, load
from tests.conftest import run_mlnb


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _same_size_keep_mtime(path: Path) -> None:
    """One byte flipped in place, the mtime set back (``touch -r``): only ctime tells."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def _truncated(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _replaced(path: Path) -> None:
    other = path.with_name("other")
    other.write_bytes(b"something else entirely\n")
    os.replace(other, path)


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "same size, mtime kept": _same_size_keep_mtime,
    "truncated": _truncated,
    "replaced": _replaced,
}


def _corrupt(project: Project, digest: str, how: Callable[[Path], None]) -> Path:
    stored = project.store.path(digest)
    stored.chmod(0o644)
    how(stored)
    return stored


@pytest.mark.parametrize("how", list(CORRUPTIONS), ids=list(CORRUPTIONS))
def test_a_corrupted_file_object_is_healed_by_versioning_it_again(project: Path, how: str) -> None:
    good = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(2_000))
    data = _write(project / "data" / "train.csv", good)
    record = version(data, run=False)
    store = Project.current()
    stored = _corrupt(store, record.hash, CORRUPTIONS[how])
    with pytest.raises(CorruptObjectError):
        checkout("data/train.csv@1", project / "before.csv")

    pattern = rf"object {record.hash[:12]} of data/train.csv was corrupted .*rewrote it"
    with pytest.warns(ObjectHealedWarning, match=pattern):
        again = version(data, run=False)
    assert (again.number, again.hash) == (1, record.hash)
    assert stored.read_bytes() == good and not stored.stat().st_mode & 0o222
    assert not list(stored.parent.glob(".tmp-*"))
    data.unlink()
    assert checkout("data/train.csv") == data and data.read_bytes() == good


def test_an_intact_object_is_checked_by_a_stat_and_left_alone(project: Path) -> None:
    data = _write(project / "d.bin", os.urandom(100_000))
    record = version(data, run=False)
    stored = Project.current().store.path(record.hash)
    before = stored.stat()
    again = version(data, run=False)  # no warning (warnings are errors in the tests)
    after = stored.stat()
    assert again.hash == record.hash
    assert (after.st_ino, after.st_ctime_ns) == (before.st_ino, before.st_ctime_ns)


def test_a_corrupted_piece_of_a_folder_and_its_manifest_are_healed(project: Path) -> None:
    folder = project / "images"
    for i in range(5):
        _write(folder / f"part-{i}" / f"{i}.bin", bytes([i]) * (1000 + i))
    record = version(folder, run=False)
    current = Project.current()
    piece = next(e for e in current.store.read_manifest(record.object) if e.path == "part-3/3.bin")
    _corrupt(current, piece.hash, _same_size_keep_mtime)
    _corrupt(current, record.object, _truncated)

    with pytest.warns(ObjectHealedWarning) as caught:
        assert version(folder, run=False).number == 1
    messages = [str(w.message) for w in caught]  # the pieces first, the manifest last
    assert len(messages) == 2
    assert re.match(rf"object {piece.hash[:12]} of images/part-3/3.bin was corrupted", messages[0])
    assert re.match(rf"object {record.object[:12]} of the manifest of images ", messages[1])
    restored = checkout("images@1", project / "restored")
    assert sorted(p.relative_to(restored).as_posix() for p in restored.rglob("*.bin")) == [
        f"part-{i}/{i}.bin" for i in range(5)
    ]
    assert (restored / "part-3" / "3.bin").read_bytes() == bytes([3]) * 1003


def test_corrupted_objects_of_values_from_memory_are_healed(project: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.standard_normal(500), "city": rng.choice(["a", "b"], 500)})
    arrays = (rng.standard_normal((200, 3)), rng.integers(0, 5, 200))
    config = {"lr": 0.1, "layers": [64, 32]}
    records = {
        "frame": version(frame, "frame", run=False),
        "xy": version(arrays, "xy", run=False),
        "params": version(config, "params", run=False),
    }
    current = Project.current()
    for (name, record), how in zip(records.items(), CORRUPTIONS.values(), strict=True):
        _corrupt(current, record.object, how)
        with pytest.raises(CorruptObjectError):
            load(name)
    for name, value in (("frame", frame), ("xy", arrays), ("params", config)):
        what = f"config {name!r}" if name == "params" else f"version {name!r}"
        with pytest.warns(ObjectHealedWarning, match=rf"of {what} was corrupted"):
            assert version(value, name, run=False).number == 1
    pd.testing.assert_frame_equal(load("frame"), frame)
    x, y = load("xy")
    np.testing.assert_array_equal(x, arrays[0])
    np.testing.assert_array_equal(y, arrays[1])
    assert load("params") == config


def test_the_command_line_says_which_object_it_healed(project: Path) -> None:
    data = _write(project / "model.cfg", b"depth = 3\n" * 50)
    first = run_mlnb(project, "version", "model.cfg")
    assert first.returncode == 0, first.stderr
    digest = first.stdout.split()[1]
    stored = project / ".mlnb" / "objects" / digest[:2] / digest[2:]
    stored.chmod(0o644)
    _same_size_keep_mtime(stored)
    refused = run_mlnb(project, "checkout", "model.cfg", "-o", "copy.cfg")
    assert refused.returncode == CorruptObjectError.exit_code

    healed = run_mlnb(project, "version", "model.cfg")
    assert healed.returncode == 0, healed.stderr
    assert healed.stdout.startswith(f"model.cfg@1  {digest}")
    assert healed.stderr.splitlines() == [
        f"mlnb: warning: object {digest[:12]} of model.cfg was corrupted in the store "
        f"({stored}); rewrote it from the good copy being versioned."
    ]
    restored = run_mlnb(project, "checkout", "model.cfg", "-o", "copy.cfg")
    assert restored.returncode == 0, restored.stderr
    assert (project / "copy.cfg").read_bytes() == data.read_bytes()
