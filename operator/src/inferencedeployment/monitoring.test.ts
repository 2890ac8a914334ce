import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { QueryResult } from '../prometheus/client.js';
import type { ScenarioSpec, ScenarioStatus } from './monitoring.js';
import { HYSTERESIS, measureScenarios, monitoringQueries, scenariosSummary, scenarioStates } from './monitoring.js';

const medical: ScenarioSpec = { name: 'medical', maxWer: 0.2, windowSeconds: 300, minReferenceWords: 100 };
const general: ScenarioSpec = { name: 'general', maxWer: 0.3, windowSeconds: 300, minReferenceWords: 100 };
const finance: ScenarioSpec = { name: 'finance', maxWer: 0.3, windowSeconds: 900, minReferenceWords: 100 };
const scope = { namespace: 'edge', pool: 'jetsons', deployment: 'asr', modelVersion: '1.0.0' };
const vec = (...s: [string, number][]): QueryResult => ({ kind: 'vector', samples: s.map(([scenario, value]) => ({ labels: { scenario }, value, timestamp: 0 })), warnings: [] });

describe('monitoringQueries', () => {
  it('one pair per window, for the stable version, every scenario of the window at once', () => {
    const q = monitoringQueries(scope, [medical, finance, general]);
    expect(q.map((x) => [x.windowSeconds, x.scenarios])).toEqual([[300, ['medical', 'general']], [900, ['finance']]]);
    expect(q[0]?.wordErrors).toBe('sum by (scenario) (increase(whisperops_agent_word_errors_total{namespace="edge",whisperops_dev_edgepool="jetsons",deployment="asr",model_version="1.0.0",scenario=~"medical|general"}[300s]))');
    expect(q[1]?.referenceWords).toContain('whisperops_agent_reference_words_total{');
    expect(q[1]?.referenceWords).toContain('[900s]');
  });
});

describe('measureScenarios + scenarioStates', () => {
  const q = monitoringQueries(scope, [medical, general]);
  it.each<[string, QueryResult, QueryResult, ScenarioStatus[] | undefined, ScenarioStatus[]]>([
    ['above maxWer: Degraded, with the numbers', vec(['medical', 60], ['general', 20]), vec(['medical', 200], ['general', 200]), undefined,
      [{ name: 'medical', state: 'Degraded', wer: 0.3, referenceWords: 200 }, { name: 'general', state: 'Healthy', wer: 0.1, referenceWords: 200 }]],
    ['too few words: Unknown, never Degraded', vec(['medical', 60]), vec(['medical', 99]), undefined,
      [{ name: 'medical', state: 'Unknown', referenceWords: 99 }, { name: 'general', state: 'Unknown', referenceWords: 0 }]],
    ['no feedback at all (empty answer): Unknown', { kind: 'unknown', reason: 'empty', message: 'no series matched' }, { kind: 'unknown', reason: 'empty', message: 'no series matched' }, undefined,
      [{ name: 'medical', state: 'Unknown', referenceWords: 0 }, { name: 'general', state: 'Unknown', referenceWords: 0 }]],
    ['Prometheus down: Unknown, never 0 and never Degraded', { kind: 'unknown', reason: 'network', message: 'ECONNREFUSED' }, vec(['medical', 200]), [{ name: 'medical', state: 'Degraded', wer: 0.5 }],
      [{ name: 'medical', state: 'Unknown' }, { name: 'general', state: 'Unknown' }]],
    ['hysteresis: a Degraded scenario just under maxWer stays Degraded', vec(['medical', 38]), vec(['medical', 200]), [{ name: 'medical', state: 'Degraded', wer: 0.25, referenceWords: 200 }],
      [{ name: 'medical', state: 'Degraded', wer: 0.19, referenceWords: 200 }, { name: 'general', state: 'Unknown', referenceWords: 0 }]],
    ['…and Healthy once clearly under it', vec(['medical', 30]), vec(['medical', 200]), [{ name: 'medical', state: 'Degraded', wer: 0.25, referenceWords: 200 }],
      [{ name: 'medical', state: 'Healthy', wer: 0.15, referenceWords: 200 }, { name: 'general', state: 'Unknown', referenceWords: 0 }]],
    ['a WER move under half a point keeps the stored numbers (no status churn)', vec(['medical', 61]), vec(['medical', 202]), [{ name: 'medical', state: 'Degraded', wer: 0.3, referenceWords: 200 }],
      [{ name: 'medical', state: 'Degraded', wer: 0.3, referenceWords: 200 }, { name: 'general', state: 'Unknown', referenceWords: 0 }]],
  ])('%s', (_what, errors, words, previous, want) => {
    expect(scenarioStates([medical, general], measureScenarios(q, [[errors, words]]), previous)).toEqual(want);
  });

  it('property: Unknown below minReferenceWords whatever the errors; Degraded only above maxWer', () => {
    fc.assert(fc.property(fc.nat(1000), fc.nat(1000), fc.constantFrom<ScenarioStatus['state'] | undefined>(undefined, 'Healthy', 'Degraded', 'Unknown'), (errors, words, before) => {
      const [s] = scenarioStates([medical], measureScenarios(monitoringQueries(scope, [medical]), [[vec(['medical', errors]), vec(['medical', words])]]), before ? [{ name: 'medical', state: before }] : undefined);
      if (words < medical.minReferenceWords) expect(s?.state).toBe('Unknown');
      if (s?.state === 'Degraded') expect(errors / words).toBeGreaterThan(medical.maxWer * (1 - HYSTERESIS));
      if (s?.state === 'Degraded' && before !== 'Degraded') expect(errors / words).toBeGreaterThan(medical.maxWer);
    }));
  });
});

describe('scenariosSummary', () => {
  it.each<[string, ScenarioStatus[], string]>([
    ['one Degraded', [{ name: 'medical', state: 'Degraded', wer: 0.3 }, { name: 'general', state: 'Healthy', wer: 0.1 }], 'False ScenarioDegraded WER above maxWer: medical (max 0.2)'],
    ['all unknown', [{ name: 'medical', state: 'Unknown' }, { name: 'general', state: 'Unknown' }], 'Unknown NotEnoughFeedback too little feedback (or no Prometheus answer) to judge medical, general'],
    ['healthy and unknown: not True (the unknown one may be degraded)', [{ name: 'medical', state: 'Healthy', wer: 0.1 }, { name: 'general', state: 'Unknown' }], 'Unknown NotEnoughFeedback too little feedback (or no Prometheus answer) to judge general; within maxWer: medical'],
    ['all healthy', [{ name: 'medical', state: 'Healthy', wer: 0.1 }, { name: 'general', state: 'Healthy', wer: 0.2 }], 'True WithinBounds WER within maxWer: medical, general'],
  ])('%s', (_what, states, want) => {
    const s = scenariosSummary([medical, general], states);
    expect(`${s.status} ${s.reason} ${s.message}`).toBe(want);
  });
});
