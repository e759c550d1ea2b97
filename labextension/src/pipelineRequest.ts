/** Calls of the pipeline panel: a pipeline's DAG, its history, its schedules. */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { PipelineGraph, PipelineHistory, ScheduleRequest, SchedulesResponse } from './api';
import { call, post } from './request';

const query = (path: string): string => `path=${encodeURIComponent(path)}`;

export function getGraph(path: string): Promise<PipelineGraph> {
  return call<PipelineGraph>(`pipelines/graph?${query(path)}`, ['steps', 'pipeline']);
}

export function getHistory(path: string): Promise<PipelineHistory> {
  return call<PipelineHistory>(`pipelines/history?${query(path)}`, ['runs']);
}

export function getSchedules(path: string): Promise<SchedulesResponse> {
  return call<SchedulesResponse>(`schedules?${query(path)}`, ['schedules']);
}

export function addSchedule(request: ScheduleRequest): Promise<SchedulesResponse> {
  return call<SchedulesResponse>('schedules', ['schedules'], post(request));
}

export function removeSchedule(id: string, path: string): Promise<SchedulesResponse> {
  return call<SchedulesResponse>(`schedules/${encodeURIComponent(id)}?${query(path)}`, ['schedules'], {
    method: 'DELETE'
  });
}

/** The URL of a step's executed notebook shown read-only (mlnb renders it as HTML). */
export function executedNotebookUrl(path: string): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'mlnb', 'pipelines', 'notebook') + `?${query(path)}`;
}
