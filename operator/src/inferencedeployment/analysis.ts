// One analysis interval of a canary: candidate vs stable over the same window, from numbers the
// Prometheus port already returned (pure; in the style of Argo Rollouts' utils/evaluate/evaluate.go,
// a verdict from measurements, never an exception). Rules:
//
//   Failed       candidate p99 latency known and > maxP99LatencySeconds (latency needs no feedback), or
//                both WERs known on ≥ minSamples reference words each and
//                candidate WER − stable WER > maxWerIncrease
//   Inconclusive a value needed for the WER comparison or the candidate's p99 is unknown (an empty,
//                NaN or failing query is never read as 0), or either version has fewer than
//                minSamples reference words in the window
//   Successful   otherwise: enough words on both sides, WER within the allowed increase, p99 within bound
//
// Every verdict's message carries the numbers (WERs, difference, words, p99) so that status, Events
// and logs say why. PromQL builders for the inputs are at the end: per model version, scoped to the
// pool's agents (the same target labels as the EdgePool's load query) and the deployment.
import type { InferenceDeploymentSpec } from '../../../api/generated/types.js';
import { EDGEPOOL_LABEL, poolId } from '../edgepool/names.js';
import type { QueryResult } from '../prometheus/client.js';

/** A measured number, or why there is none (never a silent 0). */
export type Measured = { kind: 'known'; value: number } | { kind: 'unknown'; reason: string };

/** What the queries gave for one model version over the interval's window. */
export interface VersionMeasurements {
  /** increase(word_errors_total) over the window. */
  wordErrors: Measured;
  /** increase(reference_words_total) over the window. */
  referenceWords: Measured;
  /** p99 of the request duration over the window, seconds. */
  p99LatencySeconds: Measured;
}

export type AnalysisThresholds = Pick<InferenceDeploymentSpec['rollout']['analysis'], 'maxWerIncrease' | 'maxP99LatencySeconds' | 'minSamples'>;

export interface AnalysisInput {
  candidate: VersionMeasurements & { version: string };
  stable: VersionMeasurements & { version: string };
  thresholds: AnalysisThresholds;
}

export type Verdict = 'Successful' | 'Failed' | 'Inconclusive';

export interface AnalysisResult {
  verdict: Verdict;
  /** One line with the numbers (≤ MAX_MESSAGE characters): goes to status and Events. */
  message: string;
  /** The numbers the verdict rests on; absent where unknown. */
  candidateWer?: number;
  stableWer?: number;
  /** candidateWer − stableWer. */
  werDifference?: number;
  candidateReferenceWords?: number;
  stableReferenceWords?: number;
  candidateP99Seconds?: number;
}

/** status.candidate.lastVerdictMessage's maxLength. */
export const MAX_MESSAGE = 1024;
/** Float noise: 0.14 − 0.12 is 0.020000000000000018, which must not fail a 0.02 bound. */
const EPSILON = 1e-9;

export const known = (value: number): Measured => ({ kind: 'known', value });
export const unknown = (reason: string): Measured => ({ kind: 'unknown', reason });

/** A known, finite, non-negative number, or why not. */
function valid(m: Measured, what: string): { value: number } | { reason: string } {
  if (m.kind === 'unknown') return { reason: `${what} unknown (${m.reason})` };
  if (!Number.isFinite(m.value) || m.value < 0) return { reason: `${what} invalid (${String(m.value)})` };
  return { value: m.value };
}

function fmt(n: number, digits = 4): string {
  const s = n.toFixed(digits).replace(/0+$/, '').replace(/\.$/, '');
  return s === '-0' ? '0' : s;
}

interface Side {
  wer?: number;
  words?: number;
  errors?: number;
  text: string;
  problems: string[];
}

