/** Calls to the mlnb server extension, with errors as ApiError. */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  ApiError,
  ExportRequest,
  ExportResponse,
  parseBody,
  parseError,
  PipelineJob,
  PipelineRequest,
  RunsResponse,
  VersionRequest,
  VersionResponse
} from './api';

async function call<T>(
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

function post(body: unknown): RequestInit {
  return { method: 'POST', body: JSON.stringify(body) };
}

export function getRuns(path: string): Promise<RunsResponse> {
  return call<RunsResponse>(`runs?path=${encodeURIComponent(path)}`, ['runs', 'active']);
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
