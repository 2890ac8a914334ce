// The EdgePool reconciler: one straight list of steps (STYLE.md). Get the pool from the cache →
// (deleting: nothing to do, the children go by owner references) → eligible devices from the node
// cache → the model set (from the InferenceDeployments that name the pool) → the size: builtin mode reads the
// load from Prometheus and decides with the pure HPA-style scaler (history from status), external/off
// take spec.replicas (never written here) → create or bring the ConfigMap and the Deployment in line
// (a write only when they differ) → compute the status from what was observed → at most one status
// patch, only when it changed → Events for size changes → requeue at the sync period (builtin only).
import type { KubernetesObject, V1ConfigMap, V1Deployment, V1Node, V1Pod } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../../../api/crds.js';
import type { EdgePoolStatus, InferenceDeployment } from '../../../api/generated/types.js';
import type { KubeClient, ResourceType } from '../kube/client.js';
import { CONFIG_MAPS, isAlreadyExists, isInvalid, objectKey } from '../kube/client.js';
import type { PrometheusPort } from '../prometheus/client.js';
import { singleValue, urlProblem } from '../prometheus/client.js';
import type { ConditionInput } from '../runtime/conditions.js';
import { mergeConditions } from '../runtime/conditions.js';
import type { EventRecorder } from '../runtime/events.js';
import type { Informer } from '../runtime/informer.js';
import type { ReconcileResult, Reconciler } from '../runtime/reconcile.js';
import { adoptChild, ownerKeyOf } from '../runtime/owned.js';
import { StatusWriter } from '../runtime/status-writer.js';
import { DONE, errorMessage, TerminalError } from '../runtime/reconcile.js';
import { computeStatus, eligibleNodeNames } from './compute-status.js';
import type { AgentSettings, StoredEdgePool } from './desired.js';
import { datasetStoreMessage, datasetStoreProblem, desiredConfigMap, desiredDeployment } from './desired.js';
import { configMapName, deploymentName, EDGEPOOL_LABEL, poolId } from './names.js';
import type { Load, Recommendation, ScaleDecision } from './scale-decision.js';
import { decideScale } from './scale-decision.js';
import { buildModelSet, deploymentsOnPool } from './model-set.js';

export const EDGEPOOLS: ResourceType = { group: GROUP, version: VERSION, plural: 'edgepools', kind: 'EdgePool', namespaced: true };
export const DEPLOYMENTS: ResourceType = { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true };
export const INFERENCE_DEPLOYMENTS: ResourceType = { group: GROUP, version: VERSION, plural: 'inferencedeployments', kind: 'InferenceDeployment', namespaced: true };
export const NODES: ResourceType = { group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false };
export const CONTROLLER_NAME = 'edgepool';
/** Hash of the desired pod template and selector: the Deployment is rewritten only when it changes. */
export const TEMPLATE_HASH_ANNOTATION = 'whisperops.dev/template-hash';

export interface EdgePoolCaches {
  edgePools: Informer<StoredEdgePool>;
  deployments: Informer<V1Deployment>;
  configMaps: Informer<V1ConfigMap>;
  pods: Informer<V1Pod>;
  nodes: Informer<V1Node>;
  /** The InferenceDeployments whose spec.edgePoolRef names a pool decide its model set. */
  inferenceDeployments: Informer<InferenceDeployment>;
}

export interface PrometheusSettings {
  /** The operator's Prometheus ('' = none); spec.autoscaling.prometheus.url overrides it per pool. */
  url: string;
  loopbackOnly: boolean;
  /** Builds the port for a URL (the HTTP client; tests pass a fake). Throws when the URL is refused. */
  connect: (url: string) => PrometheusPort;
}

export interface EdgePoolReconcilerDeps {
  client: KubeClient;
  caches: EdgePoolCaches;
  events: EventRecorder;
  agent: AgentSettings;
  prometheus: PrometheusSettings;
  syncPeriodMs: number;
  log: Logger;
  now?: () => Date;
}

/** The PromQL of a pool's load: in-flight + queued streams summed over its agents (target labels). */
export function loadQuery(pool: StoredEdgePool): string {
  const sel = `namespace="${pool.metadata.namespace}",${EDGEPOOL_LABEL.replace(/[./]/g, '_')}="${poolId(pool.metadata.name)}"`;
  return `sum(whisperops_agent_active_streams{${sel}}) + sum(whisperops_agent_queue_depth{${sel}})`;
}

