// Smoke test of the local control plane: the real scheduler, Job controller, RBAC and TokenRequest,
// with kwok playing kubelet on fake A100 and Jetson nodes.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BatchV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1Job, type V1Pod } from '@kubernetes/client-node';
import {
  a100NodeNames,
  a100Products,
  createTestNamespace,
  deleteTestNamespace,
  edgeTaint,
  eventually,
  kubectl,
  loadAdminKubeConfig,
  podOutcome,
  serviceAccountKubeConfig,
  serviceAccountKubeconfigFile,
} from '../cluster/index.js';

const kc = loadAdminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const batch = kc.makeApiClient(BatchV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);

let ns = '';

beforeAll(async () => {
  ns = await createTestNamespace('cluster-smoke');
});

afterAll(async () => {
  if (ns) await deleteTestNamespace(ns);
});

const a100Affinity = {
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{ matchExpressions: [{ key: 'nvidia.com/gpu.product', operator: 'In', values: [...a100Products] }] }],
    },
  },
};

function gpuJob(name: string, annotations: Record<string, string>, gpus = 4): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: ns },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { annotations },
        spec: {
          restartPolicy: 'Never',
          affinity: a100Affinity,
          // kwok plays these pods (see podOutcome): kwok's nodes only, not the process-backed A100.
          nodeSelector: { 'nvidia.com/gpu.present': 'true', type: 'kwok' },
          containers: [
            {
              name: 'trainer',
              image: 'registry.invalid/whisperops/trainer:test',
              resources: { requests: { 'nvidia.com/gpu': String(gpus), cpu: '8' }, limits: { 'nvidia.com/gpu': String(gpus) } },
            },
          ],
        },
      },
    },
  };
}

async function jobCondition(name: string, type: 'Complete' | 'Failed'): Promise<{ reason?: string } | undefined> {
  const job = await batch.readNamespacedJob({ name, namespace: ns });
  const c = job.status?.conditions?.find((x) => x.type === type && x.status === 'True');
  return c ? { reason: c.reason } : undefined;
}

async function onlyPodOf(job: string): Promise<V1Pod> {
  const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `batch.kubernetes.io/job-name=${job}` });
  expect(pods.items).toHaveLength(1);
  const pod = pods.items[0];
  if (pod === undefined) throw new Error(`no pod for job ${job}`);
  return pod;
}

function statusCode(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number' ? err.code : undefined;
}

