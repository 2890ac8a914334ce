// Control-plane faults (issue 14), each asserting "nothing lost, nothing duplicated": with
// FineTuneJobs, EdgePools and InferenceDeployments in flight, the API server is SIGKILLed mid-watch
// and restarted, etcd is SIGKILLed and restarted, etcd's history is compacted and the API server
// restarted so that the operator's watches come back 410 Gone, and the operator is SIGKILLed
// mid-reconcile. After each fault, changes made afterwards must be seen (the watches resumed), every
// object converges, every FineTuneJob has exactly one Job and no Job was ever recreated (same uid).
// A leader whose list is forbidden gives the Lease up and a standby with working access takes over.
// kwok plays every pod (trainer pods, agents on kwok's Jetsons) to keep the two shared cores free.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { KubernetesObject, V1ConfigMap, V1Deployment, V1Job } from '@kubernetes/client-node';
import type { StoredEdgePool } from '../../operator/src/edgepool/desired.js';
import { DEPLOYMENTS, EDGEPOOLS, INFERENCE_DEPLOYMENTS } from '../../operator/src/edgepool/reconciler.js';
import type { StoredFineTuneJob } from '../../operator/src/finetunejob/desired.js';
import { FINETUNEJOBS } from '../../operator/src/finetunejob/reconciler.js';
import type { ResourceType } from '../../operator/src/kube/client.js';
import { CONFIG_MAPS, JOBS, LEASES } from '../../operator/src/kube/client.js';
import type { Lease } from '../../operator/src/runtime/leader-election.js';
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, deleteFineTuneJobs, operatorRbac, operatorServiceAccount, startOperator } from '../../operator/testing/operator-process.js';
import {
  applyCrds, compactEtcd, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, kubectl, podOutcome, restartComponent,
  serviceAccountKubeconfigFile,
} from '../cluster/index.js';

jest.setTimeout(180_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const KWOK_JETSONS = { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'kwok' };
const tolerations = [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }];
const SHA = 'e'.repeat(64);
const result = JSON.stringify({ modelUri: 'file:///models/out', version: 'v2', sha256: 'd'.repeat(64), wer: { medical: 0.2 } });

let ns = '';
let kubeconfig = '';
let cleanupRbac: () => Promise<void> = () => Promise.resolve();
const operators: OperatorProcess[] = [];
/** uid of each FineTuneJob's Job the first time it was seen: a recreated Job would have another. */
const jobUids = new Map<string, string>();
/** What the test asked for: every FineTuneJob, and each pool's replicas. */
const ftjNames: string[] = [];
const poolReplicas = new Map<string, number>();
const deployments = new Map<string, string>(); // InferenceDeployment → pool
const report: string[] = [];

/**
 * A 25 s Lease (renew deadline 24 s) rides out an API server restart (9–10 s here under load); a
 * shorter one makes the leader exit by design (lost leadership) on an outage. The operator that is
 * SIGKILLed uses a 5 s one, so that its successor takes over within seconds.
 */
function operator(identity: string, extra: string[] = [], kc = kubeconfig, leaseDurationSeconds = 25): OperatorProcess {
  const op = startOperator({ kubeconfig: kc, namespace: ns, identity, leaseName: LEASE, leaseDurationSeconds, extra: ['--edgepool-sync-period=2', '--watch-timeout=1', ...extra] });
  operators.push(op);
  return op;
}

async function apply(obj: KubernetesObject): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

async function createFineTuneJobs(prefix: string, n: number, runSeconds: string): Promise<void> {
  for (let i = 0; i < n; i += 1) {
    const name = `${prefix}-${i}`;
    ftjNames.push(name);
    await api.create(FINETUNEJOBS, ns, {
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name, namespace: ns },
      spec: {
        baseModel: { uri: 'file:///models/tiny-whisper-synth', version: '1.0.0' },
        dataset: { uri: 'file:///data/medical/manifest.jsonl', scenario: 'medical' },
        output: { uri: `file:///models/${name}` },
        podMetadata: { annotations: { [podOutcome.outcome]: 'succeed', [podOutcome.runSeconds]: runSeconds, [podOutcome.terminationMessage]: result } },
        resources: { nodeSelector: { type: 'kwok' } },
      },
    } as unknown as StoredFineTuneJob);
  }
}

