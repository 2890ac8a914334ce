// The EdgePool controller end to end: the operator runs as a real local process, as its own
// ServiceAccount bound to exactly charts/whisperops/files/operator-rbac.yaml, against the real local
// control plane, with REAL edge agents on the four process-backed Jetson nodes (127.x pod IPs,
// scraped by the real Prometheus every 2 s). Pools that need no real agent (Prometheus unreachable,
// external mode, no device) select kwok's Jetson nodes to spare the two shared cores.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { KubernetesObject, V1ConfigMap, V1Deployment, V1Pod } from '@kubernetes/client-node';
import { createServer } from 'node:net';
import type { EdgePoolSpec } from '../../api/generated/types.js';
import type { StoredEdgePool } from '../../operator/src/edgepool/desired.js';
import { CHILD_SELECTOR, EDGEPOOL_LABEL, selectorString } from '../../operator/src/edgepool/names.js';
import { DEPLOYMENTS, EDGEPOOLS } from '../../operator/src/edgepool/reconciler.js';
import { CONFIG_MAPS, EVENTS, isNotFound, PODS } from '../../operator/src/kube/client.js';
import type { LogLine, OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, operatorServiceAccount, startOperator } from '../../operator/testing/operator-process.js';
import { applyCrds, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, kubectl, prometheusUrl } from '../cluster/index.js';

jest.setTimeout(240_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const AGENT_IMAGE = 'ghcr.io/whisperops/edge-agent:0.1.0';
const SYNC_SECONDS = 2;
const PROCESS_JETSONS = { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'process' };
const KWOK_JETSONS = { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'kwok' };
const tolerations = [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }];

let ns = '';
let operator: OperatorProcess | undefined;
let cleanupRbac: () => Promise<void> = () => Promise.resolve();

type Spec = Omit<Partial<EdgePoolSpec>, 'autoscaling'> & { autoscaling?: Partial<EdgePoolSpec['autoscaling']> };

async function createPool(name: string, spec: Spec): Promise<void> {
  const body = { apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name, namespace: ns }, spec: { tolerations, ...spec } };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(body) });
}

const pool = (name: string) => api.get<StoredEdgePool>(EDGEPOOLS, ns, name);
const cond = (p: StoredEdgePool, type: string) => p.status?.conditions?.find((c) => c.type === type);

async function until(name: string, what: string, ok: (p: StoredEdgePool) => boolean, timeoutMs = 90_000): Promise<StoredEdgePool> {
  return eventually(`EdgePool ${name}: ${what}`, async () => {
    const p = await pool(name);
    return ok(p) ? p : undefined;
  }, timeoutMs, 500);
}

async function agentPods(name: string): Promise<V1Pod[]> {
  return (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `${EDGEPOOL_LABEL}=${name}` })).items.filter((p) => !p.metadata?.deletionTimestamp);
}

async function gone(type: typeof DEPLOYMENTS, name: string): Promise<boolean> {
  try {
    await api.get(type, ns, name);
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('epool');
  let kubeconfig: string;
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
  operator = startOperator({
    kubeconfig, namespace: ns, identity: 'epool-e2e', leaseName: LEASE,
    extra: [`--prometheus-url=${await prometheusUrl()}`, '--prometheus-loopback-only', `--edgepool-sync-period=${SYNC_SECONDS}`, `--agent-image=${AGENT_IMAGE}`],
  });
  await operator.waitFor('Caches synced, controllers running', 60_000);
});

