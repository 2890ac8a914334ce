// The OpenAI Realtime transcription session over WebSocket: GET /v1/realtime?intent=transcription
// (upgraded by the agent's plain and TLS listeners). Client events: session.update (a `transcription`
// session; the beta transcription_session.update too), input_audio_buffer.append (base64 PCM16 24 kHz,
// or G.711 µ-law / A-law 8 kHz), input_audio_buffer.commit, input_audio_buffer.clear. Server events:
// session.created/updated, input_audio_buffer.speech_started/speech_stopped/committed/cleared,
// conversation.item.input_audio_transcription.delta/completed/failed, error.
//
// A session takes a stream slot (the same admission as file transcriptions) before the upgrade is
// accepted — 429 with Retry-After when the agent is full — and holds it until the socket closes.
// Limits per session: wall-clock duration, idle time without client events, bytes per append, and the
// audio held (the streaming decoder's window). Audio is decoded by the streaming decoder at the
// session's input rate; the inference worker resamples each window to the model's rate.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import type { Admission } from '../admission.js';
import type { RecentRequests } from '../feedback-store.js';
import { takeStream } from '../http/transcription-route.js';
import { ApiError } from '../http/api-error.js';
import { trafficMetrics } from '../http/traffic-metrics.js';
import type { InferencePool } from '../inference/pool.js';
import type { Metrics } from '../metrics.js';
import type { ModelManager, Picked } from '../models/model-manager.js';
import { DEFAULT_STREAMING, StreamingDecoder } from './streaming-decoder.js';
import type { StreamEvent } from './streaming-decoder.js';
import { TurnAudio, turnRequest } from './turn-audio.js';

export interface LiveLimits {
  /** Longest session, seconds of wall time. */
  maxSessionSeconds: number;
  /** A session without client events for this long is closed. */
  idleTimeoutSeconds: number;
  /** Largest decoded audio of one input_audio_buffer.append. */
  maxChunkBytes: number;
  /** Largest audio a session may hold (the decoder's window), bytes of 32-bit samples. */
  maxBufferBytes: number;
  /** New audio between two re-decodes of the growing window. */
  stepSeconds: number;
}

export const DEFAULT_LIVE_LIMITS: LiveLimits = { maxSessionSeconds: 3600, idleTimeoutSeconds: 30, maxChunkBytes: 256 * 1024, maxBufferBytes: 8 * 1024 * 1024, stepSeconds: 0.2 };

export interface RealtimeDeps {
  manager: ModelManager;
  inference: InferencePool;
  admission: Admission;
  metrics: Metrics;
  log: Logger;
  limits: LiveLimits;
  isAccepting: () => boolean;
  /** Checks the upgrade request's credentials (the transcription route's bearer tokens); true when allowed. */
  authorize?: (req: IncomingMessage) => Promise<boolean>;
  /**
   * Recent requests for feedback: each completed turn is remembered under its item_id (its text and
   * model, and with a dataset store its audio), so POST /v1/feedback takes a turn like a file request.
   */
  recent?: RecentRequests;
}

type Format = { type: 'audio/pcm'; rate: 24000 } | { type: 'audio/pcmu' } | { type: 'audio/pcma' };

const FORMAT_RATE = (f: Format): number => (f.type === 'audio/pcm' ? 24000 : 8000);
const BETA_FORMATS: Record<string, Format> = { pcm16: { type: 'audio/pcm', rate: 24000 }, g711_ulaw: { type: 'audio/pcmu' }, g711_alaw: { type: 'audio/pcma' } };

function ulaw(b: number): number {
  const u = ~b & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return ((u & 0x80 ? 0x84 - t : t - 0x84) / 32768);
}

function alaw(b: number): number {
  const a = b ^ 0x55;
  const seg = (a & 0x70) >> 4;
  let t = (a & 0x0f) << 4;
  t = seg === 0 ? t + 8 : seg === 1 ? t + 0x108 : (t + 0x108) << (seg - 1);
  return (a & 0x80 ? t : -t) / 32768;
}

