// Wiring of the EdgePool controller: its informers (EdgePools; only the Deployments, ConfigMaps and
// agent pods the operator created, by label; Nodes, slimmed to what eligibility reads;
// InferenceDeployments, whose served models (status) make up the pools' model sets), the event
// handlers that map a change to the pools it concerns, and the controller that runs the reconciler.
import type { KubernetesObject, V1ConfigMap, V1Deployment, V1Node, V1Pod } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { InferenceDeployment } from '../../../api/generated/types.js';
import type { KubeClient } from '../kube/client.js';
import { CONFIG_MAPS, keyOf, objectKey, PODS } from '../kube/client.js';
import { HttpPrometheusClient } from '../prometheus/client.js';
import { Controller } from '../runtime/controller.js';
import type { EventRecorder } from '../runtime/events.js';
import { Informer } from '../runtime/informer.js';
import { cacheOptions, watchMapped, watchPrimary } from '../runtime/owned.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import type { QueueRateLimits } from '../runtime/rate-limiter.js';
import type { AgentSettings, StoredEdgePool } from './desired.js';
import { servedEntry } from './model-set.js';
import { CHILD_SELECTOR, EDGEPOOL_LABEL, poolId } from './names.js';
import type { EdgePoolCaches, PrometheusSettings } from './reconciler.js';
import { CONTROLLER_NAME, DEPLOYMENTS, EDGEPOOLS, EdgePoolReconciler, INFERENCE_DEPLOYMENTS, NODES, ownerKey } from './reconciler.js';

export interface EdgePoolControllerOptions {
  client: KubeClient;
  events: EventRecorder;
  agent: AgentSettings;
  prometheus: { url: string; loopbackOnly: boolean; timeoutMs: number; connect?: PrometheusSettings['connect'] };
  syncPeriodMs: number;
  metrics: OperatorMetrics;
  log: Logger;
  /** '' watches every namespace. */
  namespace: string;
  workers: number;
  rateLimits: QueueRateLimits;
  resyncPeriodMs: number;
  watchTimeoutSeconds?: number;
}

export interface EdgePoolController {
  controller: Controller;
  caches: EdgePoolCaches;
  informers: Informer<KubernetesObject>[];
}

/** What eligibility reads of a Node: labels, unschedulable, taints, the Ready condition (5,000 nodes stay small). */
export function slimNode(obj: KubernetesObject): KubernetesObject {
  const n = obj as V1Node;
  const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
  const slimmed: V1Node = {
    apiVersion: n.apiVersion, kind: n.kind,
    metadata: { name: n.metadata?.name, labels: n.metadata?.labels, resourceVersion: n.metadata?.resourceVersion, uid: n.metadata?.uid },
    spec: { ...(n.spec?.unschedulable ? { unschedulable: true } : {}), ...(n.spec?.taints ? { taints: n.spec.taints.map((t) => ({ key: t.key, effect: t.effect, ...(t.value !== undefined ? { value: t.value } : {}) })) } : {}) },
    status: ready ? { conditions: [{ type: 'Ready', status: ready.status }] } : {},
  };
  return slimmed;
}

function matches(pool: StoredEdgePool, node: V1Node | undefined): boolean {
  const labels = node?.metadata?.labels ?? {};
  return Object.entries(pool.spec.nodeSelector).every(([k, v]) => labels[k] === v);
}

