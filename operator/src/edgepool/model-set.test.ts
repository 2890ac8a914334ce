import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isModelSet } from '../../../api/model-set.js';
import type { DeploymentLike } from './model-set.js';
import { buildModelSet, deploymentsOnPool, MAX_MODELS, skippedSummary } from './model-set.js';

const sha = (c: string) => c.repeat(64);

type Served = { stable?: { uri: string; version: string; sha256: string }; candidate?: { uri: string; version: string; sha256: string; weight: number; rolledBackGeneration?: number } };

/** An InferenceDeployment naming pool `jetsons` whose status serves `served` (what its controller decided). */
function infd(name: string, served: Served, over: { pool?: string; namespace?: string; scenarios?: string[]; deleting?: boolean } = {}): DeploymentLike {
  return {
    metadata: { name, namespace: over.namespace ?? 'edge', ...(over.deleting ? { deletionTimestamp: '2026-12-01T12:00:00Z' } : {}) },
    spec: {
      edgePoolRef: { name: over.pool ?? 'jetsons' },
      model: { fineTuneJobRef: { name: 'spec-is-not-read-here' } },
      rollout: { steps: [{ weight: 10, pauseSeconds: 60 }], analysis: { intervalSeconds: 60, maxWerIncrease: 0.02, maxP99LatencySeconds: 5, minSamples: 200, failureLimit: 2 } },
      ...(over.scenarios ? { monitoring: { scenarios: over.scenarios.map((s) => ({ name: s, maxWer: 0.2, windowSeconds: 900, minReferenceWords: 200 })) } } : {}),
    },
    status: served,
  };
}
const model = (version: string, c = 'a') => ({ uri: `https://models.example/${version}/`, version, sha256: sha(c) });
const direct = (version: string, c = 'a'): Served => ({ stable: model(version, c) });
const NOTHING = 'no model resolved yet (see its ModelResolved condition)';

describe('deploymentsOnPool', () => {
  it.each<[string, DeploymentLike, boolean]>([
    ['names the pool, same namespace', infd('a', direct('1')), true],
    ['another pool', infd('a', direct('1'), { pool: 'other' }), false],
    ['another namespace with a pool of the same name', infd('a', direct('1'), { namespace: 'elsewhere' }), false],
    ['being deleted', infd('a', direct('1'), { deleting: true }), false],
  ])('%s', (_what, d, on) => {
    expect(deploymentsOnPool('edge', 'jetsons', [d])).toEqual(on ? [d] : []);
  });
});

describe('buildModelSet', () => {
  it.each<[string, DeploymentLike[], ReturnType<typeof buildModelSet>]>([
    ['none: empty set', [], { set: { models: [] }, skipped: [] }],
    ['one served model: name = the deployment, stable = status.stable', [infd('general', direct('1.0.0'))], {
      set: { models: [{ name: 'general', stable: { uri: 'https://models.example/1.0.0/', version: '1.0.0', sha256: sha('a') } }] }, skipped: [],
    }],
    ['sorted by name whatever the input order', [infd('zeta', direct('2')), infd('alpha', direct('1'))], {
      set: { models: [{ name: 'alpha', stable: model('1') }, { name: 'zeta', stable: model('2') }] }, skipped: [],
    }],
    ['a canary in flight: the candidate with its weight', [infd('g', { stable: model('1'), candidate: { ...model('2', 'b'), weight: 10 } })], {
      set: { models: [{ name: 'g', stable: model('1'), candidate: { ...model('2', 'b'), weight: 10 } }] }, skipped: [],
    }],
    ['a rolled-back candidate is not served (stable takes every request)', [infd('g', { stable: model('1'), candidate: { ...model('2', 'b'), weight: 0, rolledBackGeneration: 3 } })], {
      set: { models: [{ name: 'g', stable: model('1') }] }, skipped: [],
    }],
    ['nothing resolved yet (e.g. its FineTuneJob is running): left out, with the reason', [infd('ft', {}), infd('general', direct('1'))], {
      set: { models: [{ name: 'general', stable: model('1') }] },
      skipped: [{ name: 'ft', reason: NOTHING }],
    }],
    ['scenarios: union of the served deployments, sorted, unique', [
      infd('b', direct('1'), { scenarios: ['medical', 'finance'] }), infd('a', direct('2'), { scenarios: ['finance', 'legal'] }),
      infd('c', {}, { scenarios: ['ignored'] }),
    ], {
      set: { models: [{ name: 'a', stable: model('2') }, { name: 'b', stable: model('1') }], scenarios: ['finance', 'legal', 'medical'] },
      skipped: [{ name: 'c', reason: NOTHING }],
    }],
  ])('%s', (_what, deployments, want) => {
    expect(buildModelSet(deployments)).toEqual(want);
  });

  it(`serves at most ${MAX_MODELS} deployments (the model-set format's limit); the rest are reported`, () => {
    const many = Array.from({ length: MAX_MODELS + 2 }, (_, i) => infd(`d${String(i).padStart(2, '0')}`, direct(String(i))));
    const { set, skipped } = buildModelSet(many);
    expect(set.models).toHaveLength(MAX_MODELS);
    expect(skipped.map((s) => s.name)).toEqual(['d32', 'd33']);
    expect(skipped[0]?.reason).toBe(`the pool serves at most ${MAX_MODELS} deployments`);
  });

  it('property: deterministic (order-independent), valid for the shared schema, every deployment either served or skipped', () => {
    const arbDeployment = fc.record({
      name: fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/),
      fineTune: fc.boolean(),
      version: fc.stringMatching(/^[0-9][0-9a-z.]{0,6}$/),
      c: fc.constantFrom('a', 'b', 'c'),
      scenarios: fc.uniqueArray(fc.constantFrom('finance', 'medical', 'legal', 'general'), { maxLength: 3 }),
    });
    fc.assert(fc.property(fc.uniqueArray(arbDeployment, { selector: (d) => d.name, maxLength: 40 }), fc.integer(), (ds, seed) => {
      const list = ds.map((d) => infd(d.name, d.fineTune ? {} : direct(d.version, d.c), { scenarios: d.scenarios }));
      const shuffled = [...list].sort((a, b) => ((a.metadata?.name ?? '').length * seed) % 7 - ((b.metadata?.name ?? '').length * seed) % 7);
      const one = buildModelSet(list);
      expect(JSON.stringify(buildModelSet(shuffled))).toBe(JSON.stringify(one));
      expect(isModelSet({ pool: 'jetsons', ...one.set })).toBe(true);
      expect(one.set.models.length + one.skipped.length).toBe(list.length);
    }));
  });
});

describe('skippedSummary', () => {
  it.each<[string, Parameters<typeof skippedSummary>[0], string]>([
    ['none', [], ''],
    ['one', [{ name: 'ft', reason: 'why' }], '1 InferenceDeployment not served: ft (why)'],
    ['two', [{ name: 'a', reason: 'x' }, { name: 'b', reason: 'y' }], '2 InferenceDeployments not served: a (x); b (y)'],
  ])('%s', (_what, skipped, want) => {
    expect(skippedSummary(skipped)).toBe(want);
  });
});
