// The streaming decoder: live 16 kHz audio in, append-only text deltas and per-turn finals out, on a
// non-streaming Whisper-family model.
//
// - A growing window (the audio since the last trim) is re-decoded every `stepSeconds` of new audio
//   while someone speaks. The inference worker splits it as it splits a file: speech windows, a new one
//   after a pause of 0.5 s, a cut at the quietest 20 ms when speech runs past the model's window.
// - Words are committed by LocalAgreement-2 (whisper_streaming): a word of the window still being spoken
//   is committed once two consecutive hypotheses agree on it (longest common word prefix after what is
//   already committed); committed words are sent as deltas and never retracted.
// - Each re-decode is forced to start with the words already committed in the window (teacher-forced
//   tokens after the task prompt): the model extends what the session has said instead of re-deciding
//   it, so a re-decode never contradicts a commit (no words repeated or lost at the seams), and the
//   decoder skips those tokens' greedy steps. On 30 connected utterances (bench:live) it cut the
//   finals' WER from 32.6 to 30.6 % at the 0.2 s step.
// - Every speech window but the last is complete (a pause or a cut follows it): its words are committed
//   as decoded and the growing window is trimmed at its end, so the window never outgrows the model's
//   (and the next decodes start at a segment boundary, as the model was trained).
// - Turn ends come from an energy VAD (20 ms frames, speech above `vadThresholdDb` dBFS; a turn ends
//   after `turnSilenceSeconds` below it) or from an explicit commit: the window is decoded once more,
//   everything is committed and the turn's text is final. Energy rather than a VAD model: it costs
//   microseconds per frame on the event loop (a model would take a worker slot per 30 ms of every
//   session), it is the same detector the worker uses to place windows (so turn ends and window ends
//   agree), and the agent's audio (close-talk microphones; espeak-ng in the tests) has clean pauses. No
//   VAD model can be downloaded here either. Noisy rooms would want one (see README, known limits).
//
// The decoder is transport-free: `decode` runs one window (the agent passes the inference pool), events
// go to `emit`. One decode at a time per session; audio arriving meanwhile waits for the next step.

export interface DecodedWindow {
  start: number;
  end: number;
  text: string;
}

export interface DecodeOutcome {
  windows: DecodedWindow[];
  /** Worker time spent (front end + encoder + decoder), milliseconds. */
  workMs: number;
}

/**
 * Decodes `audio`; `prefix` = words the first window's transcript must start with (the session's words
 * already committed in this audio: the decode extends them instead of re-deciding them).
 */
export type DecodeFn = (audio: Float32Array, sampleRate: number, prefix?: string) => Promise<DecodeOutcome>;

export interface StreamingOptions {
  /** Audio rate of `push` (the model's rate). */
  sampleRate: number;
  /** New audio between two decodes of the growing window, seconds. */
  stepSeconds: number;
  /** Silence that ends a turn, seconds. */
  turnSilenceSeconds: number;
  /** Frame energy (dBFS, RMS) above which a 20 ms frame is speech. */
  vadThresholdDb: number;
  /** Audio kept before detected speech (so the first phoneme is not cut), seconds. */
  prerollSeconds: number;
  /** Re-decodes start with the words already committed in the window, forced (see DecodeFn). */
  forcePrefix: boolean;
}

export const DEFAULT_STREAMING: Omit<StreamingOptions, 'sampleRate'> = { stepSeconds: 0.2, turnSilenceSeconds: 0.5, vadThresholdDb: -45, prerollSeconds: 0.2, forcePrefix: true };

export type StreamEvent =
  | { type: 'speech_started'; turn: number; audioStartMs: number }
  | { type: 'speech_stopped'; turn: number; audioEndMs: number }
  /** Newly committed text (append-only within the turn); `audioMs` = the newest audio the decode saw. */
  | { type: 'delta'; turn: number; delta: string; audioMs: number; commitDelayMs: number }
  | { type: 'completed'; turn: number; transcript: string; audioStartMs: number; audioEndMs: number }
  | { type: 'failed'; turn: number; message: string };