export function createEdgePoolController(opts: EdgePoolControllerOptions): EdgePoolController {
  const { client, log, metrics } = opts;
  const common = cacheOptions({ namespace: opts.namespace, metrics: metrics.informer(), watchTimeoutSeconds: opts.watchTimeoutSeconds });
  const caches: EdgePoolCaches = {
    edgePools: new Informer<StoredEdgePool>(client, EDGEPOOLS, log, { ...common, resyncPeriodMs: opts.resyncPeriodMs }),
    deployments: new Informer<V1Deployment>(client, DEPLOYMENTS, log, { ...common, labelSelector: CHILD_SELECTOR }),
    configMaps: new Informer<V1ConfigMap>(client, CONFIG_MAPS, log, { ...common, labelSelector: CHILD_SELECTOR }),
    pods: new Informer<V1Pod>(client, PODS, log, { ...common, labelSelector: CHILD_SELECTOR }),
    inferenceDeployments: new Informer<InferenceDeployment>(client, INFERENCE_DEPLOYMENTS, log, common),
    nodes: new Informer<V1Node>(client, NODES, log, {
      resyncPeriodMs: 0, metrics: metrics.informer(), transform: slimNode,
      ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
    }),
  };
  caches.pods.indexByLabel(EDGEPOOL_LABEL);

  const connect = opts.prometheus.connect ?? ((url: string) => new HttpPrometheusClient({ baseUrl: url, loopbackOnly: opts.prometheus.loopbackOnly, timeoutMs: opts.prometheus.timeoutMs }));
  const reconciler = new EdgePoolReconciler({
    client, caches, events: opts.events, agent: opts.agent, syncPeriodMs: opts.syncPeriodMs, log,
    prometheus: { url: opts.prometheus.url, loopbackOnly: opts.prometheus.loopbackOnly, connect },
  });
  const controller = new Controller({ name: CONTROLLER_NAME, workers: opts.workers, rateLimits: opts.rateLimits }, reconciler, metrics, log);
  const enqueue = (key: string | undefined) => {
    if (key) controller.enqueue(key);
  };

  watchPrimary(caches.edgePools, enqueue);
  for (const inf of [caches.deployments, caches.configMaps] as Informer<KubernetesObject>[]) watchMapped(inf, ownerKey, enqueue);
  // Agent pods carry the pool's id as a label (the pool's name unless it had to be mapped).
  const podOwner = (pod: V1Pod): string | undefined => {
    const id = pod.metadata?.labels?.[EDGEPOOL_LABEL];
    if (!id) return undefined;
    const ns = pod.metadata?.namespace;
    const direct = caches.edgePools.get(objectKey(ns, id));
    if (direct) return keyOf(direct);
    const pool = caches.edgePools.list().find((p) => p.metadata.namespace === ns && poolId(p.metadata.name) === id);
    return pool ? keyOf(pool) : undefined;
  };
  watchMapped(caches.pods, podOwner, enqueue);
  // A node's eligibility (labels, cordon, taints, readiness) concerns the pools that select it.
  const nodeChanged = (a: V1Node | undefined, b: V1Node | undefined) => {
    for (const pool of caches.edgePools.list()) if (matches(pool, a) || matches(pool, b)) enqueue(keyOf(pool));
  };
  caches.nodes.addHandlers({
    onAdd: (n) => nodeChanged(undefined, n),
    onUpdate: (a, b) => {
      if (!isDeepStrictEqual(a.metadata?.labels, b.metadata?.labels) || !isDeepStrictEqual(a.spec, b.spec) || !isDeepStrictEqual(a.status, b.status)) nodeChanged(a, b);
    },
    onDelete: (n) => nodeChanged(n, undefined),
  });

  // An InferenceDeployment's served models (status.stable, status.candidate and its weight, decided by
  // its own controller) and its scenarios go into the model set of the pool it names: a change of
  // those or its deletion concerns that pool, and the old one when edgePoolRef moved. Other status
  // writes (conditions, verdicts, WER) do not.
  const poolOf = (d: InferenceDeployment): string => objectKey(d.metadata.namespace, d.spec.edgePoolRef.name);
  const scenariosOf = (d: InferenceDeployment) => d.spec.monitoring?.scenarios?.map((x) => x.name);
  caches.inferenceDeployments.addHandlers({
    onAdd: (d) => enqueue(poolOf(d)),
    onUpdate: (a, b) => {
      if (isDeepStrictEqual(servedEntry(a), servedEntry(b)) && isDeepStrictEqual(scenariosOf(a), scenariosOf(b))
        && poolOf(a) === poolOf(b) && Boolean(a.metadata.deletionTimestamp) === Boolean(b.metadata.deletionTimestamp)) return;
      if (poolOf(a) !== poolOf(b)) enqueue(poolOf(a));
      enqueue(poolOf(b));
    },
    onDelete: (d) => enqueue(poolOf(d)),
  });

  return {
    controller,
    caches,
    informers: [caches.edgePools, caches.deployments, caches.configMaps, caches.pods, caches.nodes, caches.inferenceDeployments] as Informer<KubernetesObject>[],
  };
}