afterAll(async () => {
  if (ns) await kubectl(['delete', 'edgepools', '--all', '-n', ns, '--wait=false']).catch(() => undefined);
  await operator?.kill('SIGTERM');
  await cleanupRbac();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('EdgePool controller (real control plane, real agents on process nodes, real Prometheus)', () => {
  it('brings a builtin pool up with minReplicas real agents, reads their load from Prometheus, and reports status', async () => {
    await createPool('jetsons', {
      nodeSelector: PROCESS_JETSONS,
      autoscaling: { mode: 'builtin', minReplicas: 2, maxReplicas: 4, targetStreamsPerReplica: 2, scaleDownStabilizationSeconds: 20 },
    });
    const p = await until('jetsons', '2 agents running, load read from Prometheus', (x) => x.status?.replicas === 2
      && cond(x, 'LoadKnown')?.status === 'True' && cond(x, 'Reconciling') === undefined, 180_000);
    expect(p.status).toMatchObject({
      desiredReplicas: 2, replicas: 2, eligibleNodes: 4, observedStreams: 0, observedGeneration: p.metadata.generation,
      selector: selectorString('jetsons'),
    });
    // The model set is empty until InferenceDeployments exist: the agents run but are not ready, which is not an error.
    expect(cond(p, 'ModelsAssigned')).toMatchObject({ status: 'False', reason: 'NoModelsAssigned' });
    expect(cond(p, 'Ready')).toMatchObject({ status: 'False', reason: 'NoModelsAssigned' });
    expect(cond(p, 'Stalled')).toBeUndefined();

    const pods = await agentPods('jetsons');
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.status?.podIP).toMatch(/^127\./);
      expect(pod.spec?.nodeName).toMatch(/^jetson-proc-\d$/);
      expect(pod.status?.phase).toBe('Running');
    }
    expect(new Set(pods.map((x) => x.spec?.nodeName)).size).toBe(2); // one agent per device

    const dep = await api.get<V1Deployment>(DEPLOYMENTS, ns, 'jetsons-agent');
    expect(dep.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'EdgePool', name: 'jetsons', uid: p.metadata.uid, controller: true })]);
    const cm = await api.get<V1ConfigMap>(CONFIG_MAPS, ns, 'jetsons-models');
    expect(JSON.parse(cm.data?.['model-set.json'] ?? '{}')).toMatchObject({ pool: 'jetsons', models: [] });

    // Steady state: no writes. The status's resourceVersion stays put over several sync periods.
    const rv = (await pool('jetsons')).metadata.resourceVersion;
    await new Promise((r) => setTimeout(r, SYNC_SECONDS * 4 * 1000));
    expect((await pool('jetsons')).metadata.resourceVersion).toBe(rv);
    const depAfter = await api.get<V1Deployment>(DEPLOYMENTS, ns, 'jetsons-agent');
    expect(depAfter.metadata?.resourceVersion).toBe(dep.metadata?.resourceVersion);
  });

  it('caps the size at the eligible devices (4 process Jetsons), with an Event and the reason', async () => {
    await kubectl(['patch', 'edgepool', 'jetsons', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { autoscaling: { minReplicas: 4, maxReplicas: 8 } } })]);
    const p = await until('jetsons', '4 agents', (x) => x.status?.replicas === 4 && x.status.desiredReplicas === 4, 180_000);
    expect(p.status?.eligibleNodes).toBe(4);
    await kubectl(['patch', 'edgepool', 'jetsons', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { autoscaling: { minReplicas: 6 } } })]);
    const capped = await until('jetsons', 'still 4, limited by devices', (x) => x.metadata.generation === x.status?.observedGeneration && x.status?.desiredReplicas === 4);
    expect(capped.status?.replicas).toBe(4);
    expect(new Set((await agentPods('jetsons')).map((x) => x.spec?.nodeName)).size).toBe(4);
    const events = (await api.list<KubernetesObject & { reason: string; note: string; regarding: { name: string } }>(EVENTS, { namespace: ns })).items
      .filter((e) => e.regarding.name === 'jetsons');
    expect(events.some((e) => e.reason === 'ScaledUp' && /2 → 4/.test(e.note))).toBe(true);
    // Back to 1 agent: spare the shared cores for the rest of the file.
    await kubectl(['patch', 'edgepool', 'jetsons', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { autoscaling: { minReplicas: 1, maxReplicas: 4 } } })]);
    await until('jetsons', 'back to 1 agent', (x) => x.status?.replicas === 1, 120_000);
  });

  it('holds the size when Prometheus cannot be reached, and says why', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    await createPool('blind', {
      nodeSelector: KWOK_JETSONS,
      autoscaling: { mode: 'builtin', minReplicas: 2, maxReplicas: 5, prometheus: { url } },
    });
    const p = await until('blind', 'LoadKnown False', (x) => cond(x, 'LoadKnown')?.status === 'False' && x.status?.replicas === 2);
    expect(cond(p, 'LoadKnown')?.message).toMatch(/load unknown .*network.*holding 2 agents/);
    expect(p.status?.observedStreams).toBeUndefined();
    expect(p.status?.desiredReplicas).toBe(2);
    await new Promise((r) => setTimeout(r, SYNC_SECONDS * 3 * 1000));
    expect((await pool('blind')).status?.desiredReplicas).toBe(2);
  });

  it('external mode: kubectl scale is obeyed and the operator never writes spec', async () => {
    await createPool('ext', { nodeSelector: KWOK_JETSONS, autoscaling: { mode: 'external' }, replicas: 1 });
    await until('ext', '1 agent', (x) => x.status?.replicas === 1);
    await kubectl(['scale', `edgepool/ext`, '-n', ns, '--replicas=3']);
    const p = await until('ext', '3 agents', (x) => x.status?.replicas === 3 && x.status.desiredReplicas === 3);
    expect(p.spec.replicas).toBe(3);
    expect(p.status?.lastScaleReason).toBe('spec.replicas 1 → 3 (autoscaling.mode external)');
    const raw = await kubectl(['get', 'edgepool', 'ext', '-n', ns, '-o', 'json', '--show-managed-fields']);
    const managed = (JSON.parse(raw) as { metadata: { managedFields: { manager: string; subresource?: string }[] } }).metadata.managedFields;
    const operatorEntries = managed.filter((m) => m.manager.startsWith('whisperops'));
    expect(operatorEntries.length).toBeGreaterThan(0);
    for (const m of operatorEntries) expect(m.subresource).toBe('status');
    const columns = await kubectl(['get', 'epool', 'ext', '-n', ns]);
    expect(columns).toMatch(/MODE\s+DESIRED\s+AGENTS\s+DEVICES/);
    expect(columns).toMatch(/ext\s+external\s+3\s+/);
  });

  it('deleting a pool deletes its Deployment and ConfigMap', async () => {
    await kubectl(['delete', 'edgepool', 'ext', '-n', ns]);
    await eventually('ext children gone', async () => ((await gone(DEPLOYMENTS, 'ext-agent')) && (await gone(CONFIG_MAPS, 'ext-models')) ? true : undefined), 60_000, 500);
    const left = (await api.list<KubernetesObject>(DEPLOYMENTS, { namespace: ns, labelSelector: CHILD_SELECTOR })).items.map((d) => d.metadata?.name);
    expect(left).not.toContain('ext-agent');
  });

  it('a pool whose nodeSelector matches nothing is Stalled with a clear message, without a hot loop', async () => {
    await createPool('nowhere', { nodeSelector: { 'whisperops.dev/device': 'no-such-device' }, autoscaling: { mode: 'off' }, replicas: 2 });
    const p = await until('nowhere', 'Stalled', (x) => cond(x, 'Stalled')?.status === 'True');
    expect(cond(p, 'Stalled')).toMatchObject({ reason: 'NoEligibleDevices' });
    expect(cond(p, 'Stalled')?.message).toContain('nodeSelector whisperops.dev/device=no-such-device');
    expect(p.status?.eligibleNodes).toBe(0);
    const rv = p.metadata.resourceVersion;
    const mine = (l: LogLine) => l.name === 'nowhere';
    const before = operator?.count('Reconciling EdgePool', mine) ?? 0;
    await new Promise((r) => setTimeout(r, 5000));
    expect((await pool('nowhere')).metadata.resourceVersion).toBe(rv);
    expect(operator?.running()).toBe(true);
    expect(operator?.count('Reconciling EdgePool', mine)).toBe(before);
  });
});
