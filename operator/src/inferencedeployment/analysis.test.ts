import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { AnalysisInput, AnalysisThresholds, Measured, VersionMeasurements } from './analysis.js';
import { analysisQueries, evaluateAnalysis, known, MAX_MESSAGE, measuredFor, p99LatencyQuery, promString, referenceWordsQuery, unknown, wordErrorsQuery } from './analysis.js';

const thresholds: AnalysisThresholds = { maxWerIncrease: 0.02, maxP99LatencySeconds: 5, minSamples: 200 };
const v = (errors: number, words: number, p99: number): VersionMeasurements => ({ wordErrors: known(errors), referenceWords: known(words), p99LatencySeconds: known(p99) });

function input(candidate: Partial<VersionMeasurements> = {}, stable: Partial<VersionMeasurements> = {}, over: Partial<AnalysisThresholds> = {}): AnalysisInput {
  return {
    candidate: { version: 'v2', ...v(24, 200, 0.8), ...candidate },
    stable: { version: 'v1', ...v(24, 200, 0.7), ...stable },
    thresholds: { ...thresholds, ...over },
  };
}

describe('evaluateAnalysis', () => {
  it.each<[string, AnalysisInput, string, string[]]>([
    ['equal WER, fast enough', input(), 'Successful', ['candidate within bounds', 'candidate v2 WER 0.12 (24 errors / 200 words)', 'stable v1 WER 0.12 (24 errors / 200 words)', 'difference +0 (max +0.02)', 'candidate p99 0.8 s (max 5 s, stable 0.7 s)']],
    ['better candidate', input({ wordErrors: known(10) }), 'Successful', ['candidate v2 WER 0.05', 'difference -0.07']],
    ['exactly at the allowed increase (float noise)', input({ wordErrors: known(28) }), 'Successful', ['WER 0.14', 'difference +0.02 (max +0.02)']],
    ['just above the allowed increase', input({ wordErrors: known(29) }), 'Failed', ['candidate WER above stable WER + maxWerIncrease', 'WER 0.145', 'difference +0.025']],
    ['p99 above the bound', input({ p99LatencySeconds: known(6.2) }), 'Failed', ['candidate p99 latency above bound', 'candidate p99 6.2 s (max 5 s']],
    ['both fail', input({ wordErrors: known(100), p99LatencySeconds: known(9) }), 'Failed', ['candidate WER above stable WER + maxWerIncrease; candidate p99 latency above bound']],
    ['slow candidate fails even without feedback', input({ wordErrors: unknown('empty: no series'), referenceWords: unknown('empty: no series'), p99LatencySeconds: known(7) }), 'Failed', ['p99 latency above bound', 'candidate v2 WER unknown']],
    ['too few candidate words', input({ wordErrors: known(0), referenceWords: known(199) }), 'Inconclusive', ['too few reference words (candidate 199; need 200 each)', 'WER 0 (0 errors / 199 words)']],
    ['too few stable words', input({}, { referenceWords: known(50) }), 'Inconclusive', ['too few reference words (stable 50; need 200 each)']],
    ['terrible WER on too few words is not a failure yet', input({ wordErrors: known(90), referenceWords: known(100) }), 'Inconclusive', ['too few reference words', 'WER 0.9']],
    ['no feedback at all (0 words): never 0 WER', input({ wordErrors: known(0), referenceWords: known(0) }), 'Inconclusive', ['WER n/a (0 errors / 0 words)', 'too few reference words (candidate 0']],
    ['candidate errors query empty', input({ wordErrors: unknown('empty: no series') }), 'Inconclusive', ['candidate word errors unknown (empty: no series)', 'candidate v2 WER unknown', 'difference unknown']],
    ['stable words query failed', input({}, { referenceWords: unknown('server_error: 503') }), 'Inconclusive', ['stable reference words unknown (server_error: 503)']],
    ['candidate p99 NaN (no requests)', input({ p99LatencySeconds: unknown('not_finite: NaN') }), 'Inconclusive', ['candidate p99 latency unknown (not_finite: NaN)', 'candidate p99 unknown (max 5 s)']],
    ['a NaN that slipped through is unknown, not 0', input({ wordErrors: known(Number.NaN) }), 'Inconclusive', ['candidate word errors invalid (NaN)']],
    ['a negative count is invalid', input({}, { wordErrors: known(-1) }), 'Inconclusive', ['stable word errors invalid (-1)']],
    ['stable p99 unknown is not needed', input({}, { p99LatencySeconds: unknown('empty') }), 'Successful', ['candidate p99 0.8 s (max 5 s)']],
    ['minSamples 1', input({ referenceWords: known(1), wordErrors: known(0) }, { referenceWords: known(1), wordErrors: known(0) }, { minSamples: 1 }), 'Successful', ['WER 0 (0 errors / 1 words)']],
  ])('%s', (_what, inp, verdict, parts) => {
    const r = evaluateAnalysis(inp);
    expect(r.verdict).toBe(verdict);
    for (const p of parts) expect(r.message).toContain(p);
  });

  it('returns the numbers it used', () => {
    const r = evaluateAnalysis(input({ wordErrors: known(30) }));
    expect(r).toMatchObject({ candidateWer: 0.15, stableWer: 0.12, candidateReferenceWords: 200, stableReferenceWords: 200, candidateP99Seconds: 0.8 });
    expect(r.werDifference).toBeCloseTo(0.03, 12);
    const u = evaluateAnalysis(input({ wordErrors: unknown('empty') }));
    expect(u.candidateWer).toBeUndefined();
    expect(u.werDifference).toBeUndefined();
    expect(u.candidateReferenceWords).toBe(200);
  });

  it('keeps the message within status.candidate.lastVerdictMessage', () => {
    const long = unknown('x'.repeat(3000));
    const r = evaluateAnalysis(input({ wordErrors: long }, { referenceWords: long }));
    expect(r.message.length).toBe(MAX_MESSAGE);
    expect(r.message.endsWith('…')).toBe(true);
  });
});

