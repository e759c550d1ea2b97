"""The widgets' charts in a real JupyterLab, light and dark: ``%mlnb compare`` of three runs
logged through mlnb in the notebook's kernel, and drift reports (a computed one and one
with no traffic yet). Every text of every chart must reach WCAG AA contrast (4.5:1)
against the output area's background in both themes, measured in the page from the
computed styles. Screenshots go to build/test-artifacts/lab/ (charts-light.png,
charts-dark.png, drift-light.png, drift-dark.png, drift-empty-dark.png)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab.conftest import ARTIFACTS, Lab
from tests.lab.test_browser import LONG, browser, open_notebook, screenshot_on_failure
from tests.serving import code, write_notebook

__all__ = ["browser", "screenshot_on_failure"]  # fixtures, used by name

AA = 4.5
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}

RUNS = """\
import mlnb
ids = []
for name, C, solver, accuracy, losses in [
    ("C=0.1", 0.1, "lbfgs", 0.951, [0.92, 0.61, 0.47, 0.41]),
    ("C=1", 1.0, "liblinear", 0.979, [0.88, 0.42, 0.25, 0.19]),
    ("C=10", 10.0, "saga", 0.972, [0.85, 0.39, 0.27, 0.23]),
]:
    run = mlnb.start_run(experiment_name="charts", run_name=name)
    mlnb.log_params({"C": C, "solver": solver})
    mlnb.log_metric("accuracy", accuracy)
    for step, value in enumerate(losses):
        mlnb.log_metric("loss", value, step=step)
    mlnb.end_run()
    ids.append(run.info.run_id)
"""

DRIFT = """\
import numpy as np, pandas as pd
from mlnb.monitor import drift_report as compute, profile
from mlnb.widgets import drift_report
rng = np.random.default_rng(0)
train = pd.DataFrame({"age": rng.normal(40, 10, 2000), "income": rng.normal(50, 5, 2000),
                      "city": rng.choice(["a", "b", "c"], 2000, p=[0.5, 0.3, 0.2])})
live = pd.DataFrame({"age": rng.normal(55, 10, 800), "income": rng.normal(50, 5, 800),
                     "city": rng.choice(["a", "b", "c"], 800, p=[0.5, 0.3, 0.2])})
drift_report(compute(profile(train, "train", log=False), live))
"""

EMPTY = """\
drift_report({"profile": "train", "n": 0, "features": {}, "drifted": [], "window": 500})
"""

#: every chart text's contrast against the background behind its output area, per WCAG 2.x
CONTRAST = """
(selector) => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]*)\\)/.exec(c || "");
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const background = (node) => {
    const layers = [];
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let color = [255, 255, 255, 1];  // the canvas under a page without any background
    for (const layer of layers.reverse()) color = over(layer, color);
    return color;
  };
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      const s = v / 255;
      return s <= 0.04045 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const out = [];
  for (const text of document.querySelectorAll(selector)) {
    const area = text.closest(".jp-OutputArea-output") || text.parentElement;
    const style = getComputedStyle(text);
    const fill = parse(style.fill);
    const bg = background(area);
    let ratio = 1;
    if (fill) {
      const alpha = fill[3] * Number(style.fillOpacity || 1) * Number(style.opacity || 1);
      const shown = over([fill[0], fill[1], fill[2], alpha], bg);
      const [l1, l2] = [luminance(shown), luminance(bg)].sort((a, b) => b - a);
      ratio = (l1 + 0.05) / (l2 + 0.05);
    }
    out.push({text: text.textContent, fill: style.fill, background: bg.join(","), ratio});
  }
  return out;
}
"""


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab's theme from the command palette (apputils:change-theme)."""
    name = THEMES[theme]
    if page.locator(f"body[data-jp-theme-name='{name}']").count():
        return
    page.keyboard.press("Control+Shift+c")
    page.wait_for_selector(".lm-CommandPalette-input")
    page.fill(".lm-CommandPalette-input", f"Use Theme: {name}")
    page.locator(".lm-CommandPalette-item", has_text=f"Use Theme: {name}").first.click()
    page.wait_for_selector(f"body[data-jp-theme-name='{name}']", state="attached")
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)  # the theme's stylesheet applied


def contrasts(page: Any, output: Any) -> list[dict[str, Any]]:
    marker = output.get_attribute("data-mlnb-test") or ""
    result: list[dict[str, Any]] = page.evaluate(
        CONTRAST, f".jp-OutputArea-output[data-mlnb-test='{marker}'] svg text"
    )
    return result


