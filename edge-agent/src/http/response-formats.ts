// The response formats of POST /v1/audio/transcriptions (json, text, verbose_json, srt, vtt) and the
// server-sent events of `stream=true` (transcript.text.delta / transcript.text.done), as pure functions.
import type { JobResult } from '../inference/protocol.js';

export const FORMATS = ['json', 'text', 'verbose_json', 'srt', 'vtt'] as const;
export type ResponseFormat = (typeof FORMATS)[number];

export interface FormatContext {
  language: string;
  temperature: number;
  requestId: string;
  deployment: string;
  modelVersion: string;
}

export interface Formatted {
  contentType: string;
  body: string;
}

export function timestamp(seconds: number, sep: ',' | '.'): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms % 1000, 3)}`;
}

/** A speaker role and the probability of each role (a model with a role head, trainer-image roles.py). */
export interface SpeakerRole {
  role: string;
  probabilities: Record<string, number>;
}

function roleOf(roles: string[], probs: number[]): SpeakerRole {
  let best = 0;
  probs.forEach((p, i) => {
    if (p > (probs[best] ?? -Infinity)) best = i;
  });
  return { role: roles[best] ?? '', probabilities: Object.fromEntries(roles.map((r, i) => [r, Number((probs[i] ?? 0).toFixed(4))])) };
}

/**
 * The speaker role of a whole transcription: every window's role probabilities averaged, weighted by the
 * seconds of audio the window holds, and the most probable role. Undefined for a model without a role head.
 */
export function speakerRoleOf(result: Pick<JobResult, 'windows' | 'roles'>): SpeakerRole | undefined {
  const roles = result.roles;
  if (!roles?.length) return undefined;
  const sum = new Array<number>(roles.length).fill(0);
  let weight = 0;
  for (const w of result.windows) {
    if (!w.roleProbs) continue;
    const sec = Math.max(w.end - w.start, 1e-3);
    w.roleProbs.forEach((p, i) => (sum[i] = (sum[i] ?? 0) + sec * p));
    weight += sec;
  }
  return weight > 0 ? roleOf(roles, sum.map((x) => x / weight)) : undefined;
}

export function segmentsOf(result: Pick<JobResult, 'windows'> & Partial<Pick<JobResult, 'roles'>>, temperature: number) {
  const roles = result.roles;
  return result.windows.map((w, i) => ({
    id: i,
    seek: Math.round(w.start * 100),
    start: Number(w.start.toFixed(3)),
    end: Number(w.end.toFixed(3)),
    text: w.text,
    tokens: w.tokens,
    temperature,
    avg_logprob: Number(w.avgLogprob.toFixed(5)),
    compression_ratio: 1,
    no_speech_prob: 0,
    ...(roles?.length && w.roleProbs ? { speaker_role: roleOf(roles, w.roleProbs) } : {}),
  }));
}

/** The body of a finished transcription in `format`. */
export function formatTranscription(format: ResponseFormat, result: Pick<JobResult, 'windows' | 'text' | 'audioSeconds'> & Partial<Pick<JobResult, 'roles'>>, ctx: FormatContext): Formatted {
  switch (format) {
    case 'json':
      return { contentType: 'application/json; charset=utf-8', body: JSON.stringify({ text: result.text }) };
    case 'text':
      return { contentType: 'text/plain; charset=utf-8', body: result.text + '\n' };
    case 'verbose_json': {
      // A model with a speaker-role head adds speaker_role (top level and per segment); other models answer as before.
      const role = speakerRoleOf(result);
      return {
        contentType: 'application/json; charset=utf-8',
        body: JSON.stringify({
          task: 'transcribe',
          language: ctx.language === 'en' ? 'english' : ctx.language,
          duration: Number(result.audioSeconds.toFixed(3)),
          text: result.text,
          segments: segmentsOf(result, ctx.temperature),
          request_id: ctx.requestId,
          model: ctx.deployment,
          model_version: ctx.modelVersion,
          ...(role ? { speaker_role: role } : {}),
        }),
      };
    }
    case 'srt':
      return {
        contentType: 'text/plain; charset=utf-8',
        body: result.windows.map((w, i) => `${i + 1}\n${timestamp(w.start, ',')} --> ${timestamp(w.end, ',')}\n${w.text.trim()}\n`).join('\n'),
      };
    case 'vtt':
      return { contentType: 'text/vtt; charset=utf-8', body: 'WEBVTT\n\n' + result.windows.map((w) => `${timestamp(w.start, '.')} --> ${timestamp(w.end, '.')}\n${w.text.trim()}\n`).join('\n') };
  }
}

/** One server-sent event: `data: <json>` and a blank line (OpenAI's stream carries the type inside the JSON). */
export function sseEvent(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** `transcript.text.delta`: text appended to what was sent before. */
export function textDelta(delta: string): { type: 'transcript.text.delta'; delta: string; logprobs?: undefined } {
  return { type: 'transcript.text.delta', delta };
}

/** `transcript.text.done`: the whole text. */
export function textDone(text: string, usage?: { seconds: number }): { type: 'transcript.text.done'; text: string; usage?: { type: 'duration'; seconds: number } } {
  return usage ? { type: 'transcript.text.done', text, usage: { type: 'duration', seconds: Number(usage.seconds.toFixed(3)) } } : { type: 'transcript.text.done', text };
}
