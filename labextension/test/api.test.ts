import {
  ApiError,
  differingKeys,
  duration,
  formatMetric,
  keyMetrics,
  parseBody,
  parseError,
  refreshInterval,
  runState,
  RunSummary
} from '../src/api';

describe('parseError', () => {
  it("reads mlnb's {error, hint}", () => {
    const e = parseError(409, '{"error": "the export check failed: x", "hint": "fix it"}');
    expect(e).toBeInstanceOf(ApiError);
    expect([e.status, e.message, e.hint]).toEqual([409, 'the export check failed: x', 'fix it']);
  });

  it("reads Jupyter's own {message}", () => {
    const e = parseError(404, '{"message": "Not Found", "reason": null}');
    expect(e.message).toBe('Not Found');
    expect(e.hint).toContain('jupyter server extension list');
  });

  it('never shows raw HTML', () => {
    const e = parseError(502, '<html><body><h1>Bad Gateway</h1></body></html>');
    expect(e.message).toBe('HTTP 502: Bad Gateway');
  });

  it('copes with an empty body', () => {
    expect(parseError(500, '').message).toBe('HTTP 500');
  });
});

describe('parseBody', () => {
  it('returns the parsed body', () => {
    expect(parseBody<{ runs: number[] }>(200, '{"runs": [1]}', ['runs'])).toEqual({ runs: [1] });
  });

  it('names missing fields (an older server)', () => {
    expect(() => parseBody(200, '{"runs": []}', ['runs', 'active'])).toThrow(
      "the server's answer lacks active"
    );
  });

  it('refuses a body that is not JSON', () => {
    expect(() => parseBody(200, 'oops', [])).toThrow('not JSON');
  });
});

describe('run summaries', () => {
  const run: RunSummary = {
    run_id: 'r1',
    name: 'bold-cat',
    status: 'FINISHED',
    experiment_id: '1',
    start_time: 1_000,
    end_time: 126_000,
    metrics: {},
    params: {},
    url: 'http://127.0.0.1:5000/#/experiments/1/runs/r1',
    step: null,
    parent_run_id: null,
    parent_url: null,
    executed_notebook: null
  };

  it('picks well-known metrics first', () => {
    const metrics = { zeta: 1, loss: 0.5, accuracy: 0.9, f1: 0.8, alpha: 2 };
    expect(keyMetrics(metrics)).toEqual([
      ['accuracy', 0.9],
      ['f1', 0.8],
      ['loss', 0.5]
    ]);
    expect(keyMetrics({ b: 1, a: 2 }, 5)).toEqual([
      ['a', 2],
      ['b', 1]
    ]);
  });

  it('formats metrics and durations', () => {
    expect(formatMetric(0.98601398)).toBe('0.986');
    expect(formatMetric(12345.678)).toBe('12350');
    expect(formatMetric(NaN)).toBe('NaN');
    expect(duration(run, 0)).toBe('2m 05s');
    expect(duration({ ...run, end_time: null }, 13_000)).toBe('12s');
    expect(duration({ ...run, start_time: null }, 0)).toBe('');
  });

  it('refreshes within a second while a cell runs, slowly when nothing runs', () => {
    const busy = refreshInterval(true, false, false);
    expect(busy).toBeLessThanOrEqual(1000); // a run started mid-cell shows within 2 s
    expect(refreshInterval(false, false, true)).toBe(busy);
    expect(refreshInterval(false, true, false)).toBeGreaterThan(busy);
    expect(refreshInterval(false, false, false)).toBeGreaterThan(
      refreshInterval(false, true, false)
    );
  });

  it('says what a run is doing: a cell runs, open between cells, ended', () => {
    const open = { ...run, status: 'RUNNING', end_time: null };
    expect(runState(open, true, true, 1800, 61_000)).toEqual({
      kind: 'busy',
      label: 'running a cell',
      detail: '1m 00s'
    });
    const idle = runState(open, true, false, 1800, 61_000);
    expect([idle.kind, idle.label]).toEqual(['idle', 'idle']);
    expect(idle.detail).toBe('open; ends after 30 min without a cell');
    expect(runState(open, true, false, 0, 0).detail).toBe('open');
    // an older run still marked RUNNING is not the one the busy kernel runs
    expect(runState(open, false, true, 1800, 0).kind).toBe('idle');
    expect(runState(run, true, true, 1800, 0)).toEqual({
      kind: 'ended',
      label: 'ended',
      detail: 'took 2m 05s'
    });
    expect(runState({ ...run, status: 'FAILED' }, false, false, 1800, 0).label).toBe('failed');
    const step = { ...open, parent_run_id: 'p1', step: 'train' };
    expect(runState(step, false, false, 1800, 13_000)).toEqual({
      kind: 'step',
      label: 'running',
      detail: 'pipeline step, 12s'
    });
  });

  it('shows a run the journal holds before the tracking store has it', () => {
    const pending = { ...run, status: 'RUNNING', end_time: null, pending: true };
    expect(runState(pending, true, true, 1800, 13_000)).toEqual({
      kind: 'busy',
      label: 'running a cell',
      detail: '12s; reaching the tracking store'
    });
    expect(runState(pending, true, false, 1800, 13_000).label).toBe('starting');
    // once it has ended in the journal it reads as any ended run
    expect(runState({ ...run, pending: true }, true, false, 1800, 0).kind).toBe('ended');
  });
});

describe('differingKeys', () => {
  it('finds the params that tell runs apart', () => {
    const runs = [
      { C: '0.1', penalty: 'l2', seed: '1' },
      { C: '10', penalty: 'l2', seed: '1' },
      { C: '0.1', penalty: 'l2' }
    ];
    expect(Array.from(differingKeys(runs)).sort()).toEqual(['C', 'seed']);
  });

  it('finds nothing among fewer than two runs or equal ones', () => {
    expect(differingKeys([{ C: '1' }]).size).toBe(0);
    expect(differingKeys([]).size).toBe(0);
    expect(differingKeys([{ a: 1 }, { a: 1 }]).size).toBe(0);
    expect(Array.from(differingKeys([{ acc: 0.97 }, { acc: 0.98 }]))).toEqual(['acc']);
  });
});

describe('parseError: the cell of an export error', () => {
  it('reads the position of the cell the error is about', () => {
    const e = parseError(409, '{"error": "cause", "hint": "fix", "cell": 2}');
    expect([e.message, e.cell]).toEqual(['cause', 2]);
  });

  it('has no cell when the error names none', () => {
    expect(parseError(409, '{"error": "x", "hint": "", "cell": null}').cell).toBeNull();
    expect(parseError(409, '{"error": "x", "hint": ""}').cell).toBeNull();
  });
});
