"""Export as service in a real JupyterLab in Chromium: a failed check names the cell as the
user finds it (its position, its [count] and first line), the cause first, and "Go to cell"
makes that cell the active one; a finished export names the run its model came from, and a
re-export keeps the service's port. Screenshots: build/test-artifacts/lab/export-*.png."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.lab import test_browser
from tests.lab.conftest import Lab
from tests.lab.test_browser import LONG, open_notebook, run_palette_command, shot

# the fixtures of test_browser.py, used here by name
browser = test_browser.browser
trained = test_browser.trained
screenshot_on_failure = test_browser.screenshot_on_failure

#: cells above the failing one: "Go to cell" has to scroll to reach it
FILLER = 14


def _failing_notebook(path: Path) -> int:
    """A notebook whose export check fails on an undefined name in a cell far down, saved
    as JupyterLab saves it after a run (execution counts); the failing cell's position."""
    cells: list[Any] = [new_markdown_cell("# A service, half done")]
    for number in range(FILLER):
        cells.append(new_markdown_cell(f"## Notes {number}\n\nSome words about the data."))
    imports = new_code_cell("import pandas as pd", metadata={"tags": ["mlnb:export"]})
    helper = new_code_cell("scaler = lambda df: [0] * len(df)")
    predict = new_code_cell(
        "def predict(df: pd.DataFrame) -> list[int]:\n    return scaler(df)",
        metadata={"tags": ["mlnb:export"]},
    )
    for count, cell in enumerate((imports, helper, predict), start=1):
        cell.execution_count = count
    cells += [imports, helper, predict]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return len(cells) - 1


def _active_cell(page: Any) -> dict[str, Any]:
    """The active cell's position among the notebook's cells, its text, and whether it is
    inside the visible part of the notebook."""
    return dict(
        page.evaluate(
            """() => {
              const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden)'
                + ' .jp-Notebook .jp-Cell')];
              const active = cells.find(c => c.classList.contains('jp-mod-active'));
              const box = active.getBoundingClientRect();
              const view = active.closest('.jp-WindowedPanel-outer, .jp-Notebook')
                .getBoundingClientRect();
              return {
                index: cells.indexOf(active),
                text: active.querySelector('.jp-InputArea-editor, .jp-MarkdownOutput')
                  ?.textContent ?? '',
                visible: box.top >= view.top - 1 && box.top < view.bottom,
              };
            }"""
        )
    )


def test_a_failed_check_names_the_cell_and_goes_to_it(browser: Any, lab: Lab) -> None:
    failing = _failing_notebook(lab.root / "halfway.ipynb")
    page = open_notebook(browser, lab, "halfway.ipynb")
    assert _active_cell(page)["index"] == 0
    page.locator(".jp-Toolbar .mlnb-toolbar-export").click()
    dialog = page.locator(".jp-Dialog .mlnb-error-dialog")
    dialog.wait_for(timeout=LONG)
    shot(page, "export-error")
    cause = dialog.locator(".mlnb-error-cause").inner_text()
    position, helper = failing + 1, failing  # counted from 1, as the user counts cells
    # the cause first, the cell by position, [count] and first line; no hidden cell id
    assert cause.startswith(
        f"name 'scaler' is used by cell {position} [3] "
        '"def predict(df: pd.DataFrame) -> list[int]:" but it is defined in '
        f'cell {helper} [2] "scaler = lambda df: [0] * len(df)", which is not tagged mlnb:export'
    )
    assert f"tag cell {helper} mlnb:export" in cause
    text = dialog.inner_text()
    assert text.index("name 'scaler'") < text.index("the export check failed")
    assert "id " not in cause and "Traceback" not in text
    go = page.locator(".jp-Dialog button", has_text=f"Go to cell {position}")
    go.click()
    page.locator(".jp-Dialog").wait_for(state="detached")
    page.wait_for_function(
        "i => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) "
        ".jp-Notebook .jp-Cell')][i]?.classList.contains('jp-mod-active')",
        arg=failing,
    )
    active = _active_cell(page)
    assert active["index"] == failing and "return scaler(df)" in active["text"]
    assert active["visible"], "the active cell is scrolled into view"
    shot(page, "export-error-went-to-cell")
    assert not (lab.root / "build" / "services" / "halfway").exists()
    page.close()


def test_the_export_dialog_names_the_models_run_and_a_re_export_keeps_the_port(
    browser: Any, trained: Any, lab: Lab
) -> None:
    last = trained.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-InputPrompt")
    last.filter(has_text=re.compile(r"\[\d+\]")).wait_for(timeout=LONG)  # model registered
    with lab.client() as client:
        (run, *_) = client.get("/mlnb/runs", params={"path": "train.ipynb"}).json()["runs"]
    page = open_notebook(browser, lab, "serve.ipynb")
    urls = []
    for attempt in range(2):
        run_palette_command(page, "Export as service")
        result = page.locator(".jp-Dialog .mlnb-export-result")
        result.wait_for(timeout=LONG)
        text = result.inner_text()
        assert f'from run "{run["name"]}" ({run["run_id"][:8]}…), params ' in text
        assert f"C={run['params']['C']}" in text
        link = result.locator("a.mlnb-run-link")
        assert link.inner_text() == f'Open run "{run["name"]}" in MLflow'
        assert (link.get_attribute("href") or "").endswith(f"/runs/{run['run_id']}")
        urls.append(result.locator("a.mlnb-service-link").get_attribute("href"))
        if attempt == 0:
            shot(page, "export-ok")
        assert "Note:" not in text  # the port was kept: nothing to say
        page.locator(".jp-Dialog button", has_text="Close").click()
        page.locator(".jp-Dialog").wait_for(state="detached")
    assert urls[0] == urls[1] and (urls[0] or "").endswith("/docs")  # an open /docs tab works
    page.close()
