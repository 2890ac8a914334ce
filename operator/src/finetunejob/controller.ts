// Wiring of the FineTuneJob controller: its informers (FineTuneJobs, and only the Jobs, pods,
// ConfigMaps and Services the operator created, by label), the event handlers that map a child's
// change to its FineTuneJob's key, and the controller that runs the reconciler.
import type { KubernetesObject, V1ConfigMap, V1Job, V1Pod, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';
import { CONFIG_MAPS, JOBS, objectKey, PODS, SERVICES } from '../kube/client.js';
import { Controller } from '../runtime/controller.js';
import type { EventRecorder } from '../runtime/events.js';
import { Informer } from '../runtime/informer.js';
import { cacheOptions, watchMapped, watchPrimary } from '../runtime/owned.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import type { QueueRateLimits } from '../runtime/rate-limiter.js';
import type { StoredFineTuneJob, TrainerSettings } from './desired.js';
import { CHILD_SELECTOR, FINETUNEJOB_LABEL, JOB_NAME_LABEL } from './names.js';
import type { FineTuneJobCaches } from './reconciler.js';
import { CONTROLLER_NAME, FineTuneJobReconciler, FINETUNEJOBS, ownerKey } from './reconciler.js';

export interface FineTuneJobControllerOptions {
  client: KubeClient;
  events: EventRecorder;
  trainer: TrainerSettings;
  metrics: OperatorMetrics;
  log: Logger;
  /** '' watches every namespace. */
  namespace: string;
  workers: number;
  rateLimits: QueueRateLimits;
  resyncPeriodMs: number;
  watchTimeoutSeconds?: number;
}

export interface FineTuneJobController {
  controller: Controller;
  caches: FineTuneJobCaches;
  informers: Informer<KubernetesObject>[];
}

export function createFineTuneJobController(opts: FineTuneJobControllerOptions): FineTuneJobController {
  const { client, log, metrics } = opts;
  const common = cacheOptions({ namespace: opts.namespace, metrics: metrics.informer(), watchTimeoutSeconds: opts.watchTimeoutSeconds });
  const caches: FineTuneJobCaches = {
    fineTuneJobs: new Informer<StoredFineTuneJob>(client, FINETUNEJOBS, log, { ...common, resyncPeriodMs: opts.resyncPeriodMs }),
    jobs: new Informer<V1Job>(client, JOBS, log, { ...common, labelSelector: CHILD_SELECTOR }),
    pods: new Informer<V1Pod>(client, PODS, log, { ...common, labelSelector: CHILD_SELECTOR }),
    configMaps: new Informer<V1ConfigMap>(client, CONFIG_MAPS, log, { ...common, labelSelector: CHILD_SELECTOR }),
    services: new Informer<V1Service>(client, SERVICES, log, { ...common, labelSelector: CHILD_SELECTOR }),
  };
  caches.pods.indexByLabel(JOB_NAME_LABEL);

  const reconciler = new FineTuneJobReconciler({ client, caches, events: opts.events, trainer: opts.trainer, metrics, log });
  const controller = new Controller({ name: CONTROLLER_NAME, workers: opts.workers, rateLimits: opts.rateLimits }, reconciler, metrics, log);
  const enqueue = (key: string | undefined) => {
    if (key) controller.enqueue(key);
  };

  watchPrimary(caches.fineTuneJobs, enqueue);
  for (const inf of [caches.jobs, caches.configMaps, caches.services] as Informer<KubernetesObject>[]) watchMapped(inf, ownerKey, enqueue);
  // Pods belong to the Job; the Job belongs to the FineTuneJob.
  const podOwner = (pod: V1Pod): string | undefined => {
    const jobRef = pod.metadata?.ownerReferences?.find((r) => r.kind === 'Job' && r.controller === true);
    const job = jobRef ? caches.jobs.get(objectKey(pod.metadata?.namespace, jobRef.name)) : undefined;
    if (job) return ownerKey(job);
    const label = pod.metadata?.labels?.[FINETUNEJOB_LABEL];
    return label ? objectKey(pod.metadata?.namespace, label) : undefined;
  };
  watchMapped(caches.pods, podOwner, enqueue);

  return {
    controller,
    caches,
    informers: [caches.fineTuneJobs, caches.jobs, caches.pods, caches.configMaps, caches.services],
  };
}
