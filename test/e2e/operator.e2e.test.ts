// The operator process end to end: leader election between two replicas (only the leader acts; the
// other takes over within the lease time when the leader is SIGKILLed), graceful SIGTERM (in-flight
// work finished, Lease released), a restart in the middle of a job (no duplicate Job, status goes on),
// and its /healthz, /readyz and /metrics endpoints. Short leases (3 s) come from the operator's flags.
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { KubernetesObject, V1Job } from '@kubernetes/client-node';
import type { StoredFineTuneJob } from '../../operator/src/finetunejob/desired.js';
import { FINETUNEJOBS } from '../../operator/src/finetunejob/reconciler.js';
import { JOBS, LEASES } from '../../operator/src/kube/client.js';
import type { Lease } from '../../operator/src/runtime/leader-election.js';
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, deleteFineTuneJobs, operatorServiceAccount, startOperator } from '../../operator/testing/operator-process.js';
import { applyCrds, createTestNamespace, deleteTestNamespace, eventually, kubectl, podOutcome } from '../cluster/index.js';

jest.setTimeout(120_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const LEASE_SECONDS = 3;
const result = JSON.stringify({ modelUri: 'file:///models/out', version: 'v2', sha256: 'd'.repeat(64), wer: { medical: 0.2 } });

let ns = '';
let kubeconfig = '';
let cleanupRbac: () => Promise<void> = () => Promise.resolve();
const started: OperatorProcess[] = [];

function operator(identity: string): OperatorProcess {
  const op = startOperator({ kubeconfig, namespace: ns, identity, leaseName: LEASE, leaseDurationSeconds: LEASE_SECONDS });
  started.push(op);
  return op;
}

function fineTuneJob(name: string, annotations: Record<string, string>): KubernetesObject {
  return {
    apiVersion: 'whisperops.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name, namespace: ns },
    spec: {
      baseModel: { uri: 'file:///models/tiny-whisper-synth', version: '1.0.0' },
      dataset: { uri: 'file:///data/medical/manifest.jsonl', scenario: 'medical' },
      output: { uri: `file:///models/${name}` },
      podMetadata: { annotations },
      // kwok plays these trainer pods (see podOutcome): keep them off the process-backed A100 node.
      resources: { nodeSelector: { type: 'kwok' } },
    },
  } as KubernetesObject;
}

async function create(obj: KubernetesObject): Promise<StoredFineTuneJob> {
  return api.create(FINETUNEJOBS, ns, obj as StoredFineTuneJob);
}

async function jobsOf(name: string): Promise<V1Job[]> {
  return (await api.list<V1Job>(JOBS, { namespace: ns, labelSelector: `whisperops.dev/finetunejob=${name}` })).items;
}

async function phase(name: string, want: string, timeoutMs = 60_000): Promise<StoredFineTuneJob> {
  return eventually(`FineTuneJob ${name} ${want}`, async () => {
    const f = await api.get<StoredFineTuneJob>(FINETUNEJOBS, ns, name);
    return f.status?.phase === want ? f : undefined;
  }, timeoutMs);
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('operator');
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
});

afterEach(async () => {
  // Leave no finalizer behind: the still-running operator finalizes, then every process goes.
  if (ns && started.some((o) => o.running())) await deleteFineTuneJobs(ns);
  await Promise.all(started.splice(0).map((o) => o.kill('SIGKILL')));
});

