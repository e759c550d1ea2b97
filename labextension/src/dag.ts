/**
 * The pipeline panel's logic, without JupyterLab imports (Jest tests it): a layered layout
 * of a pipeline's steps (depth = the longest path from a step that needs nothing), and the
 * state a step's box shows, in mlnb's vocabulary of step states (mlnb/pipeline/_progress.py).
 */

/** The states of a step while a pipeline runs (mlnb.pipeline's StepEvent.state). */
export const STEP_STATES = [
  'queued',
  'running',
  'cached',
  'done',
  'failed',
  'skipped',
  'retrying'
] as const;

/** A step that has not run yet (no record, no event): the box is drawn neutral. */
export const NEVER_RAN = 'idle';

export interface DagStep {
  name: string;
  needs: string[];
}

export interface NodeBox {
  name: string;
  depth: number;
  row: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface EdgePath {
  from: string;
  to: string;
  d: string;
}

export interface DagLayout {
  nodes: NodeBox[];
  edges: EdgePath[];
  width: number;
  height: number;
}

export interface LayoutOptions {
  boxWidth: number;
  boxHeight: number;
  gapX: number;
  gapY: number;
  pad: number;
}

export const DEFAULT_LAYOUT: LayoutOptions = {
  boxWidth: 190,
  boxHeight: 58,
  gapX: 56,
  gapY: 20,
  pad: 12
};

/**
 * Each step's depth: 0 for a step that needs nothing, else one more than the deepest step
 * it needs. A need that is not a step is ignored (the server has checked the spec); a
 * cycle is an error naming a step on it.
 */
export function depths(steps: DagStep[]): Map<string, number> {
  const byName = new Map(steps.map(s => [s.name, s]));
  const out = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (name: string): number => {
    const known = out.get(name);
    if (known !== undefined) {
      return known;
    }
    if (visiting.has(name)) {
      throw new Error(`the steps' needs form a cycle through ${name}`);
    }
    visiting.add(name);
    const step = byName.get(name);
    let depth = 0;
    for (const need of step ? step.needs : []) {
      if (byName.has(need)) {
        depth = Math.max(depth, visit(need) + 1);
      }
    }
    visiting.delete(name);
    out.set(name, depth);
    return depth;
  };
  steps.forEach(s => visit(s.name));
  return out;
}

/**
 * Boxes in columns by depth (left to right), each column ordered by the mean row of the
 * steps it needs (fewer crossings), ties in the spec's order; edges from the right side of
 * a needed step to the left side of the step that needs it.
 */
export function layout(steps: DagStep[], options: LayoutOptions = DEFAULT_LAYOUT): DagLayout {
  const { boxWidth, boxHeight, gapX, gapY, pad } = options;
  const depth = depths(steps);
  const columns: DagStep[][] = [];
  steps.forEach(step => {
    const d = depth.get(step.name) ?? 0;
    (columns[d] = columns[d] ?? []).push(step);
  });
  const rowOf = new Map<string, number>();
  const order = new Map(steps.map((s, i) => [s.name, i]));
  columns.forEach((column, d) => {
    const weight = (step: DagStep): number => {
      const rows = step.needs.map(n => rowOf.get(n)).filter((r): r is number => r !== undefined);
      return d === 0 || !rows.length ? -1 : rows.reduce((a, b) => a + b, 0) / rows.length;
    };
    const sorted = [...column].sort(
      (a, b) => weight(a) - weight(b) || (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0)
    );
    sorted.forEach((step, row) => rowOf.set(step.name, row));
    columns[d] = sorted;
  });
  const tallest = Math.max(1, ...columns.map(c => c.length));
  const columnHeight = (n: number): number => n * boxHeight + (n - 1) * gapY;
  const height = pad * 2 + columnHeight(tallest);
  const nodes: NodeBox[] = [];
  columns.forEach((column, d) => {
    const top = pad + (columnHeight(tallest) - columnHeight(column.length)) / 2;
    column.forEach((step, row) => {
      nodes.push({
        name: step.name,
        depth: d,
        row,
        x: pad + d * (boxWidth + gapX),
        y: top + row * (boxHeight + gapY),
        width: boxWidth,
        height: boxHeight
      });
    });
  });
  const box = new Map(nodes.map(n => [n.name, n]));
  const edges: EdgePath[] = [];
  for (const step of steps) {
    const to = box.get(step.name);
    for (const need of step.needs) {
      const from = box.get(need);
      if (!from || !to) {
        continue;
      }
      const x1 = from.x + from.width;
      const y1 = from.y + from.height / 2;
      const x2 = to.x;
      const y2 = to.y + to.height / 2;
      const mid = (x1 + x2) / 2;
      edges.push({ from: need, to: step.name, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` });
    }
  }
  const width = pad * 2 + columns.length * boxWidth + Math.max(0, columns.length - 1) * gapX;
  return { nodes, edges, width, height };
}

/** The box state of a step's recorded result (ok, cached, failed, skipped). */
export function resultState(status: string | null | undefined): string {
  switch (status) {
    case 'ok':
      return 'done';
    case 'cached':
    case 'failed':
    case 'skipped':
      return status;
    default:
      return NEVER_RAN;
  }
}

/** "0.4 s", "12 s", "3 min 04 s": how long something took. */
export function formatSeconds(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) {
    return '';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  const whole = Math.round(seconds);
  if (whole < 60) {
    return `${whole} s`;
  }
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
}

/** Epoch seconds as "2026-12-02 01:05 UTC" (schedules and history are in UTC). */
export function formatUtc(epochSeconds: number): string {
  const iso = new Date(epochSeconds * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** What a past run did, e.g. "2 ran, 1 cached" or "1 ran, 1 failed, 1 skipped". */
export function runSummary(statuses: string[]): string {
  const count = (s: string): number => statuses.filter(x => x === s).length;
  const parts: string[] = [];
  const ran = count('ok') + count('failed');
  if (ran) {
    parts.push(`${ran} ran`);
  }
  for (const status of ['cached', 'failed', 'skipped']) {
    if (count(status)) {
      parts.push(`${count(status)} ${status}`);
    }
  }
  return parts.join(', ') || 'no steps';
}
