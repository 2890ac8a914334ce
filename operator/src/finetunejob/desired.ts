// Pure builders of a FineTuneJob's children: the batch/v1 Job that runs the trainer, the ConfigMap
// that hands it its job, and (for multi-node runs) the headless Service for torchrun rendezvous.
// Plain data in, plain data out; the reconciler applies what they return.
import type {
  V1ConfigMap, V1Container, V1EnvVar, V1Job, V1OwnerReference, V1PodSpec, V1Service, V1Toleration,
} from '@kubernetes/client-node';
import type { FineTuneJob } from '../../../api/generated/types.js';
import { controllerReference, restrictedContainer } from '../runtime/owned.js';
import {
  childLabels, COMPLETION_INDEX_ANNOTATION, configMapName, JOB_NAME_LABEL, jobName, serviceName,
} from './names.js';

export const JOB_FILE_KEY = 'finetunejob.json';
export const JOB_FILE_DIR = '/etc/whisperops/job';
export const JOB_FILE_PATH = `${JOB_FILE_DIR}/${JOB_FILE_KEY}`;
export const TRAINER_CONTAINER = 'trainer';
export const GPU_RESOURCE = 'nvidia.com/gpu';
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';
/** Trainer exit codes that end the run at once: 2 invalid input, 3 quality gate failed. */
export const NON_RETRYABLE_EXIT_CODES = [2, 3];

export interface TrainerSettings {
  /** Image used when spec.image is not set. */
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** ServiceAccount of the trainer pods; empty = the namespace's default. */
  serviceAccountName: string;
  /** torchrun rendezvous port. */
  masterPort: number;
}

/** A FineTuneJob as read from the API server: metadata has name, namespace and uid. */
export interface StoredFineTuneJob extends FineTuneJob {
  metadata: FineTuneJob['metadata'] & { name: string; namespace: string; uid: string };
}

export function identity(ftj: StoredFineTuneJob): { namespace: string; name: string; uid: string } {
  return { namespace: ftj.metadata.namespace, name: ftj.metadata.name, uid: ftj.metadata.uid };
}

export function ownerReference(ftj: StoredFineTuneJob): V1OwnerReference {
  return controllerReference(ftj);
}

/** The document the trainer reads: the whole FineTuneJob (no status, no server-side bookkeeping). */
export function jobDocument(ftj: StoredFineTuneJob): string {
  return JSON.stringify({
    apiVersion: ftj.apiVersion,
    kind: ftj.kind,
    metadata: {
      name: ftj.metadata.name,
      namespace: ftj.metadata.namespace,
      uid: ftj.metadata.uid,
      generation: ftj.metadata.generation ?? 1,
    },
    spec: ftj.spec,
  }, null, 2);
}

export function desiredConfigMap(ftj: StoredFineTuneJob): V1ConfigMap {
  const id = identity(ftj);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: configMapName(id),
      namespace: id.namespace,
      labels: childLabels(id.name),
      ownerReferences: [ownerReference(ftj)],
    },
    data: { [JOB_FILE_KEY]: jobDocument(ftj) },
  };
}

/** Multi-node runs only: the headless Service whose DNS names the pods rendezvous on. */
export function desiredService(ftj: StoredFineTuneJob, trainer: TrainerSettings): V1Service | undefined {
  if (ftj.spec.resources.nodes <= 1) return undefined;
  const id = identity(ftj);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: serviceName(id),
      namespace: id.namespace,
      labels: childLabels(id.name),
      ownerReferences: [ownerReference(ftj)],
    },
    spec: {
      clusterIP: 'None',
      // Rendezvous happens before any pod is ready.
      publishNotReadyAddresses: true,
      selector: { [JOB_NAME_LABEL]: jobName(id) },
      ports: [{ name: 'rendezvous', port: trainer.masterPort, targetPort: trainer.masterPort, protocol: 'TCP' }],
    },
  };
}

function tolerationsFor(ftj: StoredFineTuneJob): V1Toleration[] {
  const own: V1Toleration[] = (ftj.spec.resources.tolerations ?? []).map((t) => ({ ...t }));
  if (ftj.spec.resources.gpusPerNode > 0 && !own.some((t) => t.key === GPU_RESOURCE)) {
    // GPU nodes are commonly tainted nvidia.com/gpu:NoSchedule so that only GPU work lands there.
    own.push({ key: GPU_RESOURCE, operator: 'Exists', effect: 'NoSchedule' });
  }
  return own;
}

