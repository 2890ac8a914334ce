// The client side of a Realtime transcription session in the tests: the official openai package's
// OpenAIRealtimeWS, its events recorded with the time they arrived and whether audio was still being sent,
// and audio streamed in real time as 40 ms PCM16 chunks.
import type { OpenAIRealtimeWS } from 'openai/realtime/ws';

/** Float samples (−1..1) → base64 PCM16 little-endian, as input_audio_buffer.append carries them. */
export function pcm16Base64(samples: Float32Array): string {
  const b = Buffer.alloc(samples.length * 2);
  samples.forEach((x, i) => b.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(x * 32767))), i * 2));
  return b.toString('base64');
}

export interface RecordedEvent {
  type: string;
  /** performance.now() when it arrived */
  at: number;
  /** audio was still being streamed when it arrived */
  sending: boolean;
  e: Record<string, unknown>;
}

export interface RecordedSession {
  events: RecordedEvent[];
  errors: unknown[];
  /** Sends `audio` (24 kHz) in 40 ms appends paced in real time; events after it resolves have sending false. */
  streamRealTime: (audio: Float32Array) => Promise<void>;
}

export const SESSION_RATE = 24000;

/**
 * Records `rt`'s events, waits for its socket to open and asks for a transcription session of `model`:
 * `audio/pcm` at 24 kHz, English, server VAD ending a turn after 500 ms of silence.
 */
export async function recordTranscriptionSession(rt: OpenAIRealtimeWS, model: string): Promise<RecordedSession> {
  const events: RecordedEvent[] = [];
  const errors: unknown[] = [];
  let sending = true;
  rt.on('event', (e) => events.push({ type: e.type, at: performance.now(), sending, e: e as unknown as Record<string, unknown> }));
  rt.on('error', (err) => errors.push(err));
  await new Promise<void>((res, rej) => {
    rt.socket.once('open', () => res());
    rt.socket.once('error', rej);
  });
  rt.send({
    type: 'session.update',
    session: { type: 'transcription', audio: { input: { format: { type: 'audio/pcm', rate: SESSION_RATE }, transcription: { model, language: 'en' }, turn_detection: { type: 'server_vad', silence_duration_ms: 500 } } } },
  });
  return {
    events,
    errors,
    streamRealTime: async (audio) => {
      const chunk = Math.round(0.04 * SESSION_RATE);
      const t0 = performance.now();
      for (let i = 0; i < audio.length; i += chunk) {
        rt.send({ type: 'input_audio_buffer.append', audio: pcm16Base64(audio.subarray(i, i + chunk)) });
        const due = t0 + ((i + chunk) / SESSION_RATE) * 1000;
        await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
      }
      sending = false;
    },
  };
}
