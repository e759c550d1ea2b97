/**
 * The pipeline panel (a main-area tab): the DAG of a pipeline.yaml, each step a box coloured
 * by its state and updated live while the pipeline runs; each step's executed notebook and
 * MLflow run (full id, copy, link); the pipeline's past runs; its cron schedules (UTC).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Clipboard, IFrame, MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ApiError, HistoryRun, PipelineGraph, PipelineJob, ScheduleInfo } from './api';
import { formatSeconds, formatUtc, layout, NEVER_RAN, resultState, runSummary } from './dag';
import {
  addSchedule,
  executedNotebookUrl,
  getGraph,
  getHistory,
  getSchedules,
  removeSchedule
} from './pipelineRequest';
import { getPipeline, startPipeline } from './request';
import { el } from './sidebar';

const SVG = 'http://www.w3.org/2000/svg';
const POLL_MS = 700;

function message(error: unknown): string {
  if (error instanceof ApiError) {
    return error.hint ? `${error.message}. ${error.hint}` : error.message;
  }
  return String(error);
}

/** What a step's box and row show. */
interface StepView {
  state: string;
  detail: string;
  cell: string | null;
  runId: string | null;
  url: string | null;
  notebook: string | null;
}

/** Opens a step's executed notebook (read-only, as mlnb renders it) in a main-area tab. */
export function openExecutedNotebook(app: JupyterFrontEnd, path: string, title: string): void {
  const frame = new IFrame({ sandbox: ['allow-same-origin'] });
  frame.url = executedNotebookUrl(path);
  const widget = new MainAreaWidget({ content: frame });
  widget.id = `mlnb-executed-${path.replace(/[^\w-]/g, '_')}`;
  widget.addClass('mlnb-executed-notebook');
  widget.title.label = title;
  widget.title.caption = `${path} (executed, read-only)`;
  widget.title.closable = true;
  app.shell.add(widget, 'main', { mode: 'split-right' });
  app.shell.activateById(widget.id);
}

export class PipelinePanel extends Widget {
  readonly path: string;
  private readonly app: JupyterFrontEnd;
  private graph: PipelineGraph | null = null;
  private job: PipelineJob | null = null;
  private viewing: HistoryRun | null = null;
  private runs: HistoryRun[] = [];
  private timer: number | undefined;

  private readonly heading = el('h2', 'mlnb-pipeline-title', 'Pipeline');
  private readonly status = el('div', 'mlnb-pipeline-status');
  private readonly runButton = el('button', 'jp-Button mlnb-pipeline-run', 'Run pipeline');
  private readonly viewNote = el('div', 'mlnb-pipeline-viewing');
  private readonly dag = el('div', 'mlnb-dag');
  private readonly steps = el('table', 'mlnb-pipeline-steps');
  private readonly history = el('ul', 'mlnb-history');
  private readonly cronInput = el('input', 'jp-mod-styled mlnb-cron-input');
  private readonly cronError = el('div', 'mlnb-schedule-error');
  private readonly scheduleList = el('ul', 'mlnb-schedules');
  private readonly scheduleHint = el('div', 'mlnb-note');

