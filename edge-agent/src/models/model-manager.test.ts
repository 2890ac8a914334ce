// The model manager with a fake fetcher and pool: a set that fails (ArtifactError, a non-Error
// rejection, a synchronous throw) is applied again with a capped back-off until it applies whole;
// nothing that rejects inside an apply stops later applies; /readyz's `ready` needs every deployment.
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type { ModelRef, ModelSet } from '../../../api/model-set.js';
import type { InferencePool } from '../inference/pool.js';
import type { LoadSpec, ModelInfo } from '../inference/protocol.js';
import { createMetrics } from '../metrics.js';
import { ArtifactError } from './artifact.js';
import type { ArtifactFetcher, FetchedArtifact } from './artifact.js';
import { ModelManager } from './model-manager.js';
import type { ApplyReport } from './model-manager.js';

const ref = (version: string, c = 'a'): ModelRef => ({ version, uri: `https://store.example/${version}/?X-Amz-Signature=secret`, sha256: c.repeat(64) });

function setup(faults: ((ref: ModelRef) => Promise<FetchedArtifact> | FetchedArtifact | undefined)[]) {
  const fetched: string[] = [];
  const fetcher = {
    fetch: (r: ModelRef): Promise<FetchedArtifact> => {
      fetched.push(r.version);
      const fault = faults.shift();
      const got = fault?.(r);
      if (got !== undefined) return Promise.resolve(got);
      return Promise.resolve({ dir: `/cache/${r.version}`, manifest: { version: r.version, files: {} }, dtype: 'int8' });
    },
  } as unknown as ArtifactFetcher;
  const pool = {
    load: (spec: LoadSpec): Promise<ModelInfo> => Promise.resolve({ key: spec.key, languages: ['en'], windowSeconds: 10, sampleRate: 16000, loadMs: 1, warmupMs: 1 }),
    unload: () => Promise.resolve(),
  } as unknown as InferencePool;
  const reports: { report: ApplyReport; attempt: number }[] = [];
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const manager = new ModelManager({
    pool, fetcher, metrics: createMetrics('t'), log, dtype: 'int8', random: () => 1,
    retry: { initialMs: 40, maxMs: 100 },
    onApplied: (_set, report, attempt) => reports.push({ report, attempt }),
  });
  return { manager, reports, fetched, lines };
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ModelManager', () => {
  it('retries a failed set with a capped back-off until it applies, surviving every kind of rejection on the way', async () => {
    const { manager, reports, fetched, lines } = setup([
      () => { throw new ArtifactError('download_error', 'GET https://store.example/v1/x?X-Amz-Signature=secret: HTTP 500'); },
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the fault is a non-Error rejection
      () => Promise.reject(undefined),
      () => { throw new TypeError('synchronous throw inside the fetcher'); },
    ]);
    const set: ModelSet = { pool: 't', models: [{ name: 'asr', stable: ref('v1') }] };
    const t0 = Date.now();
    const first = await manager.apply(set);
    expect(first.ok).toBe(false);
    expect(manager.ready).toBe(false);
    await until(() => manager.ready);
    const waited = Date.now() - t0;
    expect(reports.map((r) => [r.attempt, r.report.ok])).toEqual([[1, false], [2, false], [3, false], [4, true]]);
    expect(reports.map((r) => r.report.failures[0]?.reason)).toEqual(['download_error', 'load_error', 'load_error', undefined]);
    expect(fetched).toEqual(['v1', 'v1', 'v1', 'v1']);
    // Back-off (random 1 → full delay): 40, 80, then capped at 100 ms.
    expect(waited).toBeGreaterThanOrEqual(40 + 80 + 100 - 15);
    const retries = lines.map((l) => JSON.parse(l) as { msg: string; retryInSeconds?: number }).filter((l) => l.msg.startsWith('Model set not applied whole'));
    expect(retries.map((l) => l.retryInSeconds)).toEqual([0.04, 0.08, 0.1]);
    // Credentials in the URL never reach the log.
    expect(lines.join('\n')).not.toContain('secret');
    expect(manager.table.get('asr')?.stable.version).toBe('v1');
    manager.stop();
  });

  it('a newer set replaces the retried one; ready needs every deployment of the set', async () => {
    const always = () => { throw new ArtifactError('file_checksum_mismatch', 'corrupt'); };
    const { manager, reports, fetched } = setup([undefined as never, always, always, always, always, always, always]);
    await manager.apply({ pool: 't', models: [{ name: 'a', stable: ref('v1') }] });
    expect(manager.ready).toBe(true);
    // b cannot load: the agent serves a, but is not ready (b is assigned and not loaded).
    const r = await manager.apply({ pool: 't', models: [{ name: 'a', stable: ref('v1') }, { name: 'b', stable: ref('v2', 'b') }] });
    expect(r.ok).toBe(false);
    expect(manager.ready).toBe(false);
    expect(manager.pick('a')?.model.version).toBe('v1');
    await until(() => reports.length >= 3);
    // A newer set without b: ready again, and b's retries stop.
    await manager.apply({ pool: 't', models: [{ name: 'a', stable: ref('v1') }] });
    expect(manager.ready).toBe(true);
    const n = fetched.length;
    await new Promise((res) => setTimeout(res, 300));
    expect(fetched.length).toBe(n);
    manager.stop();
  });

  it('an onApplied handler that throws does not stop later applies', async () => {
    const { manager } = setup([]);
    let calls = 0;
    (manager as unknown as { deps: { onApplied: () => void } }).deps.onApplied = () => {
      calls++;
      throw new Error('handler fault');
    };
    await manager.apply({ pool: 't', models: [{ name: 'a', stable: ref('v1') }] });
    const second = await manager.apply({ pool: 't', models: [{ name: 'a', stable: ref('v2', 'c') }] });
    expect(second.ok).toBe(true);
    expect(calls).toBe(2);
    expect(manager.table.get('a')?.stable.version).toBe('v2');
    manager.stop();
  });
});

