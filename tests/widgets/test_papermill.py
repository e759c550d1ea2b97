"""Widgets in a notebook run headless by plain papermill (a real kernel): the output notebook
keeps the tables as plain HTML (no widget state that nothing can render), and nbconvert
shows them."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from tests.test_papermill import _papermill

META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def _html_outputs(cell: nbformat.NotebookNode) -> list[str]:
    return [
        out["data"]["text/html"]
        for out in cell.get("outputs", [])
        if out.get("output_type") == "display_data" and "text/html" in out.get("data", {})
    ]


def test_runs_and_compare_keep_an_html_table_under_papermill(
    project: Path, two_runs: list[str]
) -> None:
    source = project / "look.ipynb"
    cells = [
        "%load_ext mlnb",
        "%mlnb runs --experiment widgets",
        f"%mlnb compare {two_runs[0]} {two_runs[1]}",
    ]
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells], metadata=META), source)
    done = _papermill(project, source)
    assert done.returncode == 0, done.stderr[-3000:]
    out = nbformat.read(project / "out.ipynb", as_version=4)

    assert "widgets" not in out.metadata
    for cell in out.cells[1:]:
        for output in cell.outputs:
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {})
    (runs_html,) = _html_outputs(out.cells[1])
    assert '<table class="mlnb-t">' in runs_html
    assert "experiment widgets (2 runs)" in runs_html
    for run_id in two_runs:
        assert run_id in runs_html
    (compare_html,) = _html_outputs(out.cells[2])
    assert all(run_id in compare_html for run_id in two_runs)
    assert '<tr class="mlnb-diff"><td>param <b>lr</b></td>' in compare_html
    assert "<polyline" in compare_html

    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_notebook_node(out)
    assert page.count('<table class="mlnb-t">') >= 2
    assert all(run_id in page for run_id in two_runs)


def test_the_panel_updates_the_frontend_while_a_run_goes(project: Path) -> None:
    """A real kernel driven by nbclient (which keeps every widget update it receives, as a
    frontend would): the panel's background thread sends the new metric and the end."""
    from nbclient import NotebookClient

    cells = [
        "%load_ext mlnb\nimport time, mlnb\nfrom mlnb.widgets import RunsPanel\n"
        "mlnb.start_run(experiment_name='live', run_name='going')\n"
        "panel = RunsPanel(interval=0.1)\npanel",
        "for step, value in enumerate([0.25, 0.5, 0.75]):\n"
        "    mlnb.log_metric('acc', value, step=step)\n"
        "mlnb.flush()\n"
        # Read under the panel's lock: the follower thread's update is whole, its widget
        # messages sent, before this cell ends. nbclient drops a message sent between two
        # cells (its parent is the cell that ended), which a browser would still show.
        "deadline = time.time() + 100\n"
        "while True:\n"
        "    with panel._lock:\n"
        "        if panel.runs and panel.runs[0].metrics.get('acc') == 0.75:\n"
        "            break\n"
        "    assert time.time() < deadline, f'the panel read {panel.runs}'\n"
        "    time.sleep(0.05)",
        "mlnb.end_run()\n"
        "deadline = time.time() + 100\n"
        "while time.time() < deadline:\n"
        "    with panel._lock:  # as above: the last update is whole when it stops polling\n"
        "        if not panel.polling:\n"
        "            break\n"
        "    time.sleep(0.05)\n"
        "print(panel.polling)",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells], metadata=META)
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(project)}}).execute()
    assert nb.cells[2].outputs[0]["text"].strip() == "False"  # polling stopped at the end
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    values = [w["state"].get("value") for w in state.values()]
    html = " ".join(v for v in values if isinstance(v, str))
    assert "acc=0.75" in html  # sent by the panel's thread, not by a cell
    assert ">FINISHED<" in html
    assert "<polyline" in html  # the live chart
