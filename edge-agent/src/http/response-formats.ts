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

export function segmentsOf(result: Pick<JobResult, 'windows'>, temperature: number) {
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
  }));
}

/** The body of a finished transcription in `format`. */
export function formatTranscription(format: ResponseFormat, result: Pick<JobResult, 'windows' | 'text' | 'audioSeconds'>, ctx: FormatContext): Formatted {
  switch (format) {
    case 'json':
      return { contentType: 'application/json; charset=utf-8', body: JSON.stringify({ text: result.text }) };
    case 'text':
      return { contentType: 'text/plain; charset=utf-8', body: result.text + '\n' };
    case 'verbose_json':
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
        }),
      };
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
