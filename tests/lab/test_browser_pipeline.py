"""The pipeline panel in a real JupyterLab in Chromium: opened from a right-click on a
pipeline.yaml, its DAG shows each step running then done while the pipeline runs, a step's
executed notebook opens in a tab, the run is in the history, a bad cron expression is refused
with the reason and a good one is listed; in the light and the dark theme. Screenshots go to
build/test-artifacts/lab/pipeline-*.png."""

from __future__ import annotations

import re
from typing import Any

from tests.lab.conftest import Lab
from tests.lab.test_browser import (
    _PAGES,
    LONG,
    browser,
    open_notebook,
    run_palette_command,
    screenshot_on_failure,
    shot,
)
from tests.lab.test_pipeline_panel import three_step_pipeline

__all__ = ["browser", "screenshot_on_failure"]  # the fixtures, used by name

STEPS = ("prepare", "train", "report")

# Every state each box has shown, in order, recorded in the page as the panel redraws.
RECORD_STATES = """() => {
  window.mlnbStates = {};
  const note = () => {
    for (const box of document.querySelectorAll('.mlnb-dag-step')) {
      const seen = (window.mlnbStates[box.dataset.step] ||= []);
      if (seen[seen.length - 1] !== box.dataset.state) seen.push(box.dataset.state);
    }
  };
  note();
  new MutationObserver(note).observe(document.querySelector('.mlnb-pipeline-panel'), {
    subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']
  });
}"""

ALL_DONE = """(steps) => steps.every(s => {
  const seen = (window.mlnbStates || {})[s] || [];
  return seen[seen.length - 1] === 'done';
})"""