// ---- properties -------------------------------------------------------------------------------

const measuredArb: fc.Arbitrary<Measured> = fc.oneof(
  fc.double({ min: 0, max: 1e6, noNaN: true }).map(known),
  fc.constantFrom(unknown('empty: no series'), unknown('not_finite: NaN'), unknown('timeout: 5 s'), known(Number.NaN), known(Number.POSITIVE_INFINITY), known(-3)),
);
const versionArb = fc.record({ wordErrors: measuredArb, referenceWords: measuredArb, p99LatencySeconds: measuredArb });
const knownVersionArb = fc.record({
  words: fc.integer({ min: 0, max: 100_000 }),
  werPct: fc.double({ min: 0, max: 1.5, noNaN: true }),
  p99: fc.double({ min: 0, max: 20, noNaN: true }),
}).map(({ words, werPct, p99 }) => v(Math.round(words * werPct), words, p99));
const thresholdsArb = fc.record({
  maxWerIncrease: fc.double({ min: 0, max: 1, noNaN: true }),
  maxP99LatencySeconds: fc.double({ min: 0.001, max: 600, noNaN: true }),
  minSamples: fc.integer({ min: 1, max: 10_000 }),
});
const isUsable = (m: Measured): boolean => m.kind === 'known' && Number.isFinite(m.value) && m.value >= 0;

describe('evaluateAnalysis properties', () => {
  it('missing data is never Successful', () => {
    fc.assert(fc.property(versionArb, versionArb, thresholdsArb, (c, s, t) => {
      const r = evaluateAnalysis({ candidate: { version: 'c', ...c }, stable: { version: 's', ...s }, thresholds: t });
      const needed = [c.wordErrors, c.referenceWords, c.p99LatencySeconds, s.wordErrors, s.referenceWords];
      if (!needed.every(isUsable)) expect(r.verdict).not.toBe('Successful');
      expect(r.message.length).toBeLessThanOrEqual(MAX_MESSAGE);
    }), { numRuns: 1000 });
  });

  it('too few reference words on either side is never Successful', () => {
    fc.assert(fc.property(knownVersionArb, knownVersionArb, thresholdsArb, (c, s, t) => {
      const r = evaluateAnalysis({ candidate: { version: 'c', ...c }, stable: { version: 's', ...s }, thresholds: t });
      const words = (m: Measured): number => (m.kind === 'known' ? m.value : 0);
      if (words(c.referenceWords) < t.minSamples || words(s.referenceWords) < t.minSamples) expect(r.verdict).not.toBe('Successful');
    }), { numRuns: 500 });
  });

  it('a candidate equal to stable passes (enough words, p99 within bound)', () => {
    fc.assert(fc.property(knownVersionArb, thresholdsArb, (m, t) => {
      const p99 = m.p99LatencySeconds.kind === 'known' ? Math.min(m.p99LatencySeconds.value, t.maxP99LatencySeconds) : 0;
      const words = m.referenceWords.kind === 'known' ? Math.max(m.referenceWords.value, t.minSamples) : t.minSamples;
      const same = { ...m, referenceWords: known(words), p99LatencySeconds: known(p99) };
      expect(evaluateAnalysis({ candidate: { version: 'c', ...same }, stable: { version: 's', ...same }, thresholds: t }).verdict).toBe('Successful');
    }), { numRuns: 500 });
  });

  it('is monotone in the candidate\'s word errors: more errors never improve the verdict', () => {
    const rank = { Successful: 0, Inconclusive: 1, Failed: 2 } as const;
    fc.assert(fc.property(knownVersionArb, knownVersionArb, thresholdsArb, fc.double({ min: 0, max: 1e5, noNaN: true }), (c, s, t, extra) => {
      const base = evaluateAnalysis({ candidate: { version: 'c', ...c }, stable: { version: 's', ...s }, thresholds: t });
      const errors = c.wordErrors.kind === 'known' ? c.wordErrors.value : 0;
      const worse = evaluateAnalysis({ candidate: { version: 'c', ...c, wordErrors: known(errors + extra) }, stable: { version: 's', ...s }, thresholds: t });
      if (base.verdict === 'Failed') expect(worse.verdict).toBe('Failed');
      // Same words and p99: only Successful → Failed can move (Inconclusive stays: its cause is unchanged).
      expect(rank[worse.verdict]).toBeGreaterThanOrEqual(rank[base.verdict]);
    }), { numRuns: 1000 });
  });
});

