// Memory of recent requests, for feedback: the transcript and model of each request id (bounded count
// and age) and, when a dataset store is configured, the request's audio (bounded bytes and age). On
// feedback with a dataset store, the audio is written as a 16 kHz 16-bit WAV plus one JSONL manifest line
// {audio, text, scenario, model_version, ...} that trainer-image reads (audio relative to the manifest).
import { randomUUID } from 'node:crypto';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resample } from './audio/resample.js';
import { encodeWav16 } from './audio/wav.js';

export interface RecentRequest {
  id: string;
  deployment: string;
  modelVersion: string;
  role: string;
  text: string;
  at: number;
  audioSeconds: number;
  /** Source audio (mono, 16-bit) kept for the dataset store. */
  audio?: { pcm: Int16Array; sampleRate: number };
  feedbackGiven?: boolean;
}

export interface DatasetStoreOptions {
  dir: string;
  /** How long request audio is kept in memory waiting for feedback. */
  retentionSeconds: number;
  /** Bound on the audio kept in memory. */
  maxRetainedBytes: number;
  /** Bound on the bytes this process writes to the store; beyond it samples are dropped and counted. */
  maxStoreBytes: number;
}

export class RecentRequests {
  private readonly byId = new Map<string, RecentRequest>();
  private audioBytes = 0;

  constructor(
    private readonly opts: { maxEntries: number; maxAgeSeconds: number; dataset?: DatasetStoreOptions },
    private readonly onAudioBytes: (bytes: number) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  static newId(): string {
    return `req_${randomUUID().replaceAll('-', '')}`;
  }

  get keepsAudio(): boolean {
    return this.opts.dataset !== undefined;
  }

  remember(r: RecentRequest, audio?: Float32Array, sampleRate?: number): void {
    this.evict();
    if (this.opts.dataset && audio && sampleRate) {
      const pcm = new Int16Array(audio.length);
      for (let i = 0; i < audio.length; i++) {
        const v = Math.max(-1, Math.min(1, audio[i]));
        pcm[i] = Math.round(v < 0 ? v * 32768 : v * 32767);
      }
      r.audio = { pcm, sampleRate };
      this.audioBytes += pcm.byteLength;
    }
    this.byId.set(r.id, r);
    this.evict();
  }

  get(id: string): RecentRequest | undefined {
    this.evict();
    return this.byId.get(id);
  }

  private dropAudio(r: RecentRequest): void {
    if (r.audio) {
      this.audioBytes -= r.audio.pcm.byteLength;
      delete r.audio;
    }
  }

  private evict(): void {
    const t = this.now();
    const ds = this.opts.dataset;
    // Insertion order is age order: stop at the first entry young enough for every bound.
    for (const [id, r] of this.byId) {
      const age = (t - r.at) / 1000;
      if (this.byId.size > this.opts.maxEntries || age > this.opts.maxAgeSeconds) {
        this.dropAudio(r);
        this.byId.delete(id);
        continue;
      }
      if (ds && age > ds.retentionSeconds) {
        this.dropAudio(r);
        continue;
      }
      break;
    }
    if (ds && this.audioBytes > ds.maxRetainedBytes) {
      for (const r of this.byId.values()) {
        if (this.audioBytes <= ds.maxRetainedBytes) break;
        this.dropAudio(r);
      }
    }
    this.onAudioBytes(this.audioBytes);
  }
}

export interface SampleLine {
  audio: string;
  text: string;
  scenario: string;
  model_version: string;
  deployment: string;
  pool: string;
  request_id: string;
  transcript: string;
  duration_seconds: number;
  created_at: string;
}

export class DatasetStore {
  private written = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly opts: DatasetStoreOptions,
    private readonly pool: string,
  ) {}

  get bytesWritten(): number {
    return this.written;
  }

  get manifestPath(): string {
    return join(this.opts.dir, 'manifest.jsonl');
  }

  /** Writes the sample; 'full' when the byte bound is reached, 'no_audio' when the audio has expired. */
  save(r: RecentRequest, reference: string, scenario: string): Promise<'written' | 'full' | 'no_audio'> {
    const audio = r.audio;
    if (!audio) return Promise.resolve('no_audio');
    const pcm16k = resample(Float32Array.from(audio.pcm, (v) => v / 32768), audio.sampleRate, 16000);
    const wav = encodeWav16(pcm16k, 16000);
    if (this.written + wav.byteLength > this.opts.maxStoreBytes) return Promise.resolve('full');
    this.written += wav.byteLength;
    const day = new Date().toISOString().slice(0, 10);
    const rel = `audio/${day}/${r.id}.wav`;
    const line: SampleLine = {
      audio: rel,
      text: reference,
      scenario,
      model_version: r.modelVersion,
      deployment: r.deployment,
      pool: this.pool,
      request_id: r.id,
      transcript: r.text,
      duration_seconds: Number((pcm16k.length / 16000).toFixed(3)),
      created_at: new Date().toISOString(),
    };
    // Serialised, so manifest lines never interleave and a line is written only after its audio.
    const p = this.chain.then(async () => {
      await mkdir(join(this.opts.dir, 'audio', day), { recursive: true });
      await writeFile(join(this.opts.dir, rel), wav);
      await appendFile(this.manifestPath, JSON.stringify(line) + '\n');
      return 'written' as const;
    });
    this.chain = p.catch(() => undefined);
    return p;
  }
}