function side(label: string, m: VersionMeasurements & { version: string }): Side {
  const errors = valid(m.wordErrors, 'word errors');
  const words = valid(m.referenceWords, 'reference words');
  const problems: string[] = [];
  if ('reason' in errors) problems.push(`${label} ${errors.reason}`);
  if ('reason' in words) problems.push(`${label} ${words.reason}`);
  if ('value' in errors && 'value' in words) {
    const wer = words.value > 0 ? errors.value / words.value : undefined;
    const werText = wer === undefined ? 'n/a' : fmt(wer);
    return { ...(wer === undefined ? {} : { wer }), words: words.value, errors: errors.value, text: `${label} ${m.version} WER ${werText} (${fmt(errors.value, 1)} errors / ${fmt(words.value, 1)} words)`, problems };
  }
  return {
    ...('value' in words ? { words: words.value } : {}),
    text: `${label} ${m.version} WER unknown`,
    problems,
  };
}

function truncate(message: string): string {
  return message.length <= MAX_MESSAGE ? message : `${message.slice(0, MAX_MESSAGE - 1)}…`;
}

/** The verdict of one analysis interval (see the rules at the top of this file). */
export function evaluateAnalysis(input: AnalysisInput): AnalysisResult {
  const { maxWerIncrease, maxP99LatencySeconds, minSamples } = input.thresholds;
  const c = side('candidate', input.candidate);
  const s = side('stable', input.stable);
  const p99 = valid(input.candidate.p99LatencySeconds, 'p99 latency');
  const stableP99 = valid(input.stable.p99LatencySeconds, 'p99 latency');

  const numbers: Omit<AnalysisResult, 'verdict' | 'message'> = {
    ...(c.wer !== undefined ? { candidateWer: c.wer } : {}),
    ...(s.wer !== undefined ? { stableWer: s.wer } : {}),
    ...(c.wer !== undefined && s.wer !== undefined ? { werDifference: c.wer - s.wer } : {}),
    ...(c.words !== undefined ? { candidateReferenceWords: c.words } : {}),
    ...(s.words !== undefined ? { stableReferenceWords: s.words } : {}),
    ...('value' in p99 ? { candidateP99Seconds: p99.value } : {}),
  };

  const diffText = numbers.werDifference !== undefined
    ? `difference ${numbers.werDifference >= 0 ? '+' : ''}${fmt(numbers.werDifference)} (max +${fmt(maxWerIncrease)})`
    : `difference unknown (max +${fmt(maxWerIncrease)})`;
  const p99Text = 'value' in p99
    ? `candidate p99 ${fmt(p99.value, 3)} s (max ${fmt(maxP99LatencySeconds, 3)} s${'value' in stableP99 ? `, stable ${fmt(stableP99.value, 3)} s` : ''})`
    : `candidate p99 unknown (max ${fmt(maxP99LatencySeconds, 3)} s)`;
  const numbersText = `${c.text}, ${s.text}, ${diffText}; ${p99Text}`;
  const result = (verdict: Verdict, why: string): AnalysisResult => ({ verdict, message: truncate(`${why}: ${numbersText}`), ...numbers });

  const failures: string[] = [];
  if ('value' in p99 && p99.value > maxP99LatencySeconds + EPSILON) failures.push('candidate p99 latency above bound');

  const problems = [...c.problems, ...s.problems];
  if ('reason' in p99) problems.push(`candidate ${p99.reason}`);
  const few: string[] = [];
  const need = Math.max(1, minSamples); // a WER needs at least one reference word, whatever the spec says
  if (c.words !== undefined && c.words < need) few.push(`candidate ${fmt(c.words, 1)}`);
  if (s.words !== undefined && s.words < need) few.push(`stable ${fmt(s.words, 1)}`);
  const werConclusive = c.problems.length === 0 && s.problems.length === 0 && few.length === 0 && c.wer !== undefined && s.wer !== undefined;
  if (werConclusive && numbers.werDifference !== undefined && numbers.werDifference > maxWerIncrease + EPSILON) failures.unshift('candidate WER above stable WER + maxWerIncrease');

  if (failures.length > 0) return result('Failed', failures.join('; '));
  if (few.length > 0) problems.push(`too few reference words (${few.join(', ')}; need ${need} each)`);
  if (problems.length > 0) return result('Inconclusive', problems.join('; '));
  return result('Successful', 'candidate within bounds');
}

