"""The run panel: the runs of an experiment (status, start, duration, params, latest metrics),
live while a run of this kernel is going, with checkboxes and a Compare button."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from html import escape
from typing import Any

from mlnb.exceptions import MlnbError
from mlnb.tracking import (
    RunSummary,
    active_experiment,
    active_run_id,
    cell_running,
    experiment_reason,
    experiments_with_runs,
    list_runs,
    metric_histories,
)
from mlnb.widgets._base import Panel, Static, headless, widgets
from mlnb.widgets._charts import line_chart
from mlnb.widgets._compare import _series, compare
from mlnb.widgets._render import STYLE, badge, fmt_duration, fmt_number, fmt_time, table

__all__ = ["RunsPanel", "RunsTable", "runs_panel"]

#: seconds between two reads of the tracking store while a run of this kernel is going
POLL_INTERVAL = 1.5
#: live charts of the active run's metrics, at most
MAX_LIVE_CHARTS = 6
_HEADER = ("", "run", "status", "start", "duration", "params", "metrics")
_COLUMNS = "28px minmax(120px,auto) 90px 150px 90px minmax(120px,1fr) minmax(120px,1fr)"


def runs_panel(
    experiment: str | None = None, max_results: int = 50, *, static: bool | None = None
) -> RunsPanel | RunsTable:
    """The run panel of ``experiment`` (default: the active experiment of this kernel; a
    named experiment that does not exist raises naming the ones there are). The static
    table where no widget frontend runs (see :func:`~mlnb.widgets._base.headless`) or when
    ``static``."""
    must_exist = experiment is not None
    if static or (static is None and headless()):
        name = experiment or active_experiment()
        runs = list_runs(name, max_results, must_exist=must_exist)
        return RunsTable(name, runs, max_results, chosen=experiment is None)
    return RunsPanel(experiment, max_results, must_exist=must_exist)


def _pairs(values: dict[str, Any], number: bool = False, limit: int = 6) -> str:
    items = sorted(values.items())
    text = ", ".join(f"{k}={fmt_number(v) if number else v}" for k, v in items[:limit])
    if len(items) > limit:
        text += f", … (+{len(items) - limit})"
    return text


class _Row:
    def __init__(self, run: RunSummary, on_change: Any) -> None:
        self.run_id = run.run_id
        self.check = widgets.Checkbox(
            value=False, indent=False, layout=widgets.Layout(width="24px")
        )
        self.check.observe(on_change, names="value")
        self.cells = [widgets.HTML() for _ in _HEADER[1:]]
        self.update(run)

    def update(self, run: RunSummary) -> None:
        values = _row_cells(run)
        for cell, value in zip(self.cells, values, strict=True):
            if cell.value != value:
                cell.value = value

    @property
    def widgets(self) -> list[Any]:
        return [self.check, *self.cells]


def _row_cells(run: RunSummary) -> list[str]:
    return [
        f'<span title="{escape(run.run_id)}"><b>{escape(run.name)}</b><br>'
        f'<code style="font-size:10px">{escape(run.run_id)}</code></span>',
        badge(run.status),
        fmt_time(run.start_time),
        fmt_duration(run.duration),
        escape(_pairs(run.params)),
        escape(_pairs(run.metrics, number=True)),
    ]


def _live_html(run_id: str) -> str | None:
    """Charts of every metric of the run so far (None when the store cannot be read)."""
    try:
        histories = metric_histories(run_id)
    except MlnbError:
        return None
    if not histories:
        return f"<i>run {escape(run_id)}: no metrics yet</i>"
    charts = [
        line_chart(key, {run_id[:8]: _series(points)}, width=320, height=200)
        for key, points in sorted(histories.items())[:MAX_LIVE_CHARTS]
    ]
    return (
        f"<div><b>run {escape(run_id)}</b> metrics</div>"
        f'<div style="display:flex;flex-wrap:wrap;gap:6px">{"".join(charts)}</div>'
    )


class _Follower:
    """One daemon thread for all open run panels of the process. While no run of this
    kernel is going it only looks at the session (no I/O); while one is, it reads each
    shown experiment's runs and the run's metric histories once per interval and hands
    them to every panel; after the run ends it does one last read. It exits when no panel
    is open."""

    def __init__(self) -> None:
        self.panels: weakref.WeakSet[RunsPanel] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, panel: RunsPanel) -> None:
        with self.lock:
            self.panels.add(panel)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="mlnb-runs", daemon=True)
                self.thread.start()

    def discard(self, panel: RunsPanel) -> None:
        with self.lock:
            self.panels.discard(panel)

    def run(self) -> None:
        while True:
            with self.lock:
                panels = list(self.panels)
                if not panels:
                    self.thread = None
                    return
            time.sleep(min(p.interval for p in panels))
            run_id = active_run_id()
            if run_id is not None and cell_running() is False:
                run_id = None  # open between cells: nothing updates it, the banner goes
            followed = {p.live_run_id for p in panels} - {None}
            if run_id is None and not followed:
                continue
            self.update(panels, run_id, followed)

    def update(
        self, panels: list[RunsPanel], run_id: str | None, followed: set[str | None]
    ) -> None:
        live = {r: _live_html(r) for r in followed | {run_id} if r is not None}
        groups: dict[tuple[str, int], list[RunsPanel]] = {}
        for panel in panels:
            groups.setdefault((panel.experiment, panel.max_results), []).append(panel)
        for (experiment, max_results), members in groups.items():
            try:
                runs = list_runs(experiment, max_results)
            except MlnbError as exc:
                for panel in members:
                    panel.message.value = f"<b>mlnb:</b> {escape(str(exc))}"
                continue
            for panel in members:
                charts_of = run_id or panel.live_run_id
                panel._apply(runs, run_id, live.get(charts_of) if charts_of else None)


_FOLLOWER = _Follower()


class RunsTable(Static):
    """The runs of one experiment, newest first, as a table."""

    def __init__(
        self,
        experiment: str,
        runs: list[RunSummary],
        max_results: int = 50,
        *,
        chosen: bool = False,
    ) -> None:
        self.experiment = experiment
        self.runs = runs
        self.max_results = max_results
        #: the experiment was chosen by mlnb (no -e): the empty message says why and where else
        self.chosen = chosen
        self._empty: str | None = None

    @property
    def empty_message(self) -> str:
        if self._empty is None:
            self._empty = self._empty_message()
        return self._empty

    def _empty_message(self) -> str:
        why = f" ({experiment_reason()})" if self.chosen else ""
        text = (
            f"No runs in experiment {self.experiment!r}{why} yet: run a cell that logs "
            "something (or %mlnb start), then refresh (the Refresh button, or %mlnb runs again)."
        )
        try:
            others = [n for n in experiments_with_runs() if n != self.experiment]
        except MlnbError:
            return text
        if others:
            listed = ", ".join(repr(n) for n in others)
            text += (
                f" Experiments of this project with runs: {listed}; show one with "
                f"%mlnb runs -e {others[0]!r}."
            )
        return text

    def to_html(self) -> str:
        runs = list(self.runs)
        head = f"<h4>mlnb runs — experiment {escape(self.experiment)} ({len(runs)} runs)</h4>"
        if not runs:
            return f"<div>{head}<p>{escape(self.empty_message, quote=False)}</p></div>"
        return f"<div>{head}{table(_HEADER[1:], [_row_cells(r) for r in runs])}</div>"

    def to_text(self) -> str:
        runs = list(self.runs)
        lines = [f"mlnb runs: experiment {self.experiment} ({len(runs)} runs)"]
        if not runs:
            return "\n".join([*lines, self.empty_message])
        for r in runs:
            lines.append(
                f"{r.run_id}  {r.name:<20} {r.status:<9} {fmt_time(r.start_time)}  "
                f"{fmt_duration(r.duration):>10}  {_pairs(r.params)}  "
                f"{_pairs(r.metrics, number=True)}"
            )
        return "\n".join(lines)


class RunsPanel(Panel):
    """The live view of a :class:`RunsTable` (``panel.static``). While a run of this kernel
    is active the panel re-reads the store every :data:`POLL_INTERVAL` seconds in a
    background thread, which stops when the run ends or the panel is closed."""

    static: RunsTable

    def __init__(
        self,
        experiment: str | None = None,
        max_results: int = 50,
        *,
        must_exist: bool = False,
        interval: float = POLL_INTERVAL,
    ) -> None:
        self.experiment = experiment or active_experiment()
        self.max_results = max_results
        self.interval = interval
        self.static = RunsTable(
            self.experiment,
            list_runs(self.experiment, max_results, must_exist=must_exist),
            max_results,
            chosen=experiment is None,
        )
        self.live_run_id: str | None = None
        self._rows: dict[str, _Row] = {}
        self._lock = threading.RLock()
        self._closed = False
        self.header = widgets.HTML()
        self.grid = widgets.GridBox(
            layout=widgets.Layout(grid_template_columns=_COLUMNS, grid_gap="0 6px")
        )
        self.live = widgets.HTML()
        self.message = widgets.HTML()
        self.compare_button = widgets.Button(
            description="Compare", icon="columns", disabled=True, tooltip="compare selected runs"
        )
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.compare_button.on_click(lambda _: self.compare_selected())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.comparison = widgets.VBox()
        super().__init__(
            children=[
                self.header,
                self.grid,
                widgets.HBox([self.compare_button, self.refresh_button]),
                self.message,
                self.live,
                self.comparison,
            ]
        )
        self._show()
        self._follow_active_run()

    # -- reading -----------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the runs again (and start following this kernel's run if one is active)."""
        try:
            runs = list_runs(self.experiment, self.max_results)
        except MlnbError as exc:
            self.message.value = f"<b>mlnb:</b> {escape(str(exc))}"
            return
        with self._lock:
            self.runs = runs
            self._show()
        self._follow_active_run()

    def _show(self) -> None:
        with self._lock:
            n = len(self.runs)
            live = self.polling
            self.header.value = (
                f"{STYLE}<b>mlnb runs</b> — experiment <b>{escape(self.experiment)}</b>, "
                f"{n} run{'s' if n != 1 else ''}"
                + (f" (the latest {self.max_results})" if n >= self.max_results else "")
                + (
                    f" · <i>live: refreshing every {self.interval:g} s while run "
                    f"{escape(self.live_run_id or '')} is going</i>"
                    if live
                    else ""
                )
            )
            if not self.runs:
                self.grid.children = ()
                self.message.value = escape(self.empty_message, quote=False)
                return
            known = set(self._rows)
            for run in self.runs:
                row = self._rows.get(run.run_id)
                if row is None:
                    self._rows[run.run_id] = _Row(run, self._selection_changed)
                else:
                    row.update(run)
            order = [r.run_id for r in self.runs]
            for gone in known - set(order):  # older than the newest max_results now
                for widget in self._rows.pop(gone).widgets:
                    widget.close()
            if known != set(order) or not self.grid.children:
                head = [widgets.HTML(f"<b>{h}</b>") for h in _HEADER]
                cells: list[Any] = list(head)
                for run_id in order:
                    cells.extend(self._rows[run_id].widgets)
                self.grid.children = tuple(cells)
            if self.message.value == escape(self.empty_message, quote=False):
                self.message.value = ""

    @property
    def runs(self) -> list[RunSummary]:
        return self.static.runs

    @runs.setter
    def runs(self, runs: list[RunSummary]) -> None:
        self.static.runs = runs

    @property
    def empty_message(self) -> str:
        return self.static.empty_message

    # -- live updates (driven by the process's one _Follower thread) --------------------
    @property
    def polling(self) -> bool:
        """True while the panel follows a run of this kernel (re-reading the store)."""
        return self.live_run_id is not None and not self._closed

    def _follow_active_run(self) -> None:
        """Show this kernel's run live now if one is going, and from now on whenever one
        is (a run started by a later cell is picked up by the follower thread)."""
        if self._closed:
            return
        run_id = active_run_id()
        if run_id is not None and run_id != self.live_run_id:
            self.live_run_id = run_id
            live = _live_html(run_id)
            if live is not None:
                self.live.value = live
            self._show()
        _FOLLOWER.add(self)

    def _apply(self, runs: list[RunSummary], live_run_id: str | None, live: str | None) -> None:
        """New data read by the follower: the runs, the run of this kernel now going (None
        once it ended) and the live charts (of that run, or the last ones of the run that
        ended)."""
        with self._lock:
            if self._closed:
                return
            self.runs = runs
            if live is not None:
                self.live.value = live
            self.live_run_id = live_run_id
            self._show()

    def close(self) -> None:
        self._closed = True
        _FOLLOWER.discard(self)
        super().close()

    # -- selection ---------------------------------------------------------------------
    @property
    def selected(self) -> list[str]:
        with self._lock:
            return [
                r.run_id
                for r in self.runs
                if r.run_id in self._rows and self._rows[r.run_id].check.value
            ]

    def select(self, run_ids: Sequence[str]) -> None:
        with self._lock:
            for run_id, row in self._rows.items():
                row.check.value = run_id in run_ids

    def _selection_changed(self, change: Any = None) -> None:
        self.compare_button.disabled = not self.selected

    def compare_selected(self) -> None:
        ids = self.selected
        if not ids:
            self.message.value = "Select one or more runs to compare."
            return
        try:
            view = compare(ids, static=False)
        except MlnbError as exc:
            self.message.value = f"<b>mlnb:</b> {escape(str(exc))}"
            return
        self.message.value = ""
        self.comparison.children = (view,)
