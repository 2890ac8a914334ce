// The FineTuneJob controller end to end: the operator runs as a real local process, as its own
// ServiceAccount bound to exactly charts/whisperops/files/operator-rbac.yaml, against the real local
// control plane (Job controller, scheduler, kwok completing trainer pods as told by pod annotations).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { KubernetesObject, V1ConfigMap, V1Job, V1Pod, V1Service } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { FineTuneJobSpec } from '../../api/generated/types.js';
import { CONFIG_MAPS, EVENTS, isNotFound, JOBS, PODS, SERVICES } from '../../operator/src/kube/client.js';
import type { StoredFineTuneJob } from '../../operator/src/finetunejob/desired.js';
import { FINETUNEJOBS } from '../../operator/src/finetunejob/reconciler.js';
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, deleteFineTuneJobs, operatorServiceAccount, REPO_ROOT, startOperator } from '../../operator/testing/operator-process.js';
import { a100NodeNames, applyCrds, CommandError, createTestNamespace, deleteTestNamespace, eventually, kubectl, podOutcome } from '../cluster/index.js';

// The e2e project's testTimeout is not applied per project; the Job controller's retry backoff alone is 10 s.
jest.setTimeout(120_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const sha = '5e'.repeat(32);
const resultDoc = {
  modelUri: 'file:///models/finance-lora', version: 'finance-lora-1.1.0', sha256: sha, parentVersion: 'tiny-whisper-synth-1.0.0',
  wer: { finance: 0.12, general: 0.2 }, baseWer: { finance: 0.31, general: 0.19 },
  trainableParams: 294912, totalParams: 37_760_640, quantization: 'int8', durationSeconds: 812.5,
};

let ns = '';
let operator: OperatorProcess | undefined;
let kubeconfig = '';
let cleanupRbac: () => Promise<void> = () => Promise.resolve();

/** The finance example, in the test namespace, with pod annotations that tell kwok how the trainer ends. */
function financeExample(name: string, annotations: Record<string, string>, spec: Partial<FineTuneJobSpec> = {}): KubernetesObject {
  const doc = parseYaml(readFileSync(join(REPO_ROOT, 'examples', 'finetunejob-finance-lora.yaml'), 'utf8')) as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
  return {
    ...doc,
    metadata: { ...doc.metadata, name, namespace: ns },
    // kwok plays these trainer pods (see podOutcome): keep them off the process-backed A100 node.
    spec: { ...doc.spec, podMetadata: { annotations }, ...spec, resources: { ...(doc.spec.resources as object), ...(spec.resources ?? {}), nodeSelector: { type: 'kwok' } } },
  } as KubernetesObject;
}

async function apply(obj: KubernetesObject): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

async function ftj(name: string): Promise<StoredFineTuneJob> {
  return api.get<StoredFineTuneJob>(FINETUNEJOBS, ns, name);
}

async function phase(name: string, want: string, timeoutMs = 60_000): Promise<StoredFineTuneJob> {
  return eventually(`FineTuneJob ${name} ${want}`, async () => {
    const f = await ftj(name);
    return f.status?.phase === want ? f : undefined;
  }, timeoutMs);
}

async function jobsOf(name: string): Promise<V1Job[]> {
  const list = await api.list<V1Job>(JOBS, { namespace: ns, labelSelector: `whisperops.dev/finetunejob=${name}` });
  return list.items;
}

async function podsOf(job: string): Promise<V1Pod[]> {
  return (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `batch.kubernetes.io/job-name=${job}` })).items;
}

async function eventsOf(name: string): Promise<{ reason: string; note: string; type: string }[]> {
  const list = await api.list<KubernetesObject & { reason: string; note: string; type: string; regarding: { name: string } }>(EVENTS, { namespace: ns });
  return list.items.filter((e) => e.regarding.name === name).map((e) => ({ reason: e.reason, note: e.note, type: e.type }));
}

function condition(f: StoredFineTuneJob, type: string) {
  return f.status?.conditions?.find((c) => c.type === type);
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('ftj');
  // The first test asks for this PriorityClass.
  await kubectl(['create', 'priorityclass', 'training-batch', '--value=1000', '--description=batch training']).catch((err: unknown) => {
    if (!(err instanceof CommandError) || !/already ?exists/i.test(err.stderr)) throw err;
  });
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
  operator = startOperator({ kubeconfig, namespace: ns, identity: 'ftj-e2e', leaseName: LEASE });
  await operator.waitFor('Caches synced, controllers running', 60_000);
});

