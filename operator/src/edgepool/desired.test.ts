import { describe, expect, it } from '@jest/globals';
import type { V1Deployment } from '@kubernetes/client-node';
import fc from 'fast-check';
import { ModelSetError, modelSetProblems, parseModelSet } from '../../../api/model-set.js';
import {
  agentDatasetStore, agentEndpoint, agentUrl, CACHE_DIR, datasetStoreMessage, datasetStoreProblem, desiredConfigMap, desiredDeployment, MODEL_SET_KEY, MODEL_SET_PATH, splitThreads, TLS_DIR,
} from './desired.js';
import { agentSettings, defaultEdgePoolSpec, edgePool } from './fixtures.js';
import { configMapName, deploymentName, EDGEPOOL_LABEL, poolId, selectorString } from './names.js';

function env(d: V1Deployment): Record<string, string | undefined> {
  return Object.fromEntries((d.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
}

describe('desiredConfigMap', () => {
  const pool = edgePool();

  it('holds an empty model set that passes the shared schema, owned by the pool', () => {
    const cm = desiredConfigMap(pool);
    expect(cm.metadata?.name).toBe('jetson-east-models');
    expect(cm.metadata?.ownerReferences).toEqual([{
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', name: 'jetson-east', uid: pool.metadata.uid, controller: true, blockOwnerDeletion: true,
    }]);
    const text = cm.data?.[MODEL_SET_KEY] ?? '';
    expect(modelSetProblems(JSON.parse(text))).toEqual([]);
    expect(parseModelSet(text)).toEqual({ apiVersion: 'whisperops.dev/v1alpha1', kind: 'ModelSet', pool: 'jetson-east', models: [] });
  });

  it('carries the given models', () => {
    const stable = { version: '1.0.0', uri: 'file:///models/tiny', sha256: 'a'.repeat(64) };
    const cm = desiredConfigMap(pool, { models: [{ name: 'general', stable }], scenarios: ['finance'] });
    expect(parseModelSet(cm.data?.[MODEL_SET_KEY] ?? '').models).toEqual([{ name: 'general', stable }]);
  });

  it('refuses an invalid model set with every problem', () => {
    expect(() => desiredConfigMap(pool, { models: [{ name: 'x', stable: { version: 'v', uri: 'ftp://x', sha256: 'no' } }] })).toThrow(ModelSetError);
  });

  it('every pool name gives a valid model set (pool id is a DNS label)', () => {
    const subdomain = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?){0,5}$/).filter((s) => s.length <= 253);
    fc.assert(fc.property(subdomain, (name) => {
      const cm = desiredConfigMap(edgePool({}, { name }));
      expect(modelSetProblems(JSON.parse(cm.data?.[MODEL_SET_KEY] ?? ''))).toEqual([]);
      expect(poolId(name)).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
      expect(deploymentName(name).length).toBeLessThanOrEqual(63);
      expect(configMapName(name).length).toBeLessThanOrEqual(63);
    }));
  });
});

