import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { AnalysisResult, Verdict } from './analysis.js';
import type { ResolvedModel, RolloutDecision, RolloutInput, RolloutSettings, RolloutState } from './rollout.js';
import { analysisDue, stepRollout } from './rollout.js';

const t0 = new Date('2026-12-01T12:00:00Z');
const at = (s: number): Date => new Date(t0.getTime() + s * 1000);
const model = (version: string): ResolvedModel => ({ uri: `s3://models/${version}`, version, sha256: version.padEnd(64, '0').replace(/[^a-f0-9]/g, 'a'), source: 'spec' });
const v1 = model('1');
const v2 = model('2');
const v3 = model('3');
const rollout: RolloutSettings = { steps: [{ weight: 10, pauseSeconds: 60 }, { weight: 50, pauseSeconds: 60 }], analysis: { failureLimit: 2, intervalSeconds: 30 } };
const verdict = (v: Verdict): AnalysisResult => ({ verdict: v, message: `${v}: candidate v2 WER 0.1 (10 errors / 100 words), stable v1 WER 0.12` });

function run(status: RolloutState, over: Partial<RolloutInput> = {}): RolloutDecision {
  return stepRollout({ resolved: v2, rollout, generation: 1, status, now: t0, ...over });
}
const healthy: RolloutState = { phase: 'Healthy', stable: { ...v1 } };

