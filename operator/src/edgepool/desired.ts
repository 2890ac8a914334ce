// Pure builders of an EdgePool's children: the ConfigMap holding the pool's model set, and the
// Deployment of the edge agent on the pool's devices. Plain data in, plain data out; the reconciler
// applies what they return.
import type {
  V1Affinity, V1ConfigMap, V1Container, V1Deployment, V1EnvVar, V1OwnerReference, V1PodSpec, V1ResourceRequirements,
  V1TopologySpreadConstraint, V1Volume, V1VolumeMount,
} from '@kubernetes/client-node';
import type { EdgePool } from '../../../api/generated/types.js';
import type { ModelSet } from '../../../api/model-set.js';
import { MODEL_SET_API_VERSION, MODEL_SET_KIND, validateModelSet } from '../../../api/model-set.js';
import { controllerReference, restrictedContainer } from '../runtime/owned.js';
import { childLabels, configMapName, deploymentName, poolId, selectorLabels } from './names.js';

export const AGENT_CONTAINER = 'agent';
export const MODEL_SET_KEY = 'model-set.json';
export const MODEL_SET_DIR = '/etc/whisperops/model-set';
export const MODEL_SET_PATH = `${MODEL_SET_DIR}/${MODEL_SET_KEY}`;
export const CACHE_DIR = '/var/cache/whisperops-agent';
/** Where spec.auth's Secret is mounted: files `transcription` and `feedback` (the keys it names). */
export const AUTH_DIR = '/var/run/secrets/whisperops-agent';
/** Where spec.tls's Secret is mounted: files tls.crt and tls.key (the agent polls them every second). */
export const TLS_DIR = '/var/run/secrets/whisperops-agent-tls';
export const TLS_CERT_KEY = 'tls.crt';
export const TLS_KEY_KEY = 'tls.key';
export const HOSTNAME_TOPOLOGY_KEY = 'kubernetes.io/hostname';
/** The agent fails readiness for 5 s on SIGTERM, then drains in-flight work for up to 30 s (its defaults). */
export const TERMINATION_GRACE_SECONDS = 45;
const AGENT_UID = 1000;

export interface AgentSettings {
  /** Image used when spec.agent.image is not set (the operator's `agent.image`). */
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
}

/** An EdgePool as read from the API server: metadata has name, namespace and uid. */
export interface StoredEdgePool extends EdgePool {
  metadata: EdgePool['metadata'] & { name: string; namespace: string; uid: string };
}

export function ownerReference(pool: StoredEdgePool): V1OwnerReference {
  return controllerReference(pool);
}

/** The pool's model set with its `pool` filled in, validated with the shared schema (throws ModelSetError). */
export function modelSetFor(pool: StoredEdgePool, models: Pick<ModelSet, 'models'> & Partial<Omit<ModelSet, 'pool'>>): ModelSet {
  return validateModelSet({ ...models, apiVersion: MODEL_SET_API_VERSION, kind: MODEL_SET_KIND, pool: poolId(pool.metadata.name) });
}

/**
 * The ConfigMap the agents read their model set from (api/model-set.ts format). The model set is an
 * input: the InferenceDeployments on the pool decide it; until there are any, `{ models: [] }`.
 */
export function desiredConfigMap(pool: StoredEdgePool, models: Pick<ModelSet, 'models'> & Partial<Omit<ModelSet, 'pool'>> = { models: [] }): V1ConfigMap {
  const set = modelSetFor(pool, models);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: configMapName(pool.metadata.name),
      namespace: pool.metadata.namespace,
      labels: childLabels(pool.metadata.name),
      ownerReferences: [ownerReference(pool)],
    },
    data: { [MODEL_SET_KEY]: `${JSON.stringify(set, null, 2)}\n` },
  };
}

/**
 * Total inference threads → the agent's workers × intra-op threads, exactly: the largest divisor of
 * `threads` that is at most 4 becomes the workers (parallel streams decode on separate workers),
 * the rest the threads of each (4 → 4×1, 6 → 3×2, 8 → 4×2, 5 → 1×5).
 */
export function splitThreads(threads: number): { workers: number; threadsPerWorker: number } {
  const t = Math.max(1, Math.floor(threads));
  let workers = 1;
  for (let w = Math.min(4, t); w >= 1; w--) {
    if (t % w === 0) { workers = w; break; }
  }
  return { workers, threadsPerWorker: t / workers };
}

/**
 * What is wrong with spec.datasetStore, if anything. The agents write samples with their own S3
 * client (the pool's artifactCredentials), so only s3://bucket/prefix/ can be handed to them: a
 * file:// path would be a folder inside each agent's container (gone with it), or else a hostPath
 * volume — any path on the device, writable — which the operator does not create; http(s):// has no
 * writer. The reconciler reports a problem as a condition and gives the agents no store.
 */
