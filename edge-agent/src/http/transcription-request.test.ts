import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { encodeWav16 } from '../audio/wav.js';
import type { Picked } from '../models/model-manager.js';
import { formatTranscription, sseEvent, textDelta, textDone, timestamp } from './response-formats.js';
import { declaredBodyBytes, decodeUpload, isRefusal, parseTranscriptionFields } from './transcription-request.js';
import type { ModelView } from './transcription-request.js';

const picked = { deployment: 'general', role: 'stable', model: { key: 'general/v1', version: 'v1', info: { languages: ['en', 'de'] } } } as unknown as Picked;
const models: ModelView = { ready: true, pick: (name) => (name === undefined || name === 'general' ? picked : undefined) };

describe('parseTranscriptionFields (pure)', () => {
  it.each([
    ['no file', {}, false, 400, 'missing_file', 'file'],
    ['an unknown response_format', { response_format: 'xml' }, true, 400, 'invalid_value', 'response_format'],
    ['a temperature above 1', { temperature: '7' }, true, 400, 'invalid_value', 'temperature'],
    ['a non-numeric temperature', { temperature: 'hot' }, true, 400, 'invalid_value', 'temperature'],
    ['a bad stream flag', { stream: 'maybe' }, true, 400, 'invalid_value', 'stream'],
    ['stream with srt', { stream: 'true', response_format: 'srt' }, true, 400, 'invalid_value', 'response_format'],
    ['an unknown model', { model: 'nope' }, true, 404, 'model_not_found', 'model'],
    ['an unsupported language', { language: 'fr' }, true, 400, 'unsupported_language', 'language'],
  ])('refuses %s', (_name, body, hasFile, status, code, param) => {
    const r = parseTranscriptionFields(body, hasFile, models);
    expect(isRefusal(r)).toBe(true);
    if (!isRefusal(r)) return;
    expect([r.error.status, r.error.code, r.error.param]).toEqual([status, code, param]);
    expect(r.error.body.error.message.length).toBeGreaterThan(10);
  });

  it('answers 503 not_ready when no model is loaded yet', () => {
    const r = parseTranscriptionFields({}, true, { ready: false, pick: () => undefined });
    expect(isRefusal(r) && [r.error.status, r.reason]).toEqual([503, 'not_ready']);
  });

  it('fills the defaults and reads every field', () => {
    expect(parseTranscriptionFields({}, true, models)).toMatchObject({ deployment: 'general', modelVersion: 'v1', language: 'en', format: 'json', temperature: 0, prompt: '', stream: false });
    expect(parseTranscriptionFields({ model: 'general', language: 'DE', response_format: 'text', temperature: '0.4', prompt: 'hi', stream: 'true' }, true, models)).toMatchObject({
      language: 'de',
      format: 'text',
      temperature: 0.4,
      prompt: 'hi',
      stream: true,
    });
  });

  it('never throws: any field values give a parsed request or a 4xx/503 refusal (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('model', 'language', 'response_format', 'temperature', 'prompt', 'stream', 'other'), fc.oneof(fc.string(), fc.integer(), fc.constant(null))), fc.boolean(), (body, hasFile) => {
        const r = parseTranscriptionFields(body, hasFile, models);
        if (isRefusal(r)) expect([400, 404, 503]).toContain(r.error.status);
        else expect(hasFile).toBe(true);
      }),
    );
  });
});

describe('decodeUpload and declaredBodyBytes (pure)', () => {
  it('maps WAV problems to statuses and codes', () => {
    const cases: [Uint8Array, number, string][] = [
      [new Uint8Array(0), 400, 'empty_file'],
      [Uint8Array.from([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 9]), 415, 'unsupported_format'],
      [encodeWav16(new Float32Array(16000 * 3), 16000), 413, 'audio_too_long'],
    ];
    for (const [bytes, status, code] of cases) {
      const r = decodeUpload(bytes, 2);
      expect(isRefusal(r) && [r.error.status, r.error.code]).toEqual([status, code]);
    }
    const ok = decodeUpload(encodeWav16(new Float32Array(16000), 16000), 2);
    expect(isRefusal(ok)).toBe(false);
  });

  it('reserves the declared length, the cap when none is declared, and refuses more than the cap', () => {
    expect(declaredBodyBytes('1234', 5000)).toBe(1234);
    expect(declaredBodyBytes(undefined, 5000)).toBe(5000);
    const big = declaredBodyBytes('5001', 5000);
    expect(isRefusal(big) && [big.error.status, big.error.code]).toEqual([413, 'file_too_large']);
    const junk = declaredBodyBytes('12abc', 5000);
    expect(isRefusal(junk) && junk.error.status).toBe(400);
  });
});

