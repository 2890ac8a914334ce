// The trainer's result: a JSON document of at most 4 KiB that it writes to /dev/termination-log
// and that the kubelet copies into the container's terminated state. Parsed and checked here,
// field by field, so that a bad result fails the FineTuneJob with a reason that says what is wrong.
import type { FineTuneJobStatus } from '../../../api/generated/types.js';

export type TrainerResult = NonNullable<FineTuneJobStatus['result']>;

export const MAX_RESULT_BYTES = 4096;
const SHA256 = /^[a-f0-9]{64}$/;
const QUANTIZATIONS = ['int8', 'int8-static', 'fp16', 'none'] as const;
const MAX_SCENARIOS = 32;
const MAX_SUMMARY = 512;

export type ResultVerdict =
  | { ok: true; result: TrainerResult }
  | { ok: false; reason: 'ResultMissing' | 'ResultTooLarge' | 'ResultNotJSON' | 'ResultInvalid'; message: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function werMap(value: unknown, field: string, problems: string[]): Record<string, number> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) {
    problems.push(`${field} must be an object of scenario → WER`);
    return undefined;
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_SCENARIOS) problems.push(`${field} has ${entries.length} scenarios, at most ${MAX_SCENARIOS} are allowed`);
  const out: Record<string, number> = {};
  for (const [scenario, wer] of entries) {
    if (typeof wer !== 'number' || !Number.isFinite(wer) || wer < 0) {
      problems.push(`${field}.${scenario} must be a finite number ≥ 0, got ${JSON.stringify(wer)}`);
    } else {
      out[scenario] = wer;
    }
  }
  return out;
}

function str(value: unknown, field: string, maxLength: number, problems: string[], required: boolean): string | undefined {
  if (value === undefined) {
    if (required) problems.push(`${field} is missing`);
    return undefined;
  }
  if (typeof value !== 'string' || value === '') {
    problems.push(`${field} must be a non-empty string`);
    return undefined;
  }
  if (value.length > maxLength) problems.push(`${field} is longer than ${maxLength} characters`);
  return value;
}

function count(value: unknown, field: string, problems: string[]): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    problems.push(`${field} must be a non-negative integer`);
    return undefined;
  }
  return value;
}

/** "finance=0.12 medical=0.31": scenarios sorted, WER rounded to 3 decimals, at most 512 characters. */
export function werSummary(wer: Record<string, number>): string {
  const text = Object.keys(wer)
    .sort()
    .map((scenario) => `${scenario}=${Number((wer[scenario] ?? 0).toFixed(3))}`)
    .join(' ');
  return text.length <= MAX_SUMMARY ? text : `${text.slice(0, MAX_SUMMARY - 1)}…`;
}

export function parseTrainerResult(message: string | undefined): ResultVerdict {
  const text = (message ?? '').trim();
  if (text === '') {
    return { ok: false, reason: 'ResultMissing', message: 'the trainer exited 0 but wrote no result to /dev/termination-log' };
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_RESULT_BYTES) {
    return { ok: false, reason: 'ResultTooLarge', message: `the trainer's result is ${bytes} bytes, at most ${MAX_RESULT_BYTES} are allowed` };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: 'ResultNotJSON', message: `the trainer's result is not JSON (${why}): ${excerpt(text)}` };
  }
  if (!isRecord(doc)) {
    return { ok: false, reason: 'ResultInvalid', message: `the trainer's result must be a JSON object, got ${excerpt(text)}` };
  }
  const problems: string[] = [];
  const modelUri = str(doc.modelUri, 'modelUri', 2048, problems, true);
  const version = str(doc.version, 'version', 128, problems, true);
  const sha256 = str(doc.sha256, 'sha256', 64, problems, true);
  if (sha256 !== undefined && !SHA256.test(sha256)) problems.push('sha256 must be 64 lowercase hex digits');
  const parentVersion = doc.parentVersion === null ? undefined : str(doc.parentVersion, 'parentVersion', 128, problems, false);
  const wer = werMap(doc.wer, 'wer', problems);
  const baseWer = werMap(doc.baseWer, 'baseWer', problems);
  const trainableParams = count(doc.trainableParams, 'trainableParams', problems);
  const totalParams = count(doc.totalParams, 'totalParams', problems);
  if (trainableParams !== undefined && totalParams !== undefined && trainableParams > totalParams) {
    problems.push(`trainableParams (${trainableParams}) exceeds totalParams (${totalParams})`);
  }
  let quantization: TrainerResult['quantization'];
  if (doc.quantization !== undefined && doc.quantization !== null) {
    const q = QUANTIZATIONS.find((v) => v === doc.quantization);
    if (q === undefined) problems.push(`quantization must be one of ${QUANTIZATIONS.join(', ')}, got ${JSON.stringify(doc.quantization)}`);
    quantization = q;
  }
  let durationSeconds: number | undefined;
  if (doc.durationSeconds !== undefined) {
    if (typeof doc.durationSeconds !== 'number' || !Number.isFinite(doc.durationSeconds) || doc.durationSeconds < 0) {
      problems.push('durationSeconds must be a finite number ≥ 0');
    } else {
      durationSeconds = doc.durationSeconds;
    }
  }
  const compression = compressionOf(doc.compression, problems);
  if (problems.length > 0 || modelUri === undefined || version === undefined || sha256 === undefined) {
    return { ok: false, reason: 'ResultInvalid', message: `the trainer's result is invalid: ${problems.join('; ')}` };
  }
  const result: TrainerResult = { modelUri, version, sha256 };
  if (parentVersion !== undefined) result.parentVersion = parentVersion;
  if (wer !== undefined) {
    result.wer = wer;
    result.werSummary = werSummary(wer);
  }
  if (baseWer !== undefined) result.baseWer = baseWer;
  if (trainableParams !== undefined) result.trainableParams = trainableParams;
  if (totalParams !== undefined) result.totalParams = totalParams;
  if (quantization !== undefined) result.quantization = quantization;
  if (durationSeconds !== undefined) result.durationSeconds = durationSeconds;
  if (compression !== undefined) result.compression = compression;
  return { ok: true, result };
}

