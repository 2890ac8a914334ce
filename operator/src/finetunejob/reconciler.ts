// The FineTuneJob reconciler: one straight list of steps (STYLE.md). Get the FineTuneJob from the
// cache → handle deletion (finalizer) → ensure the finalizer → build the children with the pure
// builders → create or adopt them, and bring the few mutable Job fields in line → compute the
// status from what was observed → write it with at most one patch of the status subresource.
import type { KubernetesObject, V1ConfigMap, V1Job, V1Pod, V1Service } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../../../api/crds.js';
import type { FineTuneJobStatus } from '../../../api/generated/types.js';
import type { KubeClient, ResourceType } from '../kube/client.js';
import {
  CONFIG_MAPS, isAlreadyExists, isInvalid, isNotFound, JOBS, objectKey, PODS, SERVICES,
} from '../kube/client.js';
import type { EventRecorder } from '../runtime/events.js';
import type { Informer } from '../runtime/informer.js';
import type { OperatorMetrics } from '../runtime/metrics.js';
import type { ReconcileResult, Reconciler } from '../runtime/reconcile.js';
import { adoptChild, ownerKeyOf } from '../runtime/owned.js';
import { StatusWriter } from '../runtime/status-writer.js';
import { DONE, errorMessage, TerminalError } from '../runtime/reconcile.js';
import type { Phase } from './compute-status.js';
import { computeStatus, isTerminal, jobFinished, lastFailedPod, resultPod } from './compute-status.js';
import type { StoredFineTuneJob, TrainerSettings } from './desired.js';
import { desiredConfigMap, desiredJob, desiredService, identity, jobDrift } from './desired.js';
import { configMapName, FINALIZER, JOB_NAME_LABEL, jobName, serviceName } from './names.js';

export const FINETUNEJOBS: ResourceType = { group: GROUP, version: VERSION, plural: 'finetunejobs', kind: 'FineTuneJob', namespaced: true };
export const CONTROLLER_NAME = 'finetunejob';

/** How long deletion waits for the Job's pods to go (foreground deletion) before it lets the garbage collector finish alone. */
const DELETE_WAIT_MS = 60_000;

export interface FineTuneJobCaches {
  fineTuneJobs: Informer<StoredFineTuneJob>;
  jobs: Informer<V1Job>;
  pods: Informer<V1Pod>;
  configMaps: Informer<V1ConfigMap>;
  services: Informer<V1Service>;
}

export interface FineTuneJobReconcilerDeps {
  client: KubeClient;
  caches: FineTuneJobCaches;
  events: EventRecorder;
  trainer: TrainerSettings;
  metrics: OperatorMetrics;
  log: Logger;
  now?: () => Date;
}

export class FineTuneJobReconciler implements Reconciler {
  private readonly now: () => Date;
  private readonly statusWriter: StatusWriter<FineTuneJobStatus, StoredFineTuneJob>;

  constructor(private readonly deps: FineTuneJobReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.statusWriter = new StatusWriter(deps.client, FINETUNEJOBS);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const cached = this.deps.caches.fineTuneJobs.get(key);
    if (!cached) {
      this.statusWriter.forget(key);
      return DONE; // gone: the children go with it (owner references)
    }
    const ftj = this.statusWriter.latest(key, cached);
    this.deps.log.debug({ key, resourceVersion: ftj.metadata.resourceVersion, phase: ftj.status?.phase }, 'Reconciling FineTuneJob');
    if (ftj.metadata.deletionTimestamp) return this.finalize(ftj);
    await this.ensureFinalizer(ftj);

    const { client, log } = this.deps;
    const id = identity(ftj);
    const name = jobName(id);
    const terminal = isTerminal(ftj.status?.phase);
    const desired = desiredJob(ftj, this.deps.trainer);
    let job = this.deps.caches.jobs.get(objectKey(id.namespace, name));
    let problem: { reason: string; message: string } | undefined;
    try {
      if (job) job = await adoptChild(this.deps.client, this.deps.log, ftj, job, JOBS);
      if (!terminal) {
        await this.ensureConfigMap(ftj);
        await this.ensureService(ftj);
        if (!job) job = await this.createJob(ftj, desired);
      }
      if (job) {
        const drift = jobDrift(desired, job, terminal || jobFinished(job));
        if (drift) {
          job = await client.patch<V1Job>(JOBS, id.namespace, name, drift);
          log.info({ kind: 'Job', namespace: id.namespace, name, patch: drift }, 'Updated Job');
        }
      }
    } catch (err) {
      if (!(err instanceof TerminalError)) throw err;
      problem = { reason: err.reason, message: err.message };
    }

    const pods = job ? await this.podsOf(job) : [];
    const status = computeStatus({ ftj, jobName: name, job, pods, problem, now: this.now() });
    await this.writeStatus(ftj, status);
    this.announce(ftj, ftj.status?.phase, status);
    return DONE;
  }