describe('stepRollout', () => {
  it('first deployment: the resolved model becomes stable, no canary', () => {
    const d = run({}, { resolved: v1 });
    expect(d.status).toEqual({ phase: 'Healthy', stable: v1 });
    expect(d.modelSet).toEqual({ stable: { uri: v1.uri, version: '1', sha256: v1.sha256 } });
    expect(d.events).toEqual([{ type: 'Normal', reason: 'Deployed', message: expect.stringContaining('Serving 1 (s3://models/1) as stable') }]);
    expect(d.progressing).toBe(false);
  });

  it('nothing resolved and nothing served: no model-set entry, held', () => {
    const d = run({}, { resolved: undefined });
    expect(d.modelSet).toBeUndefined();
    expect(d.message).toContain('model not resolved: nothing served yet');
  });

  it('a new model becomes the candidate at the first step\'s weight', () => {
    const d = run(healthy);
    expect(d.status.phase).toBe('Progressing');
    expect(d.status.candidate).toMatchObject({ version: '2', weight: 10, step: 0, stepStartTime: '2026-12-01T12:00:00Z', failedAnalyses: 0 });
    expect(d.modelSet?.candidate).toEqual({ uri: v2.uri, version: '2', sha256: v2.sha256, weight: 10 });
    expect(d.events[0]?.message).toContain('Canary 2 started beside stable 1 (new model in spec): step 1/2 at 10% for at least 60 s');
    expect(d.progressing).toBe(true);
    expect(d.requeueAfterMs).toBe(30_000);
  });

  const started = run(healthy).status;

  it.each<[string, number, Verdict | undefined, RolloutState, number, string]>([
    ['pause not over, Successful: holds', 30, 'Successful', started, 0, 'pause: 30 s of 60 s left'],
    ['pause over, no verdict yet: holds', 90, undefined, started, 0, 'waiting for the first analysis at this step'],
    ['pause over, Inconclusive: holds and says so', 90, 'Inconclusive', started, 0, 'waiting for a Successful analysis (last Inconclusive: Inconclusive: candidate v2 WER'],
    ['pause over, Successful: next step', 60, 'Successful', started, 1, 'at step 2/2, weight 50%'],
    ['one Failed below failureLimit: holds', 90, 'Failed', started, 0, 'waiting for a Successful analysis (last Failed'],
  ])('%s', (_what, s, v, status, step, message) => {
    const d = run(status, { now: at(s), ...(v ? { verdict: verdict(v) } : {}) });
    expect(d.status.candidate?.step).toBe(step);
    expect(d.message).toContain(message);
  });

  it('an Inconclusive verdict is an Event that says the rollout holds', () => {
    const d = run(started, { now: at(90), verdict: verdict('Inconclusive') });
    expect(d.events).toEqual([{ type: 'Normal', reason: 'AnalysisInconclusive', message: expect.stringContaining('Candidate 2 holding at step 1/2 (weight 10%): analysis Inconclusive') }]);
    expect(d.status.candidate).toMatchObject({ lastVerdict: 'Inconclusive', lastVerdictStep: 0, lastAnalysisTime: '2026-12-01T12:01:30Z' });
  });

  it('a Successful verdict during the pause advances once the pause is over, without a new one', () => {
    const mid = run(started, { now: at(30), verdict: verdict('Successful') });
    expect(mid.status.candidate?.step).toBe(0);
    const later = run(mid.status, { now: at(60) });
    expect(later.status.candidate).toMatchObject({ step: 1, weight: 50, stepStartTime: '2026-12-01T12:01:00Z' });
    expect(later.events[0]).toMatchObject({ reason: 'StepAdvanced', message: expect.stringContaining('step 2/2: weight 10% → 50% (held 60 s') });
  });

  it('a step needs a Successful verdict of its own (the previous step\'s does not count)', () => {
    const s2 = run(started, { now: at(60), verdict: verdict('Successful') }).status;
    const d = run(s2, { now: at(200) });
    expect(d.status.candidate?.step).toBe(1);
    expect(d.message).toContain('waiting for the first analysis at this step');
  });

  it('promotes after the last step: stable = candidate, candidate cleared, Healthy', () => {
    const s2 = run(started, { now: at(60), verdict: verdict('Successful') }).status;
    const d = run(s2, { now: at(120), verdict: verdict('Successful') });
    expect(d.status).toEqual({ phase: 'Healthy', stable: v2 });
    expect(d.modelSet).toEqual({ stable: { uri: v2.uri, version: '2', sha256: v2.sha256 } });
    expect(d.events.map((e) => e.reason)).toEqual(['AnalysisSuccessful', 'Promoted']);
    expect(d.events[1]?.message).toContain('Promoted 2 to stable (was 1) after 2 steps');
    expect(d.progressing).toBe(false);
    // Steady afterwards: nothing more happens.
    const after = run(d.status, { now: at(500) });
    expect(after.status).toEqual(d.status);
    expect(after.events).toEqual([]);
  });

  it('rolls back after failureLimit Failed intervals: weight 0, candidate kept with its verdict, RollingBack then Degraded', () => {
    const f1 = run(started, { now: at(30), verdict: verdict('Failed') });
    expect(f1.events[0]).toMatchObject({ type: 'Warning', reason: 'AnalysisFailed', message: expect.stringContaining('(1 of failureLimit 2)') });
    const f2 = run(f1.status, { now: at(60), verdict: verdict('Failed') });
    expect(f2.status.phase).toBe('RollingBack');
    expect(f2.status.candidate).toMatchObject({ version: '2', weight: 0, failedAnalyses: 2, lastVerdict: 'Failed', rolledBackGeneration: 1, lastVerdictMessage: verdict('Failed').message });
    expect(f2.modelSet).toEqual({ stable: { uri: v1.uri, version: '1', sha256: v1.sha256 } });
    expect(f2.events.map((e) => e.reason)).toEqual(['AnalysisFailed', 'RollingBack']);
    expect(f2.progressing).toBe(false);
    const done = run(f2.status, { now: at(90) });
    expect(done.status.phase).toBe('Degraded');
    expect(done.events).toEqual([{ type: 'Warning', reason: 'RolledBack', message: 'Rollback of 2 complete: stable 1 serves 100%' }]);
    // Not retried while the spec is the same, whatever verdicts come in.
    const later = run(done.status, { now: at(900), verdict: verdict('Successful') });
    expect(later.status).toEqual(done.status);
    expect(later.events).toEqual([]);
    expect(later.message).toContain('until the spec changes');
    expect(analysisDue(later.status, 30, at(900))).toBe(false);
    // A spec change (new generation) retries the same candidate from step 1.
    const retry = run(done.status, { now: at(1000), generation: 2 });
    expect(retry.status.candidate).toMatchObject({ version: '2', step: 0, weight: 10, failedAnalyses: 0 });
    expect(retry.status.candidate?.rolledBackGeneration).toBeUndefined();
    expect(retry.events[0]?.message).toContain('after the rollback of 2: retrying');
  });

  it('a new spec during a rollout restarts it with the new candidate', () => {
    const s2 = run(started, { now: at(60), verdict: verdict('Successful') }).status;
    const d = run(s2, { now: at(70), resolved: v3, generation: 2 });
    expect(d.status.candidate).toMatchObject({ version: '3', step: 0, weight: 10, failedAnalyses: 0, stepStartTime: '2026-12-01T12:01:10Z' });
    expect(d.status.candidate?.lastVerdict).toBeUndefined();
    expect(d.status.stable).toEqual(v1);
    expect(d.events[0]?.message).toContain('spec changed from candidate 2 (at step 2/2, weight 50%): rollout restarted');
  });

  it('a spec change back to stable cancels the candidate', () => {
    const d = run(started, { now: at(10), resolved: v1 });
    expect(d.status).toEqual({ phase: 'Healthy', stable: v1 });
    expect(d.events[0]).toMatchObject({ reason: 'CandidateCancelled', message: 'Spec names stable 1 again: candidate 2 cancelled at step 1/2 (weight 10%)' });
  });

  it('a model that cannot be resolved holds everything as it is', () => {
    const d = run(started, { now: at(500), resolved: undefined, verdict: verdict('Failed') });
    expect(d.status).toEqual(started);
    expect(d.events).toEqual([]);
    expect(d.modelSet?.candidate?.weight).toBe(10);
    expect(d.message).toContain('candidate 2 held at 10%');
  });

  it('a different artifact under the same version is a different model', () => {
    const d = run(healthy, { resolved: { ...v1, sha256: 'f'.repeat(64) } });
    expect(d.status.candidate?.version).toBe('1');
  });

  it('steps edited during a rollout: the step index is clamped into the new list', () => {
    const s2 = run(started, { now: at(60), verdict: verdict('Successful') }).status;
    const one: RolloutSettings = { ...rollout, steps: [{ weight: 25, pauseSeconds: 0 }] };
    const d = run(s2, { now: at(61), rollout: one, generation: 2, verdict: verdict('Successful') });
    expect(d.status).toEqual({ phase: 'Healthy', stable: v2 });
  });
});