export function datasetStoreProblem(pool: StoredEdgePool): string | undefined {
  const uri = pool.spec.datasetStore?.uri;
  if (uri === undefined) return undefined;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1]?.toLowerCase();
  if (scheme === 's3') {
    return /^s3:\/\/[^/\s]+(\/|$)/.test(uri) ? undefined : `datasetStore ${uri} names no bucket (s3://bucket/prefix/); feedback samples are not stored`;
  }
  return `datasetStore ${uri}: the agents write feedback samples to s3://bucket/prefix/ only (${scheme === 'file' ? 'a file:// path would be a folder inside each agent\'s container' : `no writer for ${scheme ?? 'this'}://`}); feedback samples are not stored`;
}

/** The store the agents write to: spec.datasetStore's URI with a trailing `/`, when it has no problem. */
export function agentDatasetStore(pool: StoredEdgePool): { uri: string; retentionSeconds: number; maxBytes: number } | undefined {
  const ds = pool.spec.datasetStore;
  if (!ds || datasetStoreProblem(pool) !== undefined) return undefined;
  return { uri: ds.uri.endsWith('/') ? ds.uri : `${ds.uri}/`, retentionSeconds: ds.retentionSeconds, maxBytes: ds.maxBytes };
}

/** The True condition's message: where the agents write (no numbers that change: no status churn). */
export function datasetStoreMessage(pool: StoredEdgePool): string {
  const ds = agentDatasetStore(pool);
  if (!ds) return '';
  const credentials = pool.spec.artifactCredentials?.secretRef.name;
  return `agents write feedback samples to ${ds.uri}<scenario>/<yyyy-mm-dd>/ (WAVs and manifest-*.jsonl), with ${credentials ? `the artifactCredentials Secret ${credentials}` : 'the AWS SDK\'s default credentials (no artifactCredentials)'}`;
}

/**
 * How clients, probes and Prometheus reach an agent of the pool: with spec.tls, HTTPS (and WSS) on
 * the TLS port, the agent's plain HTTP then being loopback-only inside the pod; else plain HTTP on
 * spec.agent.port.
 */
export function agentEndpoint(pool: StoredEdgePool): { scheme: 'http' | 'https'; port: number; portName: 'http' | 'https' } {
  const tls = pool.spec.tls;
  return tls ? { scheme: 'https', port: tls.port, portName: 'https' } : { scheme: 'http', port: pool.spec.agent.port, portName: 'http' };
}

/** An agent's base URL at a pod IP (IPv6 in brackets): what status.endpoints lists. */
export function agentUrl(pool: StoredEdgePool, podIp: string): string {
  const { scheme, port } = agentEndpoint(pool);
  return `${scheme}://${podIp.includes(':') ? `[${podIp}]` : podIp}:${port}`;
}

function agentEnv(pool: StoredEdgePool): V1EnvVar[] {
  const a = pool.spec.agent;
  const { workers, threadsPerWorker } = splitThreads(a.threads);
  const env: V1EnvVar[] = [
    // Inside a pod the agent listens on every address (its default 127.0.0.1 is for local runs).
    { name: 'WHISPEROPS_AGENT_HOST', value: '0.0.0.0' },
    { name: 'WHISPEROPS_AGENT_PORT', value: String(a.port) },
    { name: 'WHISPEROPS_AGENT_POOL', value: poolId(pool.metadata.name) },
    { name: 'WHISPEROPS_AGENT_MAX_CONCURRENT_STREAMS', value: String(a.maxConcurrentStreams) },
    { name: 'WHISPEROPS_AGENT_MAX_QUEUE', value: String(a.queueLength) },
    { name: 'WHISPEROPS_AGENT_WORKERS', value: String(workers) },
    { name: 'WHISPEROPS_AGENT_THREADS', value: String(threadsPerWorker) },
    { name: 'WHISPEROPS_AGENT_EXECUTION_PROVIDERS', value: a.executionProviders.join(',') },
    { name: 'WHISPEROPS_AGENT_MAX_UPLOAD_BYTES', value: String(a.maxUploadBytes) },
    { name: 'WHISPEROPS_AGENT_CACHE_DIR', value: CACHE_DIR },
    { name: 'HOME', value: '/tmp' },
  ];
  // Bearer tokens (spec.auth): the files the agent re-reads when the kubelet updates the Secret volume.
  if (pool.spec.auth?.transcriptionKey) env.push({ name: 'WHISPEROPS_AGENT_TRANSCRIPTION_TOKEN_FILE', value: `${AUTH_DIR}/transcription` });
  if (pool.spec.auth?.feedbackKey) env.push({ name: 'WHISPEROPS_AGENT_FEEDBACK_TOKEN_FILE', value: `${AUTH_DIR}/feedback` });
  // TLS (spec.tls): HTTPS + WSS on the TLS port from the mounted pair, re-read when the kubelet
  // updates the volume; the agent then keeps plain HTTP on spec.agent.port for the pod's loopback only.
  if (pool.spec.tls) {
    env.push(
      { name: 'WHISPEROPS_AGENT_TLS_CERT_FILE', value: `${TLS_DIR}/${TLS_CERT_KEY}` },
      { name: 'WHISPEROPS_AGENT_TLS_KEY_FILE', value: `${TLS_DIR}/${TLS_KEY_KEY}` },
      { name: 'WHISPEROPS_AGENT_TLS_PORT', value: String(pool.spec.tls.port) },
    );
  }
  // Feedback samples to the pool's dataset store (edge-agent/README.md, "Dataset store"): the pod name
  // names each agent's objects, so agents never overwrite each other's.
  const ds = agentDatasetStore(pool);
  if (ds) {
    env.push(
      { name: 'WHISPEROPS_AGENT_DATASET_STORE_URI', value: ds.uri },
      { name: 'WHISPEROPS_AGENT_DATASET_RETENTION_SECONDS', value: String(ds.retentionSeconds) },
      { name: 'WHISPEROPS_AGENT_DATASET_MAX_BYTES', value: String(ds.maxBytes) },
      { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    );
  }
  return env;
}

function resourcesOf(pool: StoredEdgePool): V1ResourceRequirements | undefined {
  const r = pool.spec.agent.resources;
  if (!r) return undefined;
  const strings = (m: Record<string, number | string> | undefined) => (m ? Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)])) : undefined);
  const requests = strings(r.requests);
  const limits = strings(r.limits);
  if (!requests && !limits) return undefined;
  return { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) };
}

