/**
 * The "mlnb" sidebar: tags of the active cell (toggle buttons), the runs of the current
 * notebook (what each is doing, its params and key metrics with the values that differ
 * between runs highlighted, links to the MLflow UI, to a step's executed notebook and its
 * pipeline run), a Compare button for the ticked runs, and the last pipeline run started
 * from the UI. Runs are read again every 750 ms while the notebook's kernel is busy (a run
 * started mid-cell shows within 2 s), at each change of the kernel's status, and slowly
 * otherwise; an unchanged answer is a 304.
 */
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  differingKeys,
  formatMetric,
  keyMetrics,
  PipelineJob,
  refreshInterval,
  RunsResponse,
  RunState,
  runState,
  RunSummary
} from './api';
import { cellTags, renderBadges, toggleCellTag } from './badges';
import { getPipeline, getRuns, uiWhenReady } from './request';

/** At most this many params per run in the sidebar (those that differ first). */
const MAX_PARAMS = 6;
import { badgeLabel, MLNB_TAGS, refusal, TAG_HELP } from './tags';

/** An element with a class and, if given, its text (the pipeline panel uses it too). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export class MlnbSidebar extends Widget {
  private readonly tracker: INotebookTracker;
  private readonly tagsBox = el('div', 'mlnb-tag-buttons');
  private readonly tagsNote = el('div', 'mlnb-note');
  private readonly runsBox = el('ul', 'mlnb-runs');
  private readonly runsNote = el('div', 'mlnb-note');
  private readonly jobBox = el('div', 'mlnb-job');
  private readonly title_ = el('div', 'mlnb-notebook');
  private timer: number | undefined;
  private runActive = false;
  private job: PipelineJob | null = null;
  private loading = false;
  private kernelBusy = false;
  private data: RunsResponse | null = null;
  private etag: string | null = null;
  private etagPath = '';
  private readonly selected = new Set<string>();
  private readonly compareButton = el('button', 'jp-Button mlnb-compare', 'Compare');
  private readonly uiButton = el('button', 'jp-Button mlnb-ui-button', 'MLflow UI');
  private watched: NotebookPanel | null = null;
  /** Opens the ticked runs side by side (set by the plugin: a main-area panel). */
  compare: ((runs: RunSummary[]) => void) | null = null;
  /** Opens a file of the server root in JupyterLab (set by the plugin). */
  openPath: ((path: string) => void) | null = null;

  constructor(tracker: INotebookTracker) {
    super();
    this.tracker = tracker;
    this.id = 'mlnb-sidebar';
    this.addClass('mlnb-sidebar');
    this.title.caption = 'mlnb: cell tags and runs of this notebook';
    this.title.label = 'mlnb';

    const header = el('div', 'mlnb-header', 'mlnb');
    const tagsHead = el('h3', 'mlnb-section', 'Cell tags');
    const runsHead = el('h3', 'mlnb-section', 'Runs of this notebook');
    const refresh = el('button', 'jp-Button mlnb-refresh', 'Refresh');
    refresh.title = 'Read the runs again';
    refresh.addEventListener('click', () => void this.refresh());
    this.compareButton.title = 'Tick two or more runs to compare them side by side';
    this.compareButton.disabled = true;
    this.compareButton.addEventListener('click', () => this.compareSelected());
    this.uiButton.title = 'Open the MLflow UI (started on demand)';
    this.uiButton.addEventListener('click', () => void this.openInUi(null));
    const actions = el('span', 'mlnb-run-actions');
    actions.append(this.compareButton, this.uiButton, refresh);
    runsHead.appendChild(actions);
    this.node.append(
      header,
      this.title_,
      tagsHead,
      this.tagsBox,
      this.tagsNote,
      runsHead,
      this.runsNote,
      this.runsBox,
      this.jobBox
    );
    for (const tag of MLNB_TAGS) {
      const button = el('button', 'jp-Button mlnb-tag-button', badgeLabel(tag));
      button.dataset.mlnbTag = tag;
      button.title = `${tag}: ${TAG_HELP[tag]}`;
      button.addEventListener('click', () => this.toggle(tag));
      this.tagsBox.appendChild(button);
    }

    tracker.currentChanged.connect(() => {
      this.watchKernel();
      this.renderTags();
      void this.refresh();
    });
    tracker.activeCellChanged.connect(() => this.renderTags());
    tracker.selectionChanged.connect(() => this.renderTags());
    NotebookActions.executed.connect((_, args) => {
      if (args.notebook === tracker.currentWidget?.content) {
        void this.refresh();
      }
    });
    this.watchKernel();
    this.renderTags();
    void this.refresh();
  }

  /** Follow the current notebook's kernel: busy means a cell runs (poll quickly). */
  private watchKernel(): void {
    const panel = this.tracker.currentWidget;
    if (panel === this.watched) {
      return;
    }
    this.watched?.sessionContext.statusChanged.disconnect(this.onKernelStatus, this);
    this.watched = panel;
    this.kernelBusy = panel?.sessionContext.session?.kernel?.status === 'busy';
    panel?.sessionContext.statusChanged.connect(this.onKernelStatus, this);
  }

  private onKernelStatus(_: unknown, status: string): void {
    const busy = status === 'busy';
    if (busy !== this.kernelBusy) {
      this.kernelBusy = busy;
      void this.refresh();
    }
  }

  /** Toggle `tag` on the active cell, as the buttons do. */
  toggle(tag: string): void {
    const cell = this.tracker.activeCell;
    if (!cell) {
      return;
    }
    const refused = refusal(cell.model.type, tag);
    if (refused) {
      this.tagsNote.textContent = refused;
      return;
    }
    toggleCellTag(cell, tag);
    renderBadges(cell);
    this.renderTags();
  }

  /** Follow a pipeline run started from the UI until it ends. */
  followJob(job: PipelineJob, done: (job: PipelineJob) => void): void {
    this.job = job;
    this.renderJob();
    const poll = async (): Promise<void> => {
      try {
        this.job = await getPipeline(job.job_id);
      } catch (error) {
        this.jobBox.textContent = `pipeline ${job.pipeline}: ${(error as Error).message}`;
        return;
      }
      this.renderJob();
      void this.refresh();
      if (this.job.status === 'running') {
        window.setTimeout(() => void poll(), 2000);
      } else {
        done(this.job);
      }
    };
    window.setTimeout(() => void poll(), 1000);
  }

  private renderTags(): void {
    const cell = this.tracker.activeCell;
    const panel = this.tracker.currentWidget;
    this.title_.textContent = panel ? panel.context.path : 'Open a notebook to see its runs.';
    this.tagsNote.textContent = '';
    const tags = cell ? cellTags(cell) : [];
    for (const button of Array.from(this.tagsBox.querySelectorAll('button'))) {
      const tag = button.dataset.mlnbTag as string;
      const on = tags.includes(tag);
      button.classList.toggle('mlnb-on', on);
      button.setAttribute('aria-pressed', String(on));
      button.disabled = !cell || refusal(cell.model.type, tag) !== null;
    }
    if (!cell) {
      this.tagsNote.textContent = 'Select a code cell to tag it.';
    }
  }

  /** Read the current notebook's runs again; schedules the next refresh. */
  async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    const panel = this.tracker.currentWidget;
    if (!panel) {
      this.data = null;
      this.runsBox.replaceChildren();
      this.runsNote.textContent = '';
      return;
    }
    if (this.loading) {
      return;
    }
    this.loading = true;
    const path = panel.context.path;
    if (path !== this.etagPath) {
      this.etagPath = path;
      this.etag = null;
      this.selected.clear();
    }
    try {
      const answer = await getRuns(path, this.etag);
      this.etag = answer.etag;
      if (answer.data) {
        this.data = answer.data;
      }
      if (this.data) {
        this.renderRuns(this.data);
      }
    } catch (error) {
      const e = error as ApiError;
      this.etag = null;
      this.runsNote.textContent = e.hint ? `${e.message} (${e.hint})` : e.message;
      this.runsNote.classList.add('mlnb-error');
    } finally {
      this.loading = false;
    }
    const running = this.job !== null && this.job.status === 'running';
    if (this.isVisible || this.runActive || running || this.kernelBusy) {
      this.timer = window.setTimeout(
        () => void this.refresh(),
        refreshInterval(this.kernelBusy, this.runActive, running)
      );
    }
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  /** Open `url` (a page of the MLflow UI; null: its home) once the UI answers: started on
   * demand when it is not running. The tab opens at the click (no pop-up blocker) and
   * follows when the UI is up. */
  async openInUi(url: string | null): Promise<void> {
    const data = this.data;
    const panel = this.tracker.currentWidget;
    if (!data || !panel) {
      return;
    }
    const target = url ?? data.ui_url;
    if (!data.ui_start) {
      window.open(target, '_blank', 'noopener');
      return;
    }
    const tab = window.open('', '_blank');
    if (tab) {
      tab.document.title = 'MLflow UI';
      tab.document.body.textContent = 'Starting the MLflow UI for this project…';
    }
    this.uiButton.disabled = true;
    this.uiButton.textContent = 'Starting MLflow UI…';
    try {
      const ui = await uiWhenReady({ path: panel.context.path }, seconds => {
        const text = `Starting the MLflow UI for this project… (${seconds} s)`;
        if (tab && !tab.closed) {
          tab.document.body.textContent = text;
        }
        this.uiButton.textContent = `Starting MLflow UI… ${seconds} s`;
      });
      const page = ui.url + target.slice(data.ui_url.length);
      if (tab) {
        tab.location.href = page;
      } else {
        window.open(page, '_blank', 'noopener');
      }
      this.etag = null;
      await this.refresh();
    } catch (error) {
      tab?.close();
      const e = error as ApiError;
      this.runsNote.textContent = `MLflow UI: ${e.message} (${e.hint})`;
      this.runsNote.classList.add('mlnb-error');
    } finally {
      this.uiButton.disabled = false;
      this.uiButton.textContent = 'MLflow UI';
    }
  }

  private compareSelected(): void {
    const runs = (this.data?.runs ?? []).filter(run => this.selected.has(run.run_id));
    if (runs.length >= 2 && this.compare) {
      this.compare(runs);
    }
  }

  private renderRuns(data: RunsResponse): void {
    this.runActive = data.active;
    this.runsNote.classList.remove('mlnb-error');
    this.runsNote.textContent = data.runs.length
      ? `${data.runs.length} run(s); links open ${data.ui_url} (${data.ui_hint})`
      : 'No runs yet: run the notebook (with %load_ext mlnb) to record one.';
    this.uiButton.title = data.ui_start
      ? 'Start the MLflow UI on this project and open it'
      : `Open ${data.ui_url}`;
    const listed = new Set(data.runs.map(run => run.run_id));
    for (const id of Array.from(this.selected)) {
      if (!listed.has(id)) {
        this.selected.delete(id);
      }
    }
    const params = differingKeys(data.runs.map(run => run.params));
    const metrics = differingKeys(data.runs.map(run => run.metrics));
    const now = Date.now();
    const current = data.runs.find(run => run.status === 'RUNNING' && !run.parent_run_id);
    this.runsBox.replaceChildren(
      ...data.runs.map(run => {
        const state = runState(run, run === current, this.kernelBusy, data.idle_timeout, now);
        return this.renderRun(run, state, params, metrics);
      })
    );
    this.updateCompare();
  }

  private renderRun(
    run: RunSummary,
    state: RunState,
    differingParams: Set<string>,
    differingMetrics: Set<string>
  ): HTMLLIElement {
    const item = el('li', `mlnb-run mlnb-status-${run.status.toLowerCase()} mlnb-state-${state.kind}`);
    item.dataset.runId = run.run_id;
    const head = el('div', 'mlnb-run-head');
    const tick = el('input', 'mlnb-run-select');
    tick.type = 'checkbox';
    tick.checked = this.selected.has(run.run_id);
    tick.title = 'Tick to compare';
    tick.disabled = Boolean(run.pending); // compared once it is in the tracking store
    tick.addEventListener('change', () => {
      if (tick.checked) {
        this.selected.add(run.run_id);
      } else {
        this.selected.delete(run.run_id);
      }
      this.updateCompare();
    });
    const link = el('a', 'mlnb-run-link', run.name);
    if (run.pending) {
      link.title = 'recorded in the journal; its MLflow page comes once the run reaches the store';
    } else {
      link.href = run.url;
      link.title = `${run.run_id} in the MLflow UI`;
      link.addEventListener('click', event => {
        event.preventDefault();
        void this.openInUi(run.url);
      });
    }
    const status = el('span', 'mlnb-run-status', state.label);
    status.title = run.status;
    head.append(tick, status, link, el('span', 'mlnb-run-time', state.detail));
    item.append(head);

    const names = Object.keys(run.params).sort(
      (a, b) => Number(differingParams.has(b)) - Number(differingParams.has(a))
    );
    if (names.length) {
      const box = el('div', 'mlnb-run-params');
      for (const name of names.slice(0, MAX_PARAMS)) {
        const cls = differingParams.has(name) ? 'mlnb-param mlnb-diff' : 'mlnb-param';
        const span = el('span', cls, `${name}=${run.params[name]}`);
        span.dataset.param = name;
        box.appendChild(span);
      }
      if (names.length > MAX_PARAMS) {
        const more = el('span', 'mlnb-more', `+${names.length - MAX_PARAMS}`);
        more.title = names.slice(MAX_PARAMS).map(n => `${n}=${run.params[n]}`).join('\n');
        box.appendChild(more);
      }
      item.append(box);
    }
    const metrics = el('div', 'mlnb-run-metrics');
    for (const [name, value] of keyMetrics(run.metrics, 4)) {
      const cls = differingMetrics.has(name) ? 'mlnb-metric mlnb-diff' : 'mlnb-metric';
      metrics.appendChild(el('span', cls, `${name} ${formatMetric(value)}`));
    }
    item.append(metrics);
    if (run.parent_run_id) {
      item.append(this.stepLinks(run));
    }
    return item;
  }

  /** A pipeline step's run: its executed notebook (opens in JupyterLab) and its pipeline run. */
  private stepLinks(run: RunSummary): HTMLDivElement {
    const box = el('div', 'mlnb-run-links');
    box.appendChild(el('span', 'mlnb-step-name', `step ${run.step ?? '?'}:`));
    const executed = run.executed_notebook;
    if (executed) {
      const open = el('a', 'mlnb-executed-link', 'executed notebook');
      open.href = '#';
      open.title = `Open ${executed} in JupyterLab`;
      open.addEventListener('click', event => {
        event.preventDefault();
        this.openPath?.(executed);
      });
      box.appendChild(open);
    }
    if (run.parent_url) {
      const parentUrl = run.parent_url;
      const parent = el('a', 'mlnb-parent-link', 'pipeline run');
      parent.href = parentUrl;
      parent.title = `${run.parent_run_id} in the MLflow UI`;
      parent.addEventListener('click', event => {
        event.preventDefault();
        void this.openInUi(parentUrl);
      });
      box.appendChild(parent);
    }
    return box;
  }

  private updateCompare(): void {
    const n = this.selected.size;
    this.compareButton.disabled = n < 2;
    this.compareButton.textContent = n >= 2 ? `Compare ${n}` : 'Compare';
  }

  private renderJob(): void {
    const job = this.job;
    if (!job) {
      this.jobBox.replaceChildren();
      return;
    }
    const head = el('div', `mlnb-job-head mlnb-job-${job.status}`);
    head.textContent = `pipeline ${job.pipeline}: ${job.status}`;
    const steps = el('ul', 'mlnb-job-steps');
    // live while it runs (each step's state, running cell and full run id), final at the end
    for (const step of job.progress ?? []) {
      const cell = step.state === 'running' && step.cell ? ` (${step.cell})` : '';
      const item = el('li', `mlnb-step-${step.state}`, `${step.name}: ${step.state}${cell}`);
      if (step.run_id) {
        item.title = `run ${step.run_id}`;
        item.appendChild(el('div', 'mlnb-step-run', step.run_id));
      }
      steps.appendChild(item);
    }
    if (!job.progress?.length) {
      for (const step of job.steps) {
        steps.appendChild(el('li', `mlnb-step-${step.status}`, `${step.name}: ${step.status}`));
      }
    }
    const lines = job.log.slice(-8).map(line => line.replace(/\s+/g, ' ').trim());
    const log = el('pre', 'mlnb-job-log', lines.join('\n'));
    const error = job.error ? el('div', 'mlnb-error', `${job.error.error} (${job.error.hint})`) : '';
    this.jobBox.replaceChildren(el('h3', 'mlnb-section', 'Pipeline'), head, steps, log, error);
  }
}