afterAll(async () => {
  await cleanupRbac();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('operator process', () => {
  it('two replicas: only the leader acts; the other takes over within the lease time after SIGKILL', async () => {
    const a = operator('replica-a');
    await a.waitFor('Caches synced, controllers running', 60_000);
    const b = operator('replica-b');
    await b.waitFor('Waiting for leadership', 60_000);

    await create(fineTuneJob('first', { [podOutcome.outcome]: 'succeed', [podOutcome.terminationMessage]: result }));
    await phase('first', 'Succeeded');
    // (Asserted on what each replica did, not on who created the Job: a cluster-wide operator that
    // someone else runs on the shared test cluster may race a for it — and still never duplicates it.)
    expect(a.count('Reconciling FineTuneJob', (l) => l.key === `${ns}/first`)).toBeGreaterThan(0);
    expect(b.count('Reconciling FineTuneJob')).toBe(0);
    expect(b.count('Created Job')).toBe(0);
    expect(b.has('Became leader')).toBe(false);
    expect(await jobsOf('first')).toHaveLength(1);

    // Endpoints: both alive and ready; the leader says so in /metrics.
    const metricsA = await (await fetch(`${await a.baseUrl()}/metrics`)).text();
    const metricsB = await (await fetch(`${await b.baseUrl()}/metrics`)).text();
    expect(metricsA).toMatch(/^whisperops_operator_leader 1$/m);
    expect(metricsB).toMatch(/^whisperops_operator_leader 0$/m);
    expect(metricsA).toMatch(/^whisperops_operator_reconcile_total\{controller="finetunejob",result="success"\} [1-9]\d*$/m);
    expect(metricsA).toMatch(/^whisperops_operator_runs_finished_total\{kind="FineTuneJob",phase="Succeeded"\} 1$/m);
    expect((await fetch(`${await b.baseUrl()}/readyz`)).status).toBe(200);
    expect((await fetch(`${await b.baseUrl()}/healthz`)).status).toBe(200);

    const killedAt = Date.now();
    await a.kill('SIGKILL');
    await b.waitFor('Caches synced, controllers running', 30_000);
    const takeoverMs = Date.now() - killedAt;
    // The Lease is valid for LEASE_SECONDS after the last renewal; b retries every 0.5 s.
    expect(takeoverMs).toBeLessThan((LEASE_SECONDS + 2) * 1000);
    const lease = await api.get<Lease>(LEASES, ns, LEASE);
    expect(lease.spec?.holderIdentity).toBe('replica-b');

    await create(fineTuneJob('second', { [podOutcome.outcome]: 'succeed', [podOutcome.terminationMessage]: result }));
    await phase('second', 'Succeeded');
    expect(b.count('Reconciling FineTuneJob', (l) => l.key === `${ns}/second`)).toBeGreaterThan(0);
    expect(await jobsOf('second')).toHaveLength(1);
    // The new leader did not create a second Job for the first run.
    expect(await jobsOf('first')).toHaveLength(1);
    process.stdout.write(`leader takeover after SIGKILL: ${takeoverMs} ms (lease ${LEASE_SECONDS} s)\n`);
  });

  it('restart in the middle of a job: SIGTERM releases the Lease, the next process adopts the Job, status goes on', async () => {
    const first = operator('restart-1');
    await first.waitFor('Caches synced, controllers running', 60_000);
    await create(fineTuneJob('long', { [podOutcome.outcome]: 'succeed', [podOutcome.runSeconds]: '8', [podOutcome.terminationMessage]: result }));
    const running = await phase('long', 'Running');
    const [job] = await jobsOf('long');
    const jobUid = job?.metadata?.uid;
    expect(jobUid).toBeDefined();

    const stoppedAt = Date.now();
    expect(await first.kill('SIGTERM')).toBe(0);
    expect(first.has('Released the Lease')).toBe(true);
    expect(first.has('Stopped')).toBe(true);
    const lease = await api.get<Lease>(LEASES, ns, LEASE);
    expect(lease.spec?.holderIdentity ?? '').toBe('');

    const second = operator('restart-2');
    await second.waitFor('Caches synced, controllers running', 60_000);
    const syncedMs = Date.now() - stoppedAt;
    // A released Lease is taken at once, not after the lease duration.
    const at = (msg: string) => Date.parse(String(second.lines.find((l) => l.msg === msg)?.time));
    const waitedMs = at('Became leader') - at('Waiting for leadership');
    expect(waitedMs).toBeLessThan(1000);
    const shutdownMs = Number(first.lines.find((l) => l.msg === 'Stopped')?.tookMs);
    const done = await phase('long', 'Succeeded');
    const jobs = await jobsOf('long');
    expect(jobs.map((j) => j.metadata?.uid)).toEqual([jobUid]);
    expect(second.count('Created Job')).toBe(0);
    expect(done.status?.startTime).toBe(running.status?.startTime);
    expect(done.status?.result?.version).toBe('v2');
    process.stdout.write(`restart: graceful shutdown ${shutdownMs} ms, new process waited ${waitedMs} ms for the released Lease, synced ${syncedMs} ms after SIGTERM (process start included)\n`);
  });

  it('refuses a bad configuration with a clear message and exit code 2', async () => {
    const op = startOperator({ kubeconfig, namespace: ns, identity: 'bad', leaseName: LEASE, extra: ['--workers=0', '--leader-election-lease-duration=1'] });
    started.push(op);
    expect(await op.exited).toBe(2);
    const text = op.stderr.join('');
    expect(text).toContain('workers must be a positive integer, got 0');
    expect(text).toContain('leaseDuration must be greater than renewDeadline');
    await kubectl(['get', 'lease', LEASE, '-n', ns]);
  });
});