export class EdgePoolReconciler implements Reconciler {
  private readonly now: () => Date;
  private readonly statusWriter: StatusWriter<EdgePoolStatus, StoredEdgePool>;
  /** The scaler's history as this process knows it (newer than status when only times moved). */
  private readonly history = new Map<string, Recommendation[]>();
  private readonly ports = new Map<string, PrometheusPort>();

  constructor(private readonly deps: EdgePoolReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.statusWriter = new StatusWriter(deps.client, EDGEPOOLS);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const cached = this.deps.caches.edgePools.get(key);
    if (!cached) {
      this.statusWriter.forget(key);
      this.history.delete(key);
      return DONE; // gone: the Deployment and ConfigMap go with it (owner references)
    }
    const pool = this.statusWriter.latest(key, cached);
    const { namespace, name } = pool.metadata;
    this.deps.log.debug({ namespace, name, resourceVersion: pool.metadata.resourceVersion }, 'Reconciling EdgePool');
    if (pool.metadata.deletionTimestamp) return DONE;
    const now = this.now();
    const builtin = pool.spec.autoscaling.mode === 'builtin';
    const nodes = this.deps.caches.nodes.list();
    const eligible = eligibleNodeNames(pool, nodes).length;
    const { set: modelSet, skipped } = buildModelSet(deploymentsOnPool(namespace, name, this.deps.caches.inferenceDeployments.list()));
    let deployment = this.deps.caches.deployments.get(objectKey(namespace, deploymentName(name)));
    let problem: { reason: string; message: string } | undefined;
    const unsupported = datasetStoreProblem(pool);

    let desired = pool.spec.replicas;
    let decision: ScaleDecision | undefined;
    let load: Load | undefined;
    if (builtin) {
      const current = deployment?.spec?.replicas ?? pool.status?.desiredReplicas ?? pool.spec.autoscaling.minReplicas;
      load = await this.readLoad(pool);
      decision = decideScale({
        currentReplicas: current, autoscaling: pool.spec.autoscaling, eligibleNodes: eligible,
        maxAgentsPerDevice: pool.spec.placement.maxAgentsPerDevice, load, history: this.historyOf(key, pool, now), now,
      });
      this.history.set(key, decision.history);
      desired = decision.desiredReplicas;
    }

    try {
      await this.ensureConfigMap(pool, desiredConfigMap(pool, modelSet));
      deployment = await this.ensureDeployment(pool, deployment, desiredDeployment(pool, this.deps.agent, desired));
    } catch (err) {
      if (!(err instanceof TerminalError)) throw err;
      problem = { reason: err.reason, message: err.message };
    }

    const pods = this.deps.caches.pods.byLabelValue(EDGEPOOL_LABEL, namespace, poolId(name));
    const status = computeStatus({ pool, deployment, pods, nodes, desiredReplicas: desired, decision, load, modelSet, skipped, problem, now });
    const extra: ConditionInput[] = [];
    if (builtin) {
      // LoadKnown: whether the built-in scaler could read the load; False says why the size is held.
      // The True message carries no number (it would change with every sample: status churn).
      extra.push(load?.kind === 'unknown'
        ? { type: 'LoadKnown', status: 'False', reason: 'LoadUnknown', message: decision?.reason ?? load.reason }
        : { type: 'LoadKnown', status: 'True', reason: 'LoadRead', message: 'the built-in scaler reads the pool\'s load from Prometheus' });
    }
    // DatasetStoreSupported: only with a spec.datasetStore; False says why the agents get no store.
    if (unsupported) extra.push({ type: 'DatasetStoreSupported', status: 'False', reason: 'UnsupportedDatasetStore', message: unsupported });
    else if (pool.spec.datasetStore) extra.push({ type: 'DatasetStoreSupported', status: 'True', reason: 'AgentsWriteSamples', message: datasetStoreMessage(pool) });
    if (extra.length > 0) {
      status.conditions = mergeConditions(pool.status?.conditions, [...(status.conditions ?? []), ...extra], status.observedGeneration ?? 1, now);
    }
    await this.writeStatus(pool, status);
    this.announce(pool, decision, status);
    this.warnCannotStart(pool, status);
    return builtin ? { requeueAfterMs: this.deps.syncPeriodMs } : DONE;
  }

