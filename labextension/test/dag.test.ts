import {
  depths,
  formatSeconds,
  formatUtc,
  layout,
  NEVER_RAN,
  resultState,
  runSummary,
  STEP_STATES
} from '../src/dag';

const diamond = [
  { name: 'load', needs: [] },
  { name: 'features', needs: ['load'] },
  { name: 'stats', needs: ['load'] },
  { name: 'train', needs: ['features', 'stats'] },
  { name: 'report', needs: ['load', 'train'] }
];

describe('depths', () => {
  it('is the longest path from a step that needs nothing', () => {
    expect(Object.fromEntries(depths(diamond))).toEqual({
      load: 0,
      features: 1,
      stats: 1,
      train: 2,
      report: 3
    });
  });

  it('does not depend on the order of the steps', () => {
    const reversed = [...diamond].reverse();
    expect(Object.fromEntries(depths(reversed))).toEqual(Object.fromEntries(depths(diamond)));
  });

  it('names a step on a cycle', () => {
    expect(() =>
      depths([
        { name: 'a', needs: ['b'] },
        { name: 'b', needs: ['a'] }
      ])
    ).toThrow(/cycle through (a|b)/);
  });
});

describe('layout', () => {
  const options = { boxWidth: 100, boxHeight: 40, gapX: 20, gapY: 10, pad: 5 };
  const shape = layout(diamond, options);
  const box = (name: string) => shape.nodes.find(n => n.name === name)!;

  it('puts each depth in a column, left to right', () => {
    expect(shape.nodes.map(n => [n.name, n.depth, n.x])).toEqual([
      ['load', 0, 5],
      ['features', 1, 125],
      ['stats', 1, 125],
      ['train', 2, 245],
      ['report', 3, 365]
    ]);
    expect(shape.width).toBe(5 * 2 + 4 * 100 + 3 * 20);
    expect(shape.height).toBe(5 * 2 + 2 * 40 + 10);
  });

  it('never overlaps two boxes', () => {
    for (const a of shape.nodes) {
      for (const b of shape.nodes) {
        if (a !== b) {
          const apart =
            a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
          expect(apart).toBe(true);
        }
      }
    }
  });

  it('centres a short column on the tallest one', () => {
    expect(box('load').y).toBe(5 + (90 - 40) / 2);
    expect(box('features').y).toBe(5);
    expect(box('stats').y).toBe(55);
  });

  it('draws an edge per need, from the right of the need to the left of the step', () => {
    expect(shape.edges.map(e => `${e.from}->${e.to}`)).toEqual([
      'load->features',
      'load->stats',
      'features->train',
      'stats->train',
      'load->report',
      'train->report'
    ]);
    const edge = shape.edges.find(e => e.from === 'load' && e.to === 'features')!;
    expect(edge.d.startsWith(`M${5 + 100},${box('load').y + 20} `)).toBe(true);
    expect(edge.d.endsWith(` ${125},${5 + 20}`)).toBe(true);
  });

  it('orders a column by the rows of what its steps need (fewer crossings)', () => {
    const crossed = layout([
      { name: 'a', needs: [] },
      { name: 'b', needs: [] },
      { name: 'from-b', needs: ['b'] },
      { name: 'from-a', needs: ['a'] }
    ]);
    const rows = Object.fromEntries(crossed.nodes.map(n => [n.name, n.row]));
    expect(rows).toEqual({ a: 0, b: 1, 'from-a': 0, 'from-b': 1 });
  });

  it('lays out a single step', () => {
    const one = layout([{ name: 'only', needs: [] }], options);
    expect(one.nodes).toHaveLength(1);
    expect(one.edges).toEqual([]);
    expect([one.width, one.height]).toEqual([110, 50]);
  });
});

describe('states', () => {
  it("uses mlnb's step states for recorded results", () => {
    expect(['ok', 'cached', 'failed', 'skipped'].map(resultState)).toEqual([
      'done',
      'cached',
      'failed',
      'skipped'
    ]);
    expect(resultState(null)).toBe(NEVER_RAN);
    for (const state of ['done', 'cached', 'failed', 'skipped']) {
      expect(STEP_STATES).toContain(state);
    }
  });
});

describe('formatting', () => {
  it('says how long in s or min', () => {
    expect(formatSeconds(0.42)).toBe('0.4 s');
    expect(formatSeconds(12.4)).toBe('12 s');
    expect(formatSeconds(184)).toBe('3 min 04 s');
    expect(formatSeconds(-1)).toBe('');
  });

  it('gives times in UTC', () => {
    expect(formatUtc(Date.UTC(2026, 11, 2, 1, 5) / 1000)).toBe('2026-12-02 01:05 UTC');
  });

  it('sums up which steps ran and which were cached', () => {
    expect(runSummary(['ok', 'cached', 'ok'])).toBe('2 ran, 1 cached');
    expect(runSummary(['ok', 'failed', 'skipped'])).toBe('2 ran, 1 failed, 1 skipped');
    expect(runSummary([])).toBe('no steps');
  });
});