async function setPool(name: string, replicas: number): Promise<void> {
  poolReplicas.set(name, replicas);
  await apply({ apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name, namespace: ns }, spec: { nodeSelector: KWOK_JETSONS, tolerations, autoscaling: { mode: 'off' }, replicas } } as KubernetesObject);
}

async function setDeployment(name: string, pool: string, version: string): Promise<void> {
  deployments.set(name, pool);
  await apply({
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name, namespace: ns },
    spec: { edgePoolRef: { name: pool }, model: { uri: `file:///models/${name}/${version}/`, version, sha256: SHA } },
  } as KubernetesObject);
}

async function list<T extends KubernetesObject>(type: ResourceType, labelSelector?: string): Promise<T[]> {
  return (await api.list<T>(type, { namespace: ns, ...(labelSelector ? { labelSelector } : {}) })).items;
}

/** Every Job seen so far keeps its uid; returns the Jobs by FineTuneJob. */
async function recordJobs(): Promise<Map<string, V1Job[]>> {
  const byFtj = new Map<string, V1Job[]>();
  for (const j of await list<V1Job>(JOBS)) {
    const owner = j.metadata?.labels?.['whisperops.dev/finetunejob'] ?? '';
    byFtj.set(owner, [...(byFtj.get(owner) ?? []), j]);
    const uid = j.metadata?.uid ?? '';
    const seen = jobUids.get(owner);
    if (seen === undefined) jobUids.set(owner, uid);
    else expect({ ftj: owner, uid }).toEqual({ ftj: owner, uid: seen });
  }
  return byFtj;
}

/** What is not converged yet ([] when everything is). */
async function unconverged(): Promise<string[]> {
  const out: string[] = [];
  const ftjs = new Map((await list<StoredFineTuneJob>(FINETUNEJOBS)).map((f) => [f.metadata.name, f]));
  const jobs = await recordJobs();
  for (const name of ftjNames) {
    const f = ftjs.get(name);
    if (!f) out.push(`FineTuneJob ${name} lost`);
    else if (f.status?.phase !== 'Succeeded') out.push(`FineTuneJob ${name} ${f.status?.phase ?? 'no phase'}`);
    const n = jobs.get(name)?.length ?? 0;
    if (n > 1) throw new Error(`FineTuneJob ${name} has ${n} Jobs`); // duplicated: fail at once
    if (n === 0) out.push(`FineTuneJob ${name} has no Job`);
  }
  const pools = new Map((await list<StoredEdgePool>(EDGEPOOLS)).map((p) => [p.metadata.name, p]));
  const deps = await list<V1Deployment>(DEPLOYMENTS);
  for (const [name, replicas] of poolReplicas) {
    const p = pools.get(name);
    if (!p) {
      out.push(`EdgePool ${name} lost`);
      continue;
    }
    if (p.status?.observedGeneration !== p.metadata.generation) out.push(`EdgePool ${name} generation ${p.metadata.generation ?? '?'} not observed`);
    const mine = deps.filter((d) => d.metadata?.ownerReferences?.some((o) => o.uid === p.metadata.uid));
    if (mine.length > 1) throw new Error(`EdgePool ${name} has ${mine.length} Deployments`);
    if (mine[0]?.spec?.replicas !== replicas) out.push(`EdgePool ${name}: Deployment replicas ${String(mine[0]?.spec?.replicas)} ≠ ${replicas}`);
  }
  const infds = new Map((await list<KubernetesObject & { status?: { observedGeneration?: number } }>(INFERENCE_DEPLOYMENTS)).map((d) => [d.metadata?.name ?? '', d]));
  const configMaps = await list<V1ConfigMap>(CONFIG_MAPS);
  for (const [name, pool] of deployments) {
    const d = infds.get(name);
    if (!d) {
      out.push(`InferenceDeployment ${name} lost`);
      continue;
    }
    if (d.status?.observedGeneration !== d.metadata?.generation) out.push(`InferenceDeployment ${name} generation ${String(d.metadata?.generation)} not observed`);
    // Its model reached the pool's model set (the agents' ConfigMap).
    const version = (d as unknown as { spec: { model: { version: string } } }).spec.model.version;
    const poolUid = pools.get(pool)?.metadata.uid;
    const modelSet = configMaps.find((c) => c.metadata?.ownerReferences?.some((o) => o.uid === poolUid));
    if (!Object.values(modelSet?.data ?? {}).some((v) => v.includes(`/models/${name}/${version}/`))) out.push(`InferenceDeployment ${name} ${version} not in pool ${pool}'s model set`);
  }
  return out;
}