describe('response formats (pure)', () => {
  const result = {
    text: 'Hello there. General Kenobi.',
    audioSeconds: 3723.5,
    windows: [
      { start: 0, end: 1.25, text: ' Hello there.', tokens: [1, 2], avgLogprob: -0.1234567 },
      { start: 3723, end: 3723.5, text: ' General Kenobi.', tokens: [3], avgLogprob: -0.5 },
    ],
  };
  const ctx = { language: 'en', temperature: 0, requestId: 'req_1', deployment: 'general', modelVersion: 'v1' };
  it('renders every format', () => {
    expect(JSON.parse(formatTranscription('json', result, ctx).body)).toEqual({ text: result.text });
    expect(formatTranscription('text', result, ctx).body).toBe(`${result.text}\n`);
    const v = JSON.parse(formatTranscription('verbose_json', result, ctx).body) as { language: string; segments: { start: number; avg_logprob: number }[]; model_version: string };
    expect([v.language, v.segments.length, v.segments[1]?.start, v.segments[0]?.avg_logprob, v.model_version]).toEqual(['english', 2, 3723, -0.12346, 'v1']);
    expect(formatTranscription('srt', result, ctx).body).toBe('1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n2\n01:02:03,000 --> 01:02:03,500\nGeneral Kenobi.\n');
    expect(formatTranscription('vtt', result, ctx).body).toBe('WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n\n01:02:03.000 --> 01:02:03.500\nGeneral Kenobi.\n');
    expect(formatTranscription('vtt', result, ctx).contentType).toMatch(/^text\/vtt/);
    expect(timestamp(59.9996, '.')).toBe('00:01:00.000');
  });
  it('verbose_json of a model without a role head has exactly the keys it always had', () => {
    const v = JSON.parse(formatTranscription('verbose_json', result, ctx).body) as Record<string, unknown> & { segments: Record<string, unknown>[] };
    expect(Object.keys(v)).toEqual(['task', 'language', 'duration', 'text', 'segments', 'request_id', 'model', 'model_version']);
    expect(Object.keys(v.segments[0] ?? {})).toEqual(['id', 'seek', 'start', 'end', 'text', 'tokens', 'temperature', 'avg_logprob', 'compression_ratio', 'no_speech_prob']);
  });
  it('verbose_json of a role-head model: each segment\'s role, and the whole answer\'s weighted by audio seconds', () => {
    const withRoles = {
      ...result,
      roles: ['clinician', 'patient'],
      windows: [
        { start: 0, end: 10, text: ' a', tokens: [1], avgLogprob: -0.1, roleProbs: [0.3, 0.7] },
        { start: 10, end: 12, text: ' b', tokens: [2], avgLogprob: -0.1, roleProbs: [0.9, 0.1] },
      ],
    };
    const v = JSON.parse(formatTranscription('verbose_json', withRoles, ctx).body) as { speaker_role: unknown; segments: { speaker_role: unknown }[] };
    // (10 × 0.3 + 2 × 0.9) / 12 = 0.4 clinician: the 10-s window outweighs the 2-s one
    expect(v.speaker_role).toEqual({ role: 'patient', probabilities: { clinician: 0.4, patient: 0.6 } });
    expect(v.segments.map((s) => s.speaker_role)).toEqual([
      { role: 'patient', probabilities: { clinician: 0.3, patient: 0.7 } },
      { role: 'clinician', probabilities: { clinician: 0.9, patient: 0.1 } },
    ]);
    // the other formats do not change
    expect(formatTranscription('json', withRoles, ctx).body).toBe(JSON.stringify({ text: result.text }));
  });
  it('writes server-sent events as OpenAI does', () => {
    expect(sseEvent(textDelta(' hi'))).toBe('data: {"type":"transcript.text.delta","delta":" hi"}\n\n');
    expect(textDone('hi', { seconds: 1.23456 })).toEqual({ type: 'transcript.text.done', text: 'hi', usage: { type: 'duration', seconds: 1.235 } });
  });
});
