import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { failureText, MAX_RESULT_BYTES, parseTrainerResult, werSummary } from './trainer-result.js';

const sha = 'ab'.repeat(32);
const good = {
  modelUri: 'file:///models/out/finance', version: '1.1.0', sha256: sha, parentVersion: '1.0.0',
  wer: { medical: 0.31, finance: 0.1234 }, baseWer: { finance: 0.2, medical: 0.33 },
  trainableParams: 294912, totalParams: 37_760_640, quantization: 'int8', durationSeconds: 812.5,
};

describe('parseTrainerResult', () => {
  it('maps a valid result, with a sorted WER summary', () => {
    const v = parseTrainerResult(JSON.stringify(good));
    expect(v).toEqual({ ok: true, result: { ...good, werSummary: 'finance=0.123 medical=0.31' } });
  });

  it('maps the compression report of a distilled, pruned model', () => {
    const compression = {
      techniques: ['distillation', 'headPruning'], paramsBefore: 8_000_000, paramsAfter: 3_900_000,
      headsBefore: 48, headsAfter: 29, referenceWer: { general: 0.21 },
    };
    const v = parseTrainerResult(JSON.stringify({ ...good, compression }));
    expect(v).toEqual({ ok: true, result: { ...good, compression, werSummary: 'finance=0.123 medical=0.31' } });
  });

  it('maps a quantization-aware static INT8 result with the dynamic INT8 WER beside it', () => {
    const compression = { techniques: ['quantizationAware'], paramsBefore: 8_048_128, paramsAfter: 8_048_128, werInt8Static: { general: 0.14 }, werInt8Dynamic: { general: 0.16 } };
    const v = parseTrainerResult(JSON.stringify({ ...good, quantization: 'int8-static', compression }));
    expect(v).toEqual({ ok: true, result: { ...good, quantization: 'int8-static', compression, werSummary: 'finance=0.123 medical=0.31' } });
  });

  it('accepts the minimum: modelUri, version, sha256', () => {
    expect(parseTrainerResult(`  {"modelUri":"file:///m","version":"v2","sha256":"${sha}"}\n`)).toEqual({
      ok: true, result: { modelUri: 'file:///m', version: 'v2', sha256: sha },
    });
  });

  it.each([
    ['empty', '', 'ResultMissing', 'wrote no result'],
    ['undefined', undefined, 'ResultMissing', 'wrote no result'],
    ['not JSON', 'Traceback (most recent call last):', 'ResultNotJSON', 'not JSON'],
    ['an array', '[1,2]', 'ResultInvalid', 'must be a JSON object'],
    ['too large', JSON.stringify({ ...good, pad: 'x'.repeat(MAX_RESULT_BYTES) }), 'ResultTooLarge', 'at most 4096'],
    ['no modelUri', JSON.stringify({ ...good, modelUri: undefined }), 'ResultInvalid', 'modelUri is missing'],
    ['numeric version', JSON.stringify({ ...good, version: 2 }), 'ResultInvalid', 'version must be a non-empty string'],
    ['bad sha256', JSON.stringify({ ...good, sha256: 'XYZ' }), 'ResultInvalid', 'sha256 must be 64 lowercase hex digits'],
    ['negative WER', JSON.stringify({ ...good, wer: { finance: -0.1 } }), 'ResultInvalid', 'wer.finance must be a finite number ≥ 0'],
    ['string WER', JSON.stringify({ ...good, baseWer: { finance: '0.2' } }), 'ResultInvalid', 'baseWer.finance'],
    ['wer not a map', JSON.stringify({ ...good, wer: [0.1] }), 'ResultInvalid', 'wer must be an object'],
    ['fractional params', JSON.stringify({ ...good, totalParams: 1.5 }), 'ResultInvalid', 'totalParams must be a non-negative integer'],
    ['trainable > total', JSON.stringify({ ...good, trainableParams: 10, totalParams: 5 }), 'ResultInvalid', 'exceeds totalParams'],
    ['unknown quantization', JSON.stringify({ ...good, quantization: 'int4' }), 'ResultInvalid', 'quantization must be one of'],
    ['negative duration', JSON.stringify({ ...good, durationSeconds: -1 }), 'ResultInvalid', 'durationSeconds'],
    ['compression not an object', JSON.stringify({ ...good, compression: 3 }), 'ResultInvalid', 'compression must be an object'],
    ['unknown technique', JSON.stringify({ ...good, compression: { techniques: ['lottery'] } }), 'ResultInvalid', 'compression.techniques must be a list'],
    ['fractional paramsAfter', JSON.stringify({ ...good, compression: { paramsAfter: 2.5 } }), 'ResultInvalid', 'compression.paramsAfter must be a non-negative integer'],
    ['role accuracy above 1', JSON.stringify({ ...good, compression: { roleAccuracy: 1.2 } }), 'ResultInvalid', 'compression.roleAccuracy'],
  ])('%s → %s', (_what, text, reason, fragment) => {
    const v = parseTrainerResult(text);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.reason).toBe(reason);
      expect(v.message).toContain(fragment);
    }
  });

  it('lists every problem of a result at once', () => {
    const v = parseTrainerResult(JSON.stringify({ version: '', sha256: 'no' }));
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.message).toBe("the trainer's result is invalid: modelUri is missing; version must be a non-empty string; sha256 must be 64 lowercase hex digits");
  });

  it('never throws, whatever the pod says', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.constant(undefined)), (text) => {
      const v = parseTrainerResult(text);
      expect(typeof v.ok).toBe('boolean');
    }));
  });

  it('accepts every well-formed result and keeps its values', () => {
    const scenario = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
    const result = fc.record({
      modelUri: fc.webUrl(),
      version: fc.stringMatching(/^[0-9a-z.+-]{1,20}$/),
      sha256: fc.stringMatching(/^[a-f0-9]{64}$/),
      wer: fc.dictionary(scenario, fc.double({ min: 0, max: 2, noNaN: true }), { maxKeys: 8 }),
      trainableParams: fc.nat(1_000_000),
    });
    fc.assert(fc.property(result, (r) => {
      const v = parseTrainerResult(JSON.stringify(r));
      expect(v.ok).toBe(true);
      if (v.ok) {
        expect(v.result).toMatchObject(r);
        expect(v.result.werSummary?.split(' ').filter(Boolean)).toHaveLength(Object.keys(r.wer).length);
      }
    }));
  });
});

