import {
  ApiError,
  duration,
  formatMetric,
  keyMetrics,
  parseBody,
  parseError,
  refreshInterval,
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
    url: 'http://127.0.0.1:5000/#/experiments/1/runs/r1'
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

  it('refreshes quickly only while something runs', () => {
    expect(refreshInterval(true, false)).toBeLessThan(refreshInterval(false, false));
    expect(refreshInterval(false, true)).toBe(refreshInterval(true, false));
  });
});