function agentContainer(pool: StoredEdgePool, agent: AgentSettings): V1Container {
  const a = pool.spec.agent;
  const mounts: V1VolumeMount[] = [
    { name: 'model-set', mountPath: MODEL_SET_DIR, readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
    { name: 'cache', mountPath: CACHE_DIR },
    ...(pool.spec.auth ? [{ name: 'auth', mountPath: AUTH_DIR, readOnly: true }] : []),
    ...(pool.spec.tls ? [{ name: 'tls', mountPath: TLS_DIR, readOnly: true }] : []),
  ];
  // Probes on the port the network reaches: with TLS, HTTPS on the TLS port (the kubelet does not
  // verify the certificate; plain HTTP is loopback-only inside the pod, out of the kubelet's reach).
  const ep = agentEndpoint(pool);
  const probe = (path: string) => ({ httpGet: { path, port: ep.portName, ...(ep.scheme === 'https' ? { scheme: 'HTTPS' } : {}) } });
  const resources = resourcesOf(pool);
  // Object-store credentials as the standard AWS environment: the kubelet reads the Secret when it
  // starts the container, so the operator needs no permission on Secrets (and never sees them).
  const credentials = pool.spec.artifactCredentials?.secretRef.name;
  return {
    name: AGENT_CONTAINER,
    image: a.image ?? agent.image,
    imagePullPolicy: agent.imagePullPolicy,
    args: ['--config', MODEL_SET_PATH],
    ...(credentials ? { envFrom: [{ secretRef: { name: credentials } }] } : {}),
    env: agentEnv(pool),
    // Only the port the network reaches: with TLS, plain HTTP is not on the pod's address at all.
    ports: [{ name: ep.portName, containerPort: ep.port, protocol: 'TCP' }],
    ...(resources ? { resources } : {}),
    readinessProbe: { ...probe('/readyz'), periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
    // /healthz only says "the process is alive" (never loading models), so no start-up grace is needed.
    livenessProbe: { ...probe('/healthz'), periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
    volumeMounts: mounts,
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext: restrictedContainer(AGENT_UID),
  };
}

/**
 * One agent per device by default. With maxAgentsPerDevice 1, a required pod anti-affinity on the
 * hostname forbids a second agent of the pool on a device outright. Kubernetes has no "at most N per
 * node" rule, so for N > 1 the pods are spread evenly over the devices instead (maxSkew 1,
 * DoNotSchedule): the scaler never asks for more than eligibleNodes × N agents, so an even spread
 * puts at most N on each. nodeTaintsPolicy Honor: a device the pool's pods do not tolerate is not a
 * spreading domain (by default it would count as one with 0 pods and block scheduling).
 */
export function placement(pool: StoredEdgePool): { affinity?: V1Affinity; topologySpreadConstraints?: V1TopologySpreadConstraint[] } {
  const labelSelector = { matchLabels: selectorLabels(pool.metadata.name) };
  if (pool.spec.placement.maxAgentsPerDevice <= 1) {
    return { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector, topologyKey: HOSTNAME_TOPOLOGY_KEY }] } } };
  }
  return {
    topologySpreadConstraints: [{
      maxSkew: 1, topologyKey: HOSTNAME_TOPOLOGY_KEY, whenUnsatisfiable: 'DoNotSchedule', labelSelector,
      nodeAffinityPolicy: 'Honor', nodeTaintsPolicy: 'Honor',
    }],
  };
}

