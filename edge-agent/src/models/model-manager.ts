// Applies model sets: for every deployment, fetch + verify + load + warm up its stable and candidate
// artifacts (already-loaded ones are reused), then swap the whole routing table in one assignment.
// A deployment whose new artifact fails keeps serving what it served before. Models that leave the
// table are unloaded once their in-flight requests have finished. A set that did not apply whole is
// applied again after a capped, jittered back-off until it does or a newer set replaces it; a rejection
// anywhere in an apply never stops later applies.
import type { Logger } from 'pino';
import type { ModelRef, ModelSet } from '../../../api/model-set.js';
import { autoMaxBatch } from '../inference/model-files.js';
import type { InferencePool } from '../inference/pool.js';
import type { ModelInfo } from '../inference/protocol.js';
import type { ModelDtype } from '../inference/whisper-model.js';
import type { Metrics } from '../metrics.js';
import { backoffDelayMs } from '../dataset/writer.js';
import { redactText, redactUri } from '../redact.js';
import { ArtifactError } from './artifact.js';
import type { ArtifactFetcher } from './artifact.js';

export type Role = 'stable' | 'candidate';

export interface LoadedModel {
  key: string;
  version: string;
  sha256: string;
  uri: string;
  dtype: ModelDtype;
  info: ModelInfo;
  inflight: number;
}

export interface Route {
  deployment: string;
  stable: LoadedModel;
  candidate?: { model: LoadedModel; weight: number };
}

export interface Picked {
  deployment: string;
  role: Role;
  model: LoadedModel;
}

export interface ApplyReport {
  ok: boolean;
  failures: { deployment: string; role: Role; version: string; reason: string; message: string }[];
}

/** Back-off between applies of a set that did not apply whole: min(maxMs, initialMs × 2^(n-1)) × jitter 0.5–1. */
export const DEFAULT_APPLY_RETRY = { initialMs: 2_000, maxMs: 300_000 };