describe('ModelManager maxBatch', () => {
  async function loadedWith(maxBatch: number | 'auto' | undefined, dtype: 'int8' | 'fp32', quantization: string | undefined): Promise<LoadSpec | undefined> {
    let got: LoadSpec | undefined;
    const fetcher = {
      fetch: (r: ModelRef): Promise<FetchedArtifact> => Promise.resolve({ dir: `/cache/${r.version}`, manifest: { version: r.version, files: {}, ...(quantization ? { quantization } : {}) }, dtype }),
    } as unknown as ArtifactFetcher;
    const pool = {
      load: (spec: LoadSpec): Promise<ModelInfo> => {
        got = spec;
        return Promise.resolve({ key: spec.key, languages: ['en'], windowSeconds: 10, sampleRate: 16000, loadMs: 1, warmupMs: 1 });
      },
      unload: () => Promise.resolve(),
    } as unknown as InferencePool;
    const manager = new ModelManager({ pool, fetcher, metrics: createMetrics('t'), log: pino({ level: 'silent' }), dtype: 'int8', ...(maxBatch === undefined ? {} : { maxBatch }) });
    const report = await manager.apply({ pool: 't', models: [{ name: 'asr', stable: ref('v1') }] });
    expect(report.ok).toBe(true);
    manager.stop();
    return got;
  }

  it('auto: per model from its manifest — 4 for fp32 and static INT8, 1 for dynamic INT8; a number for every model', async () => {
    expect((await loadedWith('auto', 'int8', 'int8-static'))?.maxBatch).toBe(4);
    expect((await loadedWith('auto', 'int8', 'int8'))?.maxBatch).toBe(1);
    expect((await loadedWith('auto', 'int8', undefined))?.maxBatch).toBe(1);
    expect((await loadedWith('auto', 'fp32', 'int8'))?.maxBatch).toBe(4);
    expect((await loadedWith(8, 'int8', 'int8'))?.maxBatch).toBe(8);
    expect((await loadedWith(undefined, 'int8', 'int8-static'))?.maxBatch).toBeUndefined();
  });
});
