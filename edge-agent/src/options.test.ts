import { describe, expect, it } from '@jest/globals';
import { autoMaxBatch } from './inference/model-files.js';
import { OptionsError, parseOptions } from './options.js';

describe('parseOptions', () => {
  it('has safe defaults: loopback, 16 streams, INT8, embedded model, dataset store off', () => {
    const o = parseOptions([], {}, '/repo');
    if (o === 'help') throw new Error('unexpected');
    expect(o).toMatchObject({ host: '127.0.0.1', port: 8000, maxConcurrentStreams: 16, dtype: 'int8', modelDir: '/repo/models/tiny-whisper-synth', datasetStoreUri: undefined, config: undefined, threads: 1 });
    expect(o.workers).toBeGreaterThanOrEqual(1);
    expect(o.maxBatch).toBe('auto');
  });

  it('batches per model by default (fp32 and static INT8, never dynamic INT8) unless a number is given', () => {
    const fp32 = parseOptions(['--dtype', 'fp32'], {}, '/repo');
    const forced = parseOptions(['--max-batch', '8'], {}, '/repo');
    if (fp32 === 'help' || forced === 'help') throw new Error('unexpected');
    expect([fp32.maxBatch, forced.maxBatch]).toEqual(['auto', 8]);
    expect(() => parseOptions(['--max-batch', '0'], {}, '/repo')).toThrow(OptionsError);
    expect([autoMaxBatch('fp32', undefined), autoMaxBatch('int8', 'int8'), autoMaxBatch('int8', undefined), autoMaxBatch('int8', 'int8-static'), autoMaxBatch('fp32', 'int8-static')]).toEqual([4, 1, 1, 4, 4]);
  });

  it('takes flags before environment variables', () => {
    const o = parseOptions(['--port', '9000', '--execution-providers', 'cuda, cpu'], { WHISPEROPS_AGENT_PORT: '7000', WHISPEROPS_AGENT_MAX_QUEUE: '5', WHISPEROPS_AGENT_DATASET_STORE_URI: 's3://data/pool-a' }, '/repo');
    if (o === 'help') throw new Error('unexpected');
    expect([o.port, o.maxQueue, o.datasetStoreUri, o.executionProviders]).toEqual([9000, 5, 's3://data/pool-a/', ['cuda', 'cpu']]);
  });

  it('reads the dataset store settings an EdgePool gives (environment) and names the agent after its pod', () => {
    const env = {
      WHISPEROPS_AGENT_DATASET_STORE_URI: 's3://whisperops-datasets/jetsons/', WHISPEROPS_AGENT_DATASET_RETENTION_SECONDS: '120',
      WHISPEROPS_AGENT_DATASET_MAX_BYTES: '1048576', POD_NAME: 'jetsons-agent-7d9f-abcde', HOSTNAME: 'ignored',
    };
    const o = parseOptions([], env, '/repo');
    if (o === 'help') throw new Error('unexpected');
    expect(o).toMatchObject({ datasetStoreUri: 's3://whisperops-datasets/jetsons/', datasetRetentionSeconds: 120, datasetMaxBytes: 1048576, agentId: 'jetsons-agent-7d9f-abcde', datasetFlushSamples: 100, datasetFlushSeconds: 10 });
    const byHost = parseOptions(['--agent-id', ''], { HOSTNAME: 'node-7' }, '/repo');
    if (byHost === 'help') throw new Error('unexpected');
    expect(byHost.agentId).toBe('node-7');
  });

  it.each([
    [['--port', 'x']],
    [['--dtype', 'fp16']],
    [['--max-concurrent-streams', '0']],
    [['--no-such-flag']],
    [['--dataset-store-uri', 'https://example.com/samples/']],
    [['--dataset-store-uri', '/data/samples']],
    [['--dataset-flush-samples', '0']],
  ])('refuses %j', (argv) => {
    expect(() => parseOptions(argv, {}, '/repo')).toThrow(OptionsError);
  });

  it('answers --help', () => {
    expect(parseOptions(['--help'], {}, '/repo')).toBe('help');
  });
});
