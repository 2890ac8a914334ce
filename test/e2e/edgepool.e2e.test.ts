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
import { embeddedRef, speak, testSentences } from '../../edge-agent/src/testing/speech.js';

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
let operatorArgs: Parameters<typeof startOperator>[0] | undefined;
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const podReady = (p: V1Pod) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

async function createInferenceDeployment(name: string, poolName: string, model: Record<string, unknown>, scenarios: string[] = []): Promise<void> {
  const body = {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name, namespace: ns },
    spec: { edgePoolRef: { name: poolName }, model, ...(scenarios.length > 0 ? { monitoring: { scenarios: scenarios.map((x) => ({ name: x, maxWer: 0.3 })) } } : {}) },
  };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(body) });
}

interface LoadReport { requests: number; ok: number; refused: number; failed: number; statuses: Record<string, number>; durationMs: number }

/**
 * A bounded closed-loop load generator: `concurrency` workers each POST `wav` to
 * /v1/audio/transcriptions of a ready agent of `poolName` (round robin over their pod IPs, refreshed
 * every second; only 127.x addresses are ever dialled) until `stop()` is called, `maxMs` has passed
 * or `maxRequests` were sent. `done` resolves once every in-flight request has finished.
 */
function loadGenerator(poolName: string, wav: Uint8Array, opts: { concurrency: number; maxMs: number; maxRequests: number; port: number }): { stop: () => void; done: Promise<LoadReport>; dialled: Set<string> } {
  const t0 = Date.now();
  let stopped = false;
  let targets: string[] = [];
  let refreshedAt = 0;
  let next = 0;
  const dialled = new Set<string>();
  const report: LoadReport = { requests: 0, ok: 0, refused: 0, failed: 0, statuses: {}, durationMs: 0 };
  const refresh = async () => {
    if (Date.now() - refreshedAt < 1000 && targets.length > 0) return;
    refreshedAt = Date.now();
    targets = (await agentPods(poolName)).filter(podReady).map((p) => p.status?.podIP ?? '').filter((ip) => ip !== '');
  };
  const blob = new Blob([wav], { type: 'audio/wav' });
  const worker = async () => {
    while (!stopped && Date.now() - t0 < opts.maxMs && report.requests < opts.maxRequests) {
      await refresh();
      const ip = targets[next++ % Math.max(1, targets.length)];
      if (!ip) {
        await sleep(200);
        continue;
      }
      if (!/^127\./.test(ip)) throw new Error(`refusing to dial ${ip}: not a loopback pod IP`);
      dialled.add(ip);
      report.requests++;
      const form = new FormData();
      form.append('file', blob, 'speech.wav');
      form.append('model', 'tiny');
      try {
        const res = await fetch(`http://${ip}:${opts.port}/v1/audio/transcriptions`, { method: 'POST', body: form, signal: AbortSignal.timeout(60_000) });
        await res.arrayBuffer();
        report.statuses[res.status] = (report.statuses[res.status] ?? 0) + 1;
        if (res.status === 200) report.ok++;
        else if (res.status === 429) {
          report.refused++;
          await sleep(200);
        } else report.failed++;
      } catch {
        report.failed++;
        await sleep(200);
      }
    }
  };
  const done = Promise.all(Array.from({ length: opts.concurrency }, () => worker())).then(() => ({ ...report, durationMs: Date.now() - t0 }));
  return { stop: () => { stopped = true; }, done, dialled };
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('epool');
  let kubeconfig: string;
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
  operatorArgs = {
    kubeconfig, namespace: ns, identity: 'epool-e2e', leaseName: LEASE,
    extra: [`--prometheus-url=${await prometheusUrl()}`, '--prometheus-loopback-only', `--edgepool-sync-period=${SYNC_SECONDS}`, `--agent-image=${AGENT_IMAGE}`],
  };
  operator = startOperator(operatorArgs);
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
      // One inference thread per agent (2 shared cores); a long queue so the load test's streams wait
      // (counted as load) instead of being refused.
      agent: { threads: 1, maxConcurrentStreams: 2, queueLength: 64 } as EdgePoolSpec['agent'],
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
    // Settled: Stalled, and the Deployment's two (unschedulable) pods counted — then no more writes.
    const p = await until('nowhere', 'Stalled', (x) => cond(x, 'Stalled')?.status === 'True' && x.status?.replicas === 2);
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
  it('an InferenceDeployment naming the pool puts its model into the model set: ModelsAssigned, status.models, agents Ready', async () => {
    const ref = embeddedRef();
    // The agent image carries the embedded model at /app/models/tiny-whisper-synth (the repo is /app).
    const model = { uri: 'file:///app/models/tiny-whisper-synth', version: ref.version, sha256: ref.sha256 };
    await createInferenceDeployment('tiny', 'jetsons', model, ['general', 'finance']);
    // Not served yet (issue 12), but counted with the reason.
    await createInferenceDeployment('tuned', 'jetsons', { fineTuneJobRef: { name: 'not-yet' } });
    const p = await until('jetsons', 'model assigned, agent ready', (x) => cond(x, 'Ready')?.status === 'True' && x.status?.readyReplicas === 1, 120_000);
    expect(cond(p, 'ModelsAssigned')).toMatchObject({ status: 'True', reason: 'ModelsAssigned' });
    expect(cond(p, 'ModelsAssigned')?.message).toMatch(/^1 model assigned: tiny; 1 InferenceDeployment not served: tuned \(no model resolved yet \(see its ModelResolved condition\)\)$/);
    expect(p.status?.models).toEqual([{ deployment: 'tiny', version: ref.version, role: 'stable' }]);
    const cm = await api.get<V1ConfigMap>(CONFIG_MAPS, ns, 'jetsons-models');
    expect(JSON.parse(cm.data?.['model-set.json'] ?? '{}')).toEqual({
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'ModelSet', pool: 'jetsons', scenarios: ['finance', 'general'], models: [{ name: 'tiny', stable: model }],
    });
    // No rewrite when nothing changed: a status-only touch of an InferenceDeployment, and a few sync periods.
    await sleep(SYNC_SECONDS * 3 * 1000);
    expect((await api.get<V1ConfigMap>(CONFIG_MAPS, ns, 'jetsons-models')).metadata?.resourceVersion).toBe(cm.metadata?.resourceVersion);
    await kubectl(['delete', 'inferencedeployment', 'tuned', '-n', ns]);
    await until('jetsons', 'skipped count gone', (x) => cond(x, 'ModelsAssigned')?.message === '1 model assigned: tiny');
  });

  it('load raises replicas within a couple of intervals; after the load, they fall only after the scale-down window, also across an operator restart', async () => {
    const sentences = testSentences();
    const wav = speak(sentences.slice(0, 8).join(' '));
    const audioSeconds = (wav.length - 44) / (22_050 * 2);
    const port = (await pool('jetsons')).spec.agent.port;
    expect(audioSeconds).toBeGreaterThan(15);
    const samples: { t: number; desired: number; ready: number }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const p = await pool('jetsons');
        samples.push({ t: Date.now(), desired: p.status?.desiredReplicas ?? 0, ready: p.status?.readyReplicas ?? 0 });
        await sleep(250);
      }
    })();
    const t0 = Date.now();
    const load = loadGenerator('jetsons', wav, { concurrency: 16, maxMs: 120_000, maxRequests: 2000, port });
    let report: LoadReport | undefined;
    let tStop = 0;
    try {
      const up = await until('jetsons', 'scaled up', (x) => (x.status?.desiredReplicas ?? 0) > 1, 60_000);
      const tUp = samples.find((x) => x.desired > 1)?.t ?? Date.now();
      await until('jetsons', '4 ready agents', (x) => x.status?.desiredReplicas === 4 && x.status.readyReplicas === 4, 120_000);
      const tFour = Date.now();
      // A few seconds more, so that streams also reach the new agents (workers pick a ready agent per request).
      await sleep(5000);
      load.stop();
      report = await load.done;
      tStop = Date.now();
      console.log(`load: ${JSON.stringify(report)}; audio ${audioSeconds.toFixed(1)} s per request; desired ${up.status?.desiredReplicas ?? 0} after ${tUp - t0} ms, 4 ready after ${tFour - t0} ms; agents dialled ${load.dialled.size}`);
      expect(tUp - t0).toBeLessThan(20_000);
      expect(report.ok).toBeGreaterThan(0);
      expect(report.failed).toBe(0);
      expect([...load.dialled].every((ip) => /^127\./.test(ip))).toBe(true);
      expect(load.dialled.size).toBeGreaterThan(1);

      // Mid-window: stop the operator (SIGTERM) and start a new one; the window comes from status.recommendations.
      await sleep(6000);
      expect((await pool('jetsons')).status?.desiredReplicas).toBe(4);
      const args = operatorArgs;
      if (!args) throw new Error('no operator args');
      await operator?.kill('SIGTERM');
      operator = startOperator(args);
      await operator.waitFor('Caches synced, controllers running', 60_000);
      const down = await until('jetsons', 'scaled down after the window', (x) => (x.status?.desiredReplicas ?? 0) < 4, 90_000);
      const tDown = samples.find((x) => x.t > tStop && x.desired < 4)?.t ?? Date.now();
      console.log(`scale-down: first drop ${tDown - tStop} ms after the load ended (window 20 s), to ${down.status?.desiredReplicas ?? 0}; reason: ${down.status?.lastScaleReason ?? ''}`);
      // The last high recommendation came at most a scrape interval + a sync period before the load ended.
      expect(tDown - tStop).toBeGreaterThanOrEqual(20_000 - 2 * SYNC_SECONDS * 1000);
      expect(tDown - tStop).toBeLessThan(60_000);
      expect(samples.filter((x) => x.t > tFour && x.t < tStop + 16_000).every((x) => x.desired === 4)).toBe(true);
      await until('jetsons', 'back to 1 agent', (x) => x.status?.desiredReplicas === 1 && x.status.replicas === 1, 90_000);
      console.log(`scale-down: desired 1 after ${(samples.find((x) => x.t > tStop && x.desired === 1)?.t ?? Date.now()) - tStop} ms`);
    } finally {
      load.stop();
      await load.done;
      sampling = false;
      await sampler;
    }
  });

  it('a cordoned and drained device loses its agent to another; eligibleNodes drops by one', async () => {
    const before = (await agentPods('jetsons')).filter(podReady);
    expect(before).toHaveLength(1);
    const node = before[0]?.spec?.nodeName ?? '';
    expect(node).toMatch(/^jetson-proc-\d$/);
    try {
      await kubectl(['cordon', node]);
      await until('jetsons', 'eligibleNodes 3', (x) => x.status?.eligibleNodes === 3);
      await kubectl(['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', `--pod-selector=${EDGEPOOL_LABEL}=jetsons`, '--timeout=120s']);
      const p = await until('jetsons', 'agent ready elsewhere', (x) => x.status?.readyReplicas === 1 && cond(x, 'Ready')?.status === 'True', 120_000);
      expect(p.status?.eligibleNodes).toBe(3);
      const after = (await agentPods('jetsons')).filter(podReady);
      expect(after).toHaveLength(1);
      expect(after[0]?.spec?.nodeName).not.toBe(node);
      expect(after[0]?.spec?.nodeName).toMatch(/^jetson-proc-\d$/);
    } finally {
      await kubectl(['uncordon', node]);
    }
    await until('jetsons', 'eligibleNodes 4 again', (x) => x.status?.eligibleNodes === 4);
  });

  it('Prometheus unreachable → size held with LoadKnown=False; reachable again → LoadKnown=True', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    await kubectl(['patch', 'edgepool', 'jetsons', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { autoscaling: { prometheus: { url } } } })]);
    const blind = await until('jetsons', 'LoadKnown False', (x) => cond(x, 'LoadKnown')?.status === 'False');
    expect(cond(blind, 'LoadKnown')?.message).toMatch(/holding 1 agent/);
    expect(blind.status?.observedStreams).toBeUndefined();
    expect(blind.status?.desiredReplicas).toBe(1);
    await kubectl(['patch', 'edgepool', 'jetsons', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { autoscaling: { prometheus: null } } })]);
    const back = await until('jetsons', 'LoadKnown True again', (x) => cond(x, 'LoadKnown')?.status === 'True');
    expect(back.status?.observedStreams).toBe(0);
    expect(back.status?.desiredReplicas).toBe(1);
  });
});
