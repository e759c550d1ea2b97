"""The JupyterLab extension in a real Chromium (Debian's, driven by Playwright): tag cells
with clicks, run the example notebook and see its run in the sidebar, export a service
from the command palette. Screenshots go to build/test-artifacts/lab/."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.lab.conftest import ARTIFACTS, Lab
from tests.serving import code, write_notebook

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LONG = 180_000  # ms: a kernel run, an export and a service start on a busy 2-core machine


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


_PAGES: list[Any] = []


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for index, page in enumerate(p for p in _PAGES if not p.is_closed()):
            page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}-{index}.png"))


def open_notebook(browser: Any, lab: Lab, path: str) -> Any:
    """A new page with ``path`` open in JupyterLab and the mlnb sidebar shown."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _PAGES.append(page)
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab/tree/{path}?token={lab.token}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # the kernel is connected and idle (the status bar reads "Python 3 (mlnb .venv) | Idle")
    page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=LONG)
    tab = page.locator(".jp-SideBar [data-id='mlnb-sidebar']")
    if tab.get_attribute("aria-selected") != "true":
        tab.click()
    page.wait_for_selector("#mlnb-sidebar .mlnb-tag-button")
    return page


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def saved_tags(path: Path) -> list[list[str]] | None:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # caught in the middle of the save
        return None
    return [c["metadata"].get("tags", []) for c in nb["cells"] if c["cell_type"] == "code"]


def save_and_wait(page: Any, path: Path, expected: list[list[str]]) -> None:
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")  # the change is in
    # A click that lands while the toolbar re-renders can be lost: click again if need be.
    for _ in range(5):
        page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='save'] button").click()
        try:
            page.wait_for_selector(".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)", timeout=5000)
            break
        except Exception:
            continue
    deadline = time.monotonic() + 30
    while saved_tags(path) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert saved_tags(path) == expected


def run_palette_command(page: Any, label: str) -> None:
    page.keyboard.press("Control+Shift+c")
    page.wait_for_selector(".lm-CommandPalette-input")
    page.fill(".lm-CommandPalette-input", label)
    page.locator(".lm-CommandPalette-item", has_text=label).first.click()


def test_tag_cells_by_clicks_and_see_badges(browser: Any, lab: Lab) -> None:
    path = write_notebook(lab.root / "tagme.ipynb", code("C = 1.0"), code("import math"))
    page = open_notebook(browser, lab, "tagme.ipynb")
    cells = page.locator(".jp-Notebook .jp-CodeCell")

    # the first cell from its cell toolbar, the second from the sidebar
    cells.nth(0).locator(".jp-InputPrompt").click()
    cells.nth(0).locator(".jp-cell-toolbar").get_by_text("params", exact=True).click()
    cells.nth(1).locator(".jp-InputPrompt").click()
    page.click("#mlnb-sidebar button[data-mlnb-tag='mlnb:export']")
    assert cells.nth(1).locator(".mlnb-badge").all_inner_texts() == ["export"]
    assert "mlnb-tag-export" in (cells.nth(1).get_attribute("class") or "")
    assert cells.nth(0).locator(".mlnb-badge").all_inner_texts() == ["params"]
    assert (
        page.locator("#mlnb-sidebar button[data-mlnb-tag='mlnb:export']").get_attribute(
            "aria-pressed"
        )
        == "true"
    )
    save_and_wait(page, path, [["parameters"], ["mlnb:export"]])
    shot(page, "01-tagged-cells")

    # export, example and skip exclude each other: skip replaces export
    page.click("#mlnb-sidebar button[data-mlnb-tag='mlnb:skip']")
    assert cells.nth(1).locator(".mlnb-badge").all_inner_texts() == ["skip"]
    save_and_wait(page, path, [["parameters"], ["mlnb:skip"]])
    page.click("#mlnb-sidebar button[data-mlnb-tag='mlnb:skip']")  # and off again
    assert cells.nth(1).locator(".mlnb-badge").count() == 0
    save_and_wait(page, path, [["parameters"], []])
    page.close()


@pytest.fixture(scope="module")
def trained(browser: Any, lab: Lab) -> Iterator[Any]:
    """train.ipynb run in the browser (Run > Run All Cells): one tracked run, a registered
    model. Yields the page, left open on the notebook."""
    page = open_notebook(browser, lab, "train.ipynb")
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    first = page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-InputPrompt")
    first.filter(has_text=re.compile(r"\[(\*|\d+)\]")).wait_for(timeout=LONG)  # it runs
    yield page
    page.close()


def test_run_the_notebook_and_see_the_run_in_the_sidebar(trained: Any, lab: Lab) -> None:
    page = trained
    run = page.locator("#mlnb-sidebar .mlnb-run").first
    # listed from the journal at once; read here once the store has it, with its metric
    page.wait_for_function(
        """() => { const r = document.querySelector('#mlnb-sidebar .mlnb-run');
          return r && !r.dataset.runId.startsWith('local-')
            && r.querySelector('a.mlnb-run-link[href]') !== null
            && Array.from(r.querySelectorAll('.mlnb-metric'))
                 .some(m => m.textContent.startsWith('accuracy')); }""",
        timeout=LONG,
    )
    shot(page, "02-run-in-sidebar")
    assert run.locator(".mlnb-run-status").inner_text() in {"running a cell", "idle", "ended"}
    href = run.locator("a.mlnb-run-link").get_attribute("href") or ""
    assert href.startswith("http://127.0.0.1:5000/#/experiments/")
    assert href.endswith(run.get_attribute("data-run-id") or "?")
    with lab.client() as client:
        runs = client.get("/mlnb/runs", params={"path": "train.ipynb"}).json()["runs"]
    assert runs[0]["run_id"] == run.get_attribute("data-run-id")
    assert runs[0]["params"]["C"] == "1.0" and 0.9 < runs[0]["metrics"]["accuracy"] <= 1