async function converge(what: string, timeoutMs = 60_000): Promise<number> {
  const t0 = Date.now();
  let last: string[] = [];
  try {
    await eventually(what, async () => {
      last = await unconverged();
      return last.length === 0 ? true : undefined;
    }, timeoutMs, 500);
  } catch (err) {
    throw new Error(`${what}: not converged: ${last.join('; ')}`, { cause: err });
  }
  return (Date.now() - t0) / 1000;
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('faults');
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
});

afterAll(async () => {
  const alive = operators.filter((o) => o.running());
  if (ns && alive.length === 0) operator('cleanup');
  if (ns) await deleteFineTuneJobs(ns);
  await Promise.all(operators.map((o) => o.kill('SIGKILL')));
  await cleanupRbac();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
  if (report.length > 0) process.stdout.write(`control-plane faults:\n  ${report.join('\n  ')}\n`);
});

describe('control-plane faults: nothing lost, nothing duplicated', () => {
  it('operator SIGKILLed mid-reconcile, API server SIGKILLed mid-watch, etcd SIGKILLed, 410 Gone after compaction', async () => {
    // 1. The operator is SIGKILLed in the middle of reconciling new work; the next process converges.
    const first = operator('faults-k', [], kubeconfig, 5);
    await first.waitFor('Caches synced, controllers running', 60_000);
    await Promise.all([setPool('pool-a', 2), setPool('pool-b', 1)]);
    await setDeployment('asr-a', 'pool-a', 'v1');
    await setDeployment('asr-b', 'pool-b', 'v1');
    await createFineTuneJobs('mid-kill', 4, '1');
    await first.waitFor('Created Job', 30_000);
    await first.kill('SIGKILL');
    const killedAt = Date.now();
    const op = operator('faults-a');
    await op.waitFor('Caches synced, controllers running', 60_000); // after the dead leader's 5 s Lease expires
    const takeover = (Date.now() - killedAt) / 1000;
    const t0 = await converge('after the operator SIGKILL');
    report.push(`operator SIGKILL mid-reconcile (${first.count('Created Job')} of 4 Jobs created): next leader after ${takeover.toFixed(1)} s (Lease 5 s), converged ${t0.toFixed(1)} s later, 0 lost, 0 duplicate Jobs`);

    // Trainer pods that run 3 s: several are Running when the API server goes.
    await createFineTuneJobs('before', 4, '3');
    await eventually('a Job of the new runs', async () => ([...(await recordJobs()).keys()].some((k) => k.startsWith('before-')) ? true : undefined), 30_000, 100);

    // 2. The API server dies mid-watch (SIGKILL) and comes back on the same port and etcd.
    const apiDown = await restartComponent('kube-apiserver', { downMs: 1000 });
    await createFineTuneJobs('after-api', 2, '1');
    await setPool('pool-a', 3);
    await setDeployment('asr-b', 'pool-b', 'v2');
    const t1 = await converge('after the API server restart');
    expect(op.running()).toBe(true); // the watches resumed in the same process (lease 15 s > the outage)
    report.push(`kube-apiserver SIGKILL, down ${apiDown.toFixed(1)} s: converged ${t1.toFixed(1)} s after, ${ftjNames.length} FineTuneJobs, 0 lost, 0 duplicate Jobs`);

    // 3. etcd dies (SIGKILL) with the API server up; writes meanwhile fail, none is lost once it is back.
    const etcdDown = await restartComponent('etcd', { downMs: 1000 });
    await createFineTuneJobs('after-etcd', 2, '1');
    await setPool('pool-b', 2);
    await setDeployment('asr-a', 'pool-a', 'v2');
    const t2 = await converge('after the etcd restart');
    expect(op.running()).toBe(true);
    report.push(`etcd SIGKILL, API unavailable ${etcdDown.toFixed(1)} s: converged ${t2.toFixed(1)} s after, 0 lost, 0 duplicate Jobs`);

    // 4. 410 Gone: the API server without its watch cache (watches go to etcd, no bookmarks), the
    // operator's watches end every 1–2 s (--watch-timeout=1) and resume from their last
    // resourceVersion; etcd's history is compacted past it, so the next watch is answered 410 Gone
    // and the informers must relist and diff. Then the watch cache is restored.
    await restartComponent('kube-apiserver', { args: (a) => [...a, '--watch-cache=false'] });
    await setPool('pool-a', 1);
    await converge('without the watch cache');
    const gone0 = op.count('Watch expired (410 Gone), relisting');
    // Writes elsewhere move etcd's revision past every resourceVersion the operator holds.
    for (let i = 0; i < 5; i += 1) await api.create(CONFIG_MAPS, ns, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `filler-${i}`, namespace: ns } });
    await compactEtcd();
    await createFineTuneJobs('after-gone', 2, '1');
    await setDeployment('asr-b', 'pool-b', 'v3');
    const t3 = await converge('after 410 Gone');
    const gone = op.count('Watch expired (410 Gone), relisting') - gone0;
    expect(gone).toBeGreaterThan(0);
    expect(op.running()).toBe(true);
    await restartComponent('kube-apiserver', { args: (a) => a.filter((x) => x !== '--watch-cache=false') });
    report.push(`etcd compacted under the operator's watches (API server without watch cache): ${gone} watches answered 410 Gone and relisted; converged ${t3.toFixed(1)} s after, 0 lost, 0 duplicate Jobs`);

    // Nothing duplicated over the whole run: one Job per FineTuneJob, never recreated.
    const jobs = await recordJobs();
    expect([...jobs.keys()].sort()).toEqual([...ftjNames].sort());
    expect([...jobs.values()].every((j) => j.length === 1)).toBe(true);
    expect(jobUids.size).toBe(ftjNames.length);
  });

  it('a leader whose list is forbidden stays unready, gives the Lease up and exits 1; a standby with working access takes over', async () => {
    // An identity allowed the Lease and nothing else: it wins the election but can never sync.
    const sa = 'no-list';
    const rules = operatorRbac().leaderElectionRules.map((r) => (r.resourceNames ? { ...r, resourceNames: [LEASE] } : r));
    await apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: ns } });
    await apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: sa, namespace: ns }, rules } as KubernetesObject);
    await apply({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: sa, namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa }, subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }],
    } as KubernetesObject);
    const limited = await serviceAccountKubeconfigFile(ns, sa);
    for (const o of operators) await o.kill('SIGKILL');
    // Make the Lease free at once (the previous test's leader was SIGKILLed holding it).
    const lease = await api.get<Lease>(LEASES, ns, LEASE);
    await api.replace(LEASES, ns, LEASE, { ...lease, spec: { leaseTransitions: lease.spec?.leaseTransitions ?? 0 } });

    const bad = operator('forbidden', ['--cache-sync-timeout=4'], limited);
    await bad.waitFor('Became leader', 30_000);
    expect((await fetch(`${await bad.baseUrl()}/readyz`)).status).toBe(503);
    const good = operator('standby');
    await good.waitFor('Waiting for leadership', 30_000);
    const t0 = Date.now();
    expect(await bad.exited).toBe(1);
    expect(bad.has('Caches did not sync in time (is a list forbidden?); giving up leadership')).toBe(true);
    expect(bad.has('Released the Lease')).toBe(true);
    await good.waitFor('Caches synced, controllers running', 30_000);
    const takeover = (Date.now() - t0) / 1000;
    expect((await api.get<Lease>(LEASES, ns, LEASE)).spec?.holderIdentity).toBe('standby');
    // The standby works: a new FineTuneJob gets its one Job.
    await createFineTuneJobs('after-takeover', 1, '1');
    await eventually('the standby creates the Job', async () => ((await recordJobs()).get('after-takeover-0')?.length === 1 ? true : undefined), 30_000);
    report.push(`leader with a forbidden list: gave the Lease up after the 4 s sync timeout, standby leading ${takeover.toFixed(1)} s after it exited, 0 lost`);
  });
});
