// Golden probes: a labelled set (JSONL {audio, text, scenario}, audio relative to the file, the trainer's
// dataset format) transcribed on an interval by every served model, stable and candidate; word errors go
// to whisperops_agent_probe_* counters, apart from user feedback.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { Logger } from 'pino';
import { decodeWav } from './audio/wav.js';
import type { InferencePool } from './inference/pool.js';
import type { Metrics } from './metrics.js';
import type { ModelManager } from './models/model-manager.js';
import { wordErrors } from './text/wer.js';

export interface Probe {
  audio: Float32Array;
  sampleRate: number;
  text: string;
  scenario: string;
}

export function loadProbeSet(file: string): Probe[] {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  return lines.map((line, i) => {
    const o = JSON.parse(line) as { audio?: unknown; text?: unknown; scenario?: unknown };
    if (typeof o.audio !== 'string' || typeof o.text !== 'string') throw new Error(`${file}:${i + 1}: needs string fields "audio" and "text"`);
    const path = isAbsolute(o.audio) ? o.audio : join(dirname(file), o.audio);
    const a = decodeWav(readFileSync(path));
    return { audio: a.samples, sampleRate: a.sampleRate, text: o.text, scenario: typeof o.scenario === 'string' ? o.scenario : 'golden' };
  });
}

export class ProbeRunner {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly probes: Probe[],
    private readonly deps: { pool: InferencePool; manager: ModelManager; metrics: Metrics; log: Logger },
  ) {}

  start(intervalSeconds: number): void {
    this.timer = setInterval(() => void this.runOnce(), intervalSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One round over every served model; skipped when the previous round is still running. */
  async runOnce(): Promise<boolean> {
    if (this.running) return false;
    this.running = true;
    const { pool, manager, metrics, log } = this.deps;
    try {
      for (const [deployment, route] of manager.table) {
        const targets = [{ role: 'stable', model: route.stable }, ...(route.candidate ? [{ role: 'candidate', model: route.candidate.model }] : [])];
        for (const { role, model } of targets) {
          const release = manager.acquire(model);
          try {
            let errors = 0;
            let refWords = 0;
            for (const p of this.probes) {
              const r = await pool.run(model.key, { audio: p.audio, sampleRate: p.sampleRate, language: model.info.languages[0] ?? 'en', prompt: '', temperature: 0 });
              const e = wordErrors(p.text, r.text);
              const labels = { deployment, model_version: model.version, role, scenario: p.scenario };
              metrics.probeWordErrors.inc(labels, e.errors);
              metrics.probeReferenceWords.inc(labels, e.referenceWords);
              errors += e.errors;
              refWords += e.referenceWords;
            }
            log.info({ deployment, role, version: model.version, wer: refWords ? Number((errors / refWords).toFixed(4)) : null, probes: this.probes.length }, 'Golden probes done');
          } finally {
            release();
          }
        }
      }
      metrics.probeRuns.inc({ result: 'success' });
      return true;
    } catch (err) {
      metrics.probeRuns.inc({ result: 'error' });
      log.error({ err: (err as Error).message }, 'Golden probe round failed');
      return false;
    } finally {
      this.running = false;
    }
  }
}
