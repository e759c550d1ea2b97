"""The notebooks mlnb ships carry the metadata JupyterLab writes (the kernelspec and the
kernel's full ``language_info``), so opening one and saving it changes nothing: JupyterLab
does not mark it modified the moment its kernel connects. A real kernel says what that is.
(tests/corpus/notebooks are written as people write them, and are left so.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

from tests.conftest import NOTEBOOKS

SHIPPED = sorted([*NOTEBOOKS.glob("*.ipynb"), *NOTEBOOKS.glob("steps/*.ipynb")])


@pytest.fixture(scope="module")
def language_info() -> dict[str, Any]:
    """What the python3 kernel answers in its kernel_info reply (JupyterLab stores it)."""
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        client.kernel_info()
        reply = client.get_shell_msg(timeout=60)
        return dict(reply["content"]["language_info"])
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_every_shipped_notebook_is_found() -> None:
    names = [p.relative_to(NOTEBOOKS).as_posix() for p in SHIPPED]
    assert {"train.ipynb", "serve.ipynb", "steps/prepare.ipynb"} <= set(names)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_a_shipped_notebook_has_the_metadata_jupyterlab_writes(
    path: Path, language_info: dict[str, Any]
) -> None:
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    meta = nb["metadata"]
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert meta["kernelspec"] == {
        "display_name": spec.display_name,
        "language": spec.language,
        "name": "python3",
    }
    shipped = dict(meta["language_info"])
    # the patch release is the machine's; the rest is what the kernel reports, key for key
    assert _minor(shipped.pop("version")) == _minor(language_info["version"])
    assert shipped == {k: v for k, v in language_info.items() if k != "version"}
    # as JupyterLab saves it: one-space indent, sorted keys, a newline at the end
    assert text == json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
