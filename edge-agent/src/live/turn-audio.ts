// The audio of a live session's turns, for the feedback/dataset loop: a Realtime turn's item_id is a
// request id like a file request's, so POST /v1/feedback {request_id: item_id, reference} counts its
// word errors and, with a dataset store, makes its audio a labelled sample. The streaming decoder trims
// its window as it commits, so the session keeps the turn's audio here: the samples received since
// the oldest turn that may still complete, positioned on the decoder's own sample count (both count
// every sample pushed since the decoder was made), bounded in samples; a turn whose start has been
// dropped by the bound keeps its text for feedback but no audio.
import { encodeWav16 } from '../audio/wav.js';
import type { RecentRequest } from '../feedback-store.js';

export class TurnAudio {
  private chunks: Float32Array[] = [];
  /** Sample index (decoder count) of the first kept sample. */
  private from = 0;
  private total = 0;
  private kept = 0;

  /**
   * @param sampleRate the session's input rate (the decoder's)
   * @param maxSamples most samples kept (the session's audio buffer bound)
   * @param idleKeepSamples while no turn is open, only this many recent samples are kept (the
   *   decoder's pre-roll reaches back this far before a turn's start)
   */
  constructor(
    readonly sampleRate: number,
    private readonly maxSamples: number,
    private readonly idleKeepSamples: number,
  ) {}

  get keptSamples(): number {
    return this.kept;
  }

  /** Appends received samples (the same ones the decoder is given, in order). */
  push(samples: Float32Array, turnOpen: boolean): void {
    if (samples.length === 0) return;
    this.chunks.push(samples.slice());
    this.total += samples.length;
    this.kept += samples.length;
    this.dropBefore(this.total - (turnOpen ? this.maxSamples : Math.min(this.maxSamples, this.idleKeepSamples)));
  }

  /**
   * The audio of [startMs, endMs) on the decoder's time line, or undefined when part of it is no
   * longer kept (or was never received); everything before endMs is then dropped (turns complete in order).
   */
  take(startMs: number, endMs: number): Float32Array | undefined {
    const start = Math.max(0, Math.round((startMs / 1000) * this.sampleRate));
    const end = Math.min(this.total, Math.round((endMs / 1000) * this.sampleRate));
    const out = start >= this.from && end > start ? this.copy(start, end) : undefined;
    this.dropBefore(end);
    return out;
  }

  /** Drops what was received so far (input_audio_buffer.clear); the count goes on. */
  clear(): void {
    this.dropBefore(this.total);
  }

  /** Forgets everything (a new decoder starts counting from 0). */
  reset(): void {
    this.chunks = [];
    this.from = 0;
    this.total = 0;
    this.kept = 0;
  }

  private copy(start: number, end: number): Float32Array {
    const out = new Float32Array(end - start);
    let at = this.from;
    for (const c of this.chunks) {
      const cEnd = at + c.length;
      if (cEnd > start && at < end) {
        const s = Math.max(start, at);
        const e = Math.min(end, cEnd);
        out.set(c.subarray(s - at, e - at), s - start);
      }
      at = cEnd;
      if (at >= end) break;
    }
    return out;
  }

  private dropBefore(index: number): void {
    while (this.chunks.length > 0 && this.from < index) {
      const c = this.chunks[0];
      if (this.from + c.length <= index) {
        this.chunks.shift();
        this.from += c.length;
        this.kept -= c.length;
      } else {
        const cut = index - this.from;
        this.chunks[0] = c.subarray(cut);
        this.from += cut;
        this.kept -= cut;
      }
    }
  }
}

/**
 * A completed turn as a recent request (RecentRequests.remember): its item_id is the request id;
 * `wav` (16-bit PCM at the session's rate) when the turn's audio was kept.
 */
export function turnRequest(
  turn: { itemId: string; deployment: string; modelVersion: string; role: string; transcript: string; audioStartMs: number; audioEndMs: number; durationSeconds?: number },
  audio: Float32Array | undefined,
  sampleRate: number,
  now: number,
): { request: RecentRequest; wav: Uint8Array | undefined } {
  const request: RecentRequest = {
    id: turn.itemId,
    deployment: turn.deployment,
    modelVersion: turn.modelVersion,
    role: turn.role,
    text: turn.transcript,
    at: now,
    audioSeconds: Math.max(0, turn.audioEndMs - turn.audioStartMs) / 1000,
    ...(turn.durationSeconds !== undefined ? { durationSeconds: turn.durationSeconds } : {}),
  };
  return { request, wav: audio && audio.length > 0 ? encodeWav16(audio, sampleRate) : undefined };
}
