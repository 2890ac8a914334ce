import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { EdgePool, FineTuneJob, InferenceDeployment, InferenceDeploymentStatus } from '../../../api/generated/types.js';
import type { ScenarioStatus } from './monitoring.js';
import type { RetrainInput } from './retrain.js';
import { decideRetrain, followRetrain, retrainJob, retrainName } from './retrain.js';

const sha = 'ab'.repeat(32);
const now = new Date('2026-12-01T12:00:00Z');
const stable = { uri: 's3://whisperops-models/tiny/1.0.0/', version: '1.0.0', sha256: sha, source: 'spec' };
const template = {
  dataset: { scenario: 'medical', synthesize: { corpusUri: 's3://whisperops-datasets/medical_corpus.txt', scenario: 'medical', maxUtterances: 40 } },
  method: { type: 'freezeEncoder' }, training: { maxSteps: 2 },
  output: { uri: 's3://whisperops-models/retrains' },
} as unknown as NonNullable<NonNullable<InferenceDeployment['spec']['retraining']>['template']>;
const spec = {
  edgePoolRef: { name: 'jetsons' }, model: { uri: stable.uri, version: stable.version, sha256: sha },
  rollout: { steps: [{ weight: 50, pauseSeconds: 0 }], analysis: { intervalSeconds: 10, maxWerIncrease: 0.02, maxP99LatencySeconds: 5, minSamples: 50, failureLimit: 1 } },
  monitoring: { scenarios: [{ name: 'medical', maxWer: 0.2, windowSeconds: 60, minReferenceWords: 50 }] },
  retraining: { enabled: true, cooldownSeconds: 600, template },
} as InferenceDeployment['spec'];
const degraded: ScenarioStatus[] = [{ name: 'medical', state: 'Degraded', wer: 0.41, referenceWords: 300 }];
const job = (phase: NonNullable<FineTuneJob['status']>['phase'], result?: boolean): FineTuneJob => ({
  apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name: 'asr-retrain-1', namespace: 'edge' }, spec: {} as FineTuneJob['spec'],
  status: { phase, ...(result ? { result: { modelUri: 's3://whisperops-models/retrains/asr-retrain-1/', version: 'ft-1', sha256: 'cd'.repeat(32) } } : {}) },
});
const lastRetrain = (minutesAgo: number, generation = 1) => ({ fineTuneJob: 'asr-retrain-1', reason: 'r', time: new Date(now.getTime() - minutesAgo * 60_000).toISOString(), scenario: 'medical', generation });

function decide(over: Partial<RetrainInput> & { status?: InferenceDeploymentStatus } = {}) {
  return decideRetrain({ name: 'asr', spec, status: { phase: 'Healthy', stable }, scenarios: degraded, lastJob: undefined, now, ...over });
}

