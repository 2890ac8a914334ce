// Applies model sets: for every deployment, fetch + verify + load + warm up its stable and candidate
// artifacts (already-loaded ones are reused), then swap the whole routing table in one assignment.
// A deployment whose new artifact fails keeps serving what it served before. Models that leave the
// table are unloaded once their in-flight requests have finished.
import type { Logger } from 'pino';
import type { ModelRef, ModelSet } from '../../../api/model-set.js';
import type { InferencePool } from '../inference/pool.js';
import type { ModelInfo } from '../inference/protocol.js';
import type { ModelDtype } from '../inference/whisper-model.js';
import type { Metrics } from '../metrics.js';
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

export class ModelManager {
  private routes = new Map<string, Route>();
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, Promise<LoadedModel>>();
  private defaultName: string | undefined;
  private applying: Promise<ApplyReport> = Promise.resolve({ ok: true, failures: [] });
  private everApplied = false;

  constructor(
    private readonly deps: {
      pool: InferencePool;
      fetcher: ArtifactFetcher;
      metrics: Metrics;
      log: Logger;
      dtype: ModelDtype;
      random?: () => number;
    },
  ) {}

  /** True once every deployment of the last applied set has a stable model (and there is one). */
  get ready(): boolean {
    return this.everApplied && this.routes.size > 0;
  }

  get table(): ReadonlyMap<string, Route> {
    return this.routes;
  }

  get defaultModel(): string | undefined {
    return this.defaultName ?? this.routes.keys().next().value;
  }

  /** Applies `set` after any apply in progress (applies never overlap). */
  apply(set: ModelSet): Promise<ApplyReport> {
    this.applying = this.applying.then(() => this.applyNow(set));
    return this.applying;
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
        const message = (err as Error).message;
        failures.push({ deployment, role, version: ref.version, reason, message });
        metrics.modelLoads.inc({ deployment, model_version: ref.version, result: reason });
        log.error({ deployment, role, version: ref.version, uri: ref.uri, reason, err: message }, 'Refused model artifact; the previous model keeps serving');
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
      const info = await this.deps.pool.load({ key, dir: art.dir, dtype: art.dtype });
      const model: LoadedModel = { key, version: ref.version, sha256: ref.sha256, uri: ref.uri, dtype: art.dtype, info, inflight: 0 };
      this.loaded.set(key, model);
      const seconds = (performance.now() - t0) / 1000;
      this.deps.metrics.modelLoadDuration.observe(seconds);
      this.deps.metrics.modelLoads.inc({ deployment, model_version: ref.version, result: 'success' });
      this.deps.log.info({ deployment, version: ref.version, dtype: art.dtype, dir: art.dir, seconds: Number(seconds.toFixed(2)), warmupMs: Math.round(info.warmupMs) }, 'Loaded and warmed up model');
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