afterAll(async () => {
  if (ns) await deleteFineTuneJobs(ns);
  await operator?.kill('SIGTERM');
  await cleanupRbac();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('FineTuneJob controller (real control plane, operator as its ServiceAccount)', () => {
  it('runs the finance example on an A100 node with 4 GPUs and fills status.result from the trainer', async () => {
    await apply(financeExample('finance-lora', {
      [podOutcome.outcome]: 'succeed', [podOutcome.runSeconds]: '1', [podOutcome.terminationMessage]: JSON.stringify(resultDoc),
    }, { resources: { gpusPerNode: 4, nodes: 1, gpuProducts: ['NVIDIA-A100-SXM4-80GB', 'NVIDIA-A100-SXM4-40GB'], cpu: '16', memory: '128Gi', priorityClassName: 'training-batch' } }));
    const done = await phase('finance-lora', 'Succeeded');

    const [job, ...others] = await jobsOf('finance-lora');
    expect(others).toEqual([]);
    const jobName = job?.metadata?.name ?? '';
    expect(done.status?.jobName).toBe(jobName);
    expect(job?.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'FineTuneJob', name: 'finance-lora', uid: done.metadata.uid, controller: true })]);
    const container = job?.spec?.template.spec?.containers[0];
    expect(container?.resources?.limits).toEqual({ 'nvidia.com/gpu': '4', cpu: '16', memory: '128Gi' });
    expect(container?.image).toBe('registry.local/whisperops/trainer:e2e');
    expect(job?.spec).toMatchObject({ backoffLimit: 2, activeDeadlineSeconds: 21600, ttlSecondsAfterFinished: 86400 });
    expect(job?.spec?.template.spec?.priorityClassName).toBe('training-batch');
    // The example's store credentials reach the trainer as its environment; the operator never reads the Secret.
    expect(container?.envFrom).toEqual([{ secretRef: { name: 'whisperops-s3' } }]);

    const [pod] = await podsOf(jobName);
    expect(a100NodeNames).toContain(pod?.spec?.nodeName);
    expect(pod?.spec?.containers[0]?.resources?.requests?.['nvidia.com/gpu']).toBe('4');

    const cm = await api.get<V1ConfigMap>(CONFIG_MAPS, ns, `${jobName}-spec`);
    const doc = JSON.parse(cm.data?.['finetunejob.json'] ?? '{}') as { metadata: { uid: string }; spec: { dataset: { scenario: string } } };
    expect(doc.metadata.uid).toBe(done.metadata.uid);
    expect(doc.spec.dataset.scenario).toBe('finance');

    expect(done.status).toMatchObject({
      phase: 'Succeeded', observedGeneration: 1, attempts: 1, failedAttempts: 0,
      result: { ...resultDoc, werSummary: 'finance=0.12 general=0.2' },
    });
    expect(done.status?.startTime).toBeDefined();
    expect(done.status?.completionTime).toBeDefined();
    expect(condition(done, 'Ready')).toMatchObject({ status: 'True', reason: 'Succeeded', observedGeneration: 1 });
    const printed = await kubectl(['get', 'ftj', 'finance-lora', '-n', ns]);
    expect(printed).toMatch(/finance-lora\s+Succeeded\s+True\s+lora\s+finance-lora-1\.1\.0\s+finance=0\.12 general=0\.2/);
    await eventually('events', async () => {
      const reasons = (await eventsOf('finance-lora')).map((e) => e.reason);
      return reasons.includes('CreatedJob') && reasons.includes('Succeeded') ? reasons : undefined;
    }, 10_000);
  });

  it('retries a failing trainer up to backoffLimit, then fails with its reason', async () => {
    await apply(financeExample('flaky', {
      [podOutcome.outcome]: 'fail', [podOutcome.exitCode]: '1', [podOutcome.terminationMessage]: 'RuntimeError: CUDA error: an illegal memory access',
    }, { backoffLimit: 1 }));
    const failed = await phase('flaky', 'Failed', 90_000);
    expect(failed.status).toMatchObject({ attempts: 2, failedAttempts: 2 });
    expect(condition(failed, 'Ready')).toMatchObject({ status: 'False', reason: 'BackoffLimitExceeded' });
    expect(condition(failed, 'Ready')?.message).toContain('trainer exited with code 1: RuntimeError: CUDA error: an illegal memory access');
    expect(condition(failed, 'Stalled')?.status).toBe('True');
    await eventually('a Warning event', async () => ((await eventsOf('flaky')).some((e) => e.type === 'Warning' && e.reason === 'BackoffLimitExceeded') ? true : undefined), 10_000);
  });

  it('does not retry invalid input (exit 2)', async () => {
    await apply(financeExample('bad-input', {
      [podOutcome.outcome]: 'fail', [podOutcome.exitCode]: '2', [podOutcome.terminationMessage]: 'dataset.uri: file:///data/finance/manifest.jsonl does not exist',
    }));
    const failed = await phase('bad-input', 'Failed');
    expect(failed.status).toMatchObject({ attempts: 1, failedAttempts: 1 });
    expect(condition(failed, 'Ready')).toMatchObject({ reason: 'InvalidInput' });
    expect(condition(failed, 'Ready')?.message).toContain('trainer exited with code 2 (invalid input): dataset.uri');
  });

  it('fails a run whose trainer succeeded with a malformed result, saying what is wrong', async () => {
    await apply(financeExample('bad-result', {
      [podOutcome.outcome]: 'succeed', [podOutcome.terminationMessage]: JSON.stringify({ ...resultDoc, sha256: 'not-a-digest', wer: { finance: -1 } }),
    }));
    const failed = await phase('bad-result', 'Failed');
    expect(condition(failed, 'Ready')).toMatchObject({ reason: 'ResultInvalid' });
    expect(condition(failed, 'Ready')?.message).toContain('sha256 must be 64 lowercase hex digits; wer.finance must be a finite number ≥ 0');
    expect(failed.status?.result).toBeUndefined();
  });

  it('suspends and resumes the Job', async () => {
    await apply(financeExample('pausable', { [podOutcome.outcome]: 'run' }));
    await phase('pausable', 'Running');
    const [job] = await jobsOf('pausable');
    const jobName = job?.metadata?.name ?? '';

    await kubectl(['patch', 'ftj', 'pausable', '-n', ns, '--type=merge', '-p', '{"spec":{"suspend":true}}']);
    const suspended = await phase('pausable', 'Suspended');
    expect(condition(suspended, 'Suspended')).toMatchObject({ status: 'True', observedGeneration: 2 });
    expect((await api.get<V1Job>(JOBS, ns, jobName)).spec?.suspend).toBe(true);
    await eventually('pods gone while suspended', async () => ((await podsOf(jobName)).length === 0 ? true : undefined), 30_000);

    await kubectl(['patch', 'ftj', 'pausable', '-n', ns, '--type=merge', '-p', '{"spec":{"suspend":false}}']);
    const resumed = await phase('pausable', 'Running');
    expect(resumed.status?.observedGeneration).toBe(3);
    expect((await api.get<V1Job>(JOBS, ns, jobName)).spec?.suspend).toBe(false);
    expect(await jobsOf('pausable')).toHaveLength(1);
    const reasons = (await eventsOf('pausable')).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Suspended', 'Resumed']));
  });

  it('refuses spec changes other than suspend, deadline and TTL (CEL), and passes those to the Job', async () => {
    await expect(kubectl(['patch', 'ftj', 'pausable', '-n', ns, '--type=merge', '-p', '{"spec":{"training":{"epochs":5}}}'])).rejects.toThrow(/immutable/);
    await kubectl(['patch', 'ftj', 'pausable', '-n', ns, '--type=merge', '-p', '{"spec":{"activeDeadlineSeconds":7200,"ttlSecondsAfterFinished":60}}']);
    const [job] = await eventually('Job updated', async () => {
      const jobs = await jobsOf('pausable');
      return jobs[0]?.spec?.activeDeadlineSeconds === 7200 ? jobs : undefined;
    }, 20_000);
    expect(job?.spec?.ttlSecondsAfterFinished).toBe(60);
  });

  it('deleting a FineTuneJob removes its Job, pods and ConfigMap', async () => {
    const [job] = await jobsOf('pausable');
    const jobName = job?.metadata?.name ?? '';
    expect((await podsOf(jobName)).length).toBeGreaterThan(0);
    await kubectl(['delete', 'ftj', 'pausable', '-n', ns, '--timeout=60s']);
    const gone = async (type: typeof JOBS, name: string) => api.get(type, ns, name).then(() => false, (err: unknown) => isNotFound(err));
    expect(await gone(FINETUNEJOBS, 'pausable')).toBe(true);
    expect(await gone(JOBS, jobName)).toBe(true);
    expect(await gone(CONFIG_MAPS, `${jobName}-spec`)).toBe(true);
    // Foreground deletion: the Job went only after its pods did.
    expect(await podsOf(jobName)).toEqual([]);
  });

  it('runs several nodes as an indexed Job with a headless Service, reading the result of rank 0', async () => {
    await apply(financeExample('two-nodes', {
      [podOutcome.outcome]: 'succeed', [podOutcome.terminationMessage]: JSON.stringify(resultDoc),
    }, { resources: { gpusPerNode: 8, nodes: 2, gpuProducts: ['NVIDIA-A100-SXM4-80GB', 'NVIDIA-A100-SXM4-40GB'] } }));
    const done = await phase('two-nodes', 'Succeeded');
    const jobName = done.status?.jobName ?? '';
    const job = await api.get<V1Job>(JOBS, ns, jobName);
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 2, parallelism: 2 });
    const svc = await api.get<V1Service>(SERVICES, ns, jobName);
    expect(svc.spec?.clusterIP).toBe('None');
    const pods = await podsOf(jobName);
    // 8 GPUs each: one pod per A100 node.
    expect(pods.map((p) => p.spec?.nodeName).sort()).toEqual([...a100NodeNames].sort());
    expect(pods.every((p) => p.spec?.subdomain === jobName && p.spec?.hostname?.startsWith(`${jobName}-`))).toBe(true);
    expect(done.status?.result?.version).toBe('finance-lora-1.1.0');
  });

  it('the operator holds exactly the RBAC of operator-rbac.yaml: other actions are forbidden', async () => {
    const asOperator = { kubeconfig };
    await expect(kubectl(['get', 'secrets', '-n', ns], asOperator)).rejects.toThrow(/forbidden/i);
    await expect(kubectl(['delete', 'node', a100NodeNames[0] ?? 'a100-80gb-0', '--dry-run=server'], asOperator)).rejects.toThrow(/forbidden/i);
    // Deployments are the EdgePool controller's (create/patch/update, never delete); ServiceAccounts nobody's.
    await expect(kubectl(['create', 'serviceaccount', 'x', '-n', ns, '--dry-run=server'], asOperator)).rejects.toThrow(/forbidden/i);
    await expect(kubectl(['delete', 'deployment', 'x', '-n', ns, '--dry-run=server'], asOperator)).rejects.toThrow(/forbidden/i);
    const canI = async (...args: string[]) => (await kubectl(['auth', 'can-i', ...args], asOperator).catch((err: unknown) => (err instanceof CommandError ? err.stdout : ''))).trim();
    // FineTuneJobs are patched (finalizer) but never read one by one: the informer's cache serves
    // every read, so no get (kubectl patch would get first; the operator sends the merge patch alone).
    expect(await canI('patch', 'finetunejobs.whisperops.dev', '-n', ns)).toBe('yes');
    expect(await canI('get', 'finetunejobs.whisperops.dev', '-n', ns)).toBe('no');
    expect(await canI('create', 'jobs.batch', '-n', ns)).toBe('yes');
    expect(await canI('update', 'finetunejobs.whisperops.dev', '-n', ns)).toBe('no');
    expect(await canI('patch', 'finetunejobs.whisperops.dev', '--subresource=status', '-n', ns)).toBe('yes');
    expect(await canI('delete', 'pods', '-n', ns)).toBe('no');
    expect(await canI('update', 'leases.coordination.k8s.io/other-lease', '-n', ns)).toBe('no');
    // Everything above ran with these rights, and the operator logged no permission error.
    expect((operator?.lines ?? []).filter((l) => JSON.stringify(l).includes('forbidden'))).toEqual([]);
  });
});
