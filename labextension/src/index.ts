/**
 * mlnb in JupyterLab 4: cell tags with badges, a sidebar of the notebook's runs, and the
 * commands "Export as service", "Run pipeline" and "Version this file". The logic is in the
 * Python library; this extension calls it through mlnb.labserver's REST API.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  CommandToolbarButton,
  Dialog,
  ICommandPalette,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { ApiError, PipelineJob, VersionResponse } from './api';
import { cellTags, trackBadges } from './badges';
import { showExported, showExportFailure } from './export';
import { exportService, startPipeline, versionFile } from './request';
import { openPipelinePanel } from './pipeline';
import { MlnbSidebar } from './sidebar';
import { badgeLabel, MLNB_TAGS, TAG_HELP } from './tags';
import { connectSidebar } from './compare';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><path d="M3 5h8v2H3zm0 6h8v2H3zm0 6h8v2H3z"/>
<path d="M14 4h7v16h-7zm2 2v12h3V6z"/></g></svg>`;
const mlnbIcon = new LabIcon({ name: 'mlnb:icon', svgstr: ICON_SVG });

namespace CommandIDs {
  export const toggleTag = 'mlnb:toggle-tag';
  export const exportService = 'mlnb:export-service';
  export const runPipeline = 'mlnb:run-pipeline';
  export const versionFile = 'mlnb:version-file';
  export const showSidebar = 'mlnb:show-sidebar';
  export const openPipeline = 'mlnb:open-pipeline';
}

function text(lines: (string | null | undefined)[], className: string): Widget {
  const node = document.createElement('div');
  node.className = className;
  for (const line of lines) {
    if (line) {
      const p = document.createElement('p');
      p.textContent = line;
      node.appendChild(p);
    }
  }
  return new Widget({ node });
}

async function showFailure(title: string, error: unknown): Promise<void> {
  const e = error instanceof ApiError ? error : new ApiError(0, String(error), '');
  await showDialog({
    title,
    body: text([e.message, e.hint ? `Hint: ${e.hint}` : ''], 'mlnb-dialog mlnb-error-dialog'),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

function versionBody(result: VersionResponse): Widget {
  const size = result.size === null ? '' : `, ${result.size.toLocaleString()} bytes`;
  return text(
    [`${result.name}@${result.number}`, `${result.kind}${size}`, `BLAKE3 ${result.hash}`],
    'mlnb-dialog mlnb-version-result'
  );
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlnb:plugin',
  description: 'mlnb: cell tags, runs of the notebook, export and pipeline commands',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IDefaultFileBrowser],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    fileBrowser: IDefaultFileBrowser | null
  ) => {
    const { commands, shell } = app;
    const sidebar = new MlnbSidebar(tracker);
    sidebar.title.icon = mlnbIcon;
    shell.add(sidebar, 'left', { rank: 600 });
    connectSidebar(app, sidebar);

    tracker.widgetAdded.connect((_, panel: NotebookPanel) => trackBadges(panel));

    const notebookPath = (): string | null => tracker.currentWidget?.context.path ?? null;
    const hasNotebook = (): boolean => tracker.currentWidget !== null;

    commands.addCommand(CommandIDs.toggleTag, {
      label: args => {
        const tag = String(args.tag ?? '');
        return args.isPalette ? `Toggle cell tag ${tag}` : badgeLabel(tag);
      },
      caption: args => `${args.tag}: ${TAG_HELP[String(args.tag)] ?? ''}`,
      isEnabled: () => tracker.activeCell?.model.type === 'code',
      isToggled: args => {
        const cell = tracker.activeCell;
        return cell ? cellTags(cell).includes(String(args.tag)) : false;
      },
      execute: args => sidebar.toggle(String(args.tag))
    });

    commands.addCommand(CommandIDs.exportService, {
      label: 'Export as service',
      caption: "Export the notebook's mlnb:export cells as a service, check it, and start it",
      isEnabled: hasNotebook,
      execute: async () => {
        const panel = tracker.currentWidget;
        if (!panel) {
          return;
        }
        if (panel.context.model.dirty) {
          await panel.context.save();
        }
        const note = Notification.emit(`Exporting ${panel.context.path}…`, 'in-progress', {
          autoClose: false
        });
        try {
          const result = await exportService({ path: panel.context.path, serve: true });
          Notification.dismiss(note);
          await showExported(result);
        } catch (error) {
          Notification.dismiss(note);
          await showExportFailure(panel, error, id => shell.activateById(id));
        }
      }
    });

    commands.addCommand(CommandIDs.runPipeline, {
      label: 'Run pipeline',
      caption: 'Run the pipeline.yaml next to this notebook (mlnb pipeline run)',
      isEnabled: hasNotebook,
      execute: async () => {
        const path = notebookPath();
        if (!path) {
          return;
        }
        try {
          const job = await startPipeline({ path });
          openPipelinePanel(app, job.pipeline, job.job_id); // the DAG, live
          app.shell.activateById(sidebar.id);
          Notification.info(`Pipeline ${job.pipeline} started`, { autoClose: 3000 });
          sidebar.followJob(job, (done: PipelineJob) => {
            if (done.status === 'succeeded') {
              Notification.success(`Pipeline ${done.pipeline} succeeded`, { autoClose: 5000 });
            } else {
              const why = done.error ? `: ${done.error.error}` : '';
              Notification.error(`Pipeline ${done.pipeline} failed${why}`, { autoClose: false });
            }
          });
        } catch (error) {
          await showFailure('Run pipeline failed', error);
        }
      }
    });

    commands.addCommand(CommandIDs.versionFile, {
      label: 'Version this file',
      caption: 'Version the file or folder by content (mlnb version)',
      icon: mlnbIcon,
      execute: async () => {
        const item = fileBrowser?.selectedItems().next();
        const path = item && !item.done ? item.value.path : notebookPath();
        if (!path) {
          return;
        }
        try {
          const result = await versionFile({ path });
          await showDialog({
            title: 'Versioned',
            body: versionBody(result),
            buttons: [Dialog.okButton({ label: 'Close' })]
          });
        } catch (error) {
          await showFailure('Version failed', error);
        }
      }
    });

    commands.addCommand(CommandIDs.showSidebar, {
      label: 'Show the mlnb sidebar',
      execute: () => app.shell.activateById(sidebar.id)
    });

    // the pipeline panel: a pipeline.yaml from the file browser, else the current notebook's
    const isPipelineFile = (name: string): boolean => /\.ya?ml$/.test(name);
    const selectedFile = (): string | null => {
      const item = fileBrowser?.selectedItems().next();
      return item && !item.done ? item.value.path : null;
    };
    commands.addCommand(CommandIDs.openPipeline, {
      label: 'Open pipeline',
      caption: 'Show the DAG of a pipeline.yaml: step states (live), runs, history, schedules',
      // in the file browser's menu only on a .yaml; from the palette, always
      isVisible: args => !args.fromFileBrowser || isPipelineFile(selectedFile() ?? ''),
      execute: args => {
        const selected = selectedFile();
        const yaml = selected && isPipelineFile(selected) ? selected : null;
        const path =
          String(args.path ?? '') || (args.fromFileBrowser ? yaml : (notebookPath() ?? yaml));
        if (!path) {
          void showFailure(
            'Open pipeline',
            'open a notebook next to a pipeline.yaml, or right-click a pipeline.yaml'
          );
          return;
        }
        openPipelinePanel(app, path);
      }
    });
    app.contextMenu.addItem({
      command: CommandIDs.openPipeline,
      args: { fromFileBrowser: true },
      selector: '.jp-DirListing-item[data-isdir="false"]',
      rank: 21
    });

    app.contextMenu.addItem({
      command: CommandIDs.versionFile,
      selector: '.jp-DirListing-item[data-isdir]',
      rank: 20
    });
    for (const tag of MLNB_TAGS) {
      app.contextMenu.addItem({
        command: CommandIDs.toggleTag,
        args: { tag },
        selector: '.jp-Notebook .jp-Cell.jp-CodeCell',
        rank: 30
      });
    }

    if (palette) {
      const category = 'mlnb';
      for (const command of [
        CommandIDs.exportService,
        CommandIDs.runPipeline,
        CommandIDs.versionFile,
        CommandIDs.showSidebar,
        CommandIDs.openPipeline
      ]) {
        palette.addItem({ command, category });
      }
      for (const tag of MLNB_TAGS) {
        palette.addItem({ command: CommandIDs.toggleTag, category, args: { tag, isPalette: true } });
      }
    }

    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const exportButton = new CommandToolbarButton({
          commands,
          id: CommandIDs.exportService,
          label: 'Export as service'
        });
        const pipelineButton = new CommandToolbarButton({
          commands,
          id: CommandIDs.runPipeline,
          label: 'Run pipeline'
        });
        exportButton.addClass('mlnb-toolbar-export');
        pipelineButton.addClass('mlnb-toolbar-pipeline');
        panel.toolbar.insertAfter('cellType', 'mlnb-export', exportButton);
        panel.toolbar.insertAfter('mlnb-export', 'mlnb-pipeline', pipelineButton);
      }
    });
  }
};

export default plugin;
