// Parsing a transcription request, as pure functions: the multipart fields (+ the uploaded file) and a
// view of the served models in, a parsed request or an ApiError (with the rejection reason for the
// metrics) out. No I/O, no clocks: unit-tested on tables and properties.
import { AudioFormatError, decodeWav } from '../audio/wav.js';
import type { DecodedAudio } from '../audio/wav.js';
import type { Picked } from '../models/model-manager.js';
import { ApiError } from './api-error.js';
import { FORMATS } from './response-formats.js';
import type { ResponseFormat } from './response-formats.js';

export interface ParsedTranscription {
  picked: Picked;
  deployment: string;
  modelVersion: string;
  language: string;
  format: ResponseFormat;
  temperature: number;
  prompt: string;
  /** `stream=true`: answer with server-sent events (transcript.text.delta / .done). */
  stream: boolean;
}

export interface Refusal {
  error: ApiError;
  /** The `reason` label of whisperops_agent_rejected_requests_total. */
  reason: string;
}

export interface ModelView {
  ready: boolean;
  pick(name: string | undefined): Picked | undefined;
}

export function isRefusal(x: unknown): x is Refusal {
  return typeof x === 'object' && x !== null && (x as Refusal).error instanceof ApiError;
}

const bad = (message: string, code: string, param: string | null = null): Refusal => ({ error: new ApiError(400, message, code, param), reason: 'bad_request' });

function booleanField(raw: string | undefined): boolean | undefined {
  if (raw === undefined || raw === '') return false;
  const v = raw.toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return undefined;
}

/** The fields of a multipart transcription request (everything but the file's bytes). */
export function parseTranscriptionFields(body: Record<string, unknown>, hasFile: boolean, models: ModelView): ParsedTranscription | Refusal {
  const field = (name: string): string | undefined => (typeof body[name] === 'string' ? body[name] : undefined);
  if (!hasFile) return bad('no audio: the multipart field "file" is missing', 'missing_file', 'file');
  const format = (field('response_format') ?? 'json') as ResponseFormat;
  if (!FORMATS.includes(format)) return bad(`response_format must be one of ${FORMATS.join(', ')}`, 'invalid_value', 'response_format');
  const rawTemperature = field('temperature');
  const temperature = rawTemperature === undefined ? 0 : Number(rawTemperature);
  if (!Number.isFinite(temperature) || temperature < 0 || temperature > 1) return bad('temperature must be a number between 0 and 1', 'invalid_value', 'temperature');
  const stream = booleanField(field('stream'));
  if (stream === undefined) return bad('stream must be true or false', 'invalid_value', 'stream');
  if (stream && format !== 'json' && format !== 'text') return bad('stream=true needs response_format json or text (OpenAI: streaming is not supported for verbose_json, srt, vtt)', 'invalid_value', 'response_format');
  const modelName = field('model');
  const picked = models.pick(modelName === undefined || modelName === '' ? undefined : modelName);
  if (!picked) {
    if (!models.ready) return { error: new ApiError(503, 'no model is loaded yet', 'not_ready'), reason: 'not_ready' };
    return { error: new ApiError(404, `The model '${modelName ?? ''}' does not exist`, 'model_not_found', 'model'), reason: 'unknown_model' };
  }
  const languages = picked.model.info.languages;
  const language = (field('language') ?? languages[0] ?? 'en').toLowerCase();
  if (!languages.includes(language)) {
    return bad(`language '${language}' is not supported by ${picked.deployment} (supported: ${languages.join(', ')})`, 'unsupported_language', 'language');
  }
  return { picked, deployment: picked.deployment, modelVersion: picked.model.version, language, format, temperature, prompt: field('prompt') ?? '', stream };
}

/** The uploaded file's audio, or the refusal naming what is wrong with it. */
export function decodeUpload(file: Uint8Array, maxAudioSeconds: number): DecodedAudio | Refusal {
  try {
    return decodeWav(file, { maxDurationSeconds: maxAudioSeconds });
  } catch (err) {
    if (!(err instanceof AudioFormatError)) throw err;
    const status = err.kind === 'unsupported_format' || err.kind === 'unsupported_codec' ? 415 : err.kind === 'too_long' ? 413 : 400;
    const code = err.kind === 'empty' ? 'empty_file' : err.kind === 'too_long' ? 'audio_too_long' : err.kind;
    return { error: new ApiError(status, err.message, code, 'file'), reason: err.kind };
  }
}

/**
 * What a request may put in memory before its body is read: its Content-Length when it declares one
 * (refused with 413 when over `maxBodyBytes`), else `maxBodyBytes` (a chunked body is capped while it streams).
 */
export function declaredBodyBytes(contentLength: string | undefined, maxBodyBytes: number): number | Refusal {
  if (contentLength === undefined) return maxBodyBytes;
  if (!/^\d+$/.test(contentLength.trim())) return bad('Content-Length is not a number', 'invalid_request');
  const n = Number(contentLength);
  if (n > maxBodyBytes) return { error: new ApiError(413, `the request body (${n} bytes) is larger than the limit of ${maxBodyBytes} bytes`, 'file_too_large', 'file'), reason: 'too_large' };
  return n;
}
