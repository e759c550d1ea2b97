/**
 * Shapes of mlnb's REST API under /mlnb/ (the server side is mlnb/labserver/_models.py).
 *
 * Keep these interfaces field for field in step with the pydantic models:
 * tests/lab/test_api_contract.py parses this file and fails when they drift apart.
 * Fields with a default are optional in requests (`name?:`); response fields are always
 * present (`null` when there is nothing). No JupyterLab imports here: Jest tests this file.
 */

export interface ErrorResponse {
  error: string;
  hint: string;
}

export interface RunSummary {
  run_id: string;
  name: string;
  status: string;
  experiment_id: string;
  start_time: number | null;
  end_time: number | null;
  metrics: Record<string, number>;
  params: Record<string, string>;
  url: string;
}

export interface RunsResponse {
  notebook: string;
  tracking_uri: string;
  ui_url: string;
  ui_hint: string;
  active: boolean;
  runs: RunSummary[];
}

export interface ExportRequest {
  path: string;
  output?: string | null;
  force?: boolean;
  serve?: boolean;
  allow_pickle?: boolean;
}

export interface EndpointInfo {
  path: string;
  function: string;
  kind: string;
}

export interface ModelInfo {
  resolved: string;
  path: string;
  hash: string;
}

export interface ExportResponse {
  folder: string;
  endpoints: EndpointInfo[];
  models: ModelInfo[];
  verified: string[];
  serve_command: string;
  service_url: string | null;
}

export interface PipelineRequest {
  path: string;
  force?: boolean;
  workers?: number;
}

export interface StepState {
  name: string;
  status: string;
  run_id: string | null;
  error: string | null;
}

export interface PipelineJob {
  job_id: string;
  pipeline: string;
  status: string;
  run_id: string | null;
  steps: StepState[];
  log: string[];
  error: ErrorResponse | null;
}

export interface VersionRequest {
  path: string;
  name?: string | null;
}

export interface VersionResponse {
  name: string;
  number: number;
  hash: string;
  kind: string;
  size: number | null;
}

/** An error answered by the server (or the network), ready to show in a dialog. */
export class ApiError extends Error {
  readonly status: number;
  readonly hint: string;

  constructor(status: number, error: string, hint: string) {
    super(error);
    this.name = 'ApiError';
    this.status = status;
    this.hint = hint;
  }
}

/**
 * The error of a failed response. mlnb answers `{"error", "hint"}`; anything else (a proxy's
 * HTML page, Jupyter's own `{"message"}`) still gives a readable message, never raw HTML.
 */
export function parseError(status: number, body: string): ApiError {
  let data: unknown = undefined;
  try {
    data = JSON.parse(body);
  } catch {
    data = undefined;
  }
  if (data && typeof data === 'object') {
    const obj = data as Record<string, unknown>;
    if (typeof obj.error === 'string') {
      const hint = typeof obj.hint === 'string' ? obj.hint : '';
      return new ApiError(status, obj.error, hint);
    }
    if (typeof obj.message === 'string') {
      return new ApiError(status, obj.message, hintFor(status));
    }
  }
  const text = body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  const error = text ? `HTTP ${status}: ${text.slice(0, 200)}` : `HTTP ${status}`;
  return new ApiError(status, error, hintFor(status));
}

function hintFor(status: number): string {
  if (status === 403) {
    return 'reload JupyterLab and log in again';
  }
  if (status === 404) {
    return 'is the mlnb server extension enabled? see `jupyter server extension list`';
  }
  return 'see the Jupyter server log';
}

/** A successful response body as `T`, or an ApiError naming what is wrong with it. */
export function parseBody<T>(status: number, body: string, required: string[]): T {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    throw new ApiError(status, 'the server answered something that is not JSON', hintFor(500));
  }
  if (!data || typeof data !== 'object') {
    throw new ApiError(status, 'the server answered an unexpected value', hintFor(500));
  }
  const missing = required.filter(key => !(key in (data as object)));
  if (missing.length) {
    throw new ApiError(
      status,
      `the server's answer lacks ${missing.join(', ')}`,
      'the mlnb Python package and JupyterLab extension have different versions; reinstall mlnb'
    );
  }
  return data as T;
}

/** The few metrics worth a line in the sidebar: well-known names first, then by name. */
export function keyMetrics(metrics: Record<string, number>, limit = 3): [string, number][] {
  const preferred = ['accuracy', 'f1', 'roc_auc', 'auc', 'r2', 'rmse', 'mae', 'loss'];
  const names = Object.keys(metrics).sort((a, b) => {
    const ia = preferred.indexOf(a);
    const ib = preferred.indexOf(b);
    if (ia !== ib) {
      return (ia < 0 ? preferred.length : ia) - (ib < 0 ? preferred.length : ib);
    }
    return a.localeCompare(b);
  });
  return names.slice(0, limit).map(name => [name, metrics[name]]);
}

/** A metric value in at most 4 significant digits. */
export function formatMetric(value: number): string {
  if (!isFinite(value)) {
    return String(value);
  }
  return Number(value.toPrecision(4)).toString();
}

/** Milliseconds between sidebar refreshes: quick while something runs, slow when idle. */
export function refreshInterval(runActive: boolean, jobRunning: boolean): number {
  return runActive || jobRunning ? 2000 : 15000;
}

/** How long a run took (or has been running), e.g. "12s", "3m 04s". */
export function duration(run: RunSummary, now: number): string {
  if (run.start_time === null) {
    return '';
  }
  const end = run.end_time ?? now;
  const seconds = Math.max(0, Math.round((end - run.start_time) / 1000));
  if (seconds < 60) {
    return `${seconds}s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`;
}