def assert_readable(page: Any, output: Any, what: str) -> int:
    measured = contrasts(page, output)
    assert measured, f"no chart text found in {what}"
    low = [m for m in measured if m["ratio"] < AA]
    assert not low, f"{len(low)} of {len(measured)} chart texts of {what} below {AA}:1: {low[:5]}"
    return len(measured)


@pytest.fixture(scope="module")
def charts_page(browser: Any, lab: Lab) -> Iterator[Any]:
    """charts.ipynb run in the browser: three runs, their comparison, two drift reports."""
    write_notebook(
        lab.root / "charts.ipynb",
        code("%load_ext mlnb"),
        code(RUNS),
        code("%mlnb compare {ids[0]} {ids[1]} {ids[2]} --metric accuracy"),
        code(DRIFT),
        code(EMPTY),
    )
    page = open_notebook(browser, lab, "charts.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    last = page.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-InputPrompt")
    last.filter(has_text=re.compile(r"\[\d+\]")).wait_for(timeout=LONG)
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    for index, name in ((2, "compare"), (3, "drift"), (4, "empty")):
        output = cells.nth(index).locator(".jp-OutputArea-output").last
        output.locator("svg, .mlnb-drift-empty").first.wait_for(timeout=LONG)
        output.evaluate(f"(node) => node.setAttribute('data-mlnb-test', '{name}')")
    try:
        yield page
    finally:
        set_theme(page, "light")  # the theme is a user setting: leave it as it was
        page.close()


def shown_in(page: Any, theme: str, name: str, shot: str) -> Any:
    """The output ``name`` in ``theme``, scrolled to and saved as ``shot``.png."""
    set_theme(page, theme)
    output = page.locator(f".jp-OutputArea-output[data-mlnb-test='{name}']")
    output.scroll_into_view_if_needed()
    output.screenshot(path=str(ARTIFACTS / f"{shot}.png"))
    return output


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_compare_charts_read_in_the_theme(charts_page: Any, theme: str) -> None:
    page = charts_page
    compare = shown_in(page, theme, "compare", f"charts-{theme}")
    # a single-value metric as bars, the history as lines, params against accuracy
    assert compare.locator("svg[aria-label='accuracy'] .mlnb-bar").count() == 3
    best = compare.locator("svg[aria-label='accuracy'] .mlnb-bar.mlnb-best")
    assert best.get_attribute("data-run") == "C=1"
    assert compare.locator("svg[aria-label='loss'] polyline").count() == 3
    assert compare.locator("svg[aria-label='loss'] .mlnb-best").get_attribute("data-run") == "C=1"
    parallel = compare.locator(".mlnb-parallel svg")
    assert parallel.locator("polyline").count() == 3
    assert parallel.locator("polyline.mlnb-best").get_attribute("data-run") == "C=1"
    tips = compare.locator("svg[aria-label='loss'] circle title").all_text_contents()
    assert "C=10 · loss · step 3: 0.23" in tips
    assert assert_readable(page, compare, f"%mlnb compare ({theme})") > 30


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_drift_report_reads_in_the_theme(charts_page: Any, theme: str) -> None:
    page = charts_page
    drift = shown_in(page, theme, "drift", f"drift-{theme}")
    assert "1 of 3 features drifted" in drift.inner_text()
    rules = drift.locator(".mlnb-decision").all_inner_texts()
    assert rules[0].startswith("PSI ") and " > 0.1 and p " in rules[0]  # age, drifted, first
    stable = drift.locator("details.mlnb-stable")
    assert not stable.evaluate("(node) => node.open")  # folded
    assert stable.locator("svg").count() == 2
    assert_readable(page, drift, f"the drift report ({theme})")
    # The user's click: on the report's cell first (JupyterLab activates a cell on mouse
    # down and scrolls it into view, so a first click on an inactive cell's output can land
    # elsewhere on mouse up), then on the summary.
    page.locator(".jp-Notebook .jp-CodeCell").nth(3).locator(".jp-InputPrompt").click()
    summary = stable.locator("summary")
    summary.scroll_into_view_if_needed()
    summary.click()  # unfolded, the stable histograms read too
    assert stable.evaluate("(node) => node.open"), "a click on the summary unfolds it"
    assert_readable(page, drift, f"the unfolded drift report ({theme})")
    stable.evaluate("(node) => { node.open = false; }")  # folded again for the other theme
    empty = shown_in(page, theme, "empty", f"drift-empty-{theme}")
    text = empty.inner_text()
    assert "no live data yet" in text and "0 of 0" not in text
    assert "send requests to its POST /predict" in text and "last 500 inputs" in text