const TECHNIQUES = ['distillation', 'headPruning', 'quantizationAware', 'speakerRole'] as const;
type Compression = NonNullable<TrainerResult['compression']>;

/** The trainer's compression report (spec.compression): techniques, parameters and heads before/after, reference WER, role accuracy. */
function compressionOf(value: unknown, problems: string[]): Compression | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) {
    problems.push('compression must be an object');
    return undefined;
  }
  const out: Compression = {};
  if (value.techniques !== undefined) {
    const list = value.techniques;
    if (!Array.isArray(list) || list.length > TECHNIQUES.length || !list.every((t) => TECHNIQUES.some((k) => k === t))) {
      problems.push(`compression.techniques must be a list of ${TECHNIQUES.join(', ')}`);
    } else {
      out.techniques = list.map((t) => TECHNIQUES.find((k) => k === t) ?? 'distillation');
    }
  }
  for (const key of ['paramsBefore', 'paramsAfter', 'headsBefore', 'headsAfter'] as const) {
    const n = count(value[key], `compression.${key}`, problems);
    if (n !== undefined) out[key] = n;
  }
  const ref = werMap(value.referenceWer, 'compression.referenceWer', problems);
  if (ref !== undefined) out.referenceWer = ref;
  const st = werMap(value.werInt8Static, 'compression.werInt8Static', problems);
  if (st !== undefined) out.werInt8Static = st;
  const dyn = werMap(value.werInt8Dynamic, 'compression.werInt8Dynamic', problems);
  if (dyn !== undefined) out.werInt8Dynamic = dyn;
  if (value.roleAccuracy !== undefined) {
    const a = value.roleAccuracy;
    if (typeof a !== 'number' || !Number.isFinite(a) || a < 0 || a > 1) problems.push('compression.roleAccuracy must be a number in [0, 1]');
    else out.roleAccuracy = a;
  }
  return out;
}

function excerpt(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ');
  return oneLine.length <= 200 ? JSON.stringify(oneLine) : `${JSON.stringify(oneLine.slice(0, 200))}…`;
}

/**
 * The termination message of a failed trainer, for status: its failure document
 * `{"error": {"reason": "...", "message": "..."}}` as "reason: message" (e.g. "PreflightFailed:
 * preflight: spec.output.uri s3://…: not writable: access denied …"), anything else (a log tail, a
 * kwok-played message) as it is, white space collapsed.
 */
export function failureText(message: string): string {
  const text = message.trim();
  try {
    const doc: unknown = JSON.parse(text);
    if (isRecord(doc) && isRecord(doc.error) && typeof doc.error.message === 'string') {
      const reason = typeof doc.error.reason === 'string' && doc.error.reason !== '' ? `${doc.error.reason}: ` : '';
      return `${reason}${doc.error.message}`.replace(/\s+/g, ' ');
    }
  } catch {
    // not the trainer's failure document
  }
  return text.replace(/\s+/g, ' ');
}
