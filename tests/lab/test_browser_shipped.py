"""A shipped notebook opened in JupyterLab (in Chromium) is not marked modified once its
kernel has connected: its metadata already is what JupyterLab writes."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.conftest import NOTEBOOKS
from tests.lab import test_browser
from tests.lab.conftest import Lab
from tests.lab.test_browser import open_notebook, shot

browser = test_browser.browser
screenshot_on_failure = test_browser.screenshot_on_failure


@pytest.mark.parametrize("name", ["train.ipynb", "serve.ipynb", "steps/prepare.ipynb"])
def test_a_shipped_notebook_opens_unmodified(browser: Any, lab: Lab, name: str) -> None:
    target = lab.root / "shipped" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(NOTEBOOKS / name, target)
    before = target.read_bytes()
    page = open_notebook(browser, lab, f"shipped/{name}")  # waits for the kernel: Idle
    page.wait_for_timeout(1500)  # the kernel's info has been applied to the model
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    assert "jp-mod-dirty" not in (tab.get_attribute("class") or ""), "marked modified"
    if name == "train.ipynb":
        shot(page, "shipped-notebook-unmodified")
    assert target.read_bytes() == before
    page.close()