/**
 * One version's number from the port's answer to one of the queries below (one series per
 * model_version): that version's finite sample, else unknown — an absent series is never a 0.
 */
export function measuredFor(result: QueryResult, version: string): Measured {
  switch (result.kind) {
    case 'unknown': return unknown(`${result.reason}: ${result.message}`);
    case 'scalar': return unknown(`unsupported_result: a scalar where one series per model_version was expected`);
    case 'vector': {
      const mine = result.samples.filter((x) => x.labels.model_version === version);
      const [first, ...rest] = mine;
      if (first === undefined) return unknown(`empty: no series of model_version ${version}`);
      if (rest.length > 0) return unknown(`unsupported_result: ${mine.length} series of model_version ${version} where one was expected`);
      return Number.isFinite(first.value) ? known(first.value) : unknown(`not_finite: ${String(first.value)}`);
    }
  }
}

// ---- PromQL -------------------------------------------------------------------------------------

/**
 * What scopes a query: the pool's agents (target labels namespace + pool label), one deployment, and
 * the versions compared (candidate and stable: one query answers both, one series each).
 */
export interface QueryScope {
  namespace: string;
  /** The EdgePool's name (spec.edgePoolRef.name). */
  pool: string;
  /** The InferenceDeployment's name: the `deployment` label of the agents' metrics. */
  deployment: string;
  modelVersions: readonly string[];
  /** The analysis window, whole seconds (the analysis interval). */
  windowSeconds: number;
}

/** A PromQL string literal: backslash, quote and line breaks escaped. */
export function promString(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
}

/** An RE2 alternation matching exactly the given strings (Prometheus anchors label regexes). */
function exactly(values: readonly string[]): string {
  if (values.length === 0) throw new RangeError('a query needs at least one model version');
  return values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
}

function selector(scope: QueryScope): string {
  const poolLabel = EDGEPOOL_LABEL.replace(/[./]/g, '_');
  return `namespace=${promString(scope.namespace)},${poolLabel}=${promString(poolId(scope.pool))},deployment=${promString(scope.deployment)},model_version=~${promString(exactly(scope.modelVersions))}`;
}

function windowOf(scope: QueryScope): string {
  const s = Math.floor(scope.windowSeconds);
  if (!Number.isFinite(s) || s < 1) throw new RangeError(`analysis window must be at least 1 s, got ${String(scope.windowSeconds)}`);
  return `${s}s`;
}

/** Word errors of each version's transcripts against feedback references, summed over agents and scenarios. */
export function wordErrorsQuery(scope: QueryScope): string {
  return `sum by (model_version) (increase(whisperops_agent_word_errors_total{${selector(scope)}}[${windowOf(scope)}]))`;
}

/** Reference words of each version's feedback, summed over agents and scenarios. */
export function referenceWordsQuery(scope: QueryScope): string {
  return `sum by (model_version) (increase(whisperops_agent_reference_words_total{${selector(scope)}}[${windowOf(scope)}]))`;
}

/**
 * p99 request latency of each version over all agents. A version that served no request in the
 * window has a NaN quantile; `>= 0` drops it (so it is absent, hence unknown) instead of making the
 * whole answer not finite.
 */
export function p99LatencyQuery(scope: QueryScope): string {
  return `histogram_quantile(0.99, sum by (le, model_version) (rate(whisperops_agent_request_duration_seconds_bucket{${selector(scope)}}[${windowOf(scope)}]))) >= 0`;
}

/** The three queries of an interval, in VersionMeasurements' order; each answers every version in scope. */
export function analysisQueries(scope: QueryScope): Record<keyof VersionMeasurements, string> {
  return { wordErrors: wordErrorsQuery(scope), referenceWords: referenceWordsQuery(scope), p99LatencySeconds: p99LatencyQuery(scope) };
}