  private async ensureFinalizer(ftj: StoredFineTuneJob): Promise<void> {
    const finalizers = ftj.metadata.finalizers ?? [];
    if (finalizers.includes(FINALIZER)) return;
    // Conditional on resourceVersion: a concurrent change of the list makes this 409 and the key is retried.
    await this.deps.client.patch(FINETUNEJOBS, ftj.metadata.namespace, ftj.metadata.name, {
      metadata: { finalizers: [...finalizers, FINALIZER], resourceVersion: ftj.metadata.resourceVersion },
    });
  }

  private async createJob(ftj: StoredFineTuneJob, desired: V1Job): Promise<V1Job> {
    const { client, log, events } = this.deps;
    const { namespace, name } = { namespace: ftj.metadata.namespace, name: desired.metadata?.name ?? '' };
    // status.jobName is written right after a Job is created: a Job that is gone while the run is
    // not finished was deleted behind the operator's back (or by a TTL before its outcome was recorded).
    if (ftj.status?.jobName === name) {
      try {
        return await adoptChild(this.deps.client, this.deps.log, ftj, await client.get<V1Job>(JOBS, namespace, name), JOBS);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      throw new TerminalError(`Job ${name} was deleted before the run finished; create a new FineTuneJob to train again`, 'JobDeleted');
    }
    try {
      const created = await client.create<V1Job>(JOBS, namespace, desired);
      log.info({ kind: 'Job', namespace, name, fineTuneJob: ftj.metadata.name }, 'Created Job');
      events.normal(ftj, 'CreatedJob', 'Create', `Created Job ${name}`);
      return created;
    } catch (err) {
      if (isAlreadyExists(err)) return adoptChild(this.deps.client, this.deps.log, ftj, await client.get<V1Job>(JOBS, namespace, name), JOBS);
      if (isInvalid(err)) throw new TerminalError(`the API server rejected the trainer Job: ${errorMessage(err)}`, 'InvalidSpec', { cause: err });
      throw err;
    }
  }

  private async ensureConfigMap(ftj: StoredFineTuneJob): Promise<void> {
    const { client } = this.deps;
    const want = desiredConfigMap(ftj);
    const { namespace } = ftj.metadata;
    const name = configMapName(identity(ftj));
    let have = this.deps.caches.configMaps.get(objectKey(namespace, name));
    if (!have) {
      try {
        await client.create(CONFIG_MAPS, namespace, want);
        return;
      } catch (err) {
        if (isInvalid(err)) throw new TerminalError(`the API server rejected the job ConfigMap: ${errorMessage(err)}`, 'InvalidSpec', { cause: err });
        if (!isAlreadyExists(err)) throw err;
        have = await client.get<V1ConfigMap>(CONFIG_MAPS, namespace, name);
      }
    }
    have = await adoptChild(this.deps.client, this.deps.log, ftj, have, CONFIG_MAPS);
    if (!isDeepStrictEqual(have.data ?? {}, want.data)) {
      await client.patch(CONFIG_MAPS, namespace, name, { data: want.data });
    }
  }

  private async ensureService(ftj: StoredFineTuneJob): Promise<void> {
    const want = desiredService(ftj, this.deps.trainer);
    if (!want) return;
    const { namespace } = ftj.metadata;
    const name = serviceName(identity(ftj));
    const have = this.deps.caches.services.get(objectKey(namespace, name));
    if (have) {
      await adoptChild(this.deps.client, this.deps.log, ftj, have, SERVICES);
      return;
    }
    try {
      await this.deps.client.create(SERVICES, namespace, want);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      await adoptChild(this.deps.client, this.deps.log, ftj, await this.deps.client.get<V1Service>(SERVICES, namespace, name), SERVICES);
    }
  }

  /** The Job's pods from the cache; read live when the Job finished and the cache lacks the pod that tells how. */
  private async podsOf(job: V1Job): Promise<V1Pod[]> {
    const namespace = job.metadata?.namespace;
    const name = job.metadata?.name ?? '';
    const cached = this.deps.caches.pods.byLabelValue(JOB_NAME_LABEL, namespace, name);
    const complete = job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ?? false;
    const failed = job.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True') ?? false;
    const missing = (complete && !resultPod(cached)) || (failed && !lastFailedPod(cached));
    if (!missing) return cached;
    const live = await this.deps.client.list<V1Pod>(PODS, { namespace, labelSelector: `${JOB_NAME_LABEL}=${name}` });
    return live.items;
  }

  private async writeStatus(ftj: StoredFineTuneJob, status: FineTuneJobStatus): Promise<void> {
    await this.statusWriter.write(ftj, status);
  }

  private announce(ftj: StoredFineTuneJob, before: Phase | undefined, after: FineTuneJobStatus): void {
    const phase = after.phase;
    if (phase === undefined || phase === before) return;
    const ready = after.conditions?.find((c) => c.type === 'Ready');
    const message = ready?.message ?? phase;
    const { events, log, metrics } = this.deps;
    const fields = { kind: 'FineTuneJob', namespace: ftj.metadata.namespace, name: ftj.metadata.name, phase, from: before };
    switch (phase) {
      case 'Succeeded':
        events.normal(ftj, 'Succeeded', 'Train', message);
        metrics.finished.inc({ kind: 'FineTuneJob', phase });
        log.info(fields, 'FineTuneJob succeeded');
        break;
      case 'Failed':
        events.warning(ftj, ready?.reason ?? 'Failed', 'Train', message);
        metrics.finished.inc({ kind: 'FineTuneJob', phase });
        log.warn({ ...fields, reason: ready?.reason, message }, 'FineTuneJob failed');
        break;
      case 'Suspended':
        events.normal(ftj, 'Suspended', 'Suspend', message);
        log.info(fields, 'FineTuneJob suspended');
        break;
      case 'Running':
        events.normal(ftj, before === 'Suspended' ? 'Resumed' : 'Running', 'Train', message);
        log.info(fields, 'FineTuneJob running');
        break;
      case 'Pending':
        if (before === 'Suspended') events.normal(ftj, 'Resumed', 'Resume', message);
        break;
    }
  }

  private async finalize(ftj: StoredFineTuneJob): Promise<ReconcileResult> {
    const finalizers = ftj.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return DONE;
    const { client, log } = this.deps;
    const id = identity(ftj);
    const ns = id.namespace;
    const job = jobName(id);
    // Foreground: the Job object stays until the garbage collector has deleted its pods.
    await deleteIgnoringNotFound(client, JOBS, ns, job, 'Foreground');
    await deleteIgnoringNotFound(client, SERVICES, ns, serviceName(id), 'Background');
    await deleteIgnoringNotFound(client, CONFIG_MAPS, ns, configMapName(id), 'Background');
    const since = new Date(ftj.metadata.deletionTimestamp ?? this.now()).getTime();
    const waited = this.now().getTime() - since;
    if (waited < DELETE_WAIT_MS && (await exists(client, JOBS, ns, job))) return { requeueAfterMs: 1000 };
    await client.patch(FINETUNEJOBS, ns, id.name, {
      metadata: { finalizers: finalizers.filter((f) => f !== FINALIZER), resourceVersion: ftj.metadata.resourceVersion },
    });
    log.info({ kind: 'FineTuneJob', namespace: ns, name: id.name, job }, 'Deleted children and removed finalizer');
    return DONE;
  }
}

async function deleteIgnoringNotFound(client: KubeClient, type: ResourceType, ns: string, name: string, propagationPolicy: 'Foreground' | 'Background'): Promise<void> {
  try {
    await client.delete(type, ns, name, { propagationPolicy });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

async function exists(client: KubeClient, type: ResourceType, ns: string, name: string): Promise<boolean> {
  try {
    await client.get(type, ns, name);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** The key of the FineTuneJob that controls `obj`, if any. */
export function ownerKey(obj: KubernetesObject): string | undefined {
  return ownerKeyOf(obj, 'FineTuneJob');
}
