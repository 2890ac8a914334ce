// Wiring of the InferenceDeployment controller: its informers (InferenceDeployments; FineTuneJobs,
// whose results model.fineTuneJobRef serves; EdgePools, which must exist and name the artifact
// credentials), the handlers that map a change to the deployments it concerns, and the controller
// that runs the reconciler.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { EdgePool, FineTuneJob, InferenceDeployment } from '../../../api/generated/types.js';
import type { KubeClient } from '../kube/client.js';
import { keyOf, objectKey } from '../kube/client.js';
import { HttpPrometheusClient } from '../prometheus/client.js';
import type { PrometheusPort } from '../prometheus/client.js';
import { Controller } from '../runtime/controller.js';
import type { EventRecorder } from '../runtime/events.js';
import { Informer } from '../runtime/informer.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import { cacheOptions, watchPrimary } from '../runtime/owned.js';
import type { QueueRateLimits } from '../runtime/rate-limiter.js';
import type { InferenceDeploymentCaches } from './reconciler.js';
import { DEPLOYMENT_LABEL } from './retrain.js';
import { CONTROLLER_NAME, EDGEPOOLS, FINETUNEJOBS, INFERENCE_DEPLOYMENTS, InferenceDeploymentReconciler } from './reconciler.js';

export interface InferenceDeploymentControllerOptions {
  client: KubeClient;
  events: EventRecorder;
  prometheus: { url: string; loopbackOnly: boolean; timeoutMs: number; connect?: (url: string) => PrometheusPort };
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

export interface InferenceDeploymentController {
  controller: Controller;
  caches: InferenceDeploymentCaches;
  reconciler: InferenceDeploymentReconciler;
  informers: Informer<KubernetesObject>[];
}

export function createInferenceDeploymentController(opts: InferenceDeploymentControllerOptions): InferenceDeploymentController {
  const { client, log, metrics } = opts;
  const common = cacheOptions({ namespace: opts.namespace, metrics: metrics.informer(), watchTimeoutSeconds: opts.watchTimeoutSeconds });
  const caches: InferenceDeploymentCaches = {
    inferenceDeployments: new Informer<InferenceDeployment>(client, INFERENCE_DEPLOYMENTS, log, { ...common, resyncPeriodMs: opts.resyncPeriodMs }),
    fineTuneJobs: new Informer<FineTuneJob>(client, FINETUNEJOBS, log, common),
    edgePools: new Informer<EdgePool>(client, EDGEPOOLS, log, common),
  };
  const connect = opts.prometheus.connect ?? ((url: string) => new HttpPrometheusClient({ baseUrl: url, loopbackOnly: opts.prometheus.loopbackOnly, timeoutMs: opts.prometheus.timeoutMs }));
  const reconciler = new InferenceDeploymentReconciler({
    client, caches, events: opts.events, syncPeriodMs: opts.syncPeriodMs, log,
    prometheus: { url: opts.prometheus.url, loopbackOnly: opts.prometheus.loopbackOnly, connect },
  });
  const controller = new Controller({ name: CONTROLLER_NAME, workers: opts.workers, rateLimits: opts.rateLimits }, reconciler, metrics, log);
  const enqueue = (key: string | undefined) => {
    if (key) controller.enqueue(key);
  };
  watchPrimary(caches.inferenceDeployments, enqueue);

  // A FineTuneJob's phase and result decide what a deployment naming it serves, and an automatic
  // retrain's (labelled with its deployment) what the deployment that started it does next.
  const namingJob = (job: FineTuneJob) => {
    const retrainOf = job.metadata.labels?.[DEPLOYMENT_LABEL];
    if (retrainOf) enqueue(objectKey(job.metadata.namespace, retrainOf));
    for (const d of caches.inferenceDeployments.list()) {
      if (d.metadata.namespace === job.metadata.namespace && d.spec.model.fineTuneJobRef?.name === job.metadata.name) enqueue(keyOf(d));
    }
  };
  caches.fineTuneJobs.addHandlers({
    onAdd: namingJob,
    onUpdate: (a, b) => {
      if (a.status?.phase !== b.status?.phase || JSON.stringify(a.status?.result) !== JSON.stringify(b.status?.result)) namingJob(b);
    },
    onDelete: namingJob,
  });
  // A pool appearing or going, or its artifact credentials changing, concerns the deployments on it.
  const onPool = (pool: EdgePool) => {
    for (const d of caches.inferenceDeployments.list()) {
      if (d.metadata.namespace === pool.metadata.namespace && d.spec.edgePoolRef.name === pool.metadata.name) enqueue(keyOf(d));
    }
  };
  caches.edgePools.addHandlers({
    onAdd: onPool,
    onUpdate: (a, b) => {
      if (a.spec.artifactCredentials?.secretRef?.name !== b.spec.artifactCredentials?.secretRef?.name) onPool(b);
    },
    onDelete: onPool,
  });

  return {
    controller, caches, reconciler,
    informers: [caches.inferenceDeployments, caches.fineTuneJobs, caches.edgePools] as Informer<KubernetesObject>[],
  };
}