# WCAG contrast of a box's step name against the box (both read from the computed style).
CONTRAST = """(selector) => {
  const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(v => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  const lum = c => { const [r, g, b] = rgb(c); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const box = document.querySelector(selector);
  const fg = getComputedStyle(box.querySelector('.mlnb-dag-name')).color;
  const bg = getComputedStyle(box).backgroundColor;
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def _box(page: Any, step: str, state: str | None = None) -> Any:
    suffix = f"[data-state='{state}']" if state else ""
    return page.locator(f".mlnb-pipeline-panel .mlnb-dag-step[data-step='{step}']{suffix}")


def _dark_theme(page: Any) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Theme$")).first.hover()
    page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.wait_for_selector("#jupyterlab-splash", state="detached")  # the theme is applied


def test_pipeline_panel_runs_the_dag_live(browser: Any, lab: Lab) -> None:
    three_step_pipeline(lab.root / "dag", "dag", sleep=3.0)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _PAGES.append(page)
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab/tree/dag?token={lab.token}&reset")

    # a right-click on the pipeline.yaml in the file browser opens the panel
    page.locator(".jp-DirListing-item", has_text="pipeline.yaml").click(button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Open pipeline").click()
    panel = page.locator(".mlnb-pipeline-panel")
    panel.locator(".mlnb-pipeline-title", has_text="Pipeline dag · dag/pipeline.yaml").wait_for()
    for step in STEPS:
        _box(page, step, "idle").wait_for()
    assert page.locator(".mlnb-dag-edge").count() == 2
    assert panel.locator(".mlnb-history .mlnb-note").inner_text().startswith("No runs yet")
    shot(page, "pipeline-01-dag-before-run-light")

    page.evaluate(RECORD_STATES)
    panel.locator("button.mlnb-pipeline-run").click()
    running = _box(page, "train", "running")
    running.locator(".mlnb-dag-cell", has_text="time.sleep(3.0)").wait_for(timeout=LONG)
    assert _box(page, "prepare").get_attribute("data-state") == "done"
    assert _box(page, "report").get_attribute("data-state") == "queued"
    shot(page, "pipeline-02-running-light")
    page.wait_for_function(ALL_DONE, arg=list(STEPS), timeout=LONG)
    seen = page.evaluate("() => window.mlnbStates")
    for step in STEPS:
        states = seen[step]
        assert states.index("queued") < states.index("done"), seen
        assert states[-1] == "done" and "failed" not in states, seen
    # a step that takes a while is seen running; a trivial one on a warm kernel may finish
    # between two redraws (0.7 s), so only train's running state is certain to be drawn
    assert "running" in seen["train"], seen
    assert seen["train"].index("running") < seen["train"].index("done"), seen
    panel.locator(".mlnb-pipeline-status", has_text="run succeeded").wait_for(timeout=LONG)

    panel.locator(".mlnb-history-run").first.wait_for()  # the panel has read it all again
    # each step: its full MLflow run id (never clipped) and its executed notebook
    rows = panel.locator(".mlnb-step-row")
    assert rows.count() == 3
    for index in range(3):
        run_id = rows.nth(index).locator(".mlnb-run-id").inner_text()
        assert re.fullmatch(r"[0-9a-f]{32}", run_id), run_id
        shown = rows.nth(index).locator(".mlnb-run-id")
        assert shown.evaluate("e => e.getBoundingClientRect().width") > 100  # not clipped
    history = panel.locator(".mlnb-history-run")
    assert history.count() == 1
    assert history.first.locator(".mlnb-history-status").inner_text() == "succeeded"
    assert history.first.locator(".mlnb-history-steps").inner_text() == "3 ran"
    shot(page, "pipeline-03-done-light")

    train = panel.locator(".mlnb-step-row[data-step='train']")
    train.locator("a.mlnb-step-notebook").click()
    frame = page.frame_locator(".mlnb-executed-notebook iframe")
    frame.locator("text=time.sleep(3.0)").first.wait_for(timeout=LONG)
    frame.locator("text=model.txt").first.wait_for()
    tab = page.locator(".lm-TabBar-tab", has_text="train (executed)")
    assert tab.count() == 1
    shot(page, "pipeline-04-executed-notebook-light")
    tab.locator(".lm-TabBar-tabCloseIcon").click()

    # a past run shows its DAG with final states
    panel.locator(".mlnb-history-run").first.click()
    panel.locator(".mlnb-pipeline-viewing", has_text="Run of").wait_for()
    for step in STEPS:
        _box(page, step, "done").wait_for()

    # schedules: a bad cron is refused with the reason and an example, a good one is listed
    panel.locator(".mlnb-cron-input").fill("0 3 * *")
    panel.locator("button.mlnb-schedule-add").click()
    error = panel.locator(".mlnb-schedule-error")
    error.filter(has_text="it has 4 fields, not 5").wait_for()
    assert "use e.g." in error.inner_text()
    shot(page, "pipeline-05-bad-cron-light")
    panel.locator(".mlnb-cron-input").fill("30 2 * * 1")
    panel.locator("button.mlnb-schedule-add").click()
    listed = panel.locator(".mlnb-schedule .mlnb-schedule-cron", has_text="30 2 * * 1")
    listed.wait_for()
    assert error.inner_text() == ""
    assert "next " in panel.locator(".mlnb-schedule .mlnb-schedule-next").first.inner_text()
    panel.locator(".mlnb-schedules").scroll_into_view_if_needed()
    shot(page, "pipeline-06-schedule-light")
    light_contrast = page.evaluate(CONTRAST, ".mlnb-dag-step[data-step='train']")

    _dark_theme(page)
    panel.locator(".mlnb-pipeline-title").scroll_into_view_if_needed()
    shot(page, "pipeline-07-dag-dark")
    dark_contrast = page.evaluate(CONTRAST, ".mlnb-dag-step[data-step='train']")
    assert light_contrast >= 4.5 and dark_contrast >= 4.5, (light_contrast, dark_contrast)
    panel.locator(".mlnb-schedules").scroll_into_view_if_needed()
    shot(page, "pipeline-08-schedule-dark")
    page.close()


def test_open_pipeline_from_the_palette_and_only_on_yaml_files(browser: Any, lab: Lab) -> None:
    three_step_pipeline(lab.root / "palette", "palette")
    page = open_notebook(browser, lab, "palette/train.ipynb")
    run_palette_command(page, "Open pipeline")  # the pipeline.yaml next to the notebook
    panel = page.locator(".mlnb-pipeline-panel")
    panel.locator(".mlnb-pipeline-title", has_text="Pipeline palette").wait_for()
    assert panel.locator(".mlnb-dag-step").count() == 3
    # a right-click on a notebook in the file browser offers no pipeline panel
    page.locator(".jp-SideBar [data-id='filebrowser']").click()
    page.locator(".jp-DirListing-item", has_text="report.ipynb").click(button="right")
    menu = page.locator(".lm-Menu").last
    menu.wait_for()
    menu.locator(".lm-Menu-itemLabel", has_text="Version this file").wait_for()
    shown = menu.locator(".lm-Menu-item:not(.lm-mod-hidden) .lm-Menu-itemLabel")
    assert shown.filter(has_text="Open pipeline").count() == 0
    page.keyboard.press("Escape")
    page.close()