describe('analysisDue', () => {
  it.each<[string, number, boolean]>([['before one interval', 29, false], ['one interval after the step began', 30, true]])('%s', (_w, s, due) => {
    expect(analysisDue(run(healthy).status, 30, at(s))).toBe(due);
  });
  it('counts from the last analysis', () => {
    const s = run(run(healthy).status, { now: at(30), verdict: verdict('Inconclusive') }).status;
    expect(analysisDue(s, 30, at(59))).toBe(false);
    expect(analysisDue(s, 30, at(60))).toBe(true);
    expect(analysisDue(healthy, 30, at(60))).toBe(false);
  });
});

// ---- properties: a whole rollout driven by a clock and a stream of verdicts --------------------

interface Tick { dt: number; verdict?: Verdict; spec: 1 | 2 | 3 | 0 }
const tickArb: fc.Arbitrary<Tick> = fc.record({
  dt: fc.integer({ min: 0, max: 90 }),
  verdict: fc.option(fc.constantFrom<Verdict>('Successful', 'Failed', 'Inconclusive'), { nil: undefined }),
  spec: fc.constantFrom<1 | 2 | 3 | 0>(2, 2, 2, 2, 3, 1, 0),
});
const settingsArb: fc.Arbitrary<RolloutSettings> = fc.record({
  steps: fc.uniqueArray(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 4 }).map((ws) => [...ws].sort((a, b) => a - b)).chain((ws) =>
    fc.tuple(...ws.map((w) => fc.integer({ min: 0, max: 120 }).map((p) => ({ weight: w, pauseSeconds: p }))))),
  analysis: fc.record({ failureLimit: fc.integer({ min: 1, max: 4 }), intervalSeconds: fc.integer({ min: 5, max: 60 }) }),
});

function drive(settings: RolloutSettings, ticks: readonly Tick[], start: RolloutState, reload: (s: RolloutState) => RolloutState): RolloutDecision[] {
  let status = start;
  let now = t0.getTime();
  let generation = 1;
  let lastSpec: Tick['spec'] = 2;
  const out: RolloutDecision[] = [];
  for (const t of ticks) {
    now += t.dt * 1000;
    if (t.spec !== lastSpec) generation++;
    lastSpec = t.spec;
    const resolved = t.spec === 0 ? undefined : [v1, v2, v3][t.spec - 1];
    const d = stepRollout({ resolved, rollout: settings, generation, status, now: new Date(now), ...(t.verdict ? { verdict: verdict(t.verdict) } : {}) });
    out.push(d);
    status = reload(d.status);
  }
  return out;
}

