/**
 * Runs side by side in the main area: the comparison `%mlnb compare` shows (params with
 * the differing ones highlighted, latest metrics, a chart per metric), read from
 * GET /mlnb/compare, which renders it with mlnb.widgets.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ApiError, RunSummary } from './api';
import { compareRuns } from './request';
import { MlnbSidebar } from './sidebar';

export class ComparePanel extends Widget {
  readonly runIds: string[];
  private readonly body = document.createElement('div');
  private readonly note = document.createElement('div');

  constructor(runs: RunSummary[]) {
    super();
    this.runIds = runs.map(run => run.run_id);
    this.addClass('mlnb-compare-panel');
    this.note.className = 'mlnb-note';
    this.note.textContent = `Comparing ${runs.map(run => run.name).join(', ')}…`;
    this.body.className = 'mlnb-compare-body';
    const refresh = document.createElement('button');
    refresh.className = 'jp-Button mlnb-refresh';
    refresh.textContent = 'Refresh';
    refresh.title = 'Read the runs again (their metrics may have grown)';
    refresh.addEventListener('click', () => void this.load());
    const head = document.createElement('div');
    head.className = 'mlnb-compare-head';
    head.append(this.note, refresh);
    this.node.append(head, this.body);
    void this.load();
  }

  async load(): Promise<void> {
    try {
      const result = await compareRuns(this.runIds);
      const differ = result.differing_params.length
        ? `params that differ: ${result.differing_params.join(', ')}`
        : 'all params equal';
      this.note.textContent = `${result.run_ids.length} runs; ${differ}`;
      this.note.classList.remove('mlnb-error');
      // mlnb's own HTML (mlnb.widgets escapes every name and value it puts in)
      this.body.innerHTML = result.html;
    } catch (error) {
      const e = error as ApiError;
      this.note.textContent = e.hint ? `${e.message} (${e.hint})` : e.message;
      this.note.classList.add('mlnb-error');
    }
  }
}

/** The sidebar's Compare button opens a ComparePanel (one per set of runs) and its step
 * links open executed notebooks in JupyterLab. */
export function connectSidebar(app: JupyterFrontEnd, sidebar: MlnbSidebar): void {
  const open = new Map<string, MainAreaWidget<ComparePanel>>();
  sidebar.compare = (runs: RunSummary[]) => {
    const key = runs
      .map(run => run.run_id)
      .sort()
      .join(',');
    const shown = open.get(key);
    if (shown && !shown.isDisposed) {
      void shown.content.load();
      app.shell.activateById(shown.id);
      return;
    }
    const widget = new MainAreaWidget({ content: new ComparePanel(runs) });
    widget.id = `mlnb-compare-${open.size + 1}-${Date.now()}`;
    widget.title.label = `Compare ${runs.length} runs`;
    widget.title.caption = runs.map(run => `${run.name} (${run.run_id})`).join('\n');
    widget.title.closable = true;
    widget.addClass('mlnb-compare-widget');
    open.set(key, widget);
    app.shell.add(widget, 'main');
    app.shell.activateById(widget.id);
  };
  sidebar.openPath = (path: string) => {
    void app.commands.execute('docmanager:open', { path });
  };
}