/** Samples of one append in `format`, or a message saying what is wrong. */
export function decodeChunk(bytes: Buffer, format: Format): Float32Array | string {
  if (format.type === 'audio/pcm') {
    if (bytes.length % 2 !== 0) return 'audio/pcm is 16-bit: the decoded chunk must have an even number of bytes';
    const out = new Float32Array(bytes.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = bytes.readInt16LE(i * 2) / 32768;
    return out;
  }
  const f = format.type === 'audio/pcmu' ? ulaw : alaw;
  return Float32Array.from(bytes, (b) => f(b));
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const newId = (prefix: string): string => `${prefix}_${randomBytes(12).toString('hex')}`;

interface Ticket {
  release: () => void;
  picked: Picked;
}

export class RealtimeServer {
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  private readonly traffic;

  constructor(private readonly deps: RealtimeDeps) {
    // A frame may carry one append of maxChunkBytes as base64 plus its JSON envelope; bigger frames close with 1009.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: Math.ceil((deps.limits.maxChunkBytes * 4) / 3) + 64 * 1024, perMessageDeflate: false });
    this.traffic = trafficMetrics(deps.metrics.registry);
  }

  get activeSessions(): number {
    return this.sockets.size;
  }

  /** The listeners' 'upgrade' handler. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    void this.upgrade(req, socket, head);
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const refuse = (status: number, e: ApiError, extra: Record<string, string> = {}): void => {
      this.deps.metrics.requests.inc({ route: 'realtime', code: String(status), deployment: '', model_version: '' });
      const body = JSON.stringify(e.body);
      const headers = { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close', ...extra };
      socket.end(`HTTP/1.1 ${status} ${status === 429 ? 'Too Many Requests' : status === 401 ? 'Unauthorized' : status === 503 ? 'Service Unavailable' : status === 404 ? 'Not Found' : 'Bad Request'}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`);
    };
    const url = new URL(req.url ?? '/', 'http://agent');
    if (url.pathname !== '/v1/realtime') {
      refuse(404, new ApiError(404, 'not found', 'not_found'));
      return;
    }
    if (url.searchParams.get('intent') !== 'transcription') {
      refuse(400, new ApiError(400, 'this agent serves transcription sessions only: connect to /v1/realtime?intent=transcription', 'unsupported_intent', 'intent'));
      return;
    }
    if (this.deps.authorize && !(await this.deps.authorize(req))) {
      refuse(401, new ApiError(401, 'a valid bearer token is required', 'invalid_api_key'), { 'WWW-Authenticate': 'Bearer' });
      return;
    }
    if (!this.deps.isAccepting()) {
      refuse(503, new ApiError(503, 'the agent is shutting down', 'shutting_down'));
      return;
    }
    const picked = this.deps.manager.pick(undefined);
    if (!picked) {
      refuse(503, new ApiError(503, 'no model is loaded yet', 'not_ready'));
      return;
    }
    const abort = new AbortController();
    socket.once('close', () => abort.abort());
    const release = await takeStream(this.deps.admission, abort.signal);
    if (release === undefined) {
      this.deps.metrics.rejected.inc({ reason: 'client_gone' });
      return;
    }
    if (release instanceof ApiError) {
      this.deps.metrics.rejected.inc({ reason: 'overloaded' });
      refuse(429, release, { 'Retry-After': String((release as ApiError & { retryAfterSeconds?: number }).retryAfterSeconds ?? 1) });
      return;
    }
    if (abort.signal.aborted) {
      release();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.session(ws, { release, picked }));
  }

  /** Closes every session (shutdown): 1001 going away. */
  closeAll(): void {
    for (const ws of this.sockets) ws.close(1001, 'the agent is shutting down');
  }

  private session(ws: WebSocket, ticket: Ticket): void {
    const { deps, traffic } = this;
    const limits = deps.limits;
    this.sockets.add(ws);
    traffic.liveSessions.set(this.sockets.size);
    const sessionId = newId('sess');
    let picked = ticket.picked;
    let format: Format = { type: 'audio/pcm', rate: 24000 };
    let language = picked.model.info.languages[0] ?? 'en';
    let vad = true;
    let silenceMs = 500;
    let prefixMs = 200;
    let beta = false;
    let end = 'client_closed';
    const items = new Map<number, string>();
    let previousItem: string | null = null;
    /** The item of the turn in progress (from speech start to its completion). */
    let openItem: string | undefined;
    const committedItems = new Set<string>();
    const sendCommitted = (item: string): void => {
      if (committedItems.has(item)) return;
      committedItems.add(item);
      send({ type: 'input_audio_buffer.committed', item_id: item, previous_item_id: previousItem });
      previousItem = item;
    };
    /** Wall time at which the audio up to a sample count was received (for the partial latency). */
    const arrivals: { samples: number; at: number }[] = [];
    let received = 0;
    // The turns' audio for dataset samples (only with a store): the decoder trims its own window.
    const makeTurnAudio = (): TurnAudio | undefined => (deps.recent?.keepsAudio
      ? new TurnAudio(FORMAT_RATE(format), Math.floor(limits.maxBufferBytes / 4), Math.round((prefixMs / 1000 + 0.1) * FORMAT_RATE(format)))
      : undefined);
    let turnAudio = makeTurnAudio();
    const send = (event: Record<string, unknown>): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ event_id: newId('event'), ...event }));
    };
    const error = (code: string, message: string, param: string | null = null, eventId: string | null = null): void => {
      send({ type: 'error', error: { type: 'invalid_request_error', code, message, param, event_id: eventId } });
    };
    const itemOf = (turn: number): string => {
      let id = items.get(turn);
      if (!id) {
        id = newId('item');
        items.set(turn, id);
      }
      return id;
    };
    const sessionObject = (): Record<string, unknown> => ({
      type: 'transcription',
      id: sessionId,
      object: 'realtime.transcription_session',
      audio: {
        input: {
          format,
          transcription: { model: picked.deployment, language },
          turn_detection: vad ? { type: 'server_vad', threshold: 0.5, prefix_padding_ms: prefixMs, silence_duration_ms: silenceMs } : null,
          noise_reduction: null,
        },
      },
      include: [],
    });
    const onEvent = (e: StreamEvent): void => {
      const item = itemOf(e.turn);
      switch (e.type) {
        case 'speech_started':
          openItem = item;
          if (vad) send({ type: 'input_audio_buffer.speech_started', audio_start_ms: e.audioStartMs, item_id: item });
          return;
        case 'speech_stopped':
          if (!vad) return;
          send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: e.audioEndMs, item_id: item });
          sendCommitted(item);
          return;
        case 'delta': {
          const sample = Math.round((e.audioMs / 1000) * FORMAT_RATE(format));
          const arrival = arrivals.find((a) => a.samples >= sample);
          if (arrival) traffic.livePartialLatency.observe((performance.now() - arrival.at) / 1000);
          traffic.liveCommitDelay.observe(e.commitDelayMs / 1000);
          send({ type: 'conversation.item.input_audio_transcription.delta', item_id: item, content_index: 0, delta: e.delta });
          return;
        }
        case 'completed':
          if (deps.recent) {
            // Feedback for this turn: its item_id is a request id; timed from its last audio's arrival.
            const endSample = Math.round((e.audioEndMs / 1000) * FORMAT_RATE(format));
            const arrived = arrivals.find((a) => a.samples >= endSample);
            const { request, wav } = turnRequest(
              {
                itemId: item, deployment: picked.deployment, modelVersion: picked.model.version, role: picked.role, transcript: e.transcript,
                audioStartMs: e.audioStartMs, audioEndMs: e.audioEndMs, ...(arrived ? { durationSeconds: (performance.now() - arrived.at) / 1000 } : {}),
              },
              turnAudio?.take(e.audioStartMs, e.audioEndMs), FORMAT_RATE(format), Date.now(),
            );
            deps.recent.remember(request, wav);
          }
          send({
            type: 'conversation.item.input_audio_transcription.completed',
            item_id: item,
            content_index: 0,
            transcript: e.transcript,
            usage: { type: 'duration', seconds: Number(((e.audioEndMs - e.audioStartMs) / 1000).toFixed(3)) },
          });
          items.delete(e.turn);
          committedItems.delete(item);
          if (openItem === item) openItem = undefined;
          return;
        case 'failed':
          send({ type: 'conversation.item.input_audio_transcription.failed', item_id: item, content_index: 0, error: { type: 'server_error', code: 'inference_failed', message: e.message, param: null } });
          return;
      }
    };
    let decoder: StreamingDecoder;
    let workMs = 0;
    const makeDecoder = (): StreamingDecoder =>
      new StreamingDecoder(
        async (audio, sampleRate, prefix) => {
          const done = deps.manager.acquire(picked.model);
          try {
            const r = await deps.inference.run(picked.model.key, { audio, sampleRate, language, prompt: '', temperature: 0, ...(prefix ? { prefix } : {}) }, { transfer: true });
            const ms = r.featuresMs + r.encoderMs + r.decoderMs;
            workMs += ms;
            traffic.liveDecodeSeconds.inc(ms / 1000);
            return { windows: r.windows, workMs: ms };
          } finally {
            done();
          }
        },
        { ...DEFAULT_STREAMING, sampleRate: FORMAT_RATE(format), stepSeconds: limits.stepSeconds, turnSilenceSeconds: vad ? silenceMs / 1000 : Infinity, prerollSeconds: prefixMs / 1000 },
        onEvent,
      );
    decoder = makeDecoder();
    send({ type: beta ? 'transcription_session.created' : 'session.created', session: sessionObject() });

    let idle: NodeJS.Timeout;
    const close = (code: number, reason: string, why: string): void => {
      end = why;
      ws.close(code, reason);
    };
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        error('session_idle_timeout', `no client event for ${limits.idleTimeoutSeconds} s: closing the session`);
        close(1000, 'idle timeout', 'idle_timeout');
      }, limits.idleTimeoutSeconds * 1000);
    };
    touch();
    const maxTimer = setTimeout(() => {
      error('session_expired', `the session reached its maximum duration of ${limits.maxSessionSeconds} s`);
      close(1000, 'session expired', 'expired');
    }, limits.maxSessionSeconds * 1000);

    const update = (session: Record<string, unknown>, eventId: string | null, isBeta: boolean): void => {
      if (!isBeta && session.type !== undefined && session.type !== 'transcription') {
        error('invalid_value', "session.type must be 'transcription' on a transcription connection", 'session.type', eventId);
        return;
      }
      let nextFormat = format;
      let nextModel = picked;
      let nextLanguage = language;
      let nextVad = vad;
      let nextSilence = silenceMs;
      let nextPrefix = prefixMs;
      const input = isBeta ? session : (((session.audio as Record<string, unknown> | undefined)?.input ?? {}) as Record<string, unknown>);
      const rawFormat = isBeta ? input.input_audio_format : input.format;
      if (rawFormat !== undefined) {
        const f: { type?: string; rate?: number } | null | undefined = typeof rawFormat === 'string' ? BETA_FORMATS[rawFormat] : rawFormat;
        if (!f || (f.type !== 'audio/pcm' && f.type !== 'audio/pcmu' && f.type !== 'audio/pcma') || (f.type === 'audio/pcm' && f.rate !== undefined && f.rate !== 24000)) {
          error('invalid_value', 'audio format must be audio/pcm (24000 Hz), audio/pcmu or audio/pcma (pcm16, g711_ulaw, g711_alaw in the beta protocol)', isBeta ? 'session.input_audio_format' : 'session.audio.input.format', eventId);
          return;
        }
        nextFormat = f.type === 'audio/pcm' ? { type: 'audio/pcm', rate: 24000 } : { type: f.type };
      }
      const tr = (isBeta ? input.input_audio_transcription : input.transcription) as { model?: unknown; language?: unknown } | null | undefined;
      if (tr && typeof tr.model === 'string' && tr.model !== '') {
        const p = deps.manager.pick(tr.model);
        if (!p) {
          error('model_not_found', `The model '${tr.model}' does not exist`, 'session.audio.input.transcription.model', eventId);
          return;
        }
        nextModel = p;
      }
      if (tr && typeof tr.language === 'string' && tr.language !== '') {
        if (!nextModel.model.info.languages.includes(tr.language.toLowerCase())) {
          error('unsupported_language', `language '${tr.language}' is not supported (supported: ${nextModel.model.info.languages.join(', ')})`, 'session.audio.input.transcription.language', eventId);
          return;
        }
        nextLanguage = tr.language.toLowerCase();
      }
      if ('turn_detection' in input) {
        const td = input.turn_detection as { type?: unknown; silence_duration_ms?: unknown; prefix_padding_ms?: unknown } | null;
        if (td === null) nextVad = false;
        else if (td.type === 'server_vad') {
          nextVad = true;
          if (td.silence_duration_ms !== undefined) {
            if (typeof td.silence_duration_ms !== 'number' || td.silence_duration_ms < 100 || td.silence_duration_ms > 10_000) {
              error('invalid_value', 'silence_duration_ms must be a number in [100, 10000]', 'session.audio.input.turn_detection.silence_duration_ms', eventId);
              return;
            }
            nextSilence = td.silence_duration_ms;
          }
          if (td.prefix_padding_ms !== undefined) {
            if (typeof td.prefix_padding_ms !== 'number' || td.prefix_padding_ms < 0 || td.prefix_padding_ms > 2000) {
              error('invalid_value', 'prefix_padding_ms must be a number in [0, 2000]', 'session.audio.input.turn_detection.prefix_padding_ms', eventId);
              return;
            }
            nextPrefix = td.prefix_padding_ms;
          }
        } else {
          error('invalid_value', "turn_detection must be null or { type: 'server_vad' } (semantic_vad is not supported by this agent)", 'session.audio.input.turn_detection', eventId);
          return;
        }
      }
      // A new format or turn detection starts a new decoder; audio buffered so far (in the old format) is dropped.
      const rebuild = nextFormat.type !== format.type || nextVad !== vad || nextSilence !== silenceMs || nextPrefix !== prefixMs;
      format = nextFormat;
      picked = nextModel;
      language = nextLanguage;
      vad = nextVad;
      silenceMs = nextSilence;
      prefixMs = nextPrefix;
      beta = isBeta;
      if (rebuild) {
        decoder.abandon();
        decoder = makeDecoder();
        arrivals.length = 0;
        received = 0;
        turnAudio = makeTurnAudio();
      }
      send({ type: isBeta ? 'transcription_session.updated' : 'session.updated', session: sessionObject() });
    };

    ws.on('message', (data: Buffer, isBinary: boolean) => {
      touch();
      let event: Record<string, unknown>;
      try {
        if (isBinary) throw new Error('binary frame');
        const parsed = JSON.parse(data.toString('utf8')) as unknown;
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || typeof (parsed as { type?: unknown }).type !== 'string') throw new Error('not an event object');
        event = parsed as Record<string, unknown>;
      } catch (err) {
        error('invalid_json', `client events are JSON objects with a string "type" (${(err as Error).message})`);
        return;
      }
      const eventId = typeof event.event_id === 'string' ? event.event_id : null;
      switch (event.type) {
        case 'session.update':
        case 'transcription_session.update': {
          const session = event.session;
          if (typeof session !== 'object' || session === null) {
            error('invalid_value', '"session" (object) is required', 'session', eventId);
            return;
          }
          update(session as Record<string, unknown>, eventId, event.type === 'transcription_session.update');
          return;
        }
        case 'input_audio_buffer.append': {
          const audio = event.audio;
          if (typeof audio !== 'string' || !BASE64.test(audio) || audio.length % 4 === 1) {
            error('invalid_value', '"audio" must be base64-encoded audio', 'audio', eventId);
            return;
          }
          if ((audio.length * 3) / 4 > limits.maxChunkBytes + 2) {
            error('chunk_too_large', `one append may carry at most ${limits.maxChunkBytes} bytes of audio`, 'audio', eventId);
            return;
          }
          const samples = decodeChunk(Buffer.from(audio, 'base64'), format);
          if (typeof samples === 'string') {
            error('invalid_value', samples, 'audio', eventId);
            return;
          }
          if ((decoder.bufferedSamples + samples.length) * 4 > limits.maxBufferBytes) {
            error('buffer_full', `the session holds at most ${limits.maxBufferBytes} bytes of audio: commit or clear the buffer`, 'audio', eventId);
            return;
          }
          received += samples.length;
          arrivals.push({ samples: received, at: performance.now() });
          if (arrivals.length > 4096) arrivals.splice(0, arrivals.length - 2048);
          traffic.liveAudioSeconds.inc(samples.length / FORMAT_RATE(format));
          decoder.push(samples);
          // After the decoder: a turn its VAD opened on these samples is open here too. Without VAD a
          // turn is whatever arrives until the commit.
          turnAudio?.push(samples, !vad || items.size > 0);
          return;
        }
        case 'input_audio_buffer.commit': {
          // The decoder opens (if needed) and ends the turn synchronously; its final decode follows.
          const pending = decoder.commit();
          if (openItem) sendCommitted(openItem);
          void pending.then((ok) => {
            if (!ok) error('input_audio_buffer_commit_empty', 'buffer too small: at least 100 ms of audio is needed to commit', null, eventId);
          });
          return;
        }
        case 'input_audio_buffer.clear':
          decoder.clear();
          turnAudio?.clear();
          send({ type: 'input_audio_buffer.cleared' });
          return;
        default:
          error('invalid_value', `unsupported client event type '${String(event.type)}' on a transcription session`, 'type', eventId);
      }
    });

    ws.on('close', () => {
      clearTimeout(idle);
      clearTimeout(maxTimer);
      decoder.abandon();
      this.sockets.delete(ws);
      traffic.liveSessions.set(this.sockets.size);
      traffic.liveSessionsTotal.inc({ transport: 'websocket', end });
      deps.metrics.requests.inc({ route: 'realtime', code: '101', deployment: picked.deployment, model_version: picked.model.version });
      deps.log.debug({ sessionId, end, workMs }, 'Realtime session ended');
      ticket.release();
    });
    ws.on('error', () => {
      end = 'error';
    });
  }
}