describe('local control plane', () => {
  it('has the fake A100 and Jetson nodes, Ready, with their labels, capacity and taints', async () => {
    const nodes = (await core.listNode()).items;
    const ready = (n: (typeof nodes)[number]): boolean => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    const a100 = nodes.filter((n) => n.metadata?.labels?.['nvidia.com/gpu.present'] === 'true' && n.metadata.labels.type === 'kwok');
    expect(a100.map((n) => n.metadata?.name).sort()).toEqual([...a100NodeNames].sort());
    expect(a100.map((n) => n.metadata?.labels?.['nvidia.com/gpu.product']).sort()).toEqual([...a100Products].sort());
    for (const n of a100) {
      expect(ready(n)).toBe(true);
      expect(n.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
      expect(n.metadata?.labels?.['nvidia.com/gpu.count']).toBe('8');
    }
    const jetsons = nodes.filter((n) => n.metadata?.labels?.['whisperops.dev/device'] === 'jetson-agx-xavier');
    expect(jetsons.length).toBeGreaterThanOrEqual(20);
    for (const n of jetsons) {
      expect(ready(n)).toBe(true);
      expect(n.metadata?.labels?.['kubernetes.io/arch']).toBe('arm64');
      expect(n.metadata?.labels).toHaveProperty(['node-role.kubernetes.io/edge'], '');
      expect(n.spec?.taints).toContainEqual(expect.objectContaining(edgeTaint));
    }
  });

  it('schedules a 4-GPU Job onto an A100 node, and kwok completes it with a termination message', async () => {
    const result = JSON.stringify({ modelUri: 'file:///artifacts/m-1', wer: { general: 0.081, medical: 0.143 } });
    await batch.createNamespacedJob({
      namespace: ns,
      body: gpuJob('train-ok', { [podOutcome.outcome]: 'succeed', [podOutcome.terminationMessage]: result, [podOutcome.runSeconds]: '1' }),
    });
    await eventually('Job train-ok Complete', () => jobCondition('train-ok', 'Complete'), 90_000);

    const pod = await onlyPodOf('train-ok');
    expect(a100NodeNames).toContain(pod.spec?.nodeName);
    expect(pod.status?.conditions).toContainEqual(expect.objectContaining({ type: 'PodScheduled', status: 'True' }));
    expect(pod.status?.phase).toBe('Succeeded');

    // What the operator will read, exactly as kubectl shows it.
    const viaKubectl = JSON.parse(await kubectl(['get', 'pod', '-n', ns, pod.metadata?.name ?? '', '-o', 'json'])) as V1Pod;
    const terminated = viaKubectl.status?.containerStatuses?.[0]?.state?.terminated;
    expect(terminated?.exitCode).toBe(0);
    expect(terminated?.reason).toBe('Completed');
    expect(JSON.parse(terminated?.message ?? 'null')).toEqual(JSON.parse(result));
    // run-seconds: the container ran about a second before it terminated
    const ranMs = new Date(terminated?.finishedAt ?? 0).getTime() - new Date(terminated?.startedAt ?? 0).getTime();
    expect(ranMs).toBeGreaterThanOrEqual(900);
  });

  it('fails a Job with backoffLimit 0 when its pod fails with an exit code', async () => {
    await batch.createNamespacedJob({
      namespace: ns,
      body: gpuJob('train-bad', { [podOutcome.outcome]: 'fail', [podOutcome.exitCode]: '3', [podOutcome.terminationMessage]: 'invalid dataset manifest' }),
    });
    const failed = await eventually('Job train-bad Failed', () => jobCondition('train-bad', 'Failed'), 90_000);
    expect(failed.reason).toBe('BackoffLimitExceeded');
    const pod = await onlyPodOf('train-bad');
    expect(a100NodeNames).toContain(pod.spec?.nodeName);
    expect(pod.status?.phase).toBe('Failed');
    expect(pod.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 3, reason: 'Error', message: 'invalid dataset manifest' });
    const job = await batch.readNamespacedJob({ name: 'train-bad', namespace: ns });
    expect(job.status?.failed).toBe(1);
    expect(job.status?.succeeded ?? 0).toBe(0);
  });

  it('completes Job pods without annotations, and keeps a Job pod with outcome "run" running', async () => {
    await batch.createNamespacedJob({ namespace: ns, body: gpuJob('default-outcome', {}, 1) });
    await batch.createNamespacedJob({ namespace: ns, body: gpuJob('long-running', { [podOutcome.outcome]: 'run' }, 1) });
    await eventually('Job default-outcome Complete', () => jobCondition('default-outcome', 'Complete'), 90_000);
    const running = await eventually('long-running pod Running', async () => {
      const pod = await onlyPodOf('long-running');
      return pod.status?.phase === 'Running' ? pod : undefined;
    });
    expect(running.status?.containerStatuses?.[0]?.state?.running).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await onlyPodOf('long-running')).status?.phase).toBe('Running');
    expect((await batch.readNamespacedJob({ name: 'long-running', namespace: ns })).status?.active).toBe(1);
  });

  it('leaves a pod asking for more GPUs than any node has unschedulable', async () => {
    const body = gpuJob('too-big', {}, 9).spec?.template;
    await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'too-big' }, spec: body?.spec } });
    const reason = await eventually('too-big Unschedulable', async () => {
      const pod = await core.readNamespacedPod({ name: 'too-big', namespace: ns });
      const c = pod.status?.conditions?.find((x) => x.type === 'PodScheduled' && x.status === 'False');
      return c ? `${c.reason ?? ''}: ${c.message ?? ''}` : undefined;
    });
    expect(reason).toMatch(/^Unschedulable: .*Insufficient nvidia\.com\/gpu/);
  });

  it('keeps pods off Jetson nodes unless they tolerate the edge taint, and runs those that do', async () => {
    const spec = (tolerate: boolean): V1Pod['spec'] => ({
      nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'kwok' },
      ...(tolerate ? { tolerations: [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }] } : {}),
      containers: [{ name: 'agent', image: 'registry.invalid/whisperops/edge-agent:test' }],
    });
    await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'agent-intolerant' }, spec: spec(false) } });
    await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'agent' }, spec: spec(true) } });

    const running = await eventually('agent Running', async () => {
      const pod = await core.readNamespacedPod({ name: 'agent', namespace: ns });
      return pod.status?.phase === 'Running' ? pod : undefined;
    });
    expect(running.spec?.nodeName).toMatch(/^jetson-/);
    // ServiceAccount admission ran: the default ServiceAccount and its projected token volume.
    expect(running.spec?.serviceAccountName).toBe('default');
    expect(running.spec?.volumes?.some((v) => v.name.startsWith('kube-api-access-') && v.projected !== undefined)).toBe(true);
    expect(running.status?.containerStatuses?.[0]?.state?.running).toBeDefined();

    const message = await eventually('agent-intolerant Unschedulable', async () => {
      const pod = await core.readNamespacedPod({ name: 'agent-intolerant', namespace: ns });
      return pod.status?.conditions?.find((x) => x.type === 'PodScheduled' && x.reason === 'Unschedulable')?.message;
    });
    // Every Jetson node (kwok's and the process-backed ones: the scheduler checks taints first) is
    // rejected for its taint, every other node for the selector.
    const jetsons = (await core.listNode({ labelSelector: 'whisperops.dev/device=jetson-agx-xavier' })).items.length;
    expect(message).toContain(`${jetsons} node(s) had untolerated taint`);
    // A pod without the outcome annotation and without a Job owner keeps running.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await core.readNamespacedPod({ name: 'agent', namespace: ns })).status?.phase).toBe('Running');
  });

  it('enforces RBAC for a ServiceAccount token minted through TokenRequest', async () => {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'reader' } } });
    const asReader = (await serviceAccountKubeConfig(ns, 'reader')).makeApiClient(CoreV1Api);

    const denied = await asReader.listNamespacedPod({ namespace: ns }).then(
      () => undefined,
      (err: unknown) => statusCode(err),
    );
    expect(denied).toBe(403);

    await rbac.createNamespacedRole({
      namespace: ns,
      body: { metadata: { name: 'pod-reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'reader-pod-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
      },
    });
    const pods = await eventually('reader may list pods', async () => (await asReader.listNamespacedPod({ namespace: ns })).items);
    expect(pods.map((p) => p.metadata?.name)).toContain('agent');

    // Same through kubectl with the minted kubeconfig file: still no access to other namespaces or writes.
    const file = await serviceAccountKubeconfigFile(ns, 'reader');
    expect(await kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig: file })).toBe(`system:serviceaccount:${ns}:reader`);
    expect((await kubectl(['auth', 'can-i', 'list', 'pods', '-n', ns], { kubeconfig: file })).trim()).toBe('yes');
    await expect(kubectl(['get', 'pods', '-n', 'kube-system'], { kubeconfig: file })).rejects.toThrow(/forbidden/i);
    await expect(kubectl(['delete', 'pod', 'agent', '-n', ns], { kubeconfig: file })).rejects.toThrow(/forbidden/i);
  });
});
