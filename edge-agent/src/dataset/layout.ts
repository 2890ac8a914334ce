// Where feedback samples go in a dataset store, and what their manifest lines say. Pure: plain data in,
// keys and bytes out.
//
//   <store>/<scenario>/<yyyy-mm-dd>/<agent>-<requestId>.wav
//   <store>/<scenario>/<yyyy-mm-dd>/manifest-<agent>-<startTime>-<seq>.jsonl
//
// Each manifest line is trainer-image's manifest format (whisperops_trainer/data.py read_manifest:
// `audio` relative to the manifest, `text`, `scenario`) plus keys the trainer ignores. A dataset URI
// ending in `/` means every *.jsonl under it, so the store's root is itself a training data set.
import { encodeWav16 } from '../audio/wav.js';

/** What the agent knows about a sample when feedback names its request. */
export interface SampleInfo {
  requestId: string;
  /** The feedback's reference transcript: the label. */
  reference: string;
  /** The bounded scenario label (metrics.ts ScenarioLabels): safe as a path segment. */
  scenario: string;
  deployment: string;
  modelVersion: string;
  /** stable or candidate. */
  role: string;
  /** What the model transcribed. */
  hypothesis: string;
  /** When the request arrived (ms since the epoch). */
  time: number;
  audioSeconds: number;
}

/** One manifest line, in key order. */
export interface ManifestLine {
  audio: string;
  text: string;
  scenario: string;
  deployment: string;
  modelVersion: string;
  role: string;
  pool: string;
  agent: string;
  requestId: string;
  time: string;
  hypothesis: string;
  audioSeconds: number;
}

/** A key segment safe in a path and an S3 key: letters, digits, `.`, `_`, `-` (anything else → `-`). */
export function safeSegment(s: string): string {
  const t = s.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[.-]+/, '');
  return t === '' ? 'unknown' : t.slice(0, 128);
}

/** UTC day of a time (ms), `yyyy-mm-dd`. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** A time (ms) as a compact UTC stamp usable in a file name: `20261126T151900Z`. */
export function compactStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** The folder (relative to the store, ending in `/`) of a sample: `<scenario>/<yyyy-mm-dd>/`. */
export function sampleFolder(info: Pick<SampleInfo, 'scenario' | 'time'>): string {
  return `${safeSegment(info.scenario)}/${utcDay(info.time)}/`;
}

/** The WAV's name inside its folder: `<agent>-<requestId>.wav`. */
export function wavName(agent: string, requestId: string): string {
  return `${safeSegment(agent)}-${safeSegment(requestId)}.wav`;
}

/** The manifest's name inside its folder: `manifest-<agent>-<startTime>-<seq>.jsonl` (seq 6 digits). */
export function manifestName(agent: string, startMs: number, seq: number): string {
  return `manifest-${safeSegment(agent)}-${compactStamp(startMs)}-${String(seq).padStart(6, '0')}.jsonl`;
}

export function manifestLine(info: SampleInfo, agent: string, pool: string): ManifestLine {
  return {
    audio: wavName(agent, info.requestId),
    text: info.reference,
    scenario: info.scenario,
    deployment: info.deployment,
    modelVersion: info.modelVersion,
    role: info.role,
    pool,
    agent,
    requestId: info.requestId,
    time: new Date(info.time).toISOString(),
    hypothesis: info.hypothesis,
    audioSeconds: Number(info.audioSeconds.toFixed(3)),
  };
}

/** The manifest object's bytes: one JSON line per sample, `\n`-terminated. */
export function manifestBody(lines: readonly ManifestLine[]): Uint8Array {
  return Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n') + '\n', 'utf8');
}

/**
 * True for a plain 16-bit PCM WAV whose header sizes hold: RIFF/WAVE, a `fmt ` chunk of PCM (or
 * EXTENSIBLE with the PCM sub-format) at 16 bits, and a `data` chunk whose declared size fits the
 * bytes (a streaming writer's 0 or 0xFFFFFFFF does not). Such an upload is kept as it was received.
 */
export function isPlainPcm16Wav(buf: Uint8Array): boolean {
  if (buf.length < 44) return false;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = (at: number): string => String.fromCharCode(buf[at] ?? 0, buf[at + 1] ?? 0, buf[at + 2] ?? 0, buf[at + 3] ?? 0);
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return false;
  let pcm16 = false;
  for (let pos = 12; pos + 8 <= buf.length; ) {
    const id = tag(pos);
    const size = dv.getUint32(pos + 4, true);
    const start = pos + 8;
    if (start + size > buf.length) return false;
    if (id === 'fmt ') {
      if (size < 16) return false;
      let format = dv.getUint16(start, true);
      if (format === 0xfffe && size >= 26) format = dv.getUint16(start + 24, true);
      pcm16 = format === 1 && dv.getUint16(start + 14, true) === 16;
      if (!pcm16) return false;
    } else if (id === 'data') {
      return pcm16 && size > 0;
    }
    pos = start + size + (size % 2);
  }
  return false;
}

/**
 * The bytes a sample's WAV holds: the upload as received when it already is a plain 16-bit PCM WAV,
 * else the decoded audio (mono, its own sample rate) as one — e.g. a float or 24-bit upload, or a
 * streamed WAV whose header sizes were never filled in (espeak-ng --stdout writes 0x7ffff000).
 */
export function datasetWav(upload: Uint8Array, decoded: { samples: Float32Array; sampleRate: number }): Uint8Array {
  return isPlainPcm16Wav(upload) ? upload : encodeWav16(decoded.samples, decoded.sampleRate);
}
