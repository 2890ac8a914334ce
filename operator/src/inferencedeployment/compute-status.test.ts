import { describe, expect, it } from '@jest/globals';
import type { InferenceDeploymentStatus } from '../../../api/generated/types.js';
import { computeStatus } from './compute-status.js';
import type { StatusInput } from './compute-status.js';
import type { Resolution } from './resolve.js';
import type { RolloutDecision } from './rollout.js';
import type { ServingState } from './serving.js';

const now = new Date('2026-12-01T12:00:00Z');
const sha = 'ab'.repeat(32);
const v1 = { uri: 's3://m/1/', version: '1', sha256: sha };
const v2 = { uri: 's3://m/2/', version: '2', sha256: sha };
const resolved: Resolution = { kind: 'resolved', model: { ...v2, source: 'spec' }, message: 'spec.model: 2 at s3://m/2/' };
const healthy: RolloutDecision = { status: { phase: 'Healthy', stable: v1 }, events: [], message: 'serving stable 1', progressing: false };
const canary: RolloutDecision = { status: { phase: 'Progressing', stable: v1, candidate: { ...v2, weight: 10, step: 0 } }, events: [], message: 'candidate 2 at step 1/2, weight 10%', progressing: true };
const rolledBack: RolloutDecision = { status: { phase: 'Degraded', stable: v1, candidate: { ...v2, weight: 0, rolledBackGeneration: 3 } }, events: [], message: 'candidate 2 rolled back (…)', progressing: false };
const loaded: ServingState = { kind: 'serving', agents: 2, message: "stable 1 loaded by the pool's agents" };

function status(over: Partial<StatusInput>): InferenceDeploymentStatus {
  return computeStatus({ previous: undefined, generation: 3, resolution: resolved, poolExists: true, poolName: 'jetsons', decision: healthy, stableServing: loaded, now, ...over });
}
const conds = (s: InferenceDeploymentStatus) => Object.fromEntries((s.conditions ?? []).map((c) => [c.type, `${c.status} ${c.reason}`]));

describe('computeStatus', () => {
  it.each<[string, Partial<StatusInput>, string, Record<string, string>]>([
    ['steady, loaded by the agents: Ready', {}, 'Healthy', { Ready: 'True Serving', ModelResolved: 'True Resolved', Serving: 'True Loaded' }],
    ['a canary in flight: Reconciling, not Ready', { decision: canary }, 'Progressing', { Ready: 'False RollingOut', ModelResolved: 'True Resolved', Serving: 'True Loaded', Reconciling: 'True RollingOut' }],
    ['rolled back: Stalled until the spec changes', { decision: rolledBack }, 'Degraded', { Ready: 'False RolledBack', ModelResolved: 'True Resolved', Serving: 'True Loaded', Stalled: 'True RolledBack' }],
    ['the pool does not exist: Stalled', { poolExists: false }, 'Healthy', { Ready: 'False EdgePoolNotFound', ModelResolved: 'True Resolved', Serving: 'True Loaded', Stalled: 'True EdgePoolNotFound' }],
    ['FineTuneJob still running, nothing served: Reconciling (waited for)', {
      resolution: { kind: 'unresolved', reason: 'FineTuneJobNotSucceeded', message: 'FineTuneJob ft is Running', permanent: false },
      decision: { status: {}, events: [], message: 'model not resolved', progressing: false }, stableServing: undefined,
    }, 'Progressing', { Ready: 'False WaitingForModel', ModelResolved: 'False FineTuneJobNotSucceeded', Serving: 'False NothingAssigned', Reconciling: 'True WaitingForModel' }],
    ['FineTuneJob Failed, nothing served: Stalled, Degraded', {
      resolution: { kind: 'unresolved', reason: 'FineTuneJobFailed', message: 'FineTuneJob ft Failed', permanent: true },
      decision: { status: {}, events: [], message: 'model not resolved', progressing: false }, stableServing: undefined,
    }, 'Degraded', { Ready: 'False FineTuneJobFailed', ModelResolved: 'False FineTuneJobFailed', Serving: 'False NothingAssigned', Stalled: 'True FineTuneJobFailed' }],
    ['the agents refused the stable artifact: Stalled, Degraded', { stableServing: { kind: 'rejected', message: "the pool's agents refused stable 1 (2 agents manifest_checksum_mismatch)" } },
      'Degraded', { Ready: 'False ArtifactRefused', ModelResolved: 'True Resolved', Serving: 'False ArtifactRefused', Stalled: 'True ArtifactRefused' }],
    ['assigned, not loaded yet: Reconciling Loading', { stableServing: { kind: 'pending', message: 'stable 1 not loaded by any agent yet' } },
      'Healthy', { Ready: 'False Loading', ModelResolved: 'True Resolved', Serving: 'False Loading', Reconciling: 'True Loading' }],
    ['no Prometheus: Serving Unknown, still Ready (assigned, nothing against it)', { stableServing: undefined }, 'Healthy', { Ready: 'True Serving', ModelResolved: 'True Resolved', Serving: 'Unknown AgentsUnknown' }],
  ])('%s', (_what, over, phase, want) => {
    const s = status(over);
    expect(s.phase).toBe(phase);
    expect(conds(s)).toEqual(want);
    expect(s.observedGeneration).toBe(3);
  });

  it('keeps the monitoring and retraining fields it does not own', () => {
    const previous: InferenceDeploymentStatus = { scenarios: [{ name: 'medical', state: 'Unknown' }], retrains: 2, lastRetrain: { fineTuneJob: 'x', reason: 'r', time: '2026-12-01T00:00:00Z' } };
    expect(status({ previous })).toMatchObject(previous);
  });
});
