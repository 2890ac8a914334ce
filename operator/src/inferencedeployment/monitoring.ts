// Live quality per scenario of the stable model (pure: PromQL builders and the state machine):
//
//   WER        increase(word errors) / increase(reference words) over the scenario's windowSeconds,
//              summed over the pool's agents, for the stable model version only
//   Unknown    fewer than minReferenceWords reference words in the window, or Prometheus could not
//              answer (never read as 0, never Degraded)
//   Degraded   WER > maxWer
//   Healthy    WER ≤ maxWer — except that a Degraded scenario becomes Healthy again only once its WER
//              is ≤ maxWer × (1 − HYSTERESIS): noise around the threshold does not flap the state
//              (and so cannot trigger a retrain twice)
//
// One pair of queries answers every scenario of one window (`sum by (scenario)`).
import type { InferenceDeploymentSpec, InferenceDeploymentStatus } from '../../../api/generated/types.js';
import { EDGEPOOL_LABEL, poolId } from '../edgepool/names.js';
import type { QueryResult } from '../prometheus/client.js';
import { promString } from './analysis.js';

/** Relative margin under maxWer a Degraded scenario must reach to be Healthy again. */
export const HYSTERESIS = 0.1;
/** WER moves smaller than this (same state) do not rewrite status.scenarios. */
export const CHURN_WER = 0.005;

export type ScenarioSpec = NonNullable<NonNullable<InferenceDeploymentSpec['monitoring']>['scenarios']>[number];
export type ScenarioStatus = NonNullable<InferenceDeploymentStatus['scenarios']>[number];

export interface MonitoringScope {
  namespace: string;
  pool: string;
  deployment: string;
  /** The stable model version: the one whose live quality is watched. */
  modelVersion: string;
}

export interface WindowQueries {
  windowSeconds: number;
  scenarios: string[];
  wordErrors: string;
  referenceWords: string;
}

const regexOf = (values: readonly string[]) => values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');

/** The queries of every window the scenarios use (scenarios of one window share them). */
export function monitoringQueries(scope: MonitoringScope, scenarios: readonly ScenarioSpec[]): WindowQueries[] {
  const byWindow = new Map<number, string[]>();
  for (const s of scenarios) byWindow.set(s.windowSeconds, [...(byWindow.get(s.windowSeconds) ?? []), s.name]);
  const poolLabel = EDGEPOOL_LABEL.replace(/[./]/g, '_');
  return [...byWindow.entries()].sort(([a], [b]) => a - b).map(([windowSeconds, names]) => {
    const sel = `namespace=${promString(scope.namespace)},${poolLabel}=${promString(poolId(scope.pool))},deployment=${promString(scope.deployment)},`
      + `model_version=${promString(scope.modelVersion)},scenario=~${promString(regexOf(names))}`;
    const w = `${Math.max(1, Math.floor(windowSeconds))}s`;
    return {
      windowSeconds, scenarios: names,
      wordErrors: `sum by (scenario) (increase(whisperops_agent_word_errors_total{${sel}}[${w}]))`,
      referenceWords: `sum by (scenario) (increase(whisperops_agent_reference_words_total{${sel}}[${w}]))`,
    };
  });
}

/** A scenario's value in an answer: its series, 0 when the answer is an empty vector (no feedback at all), undefined when unknown. */
function valueOf(r: QueryResult | undefined, scenario: string): number | undefined {
  if (!r) return undefined;
  if (r.kind === 'unknown') return r.reason === 'empty' ? 0 : undefined;
  if (r.kind !== 'vector') return undefined;
  const s = r.samples.find((x) => x.labels.scenario === scenario);
  return s ? s.value : 0;
}

export interface MeasuredScenario {
  name: string;
  errors: number | undefined;
  words: number | undefined;
  /** Why the numbers are unknown (Prometheus' answer), when they are. */
  problem?: string;
}

/** The numbers of each scenario from the answers to `monitoringQueries` (answers[i] = [errors, words] of queries[i]). */
export function measureScenarios(queries: readonly WindowQueries[], answers: readonly (readonly [QueryResult | undefined, QueryResult | undefined])[]): MeasuredScenario[] {
  const out: MeasuredScenario[] = [];
  queries.forEach((q, i) => {
    const [errors, words] = answers[i] ?? [undefined, undefined];
    const problem = [errors, words].map((r) => (r === undefined ? 'no Prometheus configured' : r.kind === 'unknown' && r.reason !== 'empty' ? `${r.reason}: ${r.message}` : undefined)).find((x) => x !== undefined);
    for (const name of q.scenarios) {
      const e = problem ? undefined : valueOf(errors, name);
      const w = problem ? undefined : valueOf(words, name);
      out.push({ name, errors: e, words: w, ...(problem ? { problem } : {}) });
    }
  });
  return out;
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

/** The next status.scenarios (in spec order) from the measurements and the previous states (hysteresis). */
export function scenarioStates(specs: readonly ScenarioSpec[], measured: readonly MeasuredScenario[], previous: readonly ScenarioStatus[] | undefined): ScenarioStatus[] {
  return specs.map((spec) => {
    const m = measured.find((x) => x.name === spec.name);
    const prev = previous?.find((p) => p.name === spec.name);
    const before = prev?.state;
    if (!m || m.errors === undefined || m.words === undefined) return { name: spec.name, state: 'Unknown' };
    const words = Math.round(m.words);
    if (m.words < spec.minReferenceWords || m.words <= 0) return { name: spec.name, state: 'Unknown', referenceWords: words };
    const wer = m.errors / m.words;
    let state: ScenarioStatus['state'] = wer > spec.maxWer ? 'Degraded' : 'Healthy';
    if (state === 'Healthy' && before === 'Degraded' && wer > spec.maxWer * (1 - HYSTERESIS)) state = 'Degraded';
    // Same state and a WER within half a point: the stored numbers stand (no status write per sample).
    if (prev && prev.state === state && prev.wer !== undefined && Math.abs(prev.wer - wer) < CHURN_WER) return prev;
    return { name: spec.name, state, wer: round4(wer), referenceWords: words };
  });
}

/** One line about the scenarios, for a condition (no numbers that move every sample: no status churn). */
export function scenariosSummary(specs: readonly ScenarioSpec[], states: readonly ScenarioStatus[]): { status: 'True' | 'False' | 'Unknown'; reason: string; message: string } {
  const degraded = states.filter((s) => s.state === 'Degraded');
  if (degraded.length > 0) {
    return {
      status: 'False', reason: 'ScenarioDegraded',
      message: `WER above maxWer: ${degraded.map((s) => `${s.name} (max ${specs.find((x) => x.name === s.name)?.maxWer ?? '?'})`).join(', ')}`,
    };
  }
  const unknown = states.filter((s) => s.state === 'Unknown');
  const healthy = states.filter((s) => s.state === 'Healthy').map((s) => s.name);
  // True only when every scenario is judged: an unknown one may be degraded without anyone knowing.
  if (unknown.length > 0) {
    return { status: 'Unknown', reason: 'NotEnoughFeedback', message: `too little feedback (or no Prometheus answer) to judge ${unknown.map((s) => s.name).join(', ')}${healthy.length > 0 ? `; within maxWer: ${healthy.join(', ')}` : ''}` };
  }
  return { status: 'True', reason: 'WithinBounds', message: `WER within maxWer: ${healthy.join(', ')}` };
}