  constructor(app: JupyterFrontEnd, path: string) {
    super();
    this.app = app;
    this.path = path;
    this.addClass('mlnb-pipeline-panel');
    this.node.tabIndex = -1;

    const refresh = el('button', 'jp-Button mlnb-pipeline-refresh', 'Refresh');
    refresh.addEventListener('click', () => void this.reload());
    this.runButton.addEventListener('click', () => void this.run());
    const bar = el('div', 'mlnb-pipeline-bar');
    bar.append(this.runButton, refresh, this.status);

    const form = el('form', 'mlnb-schedule-form');
    this.cronInput.placeholder = '*/15 * * * *';
    this.cronInput.setAttribute('aria-label', 'cron expression (UTC)');
    const add = el('button', 'jp-Button mlnb-schedule-add', 'Add schedule');
    add.type = 'submit';
    form.append(el('label', 'mlnb-cron-label', 'Cron (UTC)'), this.cronInput, add);
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this.schedule();
    });

    this.node.append(
      this.heading,
      bar,
      this.viewNote,
      this.dag,
      el('h3', 'mlnb-section', 'Steps'),
      this.steps,
      el('h3', 'mlnb-section', 'Runs of this pipeline'),
      this.history,
      el('h3', 'mlnb-section', 'Schedules'),
      form,
      this.cronError,
      this.scheduleList,
      this.scheduleHint
    );
  }

  /** Reads the DAG, the history and the schedules again; follows a run still going. */
  async reload(): Promise<void> {
    try {
      this.graph = await getGraph(this.path);
    } catch (error) {
      this.status.textContent = message(error);
      this.status.dataset.state = 'failed';
      return;
    }
    this.title.label = `Pipeline ${this.graph.name}`;
    this.heading.textContent = `Pipeline ${this.graph.name} · ${this.graph.pipeline}`;
    if (this.graph.job_id && this.job?.job_id !== this.graph.job_id) {
      void this.follow(this.graph.job_id);
    }
    this.render();
    await Promise.all([this.loadHistory(), this.loadSchedules()]);
  }

  /** Starts a run of the pipeline and follows it. */
  async run(): Promise<void> {
    try {
      const job = await startPipeline({ path: this.path });
      await this.follow(job.job_id, job);
    } catch (error) {
      this.status.textContent = message(error);
      this.status.dataset.state = 'failed';
    }
  }

  /** Follows the run `jobId` (started here, from the toolbar or another tab) until it ends. */
  async follow(jobId: string, first?: PipelineJob): Promise<void> {
    window.clearTimeout(this.timer);
    this.viewing = null;
    this.job = first ?? null;
    const poll = async (): Promise<void> => {
      try {
        this.job = await getPipeline(jobId);
      } catch (error) {
        this.status.textContent = message(error);
        return;
      }
      this.render();
      if (this.job.status === 'running' && !this.isDisposed) {
        this.timer = window.setTimeout(() => void poll(), POLL_MS);
      } else {
        await this.reload();
      }
    };
    this.render();
    await poll();
  }

  protected onCloseRequest(msg: any): void {
    window.clearTimeout(this.timer);
    super.onCloseRequest(msg);
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  private view(name: string): StepView {
    if (this.viewing) {
      const step = this.viewing.steps.find(s => s.name === name);
      return {
        state: resultState(step?.status),
        detail: step ? (step.error ?? formatSeconds(step.seconds)) : 'not in this run',
        cell: null,
        runId: step?.run_id ?? null,
        url: step?.url ?? null,
        notebook: step?.notebook ?? null
      };
    }
    const live = this.job?.progress.find(p => p.name === name);
    if (live) {
      return {
        state: live.state,
        detail: live.message ?? live.state,
        cell: live.state === 'running' ? live.cell : null,
        runId: live.run_id,
        url: live.url,
        notebook: live.notebook
      };
    }
    const node = this.graph?.steps.find(s => s.name === name);
    return {
      state: resultState(node?.last_status),
      detail: node?.up_to_date ? 'up to date' : (node?.reasons[0] ?? 'never ran'),
      cell: null,
      runId: node?.last_run_id ?? null,
      url: node?.last_url ?? null,
      notebook: node?.last_notebook ?? null
    };
  }

  private render(): void {
    if (!this.graph) {
      return;
    }
    const running = this.job?.status === 'running';
    this.runButton.disabled = running;
    if (this.viewing) {
      this.status.textContent = '';
    } else if (this.job) {
      const why = this.job.error ? `: ${this.job.error.error}` : '';
      this.status.textContent = `run ${this.job.status}${why}`;
      this.status.dataset.state = this.job.status;
    } else {
      this.status.textContent = this.graph.schedule ? `spec schedule: ${this.graph.schedule}` : '';
      delete this.status.dataset.state;
    }
    this.renderViewing();
    this.renderDag();
    this.renderSteps();
  }

  private renderViewing(): void {
    this.viewNote.replaceChildren();
    if (!this.viewing) {
      return;
    }
    const run = this.viewing;
    this.viewNote.append(
      `Run of ${formatUtc(run.started_at)}: ${run.status} · final states of its steps `
    );
    const back = el('button', 'jp-Button mlnb-pipeline-live', 'Back to the current state');
    back.addEventListener('click', () => {
      this.viewing = null;
      this.renderHistory();
      this.render();
    });
    this.viewNote.appendChild(back);
  }

  private renderDag(): void {
    const graph = this.graph!;
    const shape = layout(graph.steps);
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'mlnb-dag-edges');
    svg.setAttribute('width', String(shape.width));
    svg.setAttribute('height', String(shape.height));
    const defs = document.createElementNS(SVG, 'defs');
    defs.innerHTML =
      '<marker id="mlnb-dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" ' +
      'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>';
    svg.appendChild(defs);
    for (const edge of shape.edges) {
      const path = document.createElementNS(SVG, 'path');
      path.setAttribute('d', edge.d);
      path.setAttribute('class', 'mlnb-dag-edge');
      path.setAttribute('marker-end', 'url(#mlnb-dag-arrow)');
      path.dataset.from = edge.from;
      path.dataset.to = edge.to;
      svg.appendChild(path);
    }
    const canvas = el('div', 'mlnb-dag-canvas');
    canvas.style.width = `${shape.width}px`;
    canvas.style.height = `${shape.height}px`;
    canvas.appendChild(svg);
    for (const node of shape.nodes) {
      const view = this.view(node.name);
      const box = el('div', 'mlnb-dag-step');
      box.dataset.step = node.name;
      box.dataset.state = view.state;
      Object.assign(box.style, {
        left: `${node.x}px`,
        top: `${node.y}px`,
        width: `${node.width}px`,
        height: `${node.height}px`
      });
      box.title = `${node.name}: ${view.state}${view.detail ? ` (${view.detail})` : ''}`;
      box.append(
        el('div', 'mlnb-dag-name', node.name),
        el('div', 'mlnb-dag-state', view.state === NEVER_RAN ? 'not run yet' : view.state),
        el('div', 'mlnb-dag-cell', view.cell ? `cell ${view.cell}` : '')
      );
      box.addEventListener('click', () => {
        const row = this.steps.querySelector(`tr[data-step="${CSS.escape(node.name)}"]`);
        row?.scrollIntoView({ block: 'nearest' });
      });
      canvas.appendChild(box);
    }
    this.dag.replaceChildren(canvas);
  }

  private renderSteps(): void {
    const graph = this.graph!;
    const head = el('tr', 'mlnb-step-head');
    for (const label of ['Step', 'State', 'Notebook', 'MLflow run']) {
      head.appendChild(el('th', '', label));
    }
    const rows: HTMLElement[] = [head];
    for (const step of graph.steps) {
      const view = this.view(step.name);
      const row = el('tr', 'mlnb-step-row');
      row.dataset.step = step.name;
      row.dataset.state = view.state;
      const state = el('td', 'mlnb-step-state');
      state.append(el('span', 'mlnb-state-dot'), `${view.state === NEVER_RAN ? 'not run' : view.state}`);
      if (view.detail && view.detail !== view.state) {
        state.appendChild(el('div', 'mlnb-step-detail', view.detail));
      }
      const notebooks = el('td', 'mlnb-step-notebooks');
      const source = el('a', 'mlnb-step-source', step.notebook);
      source.href = '#';
      source.title = 'Open the source notebook';
      source.addEventListener('click', event => {
        event.preventDefault();
        void this.app.commands.execute('docmanager:open', { path: step.notebook });
      });
      notebooks.appendChild(source);
      if (view.notebook) {
        const executed = el('a', 'mlnb-step-notebook', 'executed notebook');
        const shown = view.notebook;
        executed.href = '#';
        executed.title = shown;
        executed.addEventListener('click', event => {
          event.preventDefault();
          openExecutedNotebook(this.app, shown, `${step.name} (executed)`);
        });
        notebooks.append(' · ', executed);
      }
      row.append(el('td', 'mlnb-step-name', step.name), state, notebooks, this.runCell(view));
      rows.push(row);
    }
    this.steps.replaceChildren(...rows);
  }

  private runCell(view: StepView): HTMLElement {
    const cell = el('td', 'mlnb-step-run');
    if (!view.runId) {
      return cell;
    }
    const id = el('code', 'mlnb-run-id', view.runId);
    const copy = el('button', 'jp-Button mlnb-copy', 'Copy');
    const runId = view.runId;
    copy.title = 'Copy the run id';
    copy.addEventListener('click', () => {
      Clipboard.copyToSystem(runId);
      copy.textContent = 'Copied';
    });
    cell.append(id, copy);
    if (view.url) {
      const link = el('a', 'mlnb-run-link', 'MLflow');
      link.href = view.url;
      link.target = '_blank';
      link.rel = 'noopener';
      link.title = this.graph?.ui_hint ?? '';
      cell.appendChild(link);
    }
    return cell;
  }

  private async loadHistory(): Promise<void> {
    try {
      this.runs = (await getHistory(this.path)).runs;
    } catch (error) {
      this.history.replaceChildren(el('li', 'mlnb-note', message(error)));
      return;
    }
    this.renderHistory();
  }

  private renderHistory(): void {
    if (!this.runs.length) {
      this.history.replaceChildren(el('li', 'mlnb-note', 'No runs yet: Run pipeline starts one.'));
      return;
    }
    this.history.replaceChildren(
      ...this.runs.map(run => {
        const item = el('li', 'mlnb-history-run');
        item.dataset.status = run.status;
        item.tabIndex = 0;
        if (this.viewing === run) {
          item.classList.add('mlnb-mod-selected');
        }
        const took = formatSeconds(run.finished_at - run.started_at);
        const summary = runSummary(run.steps.map(s => s.status));
        item.append(
          el('span', 'mlnb-history-when', formatUtc(run.started_at)),
          el('span', 'mlnb-history-status', run.status),
          el('span', 'mlnb-history-took', took),
          el('span', 'mlnb-history-steps', summary),
          el('code', 'mlnb-run-id', run.run_id ?? 'nothing to run')
        );
        const show = (): void => {
          this.viewing = run;
          this.renderHistory();
          this.render();
        };
        item.addEventListener('click', show);
        item.addEventListener('keydown', event => {
          if (event.key === 'Enter') {
            show();
          }
        });
        return item;
      })
    );
  }

  private async loadSchedules(): Promise<void> {
    try {
      const answer = await getSchedules(this.path);
      this.renderSchedules(answer.schedules);
      this.scheduleHint.textContent = answer.scheduler_hint;
    } catch (error) {
      this.cronError.textContent = message(error);
    }
  }

  private renderSchedules(schedules: ScheduleInfo[]): void {
    if (!schedules.length) {
      this.scheduleList.replaceChildren(el('li', 'mlnb-note', 'No schedules.'));
      return;
    }
    this.scheduleList.replaceChildren(
      ...schedules.map(schedule => {
        const item = el('li', 'mlnb-schedule');
        item.dataset.id = schedule.id;
        const next = schedule.next_run ? `next ${schedule.next_run.replace('T', ' ')}` : '';
        const remove = el('button', 'jp-Button mlnb-schedule-remove', 'Remove');
        remove.addEventListener('click', async () => {
          try {
            this.renderSchedules((await removeSchedule(schedule.id, this.path)).schedules);
          } catch (error) {
            this.cronError.textContent = message(error);
          }
        });
        item.append(
          el('code', 'mlnb-schedule-cron', schedule.cron),
          el('span', 'mlnb-schedule-next', next),
          el('span', 'mlnb-schedule-id', schedule.id),
          remove
        );
        return item;
      })
    );
  }

  private async schedule(): Promise<void> {
    this.cronError.textContent = '';
    try {
      const answer = await addSchedule({ path: this.path, cron: this.cronInput.value });
      this.renderSchedules(answer.schedules);
      this.cronInput.value = '';
    } catch (error) {
      this.cronError.textContent = message(error);
    }
  }
}

/** The panel of the pipeline `path` in a main-area tab (the open one if there is one). */
export function openPipelinePanel(
  app: JupyterFrontEnd,
  path: string,
  jobId?: string
): MainAreaWidget<PipelinePanel> {
  const id = `mlnb-pipeline-${path.replace(/[^\w-]/g, '_')}`;
  for (const widget of app.shell.widgets('main')) {
    if (widget.id === id) {
      const open = widget as MainAreaWidget<PipelinePanel>;
      app.shell.activateById(id);
      if (jobId) {
        void open.content.follow(jobId);
      }
      return open;
    }
  }
  const panel = new PipelinePanel(app, path);
  const widget = new MainAreaWidget({ content: panel });
  widget.id = id;
  widget.title.label = 'Pipeline';
  widget.title.caption = path;
  widget.title.closable = true;
  panel.title.changed.connect(() => {
    widget.title.label = panel.title.label;
  });
  app.shell.add(widget, 'main');
  app.shell.activateById(id);
  void panel.reload().then(() => (jobId ? panel.follow(jobId) : undefined));
  return widget;
}
