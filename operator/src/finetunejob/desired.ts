// Pure builders of a FineTuneJob's children: the batch/v1 Job that runs the trainer, the ConfigMap
// that hands it its job, and (for multi-node runs) the headless Service for torchrun rendezvous.
// Plain data in, plain data out; the reconciler applies what they return.
import type {
  V1ConfigMap, V1Container, V1EnvVar, V1Job, V1OwnerReference, V1PodSpec, V1Service, V1Toleration, V1Volume, V1VolumeMount,
} from '@kubernetes/client-node';
import type { FineTuneJob, FineTuneJobSpec } from '../../../api/generated/types.js';
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
/** pvc://<claim>/<path> is <PVC_ROOT>/<claim>/<path> in the trainer container (its WHISPEROPS_PVC_ROOT). */
export const PVC_ROOT = '/mnt/whisperops/pvc';

export interface TrainerSettings {
  /** Image used when spec.image is not set. */
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** ServiceAccount of the trainer pods; empty = the namespace's default. */
  serviceAccountName: string;
  /** torchrun rendezvous port. */
  masterPort: number;
  /** sizeLimit of the trainer's /tmp emptyDir (downloads, prepared data, checkpoints, export). */
  tmpSizeLimit?: string;
  /** sizeLimit of the trainer's /dev/shm (a memory-backed emptyDir: it counts against the pod's memory). */
  shmSizeLimit?: string;
}

/** Bounds of the trainer's scratch volumes: a runaway run is evicted instead of filling the node's disk or memory. */
export const DEFAULT_TMP_SIZE_LIMIT = '100Gi';
export const DEFAULT_SHM_SIZE_LIMIT = '16Gi';

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

/** Every URI of a spec the trainer reads or writes, with its field path; spec.output.uri is the one written. */
export function specUris(spec: FineTuneJobSpec): { field: string; uri: string; output: boolean }[] {
  const ds = spec.dataset;
  const out: { field: string; uri: string; output: boolean }[] = [{ field: 'spec.baseModel.uri', uri: spec.baseModel.uri, output: false }];
  const add = (field: string, uri: string | undefined) => {
    if (uri !== undefined) out.push({ field, uri, output: false });
  };
  add('spec.dataset.uri', ds.uri);
  add('spec.dataset.synthesize.corpusUri', ds.synthesize?.corpusUri);
  add('spec.dataset.selection.referenceUri', ds.selection?.referenceUri);
  add('spec.dataset.replay.uri', ds.replay?.uri);
  (ds.evaluation ?? []).forEach((e, i) => add(`spec.dataset.evaluation[${i}].uri`, e.uri));
  add('spec.augmentation.noise.sourceUri', spec.augmentation.noise.sourceUri);
  add('spec.compression.distillation.teacherUri', spec.compression?.distillation?.teacherUri);
  out.push({ field: 'spec.output.uri', uri: spec.output.uri, output: true });
  return out;
}

export interface ClaimMount {
  claim: string;
  /** Inputs only: read-only. The claim of spec.output.uri is mounted read-write. */
  readOnly: boolean;
  volume: string;
  mountPath: string;
}

const PVC_URI = /^pvc:\/\/([^/]+)(\/.*)?$/;

/**
 * The PersistentVolumeClaims that the spec's pvc:// URIs name, sorted by claim: each mounted once at
 * PVC_ROOT/<claim>, read-write if it holds the output, else read-only. Volume names are by position
 * (pvc-0, pvc-1, …): a claim name may be longer than a volume name may be.
 */
export function claimMounts(spec: FineTuneJobSpec): ClaimMount[] {
  const writes = new Map<string, boolean>();
  for (const { uri, output } of specUris(spec)) {
    const claim = PVC_URI.exec(uri)?.[1];
    if (claim !== undefined) writes.set(claim, (writes.get(claim) ?? false) || output);
  }
  return [...writes.keys()].sort().map((claim, i) => ({
    claim, readOnly: !(writes.get(claim) ?? false), volume: `pvc-${i}`, mountPath: `${PVC_ROOT}/${claim}`,
  }));
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
    ...(claimMounts(ftj.spec).length > 0 ? [{ name: 'WHISPEROPS_PVC_ROOT', value: PVC_ROOT }] : []),
  ];
}

function claimVolumes(ftj: StoredFineTuneJob): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const claims = claimMounts(ftj.spec);
  return {
    // readOnly only when true: false is the API server's default, and it drops it.
    volumes: claims.map((c) => ({ name: c.volume, persistentVolumeClaim: { claimName: c.claim, ...(c.readOnly ? { readOnly: true } : {}) } })),
    mounts: claims.map((c) => ({ name: c.volume, mountPath: c.mountPath, ...(c.readOnly ? { readOnly: true } : {}) })),
  };
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
    // The Secret's keys are the AWS SDKs' own variable names: no prefix. The kubelet reads the
    // Secret; the operator needs no permission on Secrets. Explicit env above wins over it.
    ...(ftj.spec.artifactCredentials ? { envFrom: [{ secretRef: { name: ftj.spec.artifactCredentials.secretRef.name } }] } : {}),
    ...(Object.keys(quantities).length > 0 ? { resources: { requests: { ...quantities }, limits: { ...quantities } } } : {}),
    ports: ftj.spec.resources.nodes > 1 ? [{ name: 'rendezvous', containerPort: trainer.masterPort, protocol: 'TCP' }] : undefined,
    volumeMounts: [
      { name: 'job', mountPath: JOB_FILE_DIR, readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'dshm', mountPath: '/dev/shm' },
      ...claimVolumes(ftj).mounts,
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
      { name: 'tmp', emptyDir: { sizeLimit: trainer.tmpSizeLimit ?? DEFAULT_TMP_SIZE_LIMIT } },
      // PyTorch data loaders and NCCL need more shared memory than a container's default 64 MiB.
      { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: trainer.shmSizeLimit ?? DEFAULT_SHM_SIZE_LIMIT } },
      ...claimVolumes(ftj).volumes,
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
