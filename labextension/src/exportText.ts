/**
 * The text of the export dialogs (no JupyterLab imports: Jest tests this file).
 */
import { ExportResponse, ModelInfo } from './api';

/** `run "lr-C10" (3f2a9c1b…), params C=10, max_iter=200` for the run a model came from. */
export function modelRun(model: ModelInfo, maxParams = 8): string {
  if (!model.run_id) {
    return 'logged outside an MLflow run (no run recorded)';
  }
  const id = model.run_id.slice(0, 8);
  const name = model.run_name ? `run "${model.run_name}" (${id}…)` : `run ${id}…`;
  const params = Object.entries(model.run_params);
  if (model.run_url === null) {
    return `${name}, not found in this project's tracking store`;
  }
  if (!params.length) {
    return `${name}, no params logged`;
  }
  const shown = params.slice(0, maxParams).map(([k, v]) => `${k}=${v}`);
  const more = params.length > maxParams ? ` and ${params.length - maxParams} more` : '';
  return `${name}, params ${shown.join(', ')}${more}`;
}

/** The lines of the success dialog, before the links. */
export function exportLines(result: ExportResponse): string[] {
  return [
    `Exported to ${result.folder}`,
    ...result.models.flatMap(m => [
      `model ${m.resolved}, pinned as ${m.path} (${m.hash.slice(0, 12)})`,
      `  from ${modelRun(m)}`
    ]),
    ...result.endpoints.map(e => `POST ${e.path} (${e.kind}, from ${e.function})`),
    ...result.verified.map(p => `verified POST ${p} with the example`),
    result.service_url
      ? `Service running at ${result.service_url} (docs: ${result.service_url}/docs)`
      : `Serve it: ${result.serve_command}`,
    result.port_note ? `Note: ${result.port_note}` : ''
  ].filter(line => line);
}
