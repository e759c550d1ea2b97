"""A full disk under the versioning store: every command ends with one line naming the
folder (and the space needed when known), exit code ``DiskFullError.exit_code``, no
traceback; nothing half-written is visible, nothing recorded is lost, and once space is
freed the store works.

The main test runs the real ``mlnb`` command on a project that lives on a real 2 MiB
tmpfs, filled up. Where a tmpfs cannot be mounted (no root), it is skipped with the
reason; the fault-injection test below still runs everywhere (it makes ``os.fsync`` of
the store fail with ENOSPC, as it does on a full disk).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlnb.exceptions import DiskFullError
from mlnb.tracking import version, versions
from mlnb.versioning import Project, checkout
from tests.conftest import run_mlnb
from tests.disks import fill, small_tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB file system, full disks as they happen."""
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        yield disk


def _one_line(done: subprocess.CompletedProcess[str], pattern: str) -> str:
    assert done.returncode == DiskFullError.exit_code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no traceback
    assert re.match(rf"mlnb: error: no space left on the disk holding {pattern}", lines[0])
    assert "Free some space there" in lines[0]
    return lines[0]


def _no_partial_objects(root: Path) -> None:
    assert not list((root / ".mlnb" / "objects").glob("*/.tmp-*"))


def test_the_command_line_on_a_full_disk(small_disk: Path) -> None:
    root = small_disk / "project"
    (root / ".mlnb").mkdir(parents=True)
    kept = root / "kept.txt"
    kept.write_bytes(b"recorded before the disk filled up\n")
    big = root / "big.bin"
    big.write_bytes(os.urandom(600_000))
    folder = root / "parts"
    for i in range(4):
        (folder / f"{i}.bin").parent.mkdir(exist_ok=True)
        (folder / f"{i}.bin").write_bytes(os.urandom(40_000))
    (root / "empty.txt").write_bytes(b"")
    first = run_mlnb(root, "version", "kept.txt")
    assert first.returncode == 0, first.stderr
    filler = fill(small_disk)
    store = re.escape(str(root / ".mlnb" / "objects"))

    line = _one_line(run_mlnb(root, "version", "big.bin"), rf"{store} to store ")
    assert "needs about 600.0 kB" in line
    _one_line(run_mlnb(root, "version", "parts"), rf"{store} to store ")
    _no_partial_objects(root)
    # an empty object needs no block (it is stored), then the registry is full
    registry = rf"{re.escape(str(root / '.mlnb'))} to record versions in versions.db"
    _one_line(run_mlnb(root, "version", "empty.txt"), registry)
    listed = run_mlnb(root, "versions", "kept.txt")  # reading needs no space
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].startswith("@1 ")
    assert run_mlnb(root, "version", "kept.txt").returncode == 0  # unchanged: nothing written
    _one_line(run_mlnb(root, "checkout", "kept.txt", "-o", "out.txt"), re.escape(str(root)))
    assert not list(root.glob("*out.txt*"))  # no half-restored file
    _one_line(run_mlnb(root, "checkout", "kept.txt", "-o", "dir/out.txt"), re.escape(str(root)))
    assert not (root / "dir").exists() or not list((root / "dir").iterdir())
    for name in ("big.bin", "parts", "empty.txt"):
        assert run_mlnb(root, "versions", name).returncode == 4  # nothing half-recorded

    filler.unlink()
    for name in ("big.bin", "parts", "empty.txt"):
        done = run_mlnb(root, "version", name)
        assert done.returncode == 0 and done.stdout.startswith(f"{name}@1 "), done.stderr
    restored = run_mlnb(root, "checkout", "kept.txt", "-o", "out.txt")
    assert restored.returncode == 0, restored.stderr
    assert (root / "out.txt").read_bytes() == kept.read_bytes()
    (big).unlink()
    assert run_mlnb(root, "checkout", "big.bin").returncode == 0 and big.stat().st_size == 600_000
    with sqlite3.connect(root / ".mlnb" / "versions.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        names = [row[0] for row in conn.execute("SELECT name FROM versions ORDER BY name")]
    conn.close()
    assert names == ["big.bin", "empty.txt", "kept.txt", "parts"]
    _no_partial_objects(root)


def test_a_full_disk_by_fault_injection(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs everywhere: ``os.fsync`` of the object store fails with ENOSPC (what a full
    disk does to a write that the page cache had accepted)."""
    kept = project / "kept.txt"
    kept.write_bytes(b"kept\n")
    version(kept, run=False)
    data = project / "data.bin"
    data.write_bytes(os.urandom(50_000))

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    objects = project / ".mlnb" / "objects"
    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", no_space)  # the object store's fsync (nothing else here)
        with pytest.raises(DiskFullError, match=rf"holding {re.escape(str(objects))} .*needs"):
            version(data, run=False)
        with pytest.raises(DiskFullError, match=r"to store an object"):
            version({"lr": 0.5}, "params", run=False)
    _no_partial_objects(project)
    assert set(Project.current().store) == {versions("kept.txt")[0].hash}
    assert version(data, run=False).number == 1
    data.unlink()
    assert checkout("data.bin") == data and data.stat().st_size == 50_000


def test_any_command_meeting_a_full_disk_ends_in_one_line(
    project: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The command line's last resort, for errors no store turned into a DiskFullError: a
    stand-in command (``mlnb status`` replaced) meets real full-disk errors: ENOSPC from the
    full tmpfs (a write, and a copy), and SQLite's SQLITE_FULL (a real database limited by
    max_page_count) wrapped as libraries wrap it."""
    from mlnb import cli
    from mlnb.cli import _project

    fill(small_disk)

    def writes_a_file(args: Any) -> int:
        (small_disk / "report.html").write_bytes(b"x" * 100_000)
        return 0

    def writes_a_database(args: Any) -> int:
        conn = sqlite3.connect(":memory:")
        conn.execute("PRAGMA max_page_count = 2")
        try:
            conn.execute("CREATE TABLE t (x)")
            conn.executemany("INSERT INTO t VALUES (?)", [(b"y" * 4000,)] * 10)
        except sqlite3.OperationalError as exc:
            raise RuntimeError("(sqlite3.OperationalError) the library's own wrapper") from exc
        finally:
            conn.close()
        return 0

    monkeypatch.setattr(_project, "status", writes_a_file)  # the folder is not known
    assert cli.main(["status"]) == DiskFullError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mlnb: error: no space left on a disk this command writes to ([Errno 28] No space "
        "left on device); free some space there and run the command again."
    ]
    source = project / "model.bin"
    source.write_bytes(os.urandom(200_000))

    def copies_a_file(args: Any) -> int:  # shutil's error names the source, then the copy
        shutil.copyfile(source, small_disk / "model.bin")
        return 0

    monkeypatch.setattr(_project, "status", copies_a_file)
    assert cli.main(["status"]) == DiskFullError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"mlnb: error: no space left on the disk holding {small_disk} (0 ")
    monkeypatch.chdir(small_disk)  # working on the full disk: that one is named
    monkeypatch.setattr(_project, "status", writes_a_database)
    assert cli.main(["status"]) == DiskFullError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"mlnb: error: no space left on the disk holding {small_disk} (0 ")