describe('stepRollout properties', () => {
  it('resumes from status: a JSON round trip (a restarted operator reading status) gives the same decisions as one run', () => {
    fc.assert(fc.property(settingsArb, fc.array(tickArb, { maxLength: 40 }), (settings, ticks) => {
      const continuous = drive(settings, ticks, healthy, (s) => s);
      const restarted = drive(settings, ticks, healthy, (s) => JSON.parse(JSON.stringify(s)) as RolloutState);
      expect(restarted).toEqual(continuous);
    }), { numRuns: 300 });
  });

  it('never promotes without a Successful verdict at the last step, holds each pause, and rolls back only after failureLimit failures', () => {
    fc.assert(fc.property(settingsArb, fc.array(tickArb, { maxLength: 40 }), (settings, ticks) => {
      let status = healthy;
      let now = t0.getTime();
      for (const t of ticks) {
        now += t.dt * 1000;
        const resolved = t.spec === 0 ? undefined : [v1, v2, v3][t.spec - 1];
        const d = stepRollout({ resolved, rollout: settings, generation: 1, status, now: new Date(now), ...(t.verdict ? { verdict: verdict(t.verdict) } : {}) });
        const before = status.candidate;
        const reasons = d.events.map((e) => e.reason);
        if (reasons.includes('Promoted')) {
          expect(before?.step).toBe(settings.steps.length - 1);
          expect(d.status.candidate).toBeUndefined();
        }
        if (reasons.includes('Promoted') || reasons.includes('StepAdvanced')) {
          expect(d.status.candidate?.rolledBackGeneration).toBeUndefined();
          const pause = settings.steps[before?.step ?? 0]?.pauseSeconds ?? 0;
          expect(now - Date.parse(before?.stepStartTime ?? '')).toBeGreaterThanOrEqual(pause * 1000);
          expect(t.verdict === 'Successful' || (before?.lastVerdict === 'Successful' && before.lastVerdictStep === before.step)).toBe(true);
        }
        if (reasons.includes('RollingBack')) {
          expect(d.status.candidate?.failedAnalyses).toBe(settings.analysis.failureLimit);
          expect(d.modelSet?.candidate).toBeUndefined();
        }
        const w = d.modelSet?.candidate?.weight;
        if (w !== undefined) expect(settings.steps.map((s) => s.weight)).toContain(w);
        status = d.status;
      }
    }), { numRuns: 300 });
  });
});

describe('stepRollout: the agents refused the candidate (abort)', () => {
  const started = stepRollout({ resolved: v2, rollout, generation: 1, status: { phase: 'Healthy', stable: { ...v1 } }, now: t0 }).status;
  it('rolls back at once whatever failureLimit says, the refusal as the verdict; Degraded on the next round', () => {
    const message = "the pool's agents refused candidate 2 (2 agents manifest_checksum_mismatch)";
    const d = stepRollout({ resolved: v2, rollout, generation: 1, status: started, abort: { message }, now: at(5) });
    expect(d.status.phase).toBe('RollingBack');
    expect(d.status.candidate).toMatchObject({ weight: 0, rolledBackGeneration: 1, lastVerdict: 'Failed', lastVerdictMessage: message, failedAnalyses: 0 });
    expect(d.modelSet).toEqual({ stable: { uri: v1.uri, version: '1', sha256: v1.sha256 } });
    expect(d.events).toEqual([{ type: 'Warning', reason: 'RollingBack', message: expect.stringContaining(message) }]);
    const next = stepRollout({ resolved: v2, rollout, generation: 1, status: d.status, now: at(6) });
    expect(next.status.phase).toBe('Degraded');
    expect(next.progressing).toBe(false);
  });
});

describe('stepRollout: a candidate from an automatic retrain', () => {
  it('says where the new model came from', () => {
    const d = stepRollout({ resolved: { ...model('2'), source: 'FineTuneJob/asr-retrain-1' }, rollout, generation: 1, status: { phase: 'Healthy', stable: { ...v1 } }, now: t0 });
    expect(d.events[0]?.message).toContain('Canary 2 started beside stable 1 (new model from FineTuneJob/asr-retrain-1)');
  });
});