function trainerEnv(ftj: StoredFineTuneJob, trainer: TrainerSettings): V1EnvVar[] {
  const { gpusPerNode, nodes } = ftj.spec.resources;
  const name = jobName(identity(ftj));
  const indexed = nodes > 1;
  return [
    { name: 'WHISPEROPS_JOB_FILE', value: JOB_FILE_PATH },
    { name: 'WHISPEROPS_OUTPUT_URI', value: ftj.spec.output.uri },
    { name: 'WHISPEROPS_FINETUNEJOB', value: `${ftj.metadata.namespace}/${ftj.metadata.name}` },
    { name: 'NPROC_PER_NODE', value: String(Math.max(gpusPerNode, 1)) },
    { name: 'NNODES', value: String(nodes) },
    indexed
      ? { name: 'NODE_RANK', valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${COMPLETION_INDEX_ANNOTATION}']` } } }
      : { name: 'NODE_RANK', value: '0' },
    { name: 'MASTER_ADDR', value: indexed ? `${name}-0.${serviceName(identity(ftj))}` : '127.0.0.1' },
    { name: 'MASTER_PORT', value: String(trainer.masterPort) },
    { name: 'HOME', value: '/tmp' },
  ];
}

function trainerContainer(ftj: StoredFineTuneJob, trainer: TrainerSettings): V1Container {
  const { gpusPerNode, cpu, memory } = ftj.spec.resources;
  const quantities: Record<string, string> = {};
  if (gpusPerNode > 0) quantities[GPU_RESOURCE] = String(gpusPerNode);
  if (cpu !== undefined) quantities.cpu = String(cpu);
  if (memory !== undefined) quantities.memory = String(memory);
  return {
    name: TRAINER_CONTAINER,
    image: ftj.spec.image ?? trainer.image,
    imagePullPolicy: trainer.imagePullPolicy,
    env: trainerEnv(ftj, trainer),
    ...(Object.keys(quantities).length > 0 ? { resources: { requests: { ...quantities }, limits: { ...quantities } } } : {}),
    ports: ftj.spec.resources.nodes > 1 ? [{ name: 'rendezvous', containerPort: trainer.masterPort, protocol: 'TCP' }] : undefined,
    volumeMounts: [
      { name: 'job', mountPath: JOB_FILE_DIR, readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'dshm', mountPath: '/dev/shm' },
    ],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext: restrictedContainer(1000),
  };
}

function podSpec(ftj: StoredFineTuneJob, trainer: TrainerSettings): V1PodSpec {
  const { resources, nodes } = { resources: ftj.spec.resources, nodes: ftj.spec.resources.nodes };
  const id = identity(ftj);
  const spec: V1PodSpec = {
    restartPolicy: 'Never',
    containers: [trainerContainer(ftj, trainer)],
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    tolerations: tolerationsFor(ftj),
    volumes: [
      { name: 'job', configMap: { name: configMapName(id), items: [{ key: JOB_FILE_KEY, path: JOB_FILE_KEY }] } },
      { name: 'tmp', emptyDir: {} },
      // PyTorch data loaders and NCCL need more shared memory than a container's default 64 MiB.
      { name: 'dshm', emptyDir: { medium: 'Memory' } },
    ],
  };
  if (resources.gpusPerNode > 0) {
    spec.affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: GPU_PRODUCT_LABEL, operator: 'In', values: [...resources.gpuProducts] }] }],
        },
      },
    };
  }
  if (resources.nodeSelector && Object.keys(resources.nodeSelector).length > 0) spec.nodeSelector = { ...resources.nodeSelector };
  if (resources.priorityClassName) spec.priorityClassName = resources.priorityClassName;
  if (trainer.serviceAccountName) spec.serviceAccountName = trainer.serviceAccountName;
  if (nodes > 1) spec.subdomain = serviceName(id);
  return spec;
}

export function desiredJob(ftj: StoredFineTuneJob, trainer: TrainerSettings): V1Job {
  const id = identity(ftj);
  const nodes = ftj.spec.resources.nodes;
  const labels = childLabels(id.name);
  const podMeta = ftj.spec.podMetadata ?? {};
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: jobName(id),
      namespace: id.namespace,
      labels,
      ownerReferences: [ownerReference(ftj)],
    },
    spec: {
      backoffLimit: ftj.spec.backoffLimit,
      ...(ftj.spec.activeDeadlineSeconds !== undefined ? { activeDeadlineSeconds: ftj.spec.activeDeadlineSeconds } : {}),
      ...(ftj.spec.ttlSecondsAfterFinished !== undefined ? { ttlSecondsAfterFinished: ftj.spec.ttlSecondsAfterFinished } : {}),
      suspend: ftj.spec.suspend,
      completions: nodes,
      parallelism: nodes,
      ...(nodes > 1 ? { completionMode: 'Indexed' } : {}),
      podFailurePolicy: {
        rules: [
          // Invalid input (2) and a failed quality gate (3) will fail the same way again.
          { action: 'FailJob', onExitCodes: { containerName: TRAINER_CONTAINER, operator: 'In', values: [...NON_RETRYABLE_EXIT_CODES] } },
          // Preemption, eviction and node loss are not the trainer's fault: retry without using up backoffLimit.
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
        ],
      },
      template: {
        metadata: {
          // Ours last: user labels cannot break the selectors the operator relies on.
          labels: { ...(podMeta.labels ?? {}), ...labels },
          ...(podMeta.annotations && Object.keys(podMeta.annotations).length > 0 ? { annotations: { ...podMeta.annotations } } : {}),
        },
        spec: podSpec(ftj, trainer),
      },
    },
  };
}

/**
 * The fields of a live Job that follow the FineTuneJob after creation (everything else is immutable
 * by the CRD's CEL rules): suspend, activeDeadlineSeconds, ttlSecondsAfterFinished. Returns the merge
 * patch that brings the live Job in line, or undefined when it already is. A finished Job only takes
 * a new ttlSecondsAfterFinished.
 */
export function jobDrift(desired: V1Job, live: V1Job, finished: boolean): Record<string, unknown> | undefined {
  const want = desired.spec;
  const have = live.spec;
  if (!want || !have) return undefined;
  const patch: Record<string, unknown> = {};
  if (!finished && (want.suspend ?? false) !== (have.suspend ?? false)) patch.suspend = want.suspend ?? false;
  if (!finished && want.activeDeadlineSeconds !== have.activeDeadlineSeconds) patch.activeDeadlineSeconds = want.activeDeadlineSeconds ?? null;
  if (want.ttlSecondsAfterFinished !== have.ttlSecondsAfterFinished) patch.ttlSecondsAfterFinished = want.ttlSecondsAfterFinished ?? null;
  return Object.keys(patch).length > 0 ? { spec: patch } : undefined;
}