function podSpec(pool: StoredEdgePool, agent: AgentSettings): V1PodSpec {
  const volumes: V1Volume[] = [
    // The whole ConfigMap as a folder, never a subPath: the kubelet updates a folder mount in place
    // (atomic ..data swap), which the agent watches and hot-reloads; a subPath mount never changes.
    { name: 'model-set', configMap: { name: configMapName(pool.metadata.name), items: [{ key: MODEL_SET_KEY, path: MODEL_SET_KEY }] } },
    { name: 'tmp', emptyDir: {} },
    // Downloaded model artifacts (verified by sha256) survive container restarts, not pod moves.
    { name: 'cache', emptyDir: {} },
  ];
  // spec.auth: the token Secret as a folder (never a subPath, so rotations reach the agent), only the
  // keys it names, readable by the owner and the pod's fsGroup (the agent). Not optional: an agent whose tokens are missing must
  // not start open.
  const auth = pool.spec.auth;
  if (auth) {
    const items = [
      ...(auth.transcriptionKey ? [{ key: auth.transcriptionKey, path: 'transcription' }] : []),
      ...(auth.feedbackKey ? [{ key: auth.feedbackKey, path: 'feedback' }] : []),
    ];
    volumes.push({ name: 'auth', secret: { secretName: auth.secretRef.name, items, defaultMode: 0o440 } });
  }
  // spec.tls: the kubernetes.io/tls Secret's pair as a folder (rotations reach the agent), the key
  // readable by the owner and the pod's fsGroup only. Not optional: no certificate, no agent (the
  // pod waits with FailedMount, which the status reports).
  if (pool.spec.tls) {
    volumes.push({
      name: 'tls',
      secret: { secretName: pool.spec.tls.secretRef.name, items: [{ key: TLS_CERT_KEY, path: TLS_CERT_KEY }, { key: TLS_KEY_KEY, path: TLS_KEY_KEY }], defaultMode: 0o440 },
    });
  }
  const spec: V1PodSpec = {
    containers: [agentContainer(pool, agent)],
    nodeSelector: { ...pool.spec.nodeSelector },
    ...(pool.spec.tolerations && pool.spec.tolerations.length > 0 ? { tolerations: pool.spec.tolerations.map((t) => ({ ...t })) } : {}),
    ...placement(pool),
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
    securityContext: {
      runAsNonRoot: true, runAsUser: AGENT_UID, runAsGroup: AGENT_UID, fsGroup: AGENT_UID, seccompProfile: { type: 'RuntimeDefault' },
    },
    volumes,
  };
  return spec;
}

/**
 * The agent Deployment with `replicas` agents (the scaler's decision, or spec.replicas when
 * autoscaling is external or off).
 *
 * No checksum of the model set in the pod template, on purpose: the agent hot-reloads the mounted
 * model set (verify, load, warm up, swap), so a model change must not restart every agent — that
 * would drop in-flight streams and cold-start the whole pool for what the agent does in place.
 */
export function desiredDeployment(pool: StoredEdgePool, agent: AgentSettings, replicas: number): V1Deployment {
  const name = pool.metadata.name;
  const labels = childLabels(name);
  const a = pool.spec.agent;
  const podMeta = a.podMetadata ?? {};
  const ep = agentEndpoint(pool);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: deploymentName(name), namespace: pool.metadata.namespace, labels, ownerReferences: [ownerReference(pool)] },
    spec: {
      replicas: Math.max(0, Math.floor(replicas)),
      selector: { matchLabels: selectorLabels(name) },
      // Devices are the capacity: a surge pod would have no device to go to (one agent per device),
      // so an agent is replaced by stopping it first.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: '25%' } },
      revisionHistoryLimit: 5,
      template: {
        metadata: {
          // Ours last: user labels cannot break the selector. Prometheus copies pod labels onto the
          // target, so every agent series carries whisperops_dev_edgepool.
          labels: { ...(podMeta.labels ?? {}), ...labels },
          annotations: {
            ...(podMeta.annotations ?? {}),
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(ep.port),
            'prometheus.io/path': '/metrics',
            // With TLS the agent's /metrics is on the HTTPS port only (the pod's address has no plain HTTP).
            ...(ep.scheme === 'https' ? { 'prometheus.io/scheme': 'https' } : {}),
          },
        },
        spec: podSpec(pool, agent),
      },
    },
  };
}
