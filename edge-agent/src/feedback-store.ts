// Memory of recent requests, for feedback: the transcript and model of each request id (bounded count
// and age) and, when a dataset store is configured, the request's audio as the WAV a sample would hold
// (bounded age and bytes). Feedback takes the audio out (into the dataset writer's queue: the bytes
// change hands, they are not copied), or learns why it is gone.
import { randomUUID } from 'node:crypto';

export interface RecentRequest {
  id: string;
  deployment: string;
  modelVersion: string;
  role: string;
  text: string;
  /** When the request was transcribed (ms since the epoch). */
  at: number;
  audioSeconds: number;
  /** Wall time from the request's arrival to its transcript (s): observed per scenario when feedback names one. */
  durationSeconds?: number;
  /** The request's audio as a WAV, kept for a dataset sample. */
  audio?: Uint8Array;
  /** Why the audio is no longer kept: older than the retention, or evicted by the byte bound. */
  audioDropped?: 'expired' | 'dropped_full';
  feedbackGiven?: boolean;
}

export interface AudioRetention {
  /** Audio older than this is dropped. */
  retentionSeconds: number;
  /**
   * Bound on request audio held for the dataset store: what is kept here plus `heldElsewhere()` (the
   * samples waiting for upload). The oldest audio kept here goes first.
   */
  maxBytes: number;
  heldElsewhere?: () => number;
}

export class RecentRequests {
  private readonly byId = new Map<string, RecentRequest>();
  private audioBytes = 0;

  constructor(
    private readonly opts: { maxEntries: number; maxAgeSeconds: number; dataset?: AudioRetention },
    private readonly onAudioBytes: (bytes: number) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  static newId(): string {
    return `req_${randomUUID().replaceAll('-', '')}`;
  }

  get keepsAudio(): boolean {
    return this.opts.dataset !== undefined;
  }

  get retainedBytes(): number {
    return this.audioBytes;
  }

  remember(r: RecentRequest, wav?: Uint8Array): void {
    this.evict();
    if (this.opts.dataset && wav) {
      r.audio = wav;
      this.audioBytes += wav.byteLength;
    }
    this.byId.set(r.id, r);
    this.evict();
  }

  get(id: string): RecentRequest | undefined {
    this.evict();
    return this.byId.get(id);
  }

  /** The request's WAV, handed over and no longer counted here; or why there is none. */
  takeAudio(r: RecentRequest): Uint8Array | 'expired' | 'dropped_full' {
    this.evict();
    const wav = r.audio;
    if (!wav) return r.audioDropped ?? 'expired';
    this.dropAudio(r, 'expired');
    delete r.audioDropped;
    this.onAudioBytes(this.audioBytes);
    return wav;
  }

  private dropAudio(r: RecentRequest, why: 'expired' | 'dropped_full'): void {
    if (r.audio) {
      this.audioBytes -= r.audio.byteLength;
      delete r.audio;
      r.audioDropped = why;
    }
  }

  private evict(): void {
    const t = this.now();
    const ds = this.opts.dataset;
    // Insertion order is age order: stop at the first entry young enough for every bound.
    for (const [id, r] of this.byId) {
      const age = (t - r.at) / 1000;
      if (this.byId.size > this.opts.maxEntries || age > this.opts.maxAgeSeconds) {
        this.dropAudio(r, 'expired');
        this.byId.delete(id);
        continue;
      }
      if (ds && age > ds.retentionSeconds) {
        this.dropAudio(r, 'expired');
        continue;
      }
      break;
    }
    if (ds && this.audioBytes > 0) {
      const budget = ds.maxBytes - (ds.heldElsewhere?.() ?? 0);
      if (this.audioBytes > budget) {
        for (const r of this.byId.values()) {
          if (this.audioBytes <= budget) break;
          this.dropAudio(r, 'dropped_full');
        }
      }
    }
    this.onAudioBytes(this.audioBytes);
  }
}
