"""The built wheel, installed into a fresh venv with no Node.js on PATH, gives JupyterLab the
prebuilt extension and enables the server extension: `pip install mlnb[lab]` is enough."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.prefix) / "bin" / "uv"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(command: list[str], **kwargs: object) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, **kwargs
    )  # type: ignore[call-overload]
    output = ANSI.sub("", done.stdout + done.stderr)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{output[-3000:]}"
    return str(output)


def test_wheel_installs_the_extension_without_node(tmp_path: Path) -> None:
    if not UV.exists():
        pytest.fail(f"uv is not in {UV.parent}: run `make install`")
    dist = tmp_path / "dist"
    run([str(UV), "build", "--wheel", "-q", "-o", str(dist), str(REPO)])
    (wheel,) = dist.glob("mlnb-*.whl")

    venv = tmp_path / "venv"
    run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)])
    run([str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
         f"mlnb[lab] @ {wheel.as_uri()}"])  # fmt: skip

    # Only the fresh venv on PATH: no node, no npm, nothing of this checkout or its .venv.
    home = tmp_path / "home"
    env = {
        "PATH": str(venv / "bin"),
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "LANG": "C.UTF-8",
    }
    assert shutil.which("node", path=env["PATH"]) is None
    assert shutil.which("npm", path=env["PATH"]) is None
    jupyter = str(venv / "bin" / "jupyter")

    where = run([str(venv / "bin" / "python"), "-c", "import mlnb; print(mlnb.__file__)"],
                env=env, cwd=tmp_path)  # fmt: skip
    assert where.strip().startswith(str(venv)), where

    labext = run([jupyter, "labextension", "list"], env=env, cwd=tmp_path)
    assert str(venv / "share" / "jupyter" / "labextensions") in labext, labext
    assert re.search(r"^\s+mlnb v0\.1\.0 enabled OK\s*$", labext, re.M), labext

    server = run([jupyter, "server", "extension", "list"], env=env, cwd=tmp_path)
    assert re.search(r"^\s+mlnb\.labserver enabled\s*$", server, re.M), server
    assert re.search(r"^\s+mlnb\.labserver\s+OK\s*$", server, re.M), server
    assert str(venv / "etc" / "jupyter") in server, server