describe('measuredFor', () => {
  const sample = (version: string, value: number) => ({ labels: { model_version: version }, value, timestamp: 1 });
  it.each<[string, Parameters<typeof measuredFor>[0], Measured]>([
    ['the version\'s series', { kind: 'vector', samples: [sample('2', 42), sample('1', 7)], warnings: [] }, known(42)],
    ['a zero is a real zero', { kind: 'vector', samples: [sample('2', 0)], warnings: [] }, known(0)],
    ['only the other version: unknown, never 0', { kind: 'vector', samples: [sample('1', 7)], warnings: [] }, unknown('empty: no series of model_version 2')],
    ['empty vector', { kind: 'vector', samples: [], warnings: [] }, unknown('empty: no series of model_version 2')],
    ['two series of the version', { kind: 'vector', samples: [sample('2', 1), sample('2', 2)], warnings: [] }, unknown('unsupported_result: 2 series of model_version 2 where one was expected')],
    ['NaN sample', { kind: 'vector', samples: [sample('2', Number.NaN)], warnings: [] }, unknown('not_finite: NaN')],
    ['scalar', { kind: 'scalar', value: 0.5, timestamp: 1, warnings: [] }, unknown('unsupported_result: a scalar where one series per model_version was expected')],
    ['port unknown', { kind: 'unknown', reason: 'timeout', message: 'no answer within 5000 ms' }, unknown('timeout: no answer within 5000 ms')],
  ])('%s', (_what, result, expected) => {
    expect(measuredFor(result, '2')).toEqual(expected);
  });
});

describe('PromQL builders', () => {
  const scope = { namespace: 'asr', pool: 'jetson-east', deployment: 'whisper-finance', modelVersions: ['1.2.0+ft', '1.1.0'], windowSeconds: 60 };
  const sel = 'namespace="asr",whisperops_dev_edgepool="jetson-east",deployment="whisper-finance",model_version=~"1\\\\.2\\\\.0\\\\+ft|1\\\\.1\\\\.0"';

  it.each<[string, (s: typeof scope) => string, string]>([
    ['word errors', wordErrorsQuery, `sum by (model_version) (increase(whisperops_agent_word_errors_total{${sel}}[60s]))`],
    ['reference words', referenceWordsQuery, `sum by (model_version) (increase(whisperops_agent_reference_words_total{${sel}}[60s]))`],
    ['p99 latency (NaN of an idle version dropped)', p99LatencyQuery, `histogram_quantile(0.99, sum by (le, model_version) (rate(whisperops_agent_request_duration_seconds_bucket{${sel}}[60s]))) >= 0`],
  ])('%s', (_what, build, expected) => {
    expect(build(scope)).toBe(expected);
  });

  it('builds the three queries of an interval over whole seconds', () => {
    const q = analysisQueries({ ...scope, windowSeconds: 90.7 });
    expect(Object.keys(q)).toEqual(['wordErrors', 'referenceWords', 'p99LatencySeconds']);
    for (const s of Object.values(q)) expect(s).toContain('[90s]');
  });

  it('escapes label values (no PromQL injection through a name or version; regex metacharacters matched literally)', () => {
    expect(promString('a"b\\c\nd')).toBe('"a\\"b\\\\c\\nd"');
    const q = wordErrorsQuery({ ...scope, modelVersions: ['x"} or vector(1) #'] });
    expect(q).toContain('model_version=~"x\\"\\\\} or vector\\\\(1\\\\) #"');
  });

  it('refuses a window under one second and an empty version list', () => {
    expect(() => wordErrorsQuery({ ...scope, windowSeconds: 0.5 })).toThrow(RangeError);
    expect(() => wordErrorsQuery({ ...scope, modelVersions: [] })).toThrow(RangeError);
  });
});
