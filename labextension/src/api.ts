/**
 * Shapes of mlnb's REST API under /mlnb/ (the server side is mlnb/labserver/_models.py).
 *
 * Keep these interfaces field for field in step with the pydantic models:
 * tests/lab/test_api_contract.py parses this file and fails when they drift apart.
 * Fields with a default are optional in requests (`name?:`); response fields are always
 * present (`null` when there is nothing). No JupyterLab imports here: Jest tests this file.
 * Shapes of the extension's own (not in the API) are `type`s, not interfaces.
 */

export interface ErrorResponse {
  error: string;
  hint: string;
  cell?: number | null;
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
  step: string | null;
  parent_run_id: string | null;
  parent_url: string | null;
  executed_notebook: string | null;
  /** journaled, not yet created in the tracking store: no MLflow page yet */
  pending?: boolean;
}

export interface RunsResponse {
  notebook: string;
  tracking_uri: string;
  ui_url: string;
  ui_hint: string;
  ui_start: boolean;
  idle_timeout: number;
  active: boolean;
  runs: RunSummary[];
}

export interface CompareResponse {
  run_ids: string[];
  differing_params: string[];
  html: string;
}

export interface UiRequest {
  path: string;
}

/** `POST /mlnb/ui`: 202 while the UI starts (`ready` false: post again), 200 once it answers. */
export interface UiResponse {
  url: string;
  started: boolean;
  ready: boolean;
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
  run_id: string | null;
  run_name: string | null;
  run_params: Record<string, string>;
  run_url: string | null;
}

export interface ExportResponse {
  folder: string;
  endpoints: EndpointInfo[];
  models: ModelInfo[];
  verified: string[];
  serve_command: string;
  service_url: string | null;
  port_note: string | null;
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

export interface StepProgress {
  name: string;
  state: string;
  cell: string | null;
  message: string | null;
  run_id: string | null;
  notebook: string | null;
  url: string | null;
  elapsed: number;
}

export interface PipelineJob {
  job_id: string;
  pipeline: string;
  status: string;
  run_id: string | null;
  steps: StepState[];
  progress: StepProgress[];
  log: string[];
  error: ErrorResponse | null;
}

export interface StepNode {
  name: string;
  notebook: string;
  needs: string[];
  up_to_date: boolean;
  reasons: string[];
  last_status: string | null;
  last_run_id: string | null;
  last_notebook: string | null;
  last_url: string | null;
}

export interface PipelineGraph {
  pipeline: string;
  name: string;
  schedule: string | null;
  steps: StepNode[];
  job_id: string | null;
  ui_url: string;
  ui_hint: string;
}

export interface HistoryStep {
  name: string;
  status: string;
  run_id: string | null;
  notebook: string | null;
  url: string | null;
  seconds: number;
  error: string | null;
}

export interface HistoryRun {
  run_id: string | null;
  status: string;
  started_at: number;
  finished_at: number;
  steps: HistoryStep[];
}

export interface PipelineHistory {
  pipeline: string;
  runs: HistoryRun[];
}

export interface ScheduleRequest {
  path: string;
  cron: string;
}

export interface ScheduleInfo {
  id: string;
  pipeline: string;
  cron: string;
  next_run: string | null;
  last_fired: string | null;
  enabled: boolean;
}

export interface SchedulesResponse {
  schedules: ScheduleInfo[];
  scheduler_hint: string;
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
  /** The notebook cell the error is about (position from 0), if any. */
  readonly cell: number | null;

  constructor(status: number, error: string, hint: string, cell: number | null = null) {
    super(error);
    this.name = 'ApiError';
    this.status = status;
    this.hint = hint;
    this.cell = cell;
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
      const cell = typeof obj.cell === 'number' && obj.cell >= 0 ? obj.cell : null;
      return new ApiError(status, obj.error, hint, cell);
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

/** Milliseconds between sidebar refreshes: quick while a cell or a pipeline runs (a run
 * started mid-cell shows within 2 s of its first log call), slower while a run is open
 * between cells, slow when nothing runs. */
export function refreshInterval(
  kernelBusy: boolean,
  runActive: boolean,
  jobRunning: boolean
): number {
  if (kernelBusy || jobRunning) {
    return 750;
  }
  return runActive ? 3000 : 15000;
}

/** The keys whose values are not the same in all of `maps` (a key some lack differs too);
 * nothing differs among fewer than two. */
export function differingKeys(maps: Record<string, unknown>[]): Set<string> {
  const out = new Set<string>();
  if (maps.length < 2) {
    return out;
  }
  const keys = new Set<string>();
  for (const map of maps) {
    Object.keys(map).forEach(key => keys.add(key));
  }
  for (const key of keys) {
    const first = maps[0][key];
    if (maps.some(map => !(key in map) || map[key] !== first)) {
      out.add(key);
    }
  }
  return out;
}

/** What a run is doing, as a data scientist reads it: a cell of this kernel is running in
 * it, it is open between cells (and ends after the idle timeout), a pipeline step runs, or
 * it has ended. */
export type RunState = {
  kind: 'busy' | 'idle' | 'step' | 'ended' | 'failed';
  label: string;
  detail: string;
};

export function runState(
  run: RunSummary,
  current: boolean,
  kernelBusy: boolean,
  idleTimeout: number,
  now: number
): RunState {
  if (run.pending && run.status === 'RUNNING') {
    const doing = current && kernelBusy ? 'running a cell' : 'starting';
    return { kind: 'busy', label: doing, detail: `${duration(run, now)}; reaching the tracking store` };
  }
  if (run.status === 'RUNNING') {
    if (run.parent_run_id !== null) {
      return { kind: 'step', label: 'running', detail: `pipeline step, ${duration(run, now)}` };
    }
    if (current && kernelBusy) {
      return { kind: 'busy', label: 'running a cell', detail: duration(run, now) };
    }
    const ends = idleTimeout > 0 ? `; ends after ${minutes(idleTimeout)} without a cell` : '';
    return { kind: 'idle', label: 'idle', detail: `open${ends}` };
  }
  if (run.status === 'FAILED' || run.status === 'KILLED') {
    return { kind: 'failed', label: run.status.toLowerCase(), detail: duration(run, now) };
  }
  if (run.status === 'FINISHED') {
    return { kind: 'ended', label: 'ended', detail: `took ${duration(run, now)}` };
  }
  return { kind: 'idle', label: run.status.toLowerCase(), detail: '' };
}

function minutes(seconds: number): string {
  return seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
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