describe('werSummary', () => {
  it.each([
    [{}, ''],
    [{ medical: 0.31, finance: 0.12 }, 'finance=0.12 medical=0.31'],
    [{ general: 0.123456 }, 'general=0.123'],
  ])('%j → %s', (wer, text) => {
    expect(werSummary(wer)).toBe(text);
  });

  it('fits the 512-character status field', () => {
    const wer = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`scenario-with-a-long-name-${i}`, 0.123]));
    expect(werSummary(wer).length).toBeLessThanOrEqual(512);
  });
});

describe('failureText', () => {
  it.each([
    ['the failure document', '{"error":{"reason":"PreflightFailed","message":"preflight: spec.dataset.uri s3://d/m.jsonl: no such object"}}', 'PreflightFailed: preflight: spec.dataset.uri s3://d/m.jsonl: no such object'],
    ['without a reason', '{"error":{"message":"boom"}}', 'boom'],
    ['plain text, white space collapsed', 'RuntimeError:\n  CUDA error', 'RuntimeError: CUDA error'],
    ['other JSON as it is', '{"modelUri": "x"}', '{"modelUri": "x"}'],
    ['a log tail that is not JSON', '{"ts": 1', '{"ts": 1'],
  ])('%s', (_what, message, want) => {
    expect(failureText(message)).toBe(want);
  });
});
