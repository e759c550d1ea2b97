import { ExportResponse, ModelInfo } from '../src/api';
import { exportLines, modelRun } from '../src/exportText';

const model: ModelInfo = {
  resolved: 'models:/bc/3',
  path: 'model/bc-3',
  hash: '0123456789abcdef0123',
  run_id: '3f2a9c1b77d04e2f9b3e',
  run_name: 'lr-C10',
  run_params: { C: '10', max_iter: '200' },
  run_url: 'http://127.0.0.1:5000/#/experiments/1/runs/3f2a9c1b77d04e2f9b3e'
};

describe('modelRun', () => {
  it('names the run and its params', () => {
    expect(modelRun(model)).toBe('run "lr-C10" (3f2a9c1b…), params C=10, max_iter=200');
  });

  it('says when the run is not in this store, or there is none', () => {
    expect(modelRun({ ...model, run_url: null, run_params: {} })).toBe(
      `run "lr-C10" (3f2a9c1b…), not found in this project's tracking store`
    );
    expect(modelRun({ ...model, run_id: null })).toContain('no run recorded');
  });

  it('shortens a long list of params', () => {
    const many = Object.fromEntries([...Array(10).keys()].map(i => [`p${i}`, `${i}`]));
    expect(modelRun({ ...model, run_params: many }, 3)).toBe(
      'run "lr-C10" (3f2a9c1b…), params p0=0, p1=1, p2=2 and 7 more'
    );
  });
});

describe('exportLines', () => {
  const result: ExportResponse = {
    folder: 'build/services/serve',
    endpoints: [{ path: '/predict', function: 'predict', kind: 'dataframe' }],
    models: [model],
    verified: ['/predict'],
    serve_command: 'mlnb serve build/services/serve',
    service_url: 'http://127.0.0.1:8123',
    port_note: null
  };

  it('puts the run under its model', () => {
    const lines = exportLines(result);
    expect(lines.slice(0, 3)).toEqual([
      'Exported to build/services/serve',
      'model models:/bc/3, pinned as model/bc-3 (0123456789ab)',
      '  from run "lr-C10" (3f2a9c1b…), params C=10, max_iter=200'
    ]);
    expect(lines[lines.length - 1]).toContain('http://127.0.0.1:8123/docs');
  });

  it('ends with the port note when the port moved', () => {
    const lines = exportLines({ ...result, port_note: 'port 8123 is taken' });
    expect(lines[lines.length - 1]).toBe('Note: port 8123 is taken');
  });
});