  /**
   * The scaler's history. In-process it is exact; status.recommendations is written only when its
   * recommended sizes change (not every time a timestamp moves: no status churn at steady state). A
   * new process (restart, fail-over) takes status and, to stay on the safe side, assumes the newest
   * stored recommendation held until now: windows can only last longer, never end early.
   */
  private historyOf(key: string, pool: StoredEdgePool, now: Date): Recommendation[] {
    const mine = this.history.get(key);
    if (mine) return mine;
    const stored = [...(pool.status?.recommendations ?? [])].sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
    const last = stored[stored.length - 1];
    if (last && Date.parse(last.time) < now.getTime()) stored[stored.length - 1] = { ...last, time: now.toISOString() };
    return stored;
  }

  private port(url: string): PrometheusPort {
    let p = this.ports.get(url);
    if (!p) {
      p = this.deps.prometheus.connect(url);
      this.ports.set(url, p);
    }
    return p;
  }

  private async readLoad(pool: StoredEdgePool): Promise<Load> {
    const url = pool.spec.autoscaling.prometheus?.url ?? this.deps.prometheus.url;
    if (!url) return { kind: 'unknown', reason: 'no Prometheus configured (operator prometheus.url or spec.autoscaling.prometheus.url)' };
    const refused = urlProblem(url, { loopbackOnly: this.deps.prometheus.loopbackOnly });
    if (refused) return { kind: 'unknown', reason: `Prometheus URL ${url} refused: ${refused}` };
    let port: PrometheusPort;
    try {
      port = this.port(url);
    } catch (err) {
      return { kind: 'unknown', reason: `Prometheus URL ${url}: ${errorMessage(err)}` };
    }
    const v = singleValue(await port.query(loadQuery(pool)));
    if (v.kind === 'unknown') {
      const why = v.reason === 'empty' ? 'no agent of the pool has been scraped yet' : v.message;
      return { kind: 'unknown', reason: `Prometheus ${url}: ${v.reason}: ${why}` };
    }
    return { kind: 'known', streams: v.value };
  }

  private async ensureConfigMap(pool: StoredEdgePool, want: V1ConfigMap): Promise<void> {
    const { client } = this.deps;
    const { namespace } = pool.metadata;
    const name = configMapName(pool.metadata.name);
    let have = this.deps.caches.configMaps.get(objectKey(namespace, name));
    if (!have) {
      try {
        await client.create(CONFIG_MAPS, namespace, want);
        this.deps.log.info({ kind: 'ConfigMap', namespace, name, edgePool: pool.metadata.name }, 'Created ConfigMap');
        return;
      } catch (err) {
        if (isInvalid(err)) throw new TerminalError(`the API server rejected the model-set ConfigMap: ${errorMessage(err)}`, 'InvalidSpec', { cause: err });
        if (!isAlreadyExists(err)) throw err;
        have = await client.get<V1ConfigMap>(CONFIG_MAPS, namespace, name);
      }
    }
    have = await adoptChild(this.deps.client, this.deps.log, pool, have, CONFIG_MAPS);
    if (!isDeepStrictEqual(have.data ?? {}, want.data)) {
      await client.patch(CONFIG_MAPS, namespace, name, { data: want.data });
      this.deps.log.info({ kind: 'ConfigMap', namespace, name }, 'Updated ConfigMap');
    }
  }