export class ModelManager {
  private routes = new Map<string, Route>();
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  private defaultName: string | undefined;
  private applying: Promise<unknown> = Promise.resolve();
  private everApplied = false;
  /** The deployments of the latest applied set: ready needs a stable model for each. */
  private assigned: string[] = [];
  /** The latest set handed to apply(); only it is retried. */
  private latest: ModelSet | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly deps: {
      pool: InferencePool;
      fetcher: ArtifactFetcher;
      metrics: Metrics;
      log: Logger;
      dtype: ModelDtype;
      /**
       * Windows a model's runs decode together: a number for every model, or 'auto' per model (4 for
       * fp32 and static INT8, 1 for dynamic INT8: autoMaxBatch). Unset: the pool's maxBatch.
       */
      maxBatch?: number | 'auto';
      random?: () => number;
      /** Back-off of re-applies after a partial apply (default DEFAULT_APPLY_RETRY). */
      retry?: { initialMs: number; maxMs: number };
      /** Called after every apply, retries included (attempt 1 = the first). */
      onApplied?: (set: ModelSet, report: ApplyReport, attempt: number) => void;
    },
  ) {}

  /** True once every deployment of the last applied set has a loaded stable model (and there is one). */
  get ready(): boolean {
    return this.everApplied && this.routes.size > 0 && this.assigned.every((d) => this.routes.has(d));
  }

  get table(): ReadonlyMap<string, Route> {
    return this.routes;
  }

  get defaultModel(): string | undefined {
    return this.defaultName ?? this.routes.keys().next().value;
  }

  /**
   * Applies `set` after any apply in progress (applies never overlap). Never rejects: an unexpected
   * error becomes a failure of the report. When the set did not apply whole it is applied again after
   * a back-off (while it is the latest set), which only fetches what failed.
   */
  apply(set: ModelSet): Promise<ApplyReport> {
    this.latest = set;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    return this.enqueue(set, 1);
  }

  /** Stops retrying (shutdown). */
  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private enqueue(set: ModelSet, attempt: number): Promise<ApplyReport> {
    const run = async (): Promise<ApplyReport> => {
      let report: ApplyReport;
      try {
        report = await this.applyNow(set);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.deps.log.error({ err: message }, 'Applying the model set failed unexpectedly; the previous models keep serving');
        report = { ok: false, failures: [{ deployment: '', role: 'stable', version: '', reason: 'apply_error', message }] };
      }
      try {
        this.deps.onApplied?.(set, report, attempt);
      } catch (err) {
        this.deps.log.error({ err: err instanceof Error ? err.message : String(err) }, 'Model-set report handler failed');
      }
      if (!report.ok && set === this.latest && !this.stopped) this.scheduleRetry(set, attempt);
      return report;
    };
    const p = this.applying.then(run, run);
    this.applying = p;
    return p;
  }

  private scheduleRetry(set: ModelSet, attempt: number): void {
    const delay = Math.round(backoffDelayMs(attempt, this.deps.retry ?? DEFAULT_APPLY_RETRY, (this.deps.random ?? Math.random)()));
    this.deps.log.warn({ attempt, retryInSeconds: delay / 1000 }, 'Model set not applied whole; applying it again after a back-off');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (set === this.latest && !this.stopped) void this.enqueue(set, attempt + 1);
    }, delay);
    this.retryTimer.unref();
  }

  private async applyNow(set: ModelSet): Promise<ApplyReport> {
    const { log, metrics } = this.deps;
    const failures: ApplyReport['failures'] = [];
    const next = new Map<string, Route>();
    const load = async (deployment: string, role: Role, ref: ModelRef): Promise<LoadedModel | undefined> => {
      try {
        return await this.ensureLoaded(deployment, ref);
      } catch (err) {
        const reason = err instanceof ArtifactError ? err.reason : 'load_error';
        const message = redactText(err instanceof Error ? err.message : String(err));
        failures.push({ deployment, role, version: ref.version, reason, message });
        metrics.modelLoads.inc({ deployment, model_version: ref.version, result: reason });
        log.error({ deployment, role, version: ref.version, uri: redactUri(ref.uri), reason, err: message }, 'Refused model artifact; the previous model keeps serving');
        return undefined;
      }
    };
    await Promise.all(
      set.models.map(async (d) => {
        const old = this.routes.get(d.name);
        const [stable, candidate] = await Promise.all([load(d.name, 'stable', d.stable), d.candidate ? load(d.name, 'candidate', d.candidate) : Promise.resolve(undefined)]);
        const stableModel = stable ?? old?.stable;
        if (!stableModel) return; // nothing to serve for this deployment yet
        const route: Route = { deployment: d.name, stable: stableModel };
        if (d.candidate && candidate) route.candidate = { model: candidate, weight: (d.candidate).weight };
        else if (d.candidate && old?.candidate && old.candidate.model.sha256 === d.candidate.sha256) route.candidate = { ...old.candidate, weight: d.candidate.weight };
        next.set(d.name, route);
      }),
    );
    // The swap: one assignment, so a request sees either the old table or the new one.
    const previous = this.routes;
    this.routes = new Map(set.models.filter((d) => next.has(d.name)).map((d) => [d.name, next.get(d.name) as Route]));
    this.defaultName = set.defaultModel;
    this.assigned = set.models.map((d) => d.name);
    this.everApplied = true;
    this.publishModelMetrics();
    for (const [name, r] of this.routes) {
      const before = previous.get(name);
      if (before?.stable.key !== r.stable.key || before.candidate?.model.key !== r.candidate?.model.key || before.candidate?.weight !== r.candidate?.weight) {
        log.info({ deployment: name, stable: r.stable.version, candidate: r.candidate?.model.version, weight: r.candidate?.weight ?? 0 }, 'Serving model set');
      }
    }
    this.collectUnused();
    return { ok: failures.length === 0, failures };
  }

  private async ensureLoaded(deployment: string, ref: ModelRef): Promise<LoadedModel> {
    const key = `${ref.sha256.slice(0, 16)}-${ref.version}`;
    const have = this.loaded.get(key);
    if (have) return have;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const p = (async () => {
      const t0 = performance.now();
      const art = await this.deps.fetcher.fetch(ref, this.deps.dtype);
      const mb = this.deps.maxBatch;
      const maxBatch = mb === 'auto' ? autoMaxBatch(art.dtype, art.manifest.quantization) : mb;
      const info = await this.deps.pool.load({ key, dir: art.dir, dtype: art.dtype, ...(maxBatch === undefined ? {} : { maxBatch }) });
      const model: LoadedModel = { key, version: ref.version, sha256: ref.sha256, uri: ref.uri, dtype: art.dtype, info, inflight: 0 };
      this.loaded.set(key, model);
      const seconds = (performance.now() - t0) / 1000;
      this.deps.metrics.modelLoadDuration.observe(seconds);
      this.deps.metrics.modelLoads.inc({ deployment, model_version: ref.version, result: 'success' });
      this.deps.log.info({ deployment, version: ref.version, dtype: art.dtype, quantization: art.manifest.quantization, maxBatch, dir: art.dir, seconds: Number(seconds.toFixed(2)), warmupMs: Math.round(info.warmupMs) }, 'Loaded and warmed up model');
      return model;
    })();
    this.loading.set(key, p);
    try {
      return await p;
    } finally {
      this.loading.delete(key);
    }
  }

  private publishModelMetrics(): void {
    const { modelInfo, trafficWeight } = this.deps.metrics;
    modelInfo.reset();
    trafficWeight.reset();
    for (const [name, r] of this.routes) {
      const w = r.candidate ? r.candidate.weight / 100 : 0;
      modelInfo.set({ deployment: name, model_version: r.stable.version, role: 'stable', sha256: r.stable.sha256 }, 1);
      trafficWeight.set({ deployment: name, model_version: r.stable.version, role: 'stable' }, 1 - w);
      if (r.candidate) {
        modelInfo.set({ deployment: name, model_version: r.candidate.model.version, role: 'candidate', sha256: r.candidate.model.sha256 }, 1);
        trafficWeight.set({ deployment: name, model_version: r.candidate.model.version, role: 'candidate' }, w);
      }
    }
  }

  private inUse(key: string): boolean {
    for (const r of this.routes.values()) if (r.stable.key === key || r.candidate?.model.key === key) return true;
    return false;
  }

  /** Unloads models no longer routed, each once its in-flight requests are done. */
  private collectUnused(): void {
    for (const [key, m] of this.loaded) {
      if (this.inUse(key)) continue;
      if (m.inflight > 0) continue; // released() calls back here
      this.loaded.delete(key);
      this.deps.log.info({ version: m.version, key }, 'Unloading model no longer in the model set');
      this.deps.pool.unload(key).catch((err: unknown) => this.deps.log.warn({ key, err: (err as Error).message }, 'Unload failed'));
    }
  }

  /** Chooses the model for a request: the candidate with probability weight/100, else stable. */
  pick(name: string | undefined): Picked | undefined {
    const deployment = name ?? this.defaultModel;
    if (deployment === undefined) return undefined;
    const r = this.routes.get(deployment);
    if (!r) return undefined;
    const rnd = (this.deps.random ?? Math.random)();
    if (r.candidate && rnd * 100 < r.candidate.weight) return { deployment, role: 'candidate', model: r.candidate.model };
    return { deployment, role: 'stable', model: r.stable };
  }

  /** Marks a request on `m` started; the returned function marks it done. */
  acquire(m: LoadedModel): () => void {
    m.inflight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      m.inflight--;
      if (m.inflight === 0 && !this.inUse(m.key)) this.collectUnused();
    };
  }
}
