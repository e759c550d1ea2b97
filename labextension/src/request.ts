/** Calls to the mlnb server extension, with errors as ApiError. */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  ApiError,
  CompareResponse,
  ExportRequest,
  ExportResponse,
  parseBody,
  parseError,
  PipelineJob,
  PipelineRequest,
  RunsResponse,
  UiRequest,
  UiResponse,
  VersionRequest,
  VersionResponse
} from './api';

export async function call<T>(
  endpoint: string,
  required: string[],
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlnb', endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(0, `cannot reach the Jupyter server: ${error}`, 'is the server running?');
  }
  const body = await response.text();
  if (!response.ok) {
    throw parseError(response.status, body);
  }
  return parseBody<T>(response.status, body, required);
}

export function post(body: unknown): RequestInit {
  return { method: 'POST', body: JSON.stringify(body) };
}

/** The runs of a notebook; null when they are unchanged since the answer tagged `etag`
 * (the server answers 304 then, and the sidebar keeps what it shows). */
export async function getRuns(
  path: string,
  etag: string | null = null
): Promise<{ data: RunsResponse | null; etag: string | null }> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlnb', `runs?path=${encodeURIComponent(path)}`);
  const init: RequestInit = etag ? { headers: { 'If-None-Match': etag } } : {};
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(0, `cannot reach the Jupyter server: ${error}`, 'is the server running?');
  }
  if (response.status === 304) {
    return { data: null, etag };
  }
  const body = await response.text();
  if (!response.ok) {
    throw parseError(response.status, body);
  }
  const data = parseBody<RunsResponse>(response.status, body, ['runs', 'active', 'ui_start']);
  return { data, etag: response.headers.get('Etag') };
}

export function compareRuns(runIds: string[]): Promise<CompareResponse> {
  const query = runIds.map(id => `run=${encodeURIComponent(id)}`).join('&');
  return call<CompareResponse>(`compare?${query}`, ['run_ids', 'html']);
}

export function startUi(request: UiRequest): Promise<UiResponse> {
  return call<UiResponse>('ui', ['url', 'started', 'ready'], post(request));
}

/** The MLflow UI of the notebook at `path` once it answers: started when it is not running,
 * then asked again every `pollMs` while it starts; `progress` hears the seconds waited. */
export async function uiWhenReady(
  request: UiRequest,
  progress: (seconds: number) => void = () => undefined,
  pollMs = 1000
): Promise<UiResponse> {
  const since = Date.now();
  let ui = await startUi(request);
  while (!ui.ready) {
    progress(Math.round((Date.now() - since) / 1000));
    await new Promise(resolve => setTimeout(resolve, pollMs));
    ui = await startUi(request);
  }
  return ui;
}

export function exportService(request: ExportRequest): Promise<ExportResponse> {
  return call<ExportResponse>('export', ['folder', 'endpoints'], post(request));
}

export function startPipeline(request: PipelineRequest): Promise<PipelineJob> {
  return call<PipelineJob>('pipelines', ['job_id', 'status'], post(request));
}

export function getPipeline(jobId: string): Promise<PipelineJob> {
  return call<PipelineJob>(`pipelines/${encodeURIComponent(jobId)}`, ['job_id', 'status']);
}

export function versionFile(request: VersionRequest): Promise<VersionResponse> {
  return call<VersionResponse>('version', ['name', 'number', 'hash'], post(request));
}