  /**
   * Creates the Deployment, or brings it in line: only spec.replicas changed → a merge patch of it;
   * the template changed (hash annotation) → a replace of the spec, conditional on resourceVersion.
   * Otherwise no write at all.
   */
  private async ensureDeployment(pool: StoredEdgePool, have: V1Deployment | undefined, want: V1Deployment): Promise<V1Deployment> {
    const { client, log, events } = this.deps;
    const { namespace } = pool.metadata;
    const name = want.metadata?.name ?? '';
    const hash = templateHash(want);
    want.metadata = { ...want.metadata, annotations: { ...(want.metadata?.annotations ?? {}), [TEMPLATE_HASH_ANNOTATION]: hash } };
    if (!have) {
      try {
        const created = await client.create<V1Deployment>(DEPLOYMENTS, namespace, want);
        log.info({ kind: 'Deployment', namespace, name, replicas: want.spec?.replicas, edgePool: pool.metadata.name }, 'Created Deployment');
        events.normal(pool, 'CreatedDeployment', 'Create', `Created Deployment ${name} with ${want.spec?.replicas ?? 0} agents`);
        return created;
      } catch (err) {
        if (isInvalid(err)) throw new TerminalError(`the API server rejected the agent Deployment: ${errorMessage(err)}`, 'InvalidSpec', { cause: err });
        if (!isAlreadyExists(err)) throw err;
        have = await client.get<V1Deployment>(DEPLOYMENTS, namespace, name);
      }
    }
    have = await adoptChild(this.deps.client, this.deps.log, pool, have, DEPLOYMENTS);
    try {
      if (have.metadata?.annotations?.[TEMPLATE_HASH_ANNOTATION] !== hash) {
        const body: V1Deployment = {
          ...want,
          metadata: {
            ...have.metadata,
            labels: want.metadata.labels,
            annotations: { ...(have.metadata?.annotations ?? {}), [TEMPLATE_HASH_ANNOTATION]: hash },
            ownerReferences: have.metadata?.ownerReferences ?? want.metadata.ownerReferences,
          },
        };
        const replaced = await client.replace<V1Deployment>(DEPLOYMENTS, namespace, name, body);
        log.info({ kind: 'Deployment', namespace, name, replicas: want.spec?.replicas }, 'Updated Deployment');
        return replaced;
      }
      if (have.spec?.replicas !== want.spec?.replicas) {
        const patched = await client.patch<V1Deployment>(DEPLOYMENTS, namespace, name, { spec: { replicas: want.spec?.replicas } });
        log.info({ kind: 'Deployment', namespace, name, from: have.spec?.replicas, replicas: want.spec?.replicas }, 'Scaled Deployment');
        return patched;
      }
    } catch (err) {
      if (isInvalid(err)) throw new TerminalError(`the API server rejected the agent Deployment: ${errorMessage(err)}`, 'InvalidSpec', { cause: err });
      throw err; // a conflict (409) is retried with the fresh object
    }
    return have;
  }

  private async writeStatus(pool: StoredEdgePool, status: EdgePoolStatus): Promise<void> {
    const old = pool.status ?? {};
    // Recommendations whose sizes are unchanged keep their stored times (see historyOf): only the
    // times moved, and writing those each sync period would be status churn.
    if (old.recommendations && status.recommendations
      && isDeepStrictEqual(old.recommendations.map((r) => r.replicas), status.recommendations.map((r) => r.replicas))) {
      status.recommendations = old.recommendations;
    }
    await this.statusWriter.write(pool, status);
  }

  /** A Warning Event when the agents start failing to start (e.g. a missing TLS Secret); once per episode. */
  private warnCannotStart(pool: StoredEdgePool, status: EdgePoolStatus): void {
    const reasonOf = (s: EdgePoolStatus | undefined) => s?.conditions?.find((c) => c.type === 'Ready')?.reason;
    const ready = status.conditions?.find((c) => c.type === 'Ready');
    if (ready?.reason !== 'AgentsCannotStart' || reasonOf(pool.status) === 'AgentsCannotStart') return;
    this.deps.events.warning(pool, 'AgentsCannotStart', 'Reconcile', ready.message);
    this.deps.log.warn({ kind: 'EdgePool', namespace: pool.metadata.namespace, name: pool.metadata.name, reason: ready.message }, 'EdgePool agents cannot start');
  }

  private announce(pool: StoredEdgePool, decision: ScaleDecision | undefined, status: EdgePoolStatus): void {
    const before = pool.status?.desiredReplicas;
    const after = status.desiredReplicas ?? 0;
    const fields = { kind: 'EdgePool', namespace: pool.metadata.namespace, name: pool.metadata.name, from: before, replicas: after };
    if (decision) {
      if (decision.changed) {
        this.deps.events.normal(pool, after > (before ?? 0) ? 'ScaledUp' : 'ScaledDown', 'Scale', decision.reason);
        this.deps.log.info({ ...fields, reason: decision.reason }, 'EdgePool scaled');
      }
      return;
    }
    if (before !== undefined && before !== after) {
      this.deps.events.normal(pool, after > before ? 'ScaledUp' : 'ScaledDown', 'Scale', `spec.replicas ${before} → ${after} (autoscaling.mode ${pool.spec.autoscaling.mode})`);
      this.deps.log.info(fields, 'EdgePool scaled');
    }
  }
}

function templateHash(d: V1Deployment): string {
  const what = { selector: d.spec?.selector, template: d.spec?.template, strategy: d.spec?.strategy, revisionHistoryLimit: d.spec?.revisionHistoryLimit, labels: d.metadata?.labels };
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 16);
}

/** The key of the EdgePool that controls `obj`, if any. */
export function ownerKey(obj: KubernetesObject): string | undefined {
  return ownerKeyOf(obj, 'EdgePool');
}
