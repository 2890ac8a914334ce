// Metrics of the transcription traffic layer (upload budget; live sessions), registered on the agent's
// registry next to createMetrics' (same prefix and conventions; documented in edge-agent/README.md).
// One set per registry: file and live paths share it.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { PREFIX } from '../metrics.js';

function create(registry: Registry) {
  return {
    uploadBufferBytes: new Gauge({ name: `${PREFIX}upload_buffer_bytes`, help: 'Bytes of the upload budget reserved by transcriptions (declared body sizes, held until answered).', registers: [registry] }),
    uploadBufferCapacity: new Gauge({ name: `${PREFIX}upload_buffer_capacity_bytes`, help: 'The upload budget (--max-upload-buffer-bytes): bytes of request bodies held in memory at once.', registers: [registry] }),
    uploadBufferWaiting: new Gauge({ name: `${PREFIX}upload_buffer_waiting`, help: 'Transcriptions waiting for the upload budget before their body is read.', registers: [registry] }),
    liveSessions: new Gauge({ name: `${PREFIX}live_sessions`, help: 'Live transcription sessions open (each holds a stream slot).', registers: [registry] }),
    liveSessionsTotal: new Counter({ name: `${PREFIX}live_sessions_total`, help: 'Live transcription sessions ended, by transport and how they ended.', labelNames: ['transport', 'end'], registers: [registry] }),
    livePartialLatency: new Histogram({
      name: `${PREFIX}live_partial_latency_seconds`,
      help: 'Live sessions: time from receiving audio to the first delta that includes text from it (the newest audio of a decode step).',
      buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5],
      registers: [registry],
    }),
    liveCommitDelay: new Histogram({
      name: `${PREFIX}live_commit_delay_seconds`,
      help: 'Live sessions: audio seconds between the end of committed text and the newest audio when it was committed.',
      buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
      registers: [registry],
    }),
    liveAudioSeconds: new Counter({ name: `${PREFIX}live_audio_seconds_total`, help: 'Seconds of audio received by live sessions.', registers: [registry] }),
    liveDecodeSeconds: new Counter({ name: `${PREFIX}live_decode_seconds_total`, help: 'Worker time (front end + encoder + decoder) spent re-decoding live windows.', registers: [registry] }),
  };
}

export type TrafficMetrics = ReturnType<typeof create>;

const byRegistry = new WeakMap<Registry, TrafficMetrics>();

export function trafficMetrics(registry: Registry): TrafficMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    m = create(registry);
    byRegistry.set(registry, m);
  }
  return m;
}