describe('desiredDeployment', () => {
  const pool = edgePool({ tolerations: [{ key: 'whisperops.dev/edge', operator: 'Exists', effect: 'NoSchedule' }] });
  const d = desiredDeployment(pool, agentSettings, 3);
  const pod = d.spec?.template.spec;
  const c = pod?.containers[0];

  it('is owned by the pool, named after it, with the scaler\'s replicas', () => {
    expect(d.metadata?.name).toBe('jetson-east-agent');
    expect(d.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'EdgePool', name: 'jetson-east', controller: true });
    expect(d.spec?.replicas).toBe(3);
    expect(desiredDeployment(pool, agentSettings, 0).spec?.replicas).toBe(0);
  });

  it('labels the pods with the pool (Prometheus target labels) and selects them by it', () => {
    expect(d.spec?.selector.matchLabels).toEqual({ [EDGEPOOL_LABEL]: 'jetson-east', 'app.kubernetes.io/component': 'edge-agent', 'app.kubernetes.io/managed-by': 'whisperops' });
    expect(d.spec?.template.metadata?.labels).toMatchObject(d.spec?.selector.matchLabels ?? { missing: 'x' });
    expect(selectorString('jetson-east')).toBe('app.kubernetes.io/component=edge-agent,app.kubernetes.io/managed-by=whisperops,whisperops.dev/edgepool=jetson-east');
  });

  it('is scraped by Prometheus on the agent port', () => {
    expect(d.spec?.template.metadata?.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080', 'prometheus.io/path': '/metrics' });
  });

  it('user pod metadata is added, the operator\'s labels and scrape annotations win', () => {
    const p = edgePool({ agent: { ...defaultEdgePoolSpec().agent, podMetadata: { labels: { team: 'asr', [EDGEPOOL_LABEL]: 'hijack' }, annotations: { 'prometheus.io/scrape': 'false', a: 'b' } } } });
    const t = desiredDeployment(p, agentSettings, 1).spec?.template.metadata;
    expect(t?.labels).toMatchObject({ team: 'asr', [EDGEPOOL_LABEL]: 'jetson-east' });
    expect(t?.annotations).toMatchObject({ a: 'b', 'prometheus.io/scrape': 'true' });
  });

  it('runs on the pool\'s devices: nodeSelector, tolerations, one agent per device by anti-affinity', () => {
    expect(pod?.nodeSelector).toEqual({ 'whisperops.dev/device': 'jetson-agx-xavier' });
    expect(pod?.tolerations).toEqual([{ key: 'whisperops.dev/edge', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(pod?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
      { labelSelector: { matchLabels: d.spec?.selector.matchLabels }, topologyKey: 'kubernetes.io/hostname' },
    ]);
    expect(pod?.topologySpreadConstraints).toBeUndefined();
    expect(d.spec?.strategy?.rollingUpdate).toEqual({ maxSurge: 0, maxUnavailable: '25%' });
  });

  it('several agents per device: an even spread over the devices instead', () => {
    const p = desiredDeployment(edgePool({ placement: { maxAgentsPerDevice: 3 } }), agentSettings, 6).spec?.template.spec;
    expect(p?.affinity).toBeUndefined();
    expect(p?.topologySpreadConstraints).toEqual([{
      maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule',
      labelSelector: { matchLabels: d.spec?.selector.matchLabels }, nodeAffinityPolicy: 'Honor', nodeTaintsPolicy: 'Honor',
    }]);
  });

  it('runs the agent non-root, read-only, no capabilities, seccomp RuntimeDefault', () => {
    expect(pod?.securityContext).toEqual({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c?.securityContext).toEqual({
      allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000,
    });
    expect(pod?.automountServiceAccountToken).toBe(false);
  });

  it('mounts the model set as a folder (hot reload), /tmp and the cache as emptyDirs, and passes --config', () => {
    expect(c?.args).toEqual(['--config', MODEL_SET_PATH]);
    expect(c?.volumeMounts).toEqual([
      { name: 'model-set', mountPath: '/etc/whisperops/model-set', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'cache', mountPath: CACHE_DIR },
    ]);
    expect(c?.volumeMounts?.some((m) => m.subPath !== undefined)).toBe(false);
    expect(pod?.volumes).toEqual([
      { name: 'model-set', configMap: { name: 'jetson-east-models', items: [{ key: MODEL_SET_KEY, path: MODEL_SET_KEY }] } },
      { name: 'tmp', emptyDir: {} },
      { name: 'cache', emptyDir: {} },
    ]);
    // No checksum of the model set: a model change must not restart the agents.
    expect(JSON.stringify(d.spec?.template.metadata)).not.toMatch(/checksum|model-set/);
  });

  it('probes /readyz and /healthz on the agent port', () => {
    expect(c?.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    expect(c?.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c?.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(pod?.terminationGracePeriodSeconds).toBeGreaterThan(35);
  });

  it('passes the agent settings through the agent\'s WHISPEROPS_AGENT_* variables', () => {
    const p = edgePool({ agent: { ...defaultEdgePoolSpec().agent, maxConcurrentStreams: 24, queueLength: 8, threads: 6, executionProviders: ['cuda', 'cpu'], port: 9000, maxUploadBytes: 4096, image: 'registry.local/agent:dev', resources: { requests: { cpu: '2', memory: '2Gi' }, limits: { memory: 4294967296 } } } });
    const dep = desiredDeployment(p, agentSettings, 1);
    expect(env(dep)).toEqual({
      WHISPEROPS_AGENT_HOST: '0.0.0.0', WHISPEROPS_AGENT_PORT: '9000', WHISPEROPS_AGENT_POOL: 'jetson-east',
      WHISPEROPS_AGENT_MAX_CONCURRENT_STREAMS: '24', WHISPEROPS_AGENT_MAX_QUEUE: '8', WHISPEROPS_AGENT_WORKERS: '3', WHISPEROPS_AGENT_THREADS: '2',
      WHISPEROPS_AGENT_EXECUTION_PROVIDERS: 'cuda,cpu', WHISPEROPS_AGENT_MAX_UPLOAD_BYTES: '4096', WHISPEROPS_AGENT_CACHE_DIR: CACHE_DIR, HOME: '/tmp',
    });
    const container = dep.spec?.template.spec?.containers[0];
    expect(container?.image).toBe('registry.local/agent:dev');
    expect(container?.resources).toEqual({ requests: { cpu: '2', memory: '2Gi' }, limits: { memory: '4294967296' } });
    expect(dep.spec?.template.metadata?.annotations?.['prometheus.io/port']).toBe('9000');
    expect(c?.image).toBe(agentSettings.image);
  });

  it('mounts spec.auth\'s token Secret as a folder and points the agent at the files of the keys it names, only when set', () => {
    const spec = (p: ReturnType<typeof edgePool>) => desiredDeployment(p, agentSettings, 1).spec?.template.spec;
    const plain = spec(edgePool({}));
    expect(plain?.volumes?.some((v) => v.name === 'auth')).toBe(false);
    expect(JSON.stringify(plain)).not.toMatch(/TOKEN_FILE/);
    const both = spec(edgePool({ auth: { secretRef: { name: 'agent-tokens' }, transcriptionKey: 'transcribe', feedbackKey: 'feedback-senders' } }));
    expect(both?.volumes?.find((v) => v.name === 'auth')).toEqual({
      name: 'auth',
      secret: { secretName: 'agent-tokens', items: [{ key: 'transcribe', path: 'transcription' }, { key: 'feedback-senders', path: 'feedback' }], defaultMode: 0o440 },
    });
    const c0 = both?.containers[0];
    // A folder mount (no subPath): the kubelet's updates of a rotated Secret reach the agent.
    expect(c0?.volumeMounts?.find((m) => m.name === 'auth')).toEqual({ name: 'auth', mountPath: '/var/run/secrets/whisperops-agent', readOnly: true });
    expect(c0?.env?.filter((e) => e.name.endsWith('_TOKEN_FILE'))).toEqual([
      { name: 'WHISPEROPS_AGENT_TRANSCRIPTION_TOKEN_FILE', value: '/var/run/secrets/whisperops-agent/transcription' },
      { name: 'WHISPEROPS_AGENT_FEEDBACK_TOKEN_FILE', value: '/var/run/secrets/whisperops-agent/feedback' },
    ]);
    // Feedback only: transcription stays open.
    const fb = spec(edgePool({ auth: { secretRef: { name: 'agent-tokens' }, feedbackKey: 'fb' } }));
    expect(fb?.volumes?.find((v) => v.name === 'auth')?.secret?.items).toEqual([{ key: 'fb', path: 'feedback' }]);
    expect(fb?.containers[0]?.env?.filter((e) => e.name.endsWith('_TOKEN_FILE')).map((e) => e.name)).toEqual(['WHISPEROPS_AGENT_FEEDBACK_TOKEN_FILE']);
  });

  it('spec.tls: mounts the kubernetes.io/tls Secret as a folder, passes the agent the pair and the TLS port, serves, probes and is scraped over HTTPS only', () => {
    const p = edgePool({ tls: { secretRef: { name: 'agent-cert' }, port: 9443 } });
    const dep = desiredDeployment(p, agentSettings, 1);
    const spec = dep.spec?.template.spec;
    const c0 = spec?.containers[0];
    expect(spec?.volumes?.find((v) => v.name === 'tls')).toEqual({
      name: 'tls',
      secret: { secretName: 'agent-cert', items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }], defaultMode: 0o440 },
    });
    // A folder mount (no subPath), read-only: a renewed certificate reaches the agent without a restart.
    expect(c0?.volumeMounts?.find((m) => m.name === 'tls')).toEqual({ name: 'tls', mountPath: TLS_DIR, readOnly: true });
    expect(env(dep)).toMatchObject({
      WHISPEROPS_AGENT_TLS_CERT_FILE: `${TLS_DIR}/tls.crt`, WHISPEROPS_AGENT_TLS_KEY_FILE: `${TLS_DIR}/tls.key`, WHISPEROPS_AGENT_TLS_PORT: '9443',
      // Plain HTTP keeps its port; the agent binds it to the pod's loopback only when TLS is on.
      WHISPEROPS_AGENT_PORT: '8080',
    });
    // Only the port the network reaches, named https; the kubelet probes it with scheme HTTPS.
    expect(c0?.ports).toEqual([{ name: 'https', containerPort: 9443, protocol: 'TCP' }]);
    expect(c0?.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'https', scheme: 'HTTPS' });
    expect(c0?.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'https', scheme: 'HTTPS' });
    expect(dep.spec?.template.metadata?.annotations).toMatchObject({ 'prometheus.io/port': '9443', 'prometheus.io/scheme': 'https', 'prometheus.io/path': '/metrics' });
    expect(agentEndpoint(p)).toEqual({ scheme: 'https', port: 9443, portName: 'https' });
    expect(agentUrl(p, '127.1.0.5')).toBe('https://127.1.0.5:9443');
    expect(agentUrl(p, 'fd00::5')).toBe('https://[fd00::5]:9443');
    // Without spec.tls: nothing of it, plain HTTP as before.
    const plain = desiredDeployment(edgePool(), agentSettings, 1);
    expect(JSON.stringify(plain)).not.toMatch(/TLS|https|tls/);
    expect(agentUrl(edgePool(), '127.1.0.5')).toBe('http://127.1.0.5:8080');
  });

  it('gives the agents the pool\'s object-store credentials as environment from the Secret, only when set', () => {
    expect(c?.envFrom).toBeUndefined();
    const p = edgePool({ artifactCredentials: { secretRef: { name: 'models-s3' } } });
    const container = desiredDeployment(p, agentSettings, 1).spec?.template.spec?.containers[0];
    // No prefix: the keys are the AWS SDK's own variable names. Explicit env wins over envFrom, so
    // the agent's WHISPEROPS_AGENT_* settings cannot be overridden by a key of the Secret.
    expect(container?.envFrom).toEqual([{ secretRef: { name: 'models-s3' } }]);
    expect(env(desiredDeployment(p, agentSettings, 1))).toEqual(env(d));
    // The Secret is referenced, never read: nothing of it lands in the pod template.
    expect(JSON.stringify(container)).not.toMatch(/AWS_/);
  });

  it.each([
    ['s3://whisperops-datasets/jetsons/', undefined],
    ['s3://whisperops-datasets', undefined],
    ['s3:///no-bucket/', /names no bucket/],
    ['file:///var/lib/whisperops/samples', /s3:\/\/bucket\/prefix\/ only \(a file:\/\/ path would be a folder inside each agent's container\)/],
    ['https://datasets.example/upload/', /s3:\/\/bucket\/prefix\/ only \(no writer for https:\/\/\)/],
  ])('datasetStore %s → problem %p', (uri, problem) => {
    const p = edgePool({ datasetStore: { uri, retentionSeconds: 600, maxBytes: 1024 } });
    if (problem === undefined) expect(datasetStoreProblem(p)).toBeUndefined();
    else expect(datasetStoreProblem(p)).toMatch(problem);
  });

  it('hands the pool\'s s3:// dataset store to the agents (URI, retention, byte bound, pod name), and nothing without one or with a problem', () => {
    expect(datasetStoreProblem(pool)).toBeUndefined();
    expect(env(d)).not.toHaveProperty('WHISPEROPS_AGENT_DATASET_STORE_URI');
    const ds = { uri: 's3://whisperops-datasets/jetsons', retentionSeconds: 300, maxBytes: 67_108_864 };
    const p = edgePool({ datasetStore: ds, artifactCredentials: { secretRef: { name: 'models-s3' } } });
    const dep = desiredDeployment(p, agentSettings, 1);
    expect(env(dep)).toEqual({
      ...env(d),
      WHISPEROPS_AGENT_DATASET_STORE_URI: 's3://whisperops-datasets/jetsons/',
      WHISPEROPS_AGENT_DATASET_RETENTION_SECONDS: '300',
      WHISPEROPS_AGENT_DATASET_MAX_BYTES: '67108864',
      POD_NAME: undefined,
    });
    // The agent's id in object names: the pod's own name, from the downward API.
    expect(dep.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === 'POD_NAME')?.valueFrom).toEqual({ fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } });
    expect(agentDatasetStore(p)).toEqual({ uri: 's3://whisperops-datasets/jetsons/', retentionSeconds: 300, maxBytes: 67_108_864 });
    expect(datasetStoreMessage(p)).toBe('agents write feedback samples to s3://whisperops-datasets/jetsons/<scenario>/<yyyy-mm-dd>/ (WAVs and manifest-*.jsonl), with the artifactCredentials Secret models-s3');
    const bad = edgePool({ datasetStore: { ...ds, uri: 'file:///data/samples' } });
    expect(env(desiredDeployment(bad, agentSettings, 1))).toEqual(env(d));
    expect(agentDatasetStore(bad)).toBeUndefined();
  });
});

describe('splitThreads', () => {
  it.each([[1, 1, 1], [4, 4, 1], [6, 3, 2], [8, 4, 2], [5, 1, 5], [12, 4, 3]])('%i → %i workers × %i', (t, w, per) => {
    expect(splitThreads(t)).toEqual({ workers: w, threadsPerWorker: per });
  });
  it('workers × threads is exactly the total, at most 4 workers', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 256 }), (t) => {
      const s = splitThreads(t);
      expect(s.workers * s.threadsPerWorker).toBe(t);
      expect(s.workers).toBeLessThanOrEqual(4);
    }));
  });
});