const words = (text: string): string[] => text.trim().split(/\s+/).filter(Boolean);
const norm = (w: string): string => w.toLowerCase().replace(/[^\p{L}\p{N}']/gu, '');

/** Length of the longest common prefix of two word lists (compared without case and punctuation). */
export function agreedPrefix(a: readonly string[], b: readonly string[]): number {
  let n = 0;
  while (n < a.length && n < b.length && norm(a[n] ?? '') === norm(b[n] ?? '')) n++;
  return n;
}

export class StreamingDecoder {
  private buf = new Float32Array(16000 * 4);
  private len = 0;
  /** Absolute sample index of buf[0]. */
  private bufStart = 0;
  /** Absolute samples pushed so far. */
  private total = 0;
  private frameRest = 0;
  private frameEnergy = 0;
  private inSpeech = false;
  private silentSamples = 0;
  private turn = 0;
  private turnStart = 0;
  /** Committed words of this turn, and of them those in the current (last, still growing) window. */
  private committed: string[] = [];
  private committedInTail = 0;
  private previousTail: string[] | undefined;
  private decodedUpTo = 0;
  private busy: Promise<void> | undefined;
  /** A turn that ended (VAD or commit) and awaits its final decode of the audio up to `end`. */
  private pendingFinal: { turn: number; start: number; end: number } | undefined;
  private closed = false;
  private closing = false;
  /** Where the last turn ended (absolute sample): a commit without speech since covers the audio after it. */
  private lastTurnEnd = 0;
  /** Worker milliseconds spent by this session. */
  workMs = 0;
  /** Decodes run by this session. */
  decodes = 0;

  constructor(
    private readonly decode: DecodeFn,
    private readonly opts: StreamingOptions,
    private readonly emit: (e: StreamEvent) => void,
  ) {}

  get audioSeconds(): number {
    return this.total / this.opts.sampleRate;
  }

  /** Samples held (the growing window + pre-roll). */
  get bufferedSamples(): number {
    return this.len;
  }

  get speaking(): boolean {
    return this.inSpeech;
  }

  /** Appends audio at `sampleRate`; runs the VAD and schedules decodes. */
  push(samples: Float32Array): void {
    if (this.closing) return;
    this.append(samples);
    this.vad(samples);
    this.schedule();
  }

  /**
   * Ends the current turn now (input_audio_buffer.commit): a last decode, then `completed`; audio with
   * no detected speech still makes a turn (the client decided it is one). False when nothing is buffered.
   */
  async commit(): Promise<boolean> {
    if (this.closing) return false;
    if (!this.inSpeech) {
      if (this.pendingFinal) {
        while (this.busy) await this.busy;
        return true;
      }
      // Less than 100 ms since the last turn: nothing to commit (OpenAI's rule).
      if (this.total - this.lastTurnEnd < 0.1 * this.opts.sampleRate) return false;
      this.startTurn(Math.max(this.bufStart, this.lastTurnEnd));
    }
    this.endTurn(this.total);
    this.schedule();
    while (this.busy) await this.busy;
    return true;
  }

  /** Drops the buffered audio and any turn in progress (input_audio_buffer.clear). */
  clear(): void {
    this.bufStart += this.len;
    this.len = 0;
    this.resetTurn();
    this.pendingFinal = undefined;
    this.inSpeech = false;
    this.silentSamples = 0;
    this.turn++;
    this.lastTurnEnd = this.total;
  }

  /** Resolves when no decode is running or due (benchmarks pace audio by it). */
  async idle(): Promise<void> {
    while (this.busy) await this.busy;
  }

  /** Stops taking audio; a turn that already ended still gets its final decode. Resolves when idle. */
  async close(): Promise<void> {
    this.closing = true;
    this.schedule();
    while (this.busy) await this.busy;
    this.closed = true;
  }

  /** Stops at once: no more decodes or events after the one in flight (a client that went away). */
  abandon(): void {
    this.closing = true;
    this.closed = true;
    this.pendingFinal = undefined;
  }

  private append(samples: Float32Array): void {
    if (this.len + samples.length > this.buf.length) {
      const next = new Float32Array(Math.max(this.buf.length * 2, this.len + samples.length));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    this.buf.set(samples, this.len);
    this.len += samples.length;
    this.total += samples.length;
  }

  private vad(samples: Float32Array): void {
    const frame = Math.round(0.02 * this.opts.sampleRate);
    const threshold = frame * Math.pow(10, this.opts.vadThresholdDb / 10);
    const turnSilence = this.opts.turnSilenceSeconds * this.opts.sampleRate;
    const base = this.total - samples.length;
    for (let i = 0; i < samples.length; i++) {
      const x = samples[i] ?? 0;
      this.frameEnergy += x * x;
      if (++this.frameRest < frame) continue;
      const speech = this.frameEnergy > threshold;
      const frameEnd = base + i + 1;
      this.frameRest = 0;
      this.frameEnergy = 0;
      if (speech) {
        this.silentSamples = 0;
        if (!this.inSpeech) {
          this.inSpeech = true;
          this.startTurn(Math.max(this.bufStart, frameEnd - frame - Math.round(this.opts.prerollSeconds * this.opts.sampleRate)));
        }
      } else if (this.inSpeech) {
        this.silentSamples += frame;
        if (this.silentSamples >= turnSilence) {
          this.inSpeech = false;
          this.emit({ type: 'speech_stopped', turn: this.turn, audioEndMs: this.ms(frameEnd) });
          this.endTurn(frameEnd);
        }
      }
    }
    if (!this.inSpeech && !this.pendingFinal && !this.busy) {
      // No turn in progress: keep only the pre-roll.
      const keep = Math.round(this.opts.prerollSeconds * this.opts.sampleRate);
      if (this.len > keep) this.trimTo(this.bufStart + this.len - keep);
    }
  }

  private startTurn(at: number): void {
    this.turn++;
    if (!this.pendingFinal && !this.busy) this.trimTo(at);
    this.turnStart = at;
    this.decodedUpTo = at;
    this.emit({ type: 'speech_started', turn: this.turn, audioStartMs: this.ms(at) });
  }

  private endTurn(at: number): void {
    this.pendingFinal = { turn: this.turn, start: this.turnStart, end: at };
    this.lastTurnEnd = at;
    this.inSpeech = false;
    this.silentSamples = 0;
  }

  private ms(sample: number): number {
    return Math.round((sample / this.opts.sampleRate) * 1000);
  }

  private trimTo(absolute: number): void {
    const drop = Math.min(this.len, Math.max(0, absolute - this.bufStart));
    if (drop === 0) return;
    this.buf.copyWithin(0, drop, this.len);
    this.len -= drop;
    this.bufStart += drop;
  }

  private schedule(): void {
    if (this.busy || this.closed) return;
    const end = this.bufStart + this.len;
    const step = this.opts.stepSeconds * this.opts.sampleRate;
    const pending = this.pendingFinal;
    if (pending) {
      this.pendingFinal = undefined;
      this.busy = this.finalStep(pending);
    } else if (!this.closing && this.inSpeech && end - this.decodedUpTo >= step) this.busy = this.interimStep();
    else return;
    void this.busy.finally(() => {
      this.busy = undefined;
      this.schedule();
    });
  }

  private async run(from: number, to: number): Promise<DecodedWindow[] | undefined> {
    const audio = this.buf.slice(Math.max(0, from - this.bufStart), Math.max(0, to - this.bufStart));
    this.decodes++;
    const prefix = this.opts.forcePrefix && this.committedInTail > 0 ? this.committed.slice(-this.committedInTail).join(' ') : undefined;
    try {
      const out = await this.decode(audio, this.opts.sampleRate, prefix);
      this.workMs += out.workMs;
      return out.windows.filter((w) => w.text.trim() !== '');
    } catch (err) {
      this.emit({ type: 'failed', turn: this.turn, message: (err as Error).message });
      return undefined;
    }
  }

  private commitWords(turn: number, fresh: string[], audioEnd: number, textEnd: number): void {
    if (fresh.length === 0) return;
    const delta = (this.committed.length === 0 ? '' : ' ') + fresh.join(' ');
    this.committed.push(...fresh);
    this.emit({ type: 'delta', turn, delta, audioMs: this.ms(audioEnd), commitDelayMs: Math.max(0, this.ms(audioEnd) - this.ms(Math.min(textEnd, audioEnd))) });
  }

  /** Re-decodes the growing window of the turn in progress; commits by LocalAgreement-2 and trims at complete windows. */
  private async interimStep(): Promise<void> {
    const turn = this.turn;
    const start = this.bufStart;
    const end = this.bufStart + this.len;
    this.decodedUpTo = end;
    const wins = await this.run(start, end);
    if (!wins || turn !== this.turn || this.pendingFinal?.turn === turn) return;
    const sr = this.opts.sampleRate;
    const fresh: string[] = [];
    let trimAt: number | undefined;
    for (const w of wins.slice(0, -1)) {
      fresh.push(...words(w.text).slice(this.committedInTail));
      this.committedInTail = 0;
      this.previousTail = undefined;
      trimAt = start + Math.round(w.end * sr);
    }
    const last = wins[wins.length - 1];
    if (last) {
      const tail = words(last.text);
      if (this.previousTail) {
        const n = agreedPrefix(this.previousTail.slice(this.committedInTail), tail.slice(this.committedInTail));
        fresh.push(...tail.slice(this.committedInTail, this.committedInTail + n));
        this.committedInTail += n;
      }
      this.previousTail = tail;
    }
    this.commitWords(turn, fresh, end, start + Math.round((last?.end ?? 0) * sr));
    if (trimAt !== undefined) this.trimTo(trimAt);
  }

  /** The turn's last decode: everything is committed, then `completed`. */
  private async finalStep(p: { turn: number; start: number; end: number }): Promise<void> {
    const from = Math.max(this.bufStart, p.start);
    const wins = await this.run(from, p.end);
    if (wins) {
      const fresh: string[] = [];
      for (const w of wins) {
        fresh.push(...words(w.text).slice(this.committedInTail));
        this.committedInTail = 0;
      }
      this.commitWords(p.turn, fresh, p.end, p.end);
      this.emit({ type: 'completed', turn: p.turn, transcript: this.committed.join(' '), audioStartMs: this.ms(p.start), audioEndMs: this.ms(p.end) });
    }
    this.resetTurn();
    // What arrived meanwhile belongs to the next turn (when speech started again) or is pre-roll.
    const keepFrom = this.inSpeech ? this.turnStart : this.bufStart + this.len - Math.round(this.opts.prerollSeconds * this.opts.sampleRate);
    this.trimTo(Math.max(p.end - Math.round(this.opts.prerollSeconds * this.opts.sampleRate), Math.min(keepFrom, p.end)));
    if (this.inSpeech) this.decodedUpTo = Math.max(this.decodedUpTo, this.turnStart);
  }

  private resetTurn(): void {
    this.committed = [];
    this.committedInTail = 0;
    this.previousTail = undefined;
  }
}