describe('decideRetrain', () => {
  it('Degraded, enabled, nothing running, no cooldown: exactly one FineTuneJob, named by the retrain count', () => {
    expect(decide()).toEqual({ kind: 'start', name: 'asr-retrain-1', scenario: 'medical', reason: 'scenario medical Degraded: WER 0.41 > maxWer 0.2 over 300 reference words of stable 1.0.0' });
    expect(decide({ status: { stable, retrains: 4, lastRetrain: lastRetrain(60) }, lastJob: job('Succeeded', true) })).toMatchObject({ kind: 'start', name: 'asr-retrain-5' });
  });

  it.each<[string, Partial<RetrainInput> & { status?: InferenceDeploymentStatus }, RegExp]>([
    ['disabled', { spec: { ...spec, retraining: { enabled: false, cooldownSeconds: 600 } } }, /not enabled/],
    ['Unknown never triggers', { scenarios: [{ name: 'medical', state: 'Unknown' }] }, /no scenario is Degraded/],
    ['Healthy', { scenarios: [{ name: 'medical', state: 'Healthy', wer: 0.1 }] }, /no scenario is Degraded/],
    ['a canary in flight decides first', { status: { stable, candidate: { ...stable, version: '2', weight: 10 } } }, /candidate 2 is being rolled out/],
    ['the last retrain still running', { status: { stable, retrains: 1, lastRetrain: lastRetrain(120) }, lastJob: job('Running') }, /retrain asr-retrain-1 is still running/],
    ['inside the cooldown (after a failed retrain too)', { status: { stable, retrains: 1, lastRetrain: lastRetrain(5) }, lastJob: job('Failed') }, /cooldown of 600 s since retrain asr-retrain-1: no retrain before 2026-12-01T12:05:00Z/],
    ['no stable model', { status: {} }, /no stable model/],
  ])('none: %s', (_what, over, why) => {
    const d = decide(over);
    expect(d.kind).toBe('none');
    if (d.kind === 'none') expect(d.why).toMatch(why);
  });

  it('a rolled-back candidate does not block the next retrain once the cooldown is over', () => {
    expect(decide({ status: { stable, candidate: { ...stable, version: 'ft-1', weight: 0, rolledBackGeneration: 1 }, retrains: 1, lastRetrain: lastRetrain(11) }, lastJob: job('Succeeded', true) }).kind).toBe('start');
  });

  it('property: never a second retrain while one runs or within the cooldown; never from Unknown', () => {
    fc.assert(fc.property(
      fc.constantFrom<ScenarioStatus['state']>('Healthy', 'Degraded', 'Unknown'), fc.integer({ min: 0, max: 30 }), fc.constantFrom<NonNullable<FineTuneJob['status']>['phase']>('Pending', 'Running', 'Succeeded', 'Failed'), fc.boolean(),
      (state, minutesAgo, phase, hadRetrain) => {
        const d = decide({ scenarios: [{ name: 'medical', state, wer: 0.4, referenceWords: 300 }], status: hadRetrain ? { stable, retrains: 1, lastRetrain: lastRetrain(minutesAgo) } : { stable }, lastJob: hadRetrain ? job(phase) : undefined });
        if (d.kind === 'start') {
          expect(state).toBe('Degraded');
          if (hadRetrain) {
            expect(['Succeeded', 'Failed']).toContain(phase);
            expect(minutesAgo * 60).toBeGreaterThanOrEqual(600);
          }
        }
      },
    ));
  });
});

describe('retrainName', () => {
  it('fits a DNS label of 63 characters', () => {
    expect(retrainName('asr', 3)).toBe('asr-retrain-3');
    const long = retrainName('a'.repeat(70), 12);
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long.endsWith('-retrain-12')).toBe(true);
  });
});

describe('followRetrain', () => {
  it.each<[string, InferenceDeploymentStatus, number, FineTuneJob | undefined, unknown]>([
    ['no retrain: spec.model decides', { stable }, 1, undefined, undefined],
    ['retrain of an older generation: spec.model decides', { stable, lastRetrain: lastRetrain(1, 1) }, 2, job('Succeeded', true), undefined],
    ['running: the stable is held', { stable, lastRetrain: lastRetrain(1) }, 1, job('Running'), stable],
    ['failed: the stable is held', { stable, lastRetrain: lastRetrain(1) }, 1, job('Failed'), stable],
    ['succeeded: its result', { stable, lastRetrain: lastRetrain(1) }, 1, job('Succeeded', true), { uri: 's3://whisperops-models/retrains/asr-retrain-1/', version: 'ft-1', sha256: 'cd'.repeat(32), source: 'FineTuneJob/asr-retrain-1' }],
  ])('%s', (_what, status, generation, lastJob, want) => {
    expect(followRetrain(status, generation, lastJob)).toEqual(want);
  });
});

describe('retrainJob', () => {
  it('the template with baseModel = stable, the scenario\'s feedback prefix as dataset, a per-run output folder, owned by the deployment', () => {
    const pool = { spec: { datasetStore: { uri: 's3://whisperops-datasets/feedback/jetsons' } } } as unknown as EdgePool;
    const owner = { apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', name: 'asr', uid: 'u1', controller: true, blockOwnerDeletion: true };
    const j = retrainJob({ metadata: { name: 'asr', namespace: 'edge' }, spec }, stable, pool, { kind: 'start', name: 'asr-retrain-1', scenario: 'medical', reason: 'why' }, owner);
    expect(j.metadata).toEqual({
      name: 'asr-retrain-1', namespace: 'edge', labels: { 'whisperops.dev/inferencedeployment': 'asr', 'whisperops.dev/scenario': 'medical' },
      annotations: { 'whisperops.dev/retrain-reason': 'why' }, ownerReferences: [owner],
    });
    expect(j.spec).toEqual({
      method: { type: 'freezeEncoder' }, training: { maxSteps: 2 },
      baseModel: { uri: stable.uri, version: '1.0.0', sha256: sha },
      dataset: { ...template.dataset, scenario: 'medical', uri: 's3://whisperops-datasets/feedback/jetsons/medical/' },
      output: { uri: 's3://whisperops-models/retrains/asr-retrain-1/' },
    });
  });
});
