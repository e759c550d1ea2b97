/**
 * The "mlnb" sidebar: tags of the active cell (toggle buttons), the runs of the current
 * notebook (status, key metrics, link to the MLflow UI) refreshed while a run is active, and
 * the last pipeline run started from the UI.
 */
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import {
  ApiError,
  duration,
  formatMetric,
  keyMetrics,
  PipelineJob,
  refreshInterval,
  RunsResponse
} from './api';
import { cellTags, renderBadges, toggleCellTag } from './badges';
import { getPipeline, getRuns } from './request';
import { badgeLabel, MLNB_TAGS, refusal, TAG_HELP } from './tags';

function el<K extends keyof HTMLElementTagNameMap>(
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
    runsHead.appendChild(refresh);
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
    this.renderTags();
    void this.refresh();
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
      this.runsBox.replaceChildren();
      this.runsNote.textContent = '';
      return;
    }
    if (this.loading) {
      return;
    }
    this.loading = true;
    try {
      this.renderRuns(await getRuns(panel.context.path));
    } catch (error) {
      const e = error as ApiError;
      this.runsNote.textContent = e.hint ? `${e.message} (${e.hint})` : e.message;
      this.runsNote.classList.add('mlnb-error');
    } finally {
      this.loading = false;
    }
    const running = this.job !== null && this.job.status === 'running';
    if (this.isVisible || this.runActive || running) {
      this.timer = window.setTimeout(
        () => void this.refresh(),
        refreshInterval(this.runActive, running)
      );
    }
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private renderRuns(data: RunsResponse): void {
    this.runActive = data.active;
    this.runsNote.classList.remove('mlnb-error');
    this.runsNote.textContent = data.runs.length
      ? `${data.runs.length} run(s); links open ${data.ui_url} (${data.ui_hint})`
      : 'No runs yet: run the notebook (with %load_ext mlnb) to record one.';
    const now = Date.now();
    this.runsBox.replaceChildren(
      ...data.runs.map(run => {
        const item = el('li', `mlnb-run mlnb-status-${run.status.toLowerCase()}`);
        item.dataset.runId = run.run_id;
        const head = el('div', 'mlnb-run-head');
        const link = el('a', 'mlnb-run-link', run.name);
        link.href = run.url;
        link.target = '_blank';
        link.rel = 'noopener';
        link.title = `${run.run_id} in the MLflow UI`;
        head.append(
          el('span', 'mlnb-run-status', run.status),
          link,
          el('span', 'mlnb-run-time', duration(run, now))
        );
        const metrics = el('div', 'mlnb-run-metrics');
        for (const [name, value] of keyMetrics(run.metrics)) {
          metrics.appendChild(el('span', 'mlnb-metric', `${name} ${formatMetric(value)}`));
        }
        item.append(head, metrics);
        return item;
      })
    );
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
    for (const step of job.steps) {
      steps.appendChild(el('li', `mlnb-step-${step.status}`, `${step.name}: ${step.status}`));
    }
    const lines = job.log.slice(-8).map(line => line.replace(/\s+/g, ' ').trim());
    const log = el('pre', 'mlnb-job-log', lines.join('\n'));
    const error = job.error ? el('div', 'mlnb-error', `${job.error.error} (${job.error.hint})`) : '';
    this.jobBox.replaceChildren(el('h3', 'mlnb-section', 'Pipeline'), head, steps, log, error);
  }
}