def test_export_as_service_from_the_palette(browser: Any, trained: Any, lab: Lab) -> None:
    # the model is registered by the notebook: wait until every cell has run
    last = trained.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-InputPrompt")
    last.filter(has_text=re.compile(r"\[\d+\]")).wait_for(timeout=LONG)
    page = open_notebook(browser, lab, "serve.ipynb")
    run_palette_command(page, "Export as service")
    result = page.locator(".jp-Dialog .mlnb-export-result")
    result.wait_for(timeout=LONG)
    shot(page, "03-export-dialog")
    text = result.inner_text()
    assert "Exported to build/services/serve" in text
    assert "POST /predict (dataframe, from predict)" in text
    assert "verified POST /predict with the example" in text
    url = result.locator("a.mlnb-service-link").get_attribute("href") or ""
    assert url.startswith("http://127.0.0.1:") and url.endswith("/docs")
    example = json.loads((lab.root / "build/services/serve/example.json").read_text())
    answer = httpx.post(url.removesuffix("/docs") + "/predict", json=example, timeout=30)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 3
    page.locator(".jp-Dialog button", has_text="Close").click()
    page.close()


def test_export_that_fails_its_check_shows_the_error(browser: Any, lab: Lab) -> None:
    write_notebook(
        lab.root / "halfdone.ipynb",
        code("import pandas as pd", "mlnb:export"),
        code("def predict(df: pd.DataFrame) -> list[int]:\n    return clf(df)", "mlnb:export"),
    )
    page = open_notebook(browser, lab, "halfdone.ipynb")
    assert page.locator(".mlnb-badge", has_text="export").count() == 2
    page.locator(".jp-Toolbar .mlnb-toolbar-export").click()  # the notebook toolbar button
    dialog = page.locator(".jp-Dialog .mlnb-error-dialog")
    dialog.wait_for(timeout=LONG)
    shot(page, "04-export-check-failed")
    text = dialog.inner_text()
    assert "the export check failed" in text and "clf" in text
    assert "Traceback" not in text
    assert not (lab.root / "build" / "services" / "halfdone").exists()
    page.close()


def test_version_a_file_from_the_file_browser(browser: Any, lab: Lab) -> None:
    (lab.root / "labels.csv").write_text("id,label\n1,0\n2,1\n")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _PAGES.append(page)
    page.goto(f"{lab.url}/lab?token={lab.token}&reset")
    item = page.locator(".jp-DirListing-item", has_text="labels.csv")
    item.click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Version this file").click()
    result = page.locator(".jp-Dialog .mlnb-version-result")
    result.wait_for(timeout=LONG)
    shot(page, "05-version-from-file-browser")
    assert "labels.csv@1" in result.inner_text()
    assert "file, 17 bytes" in result.inner_text()
    assert (lab.root / ".mlnb" / "versions.db").is_file()
    page.close()


def test_run_pipeline_from_the_notebook_toolbar(browser: Any, lab: Lab) -> None:
    folder = lab.root / "daily"
    folder.mkdir()
    write_notebook(
        folder / "count.ipynb",
        code("n = 2", "parameters"),
        code("from pathlib import Path\nPath('count.txt').write_text(str(n + 1))"),
    )
    (folder / "pipeline.yaml").write_text(
        "name: daily\nsteps:\n"
        "  - {name: count, notebook: count.ipynb, params: {n: 5}, outputs: [count.txt]}\n"
    )
    page = open_notebook(browser, lab, "daily/count.ipynb")
    page.locator(".jp-Toolbar .mlnb-toolbar-pipeline").click()
    done = page.locator("#mlnb-sidebar .mlnb-job-head.mlnb-job-succeeded")
    done.wait_for(timeout=LONG)
    shot(page, "06-pipeline-in-sidebar")
    assert done.inner_text() == "pipeline daily/pipeline.yaml: succeeded"
    step = page.locator("#mlnb-sidebar .mlnb-job-steps .mlnb-step-done")
    assert step.inner_text().startswith("count: done")
    run_id = step.locator(".mlnb-step-run").inner_text()  # in full, never clipped
    assert len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id), run_id
    assert (folder / "count.txt").read_text() == "6"
    page.close()


def test_run_pipeline_naming_a_notebook_outside_the_root_shows_the_403(
    browser: Any, lab: Lab
) -> None:
    outside = lab.root.parent / "outside-browser"
    outside.mkdir()
    marker = outside / "ran"
    write_notebook(outside / "evil.ipynb", code(f"open({str(marker)!r}, 'w').write('ran')"))
    folder = lab.root / "escaping"
    folder.mkdir()
    write_notebook(folder / "start.ipynb", code("x = 1"))
    (folder / "pipeline.yaml").write_text(
        "name: escaping\nsteps:\n  - {name: evil, notebook: ../../outside-browser/evil.ipynb}\n"
    )
    page = open_notebook(browser, lab, "escaping/start.ipynb")
    page.locator(".jp-Toolbar .mlnb-toolbar-pipeline").click()
    dialog = page.locator(".jp-Dialog .mlnb-error-dialog")
    dialog.wait_for(timeout=LONG)
    shot(page, "07-pipeline-outside-the-root")
    text = dialog.inner_text()
    assert "steps[evil].notebook" in text and "outside the server root" in text
    assert "Hint: mlnb's JupyterLab API only touches files under the server root" in text
    assert "Traceback" not in text
    page.locator(".jp-Dialog button", has_text="Close").click()
    assert not marker.exists()
    page.close()
