// Bearer-token authentication end to end: an EdgePool with spec.auth naming a Secret; the operator (a
// real process, as its ServiceAccount) mounts it into a REAL edge agent on a process-backed Jetson;
// the traffic fixture with the tokens is served and its feedback counted, without them refused (401);
// the Secret rotated with kubectl → the agent takes the new token without a restart (same pod, same
// container start), the old one is refused; probes and /metrics stay open.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import type { StoredEdgePool } from '../../operator/src/edgepool/desired.js';
import { EDGEPOOL_LABEL } from '../../operator/src/edgepool/names.js';
import { EDGEPOOLS } from '../../operator/src/edgepool/reconciler.js';
import { PODS } from '../../operator/src/kube/client.js';
import { adminClient } from '../../operator/testing/operator-process.js';
import { applyCrds, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, kubectl } from '../cluster/index.js';
import { embeddedRef, testSentences } from '../../edge-agent/src/testing/speech.js';
import { sendFeedbackTraffic } from '../fixtures/traffic.js';
import { startPoolOperator } from './pool-operator.js';
import type { PoolOperator } from './pool-operator.js';

jest.setTimeout(300_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const PORT = 8080;
const tolerations = [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }];

let ns = '';
let operator: PoolOperator | undefined;

async function secret(data: Record<string, string>): Promise<void> {
  const body = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'agent-tokens', namespace: ns }, stringData: data };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(body) });
}

async function readyPod(): Promise<V1Pod> {
  return eventually('a ready agent of the secured pool', async () => {
    const pods = (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `${EDGEPOOL_LABEL}=secured` })).items;
    return pods.find((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  }, 180_000, 500);
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('auth');
  operator = await startPoolOperator(ns, 'auth-e2e', LEASE);
});

afterAll(async () => {
  await operator?.stop();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('agent authentication through EdgePool spec.auth (real agent on a process node)', () => {
  it('serves the traffic fixture with its tokens, refuses it without, and takes a rotated Secret without a restart', async () => {
    await secret({ transcribe: 'tok-1\n', feedback: 'fb-1\n' });
    const pool = {
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'secured', namespace: ns },
      spec: {
        nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'process' }, tolerations,
        agent: { threads: 1, port: PORT }, autoscaling: { mode: 'off' }, replicas: 1,
        auth: { secretRef: { name: 'agent-tokens' }, transcriptionKey: 'transcribe', feedbackKey: 'feedback' },
      },
    };
    await kubectl(['apply', '-f', '-'], { input: JSON.stringify(pool) });
    const ref = embeddedRef();
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name: 'tiny', namespace: ns },
        spec: { edgePoolRef: { name: 'secured' }, model: { uri: 'file:///app/models/tiny-whisper-synth', version: ref.version, sha256: ref.sha256 } },
      }),
    });
    const pod = await readyPod();
    const ip = pod.status?.podIP ?? '';
    expect(ip).toMatch(/^127\./);
    const url = `http://${ip}:${PORT}`;
    const started = pod.status?.containerStatuses?.[0]?.state?.running?.startedAt;
    const sentences = testSentences().slice(0, 3);
    const traffic = (t?: string, f?: string) => sendFeedbackTraffic({ agentUrls: [url], model: 'tiny', sentences, scenario: 'general', concurrency: 1, transcriptionToken: t, feedbackToken: f });

    const ok = await traffic('tok-1', 'fb-1');
    expect(ok).toMatchObject({ requests: 3, ok: 3, failures: 0, feedbackPosted: 3, feedbackFailures: 0 });
    const open = await traffic();
    expect(open).toMatchObject({ ok: 0, statuses: { 401: 3 } });
    const wrongFeedback = await traffic('tok-1', 'tok-1');
    expect(wrongFeedback).toMatchObject({ ok: 3, feedbackPosted: 0, feedbackFailures: 3 });
    for (const p of ['/healthz', '/readyz', '/metrics']) expect((await fetch(url + p)).status).toBe(200);

    // Rotation: the new token only. The kubelet (process node) rewrites the volume; the agent re-reads it.
    await secret({ transcribe: 'tok-2\n', feedback: 'fb-2\n' });
    const t0 = Date.now();
    await eventually('the rotated token accepted', async () => ((await traffic('tok-2', 'fb-2')).feedbackPosted === 3 ? true : undefined), 120_000, 1000);
    const rotatedMs = Date.now() - t0;
    expect((await traffic('tok-1', 'fb-1')).statuses).toEqual({ 401: 3 });
    // Same pod, same container start: no restart.
    const after = await api.get<V1Pod>(PODS, ns, pod.metadata?.name ?? '');
    expect(after.status?.containerStatuses?.[0]?.state?.running?.startedAt).toEqual(started);
    expect(after.status?.containerStatuses?.[0]?.restartCount ?? 0).toBe(0);
    const m = await (await fetch(`${url}/metrics`)).text();
    expect(m).toMatch(/whisperops_agent_auth_failures_total\{[^}]*route="transcriptions"[^}]*\} [1-9]/);
    process.stdout.write(`agent-auth e2e: rotation accepted ${rotatedMs} ms after the Secret update\n`);
    const p = await api.get<StoredEdgePool>(EDGEPOOLS, ns, 'secured');
    expect(p.spec.auth?.secretRef.name).toBe('agent-tokens');
  });
});
