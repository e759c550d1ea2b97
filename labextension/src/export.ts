/**
 * "Export as service": the dialog of a finished export (the pinned model's run, the
 * service's links) and of a failed one (the cause first, then what it stopped, and a
 * "Go to cell" button that makes the cell the error names the active cell).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { ApiError, ExportResponse } from './api';
import { exportLines } from './exportText';

function paragraphs(lines: string[], className: string): Widget {
  const node = document.createElement('div');
  node.className = className;
  for (const line of lines) {
    const p = document.createElement('p');
    p.textContent = line;
    node.appendChild(p);
  }
  return new Widget({ node });
}

function link(href: string, label: string, className: string): HTMLAnchorElement {
  const a = document.createElement('a');
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener';
  a.className = className;
  a.textContent = label;
  return a;
}

export function exportBody(result: ExportResponse): Widget {
  const widget = paragraphs(exportLines(result), 'mlnb-dialog mlnb-export-result');
  for (const model of result.models) {
    if (model.run_url) {
      const name = model.run_name ?? model.run_id ?? 'run';
      widget.node.appendChild(
        link(model.run_url, `Open run "${name}" in MLflow`, 'mlnb-run-link')
      );
    }
  }
  if (result.service_url) {
    widget.node.appendChild(
      link(`${result.service_url}/docs`, 'Open the service docs', 'mlnb-service-link')
    );
  }
  return widget;
}

export async function showExported(result: ExportResponse): Promise<void> {
  await showDialog({
    title: 'Exported as a service',
    body: exportBody(result),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

/** Make cell `index` (from 0) of the notebook the active cell and scroll it into view. */
export async function goToCell(panel: NotebookPanel, index: number): Promise<void> {
  const notebook = panel.content;
  if (index < 0 || index >= notebook.widgets.length) {
    return;
  }
  notebook.mode = 'command';
  notebook.activeCellIndex = index;
  notebook.deselectAll();
  await notebook.scrollToItem(index, 'center');
  notebook.activate();
}

/** The failed export: the error (its cause first), what to do, and "Go to cell". */
export async function showExportFailure(
  panel: NotebookPanel | null,
  error: unknown,
  activate: (id: string) => void
): Promise<void> {
  const e = error instanceof ApiError ? error : new ApiError(0, String(error), '');
  const hint = e.hint ? `${e.hint[0].toUpperCase()}${e.hint.slice(1)}` : '';
  const body = paragraphs(
    [e.message, hint && !/[.!?]$/.test(hint) ? `${hint}.` : hint].filter(l => l),
    'mlnb-dialog mlnb-error-dialog'
  );
  body.node.firstElementChild?.classList.add('mlnb-error-cause');
  const canGo = panel !== null && e.cell !== null && !panel.isDisposed;
  const buttons = [Dialog.cancelButton({ label: 'Close' })];
  if (canGo) {
    buttons.push(Dialog.okButton({ label: `Go to cell ${(e.cell ?? 0) + 1}` }));
  }
  const result = await showDialog({ title: 'Export failed', body, buttons });
  if (canGo && result.button.accept && panel && e.cell !== null) {
    activate(panel.id);
    await goToCell(panel, e.cell);
  }
}
