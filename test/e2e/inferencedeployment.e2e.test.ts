// The InferenceDeployment controller end to end, nothing played: two operator replicas (leader and
// standby) run as real local processes as their ServiceAccount bound to exactly
// charts/whisperops/files/operator-rbac.yaml; REAL edge agents on two process-backed Jetson nodes
// fetch the models from the REAL S3 store (credentials from the pool's Secret) and are scraped by the
// REAL Prometheus every 2 s; the traffic is espeak-ng finance speech whose true text is posted back as
// feedback, which is what the canary analysis reads. The models are real too: the embedded model, the
// finance fine-tune by the real trainer (good candidate) and a genuinely worse artifact with its own
// manifest (bad candidate), both from test/fixtures/models.ts (built once, cached).
//
// One stand-in, said here as in the demo: the FineTuneJob of the fineTuneJobRef case is played by kwok
// (its pod ends with the real fine-tune's result as termination message); the trainer writing to the
// store from its own pod comes with the closed loop (issue 13).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { KubernetesObject, V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { InferenceDeployment } from '../../api/generated/types.js';
import { EDGEPOOL_LABEL } from '../../operator/src/edgepool/names.js';
import { INFERENCE_DEPLOYMENTS } from '../../operator/src/edgepool/reconciler.js';
import { CONFIG_MAPS, EVENTS, PODS } from '../../operator/src/kube/client.js';
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, operatorServiceAccount, startOperator } from '../../operator/testing/operator-process.js';
import { syncFolder } from '../cluster/object-store.js';
import { applyCrds, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, kubectl, objectStore, podOutcome, prometheusUrl, s3Client } from '../cluster/index.js';
import type { DegradedModel, FinanceModel, ModelRef } from '../fixtures/models.js';
import { embeddedModelRef, ensureDegradedModel, ensureFinanceModel } from '../fixtures/models.js';
import type { TrafficReport } from '../fixtures/traffic.js';
import { addReport, emptyReport, readyAgentUrls } from '../fixtures/loop.js';
import { financeSentences, sendFeedbackTraffic } from '../fixtures/traffic.js';

// The fixtures' first build (a real fine-tune on 2 cores) is in beforeAll; each test is bounded below.
jest.setTimeout(300_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const LEASE_SECONDS = 3;
const SYNC_SECONDS = 2;
const INTERVAL = 10;
const PORT = 8080;
const SECRET = 'models-s3';
const tolerations = [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }];
const rollout = {
  steps: [{ weight: 30, pauseSeconds: 5 }, { weight: 60, pauseSeconds: 15 }],
  analysis: { intervalSeconds: INTERVAL, minSamples: 40, maxWerIncrease: 0.05, maxP99LatencySeconds: 10, failureLimit: 2 },
};

let ns = '';
let cleanupRbac: () => Promise<void> = () => Promise.resolve();
const operators: OperatorProcess[] = [];
let good: FinanceModel;
let bad: DegradedModel;
let base: ModelRef;
const sentences = financeSentences(200);
let sentenceCursor = 0;

const s3Ref = (m: { version: string; sha256: string }): ModelRef => ({ uri: `s3://whisperops-models/e2e/${m.version}/`, version: m.version, sha256: m.sha256 });
const get = (name: string) => api.get<InferenceDeployment>(INFERENCE_DEPLOYMENTS, ns, name);
const cond = (d: InferenceDeployment, type: string) => d.status?.conditions?.find((c) => c.type === type);

async function until(name: string, what: string, ok: (d: InferenceDeployment) => boolean, timeoutMs = 120_000): Promise<InferenceDeployment> {
  return eventually(`InferenceDeployment ${name}: ${what}`, async () => {
    const d = await get(name);
    return ok(d) ? d : undefined;
  }, timeoutMs, 500);
}

async function applyDeployment(name: string, model: Record<string, unknown>): Promise<void> {
  const body = { apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name, namespace: ns }, spec: { edgePoolRef: { name: 'jetsons' }, model, rollout } };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(body) });
}

async function events(name: string): Promise<{ reason: string; note: string }[]> {
  const list = await api.list<KubernetesObject & { reason: string; note: string; regarding: { name: string; kind: string } }>(EVENTS, { namespace: ns });
  return list.items.filter((e) => e.regarding.kind === 'InferenceDeployment' && e.regarding.name === name).map((e) => ({ reason: e.reason, note: e.note }));
}

async function agentPods(): Promise<V1Pod[]> {
  return (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `${EDGEPOOL_LABEL}=jetsons` })).items
    .filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
}

const agentUrls = (): Promise<string[]> => readyAgentUrls(api, ns, 'jetsons', PORT);

async function modelSet(): Promise<{ models: { name: string; stable: ModelRef; candidate?: ModelRef & { weight: number } }[] }> {
  const cm = await api.get<V1ConfigMap>(CONFIG_MAPS, ns, 'jetsons-models');
  return JSON.parse(cm.data?.['model-set.json'] ?? '{}') as { models: { name: string; stable: ModelRef; candidate?: ModelRef & { weight: number } }[] };
}

/**
 * Finance speech with feedback to the pool's ready agents (pod IPs refreshed every batch), in batches
 * of 8 requests, until `done()` or `timeoutMs`; every request counted. Bounded: at most `maxRequests`.
 */
async function trafficUntil(model: string, done: () => boolean, timeoutMs: number, maxRequests = 1500, feedback = true): Promise<TrafficReport> {
  const total = emptyReport();
  const t0 = Date.now();
  while (!done() && Date.now() - t0 < timeoutMs && total.requests < maxRequests) {
    const urls = await agentUrls();
    if (urls.length === 0) {
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    const batch = Array.from({ length: Math.min(8, maxRequests - total.requests) }, () => sentences[sentenceCursor++ % sentences.length] ?? '');
    addReport(total, await sendFeedbackTraffic({ agentUrls: urls, model, sentences: batch, scenario: 'finance', concurrency: 2, deadlineMs: 60_000, feedback }));
  }
  return total;
}

/** Runs `trafficUntil` in the background while `watch` waits for a state; returns both. */
async function withTraffic<T>(model: string, watch: () => Promise<T>, timeoutMs: number, feedback = true): Promise<{ result: T; traffic: TrafficReport }> {
  let finished = false;
  const traffic = trafficUntil(model, () => finished, timeoutMs, 1500, feedback);
  try {
    const result = await watch();
    finished = true;
    return { result, traffic: await traffic };
  } finally {
    finished = true;
    await traffic;
  }
}

const leader = (): OperatorProcess | undefined => operators.find((o) => o.running() && o.has('Became leader'));

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('infd');
  // The models: built by the real trainer / the degrade script once, cached across runs.
  good = await ensureFinanceModel();
  bad = await ensureDegradedModel();
  base = { ...embeddedModelRef(), uri: (await objectStore()).embeddedModelUri };
  const s3 = await s3Client();
  try {
    for (const m of [good, bad]) await syncFolder(s3, m.dir, 'whisperops-models', `e2e/${m.version}/`);
  } finally {
    s3.destroy();
  }
  // The pool's artifact credentials: the store's Secret, copied into the test namespace.
  const store = await objectStore();
  const source = JSON.parse(await kubectl(['get', 'secret', '-n', store.secret.namespace, store.secret.name, '-o', 'json'])) as V1Secret;
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: SECRET, namespace: ns }, data: source.data }) });

  let kubeconfig: string;
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
  const extra = [`--prometheus-url=${await prometheusUrl()}`, '--prometheus-loopback-only', `--edgepool-sync-period=${SYNC_SECONDS}`, '--agent-image=ghcr.io/whisperops/edge-agent:0.1.0'];
  for (const identity of ['infd-a', 'infd-b']) {
    const op = startOperator({ kubeconfig, namespace: ns, identity, leaseName: LEASE, leaseDurationSeconds: LEASE_SECONDS, extra });
    operators.push(op);
    await op.waitFor(identity === 'infd-a' ? 'Caches synced, controllers running' : 'Waiting for leadership', 60_000);
  }
  const poolBody = {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'jetsons', namespace: ns },
    spec: {
      nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'process' }, tolerations,
      autoscaling: { mode: 'off' }, replicas: 2, artifactCredentials: { secretRef: { name: SECRET } },
    },
  };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(poolBody) });
}, 900_000);

afterAll(async () => {
  await Promise.all(operators.map((o) => o.kill('SIGTERM')));
  await cleanupRbac();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('InferenceDeployment (real agents, real Prometheus, real S3 store, real feedback)', () => {
  it('the first model is served as stable at once: fetched from S3 by both agents, Serving and Ready', async () => {
    await applyDeployment('asr', { ...base });
    const d = await until('asr', 'Ready', (x) => cond(x, 'Ready')?.status === 'True', 180_000);
    expect(d.status).toMatchObject({ phase: 'Healthy', observedGeneration: 1, stable: { ...base, source: 'spec' } });
    expect(d.status?.candidate).toBeUndefined();
    expect(cond(d, 'Serving')).toMatchObject({ status: 'True', reason: 'Loaded' });
    expect(cond(d, 'ModelResolved')?.message).toContain(`agents read it with the pool's artifactCredentials Secret ${SECRET}`);
    expect((await modelSet()).models).toEqual([{ name: 'asr', stable: base }]);
    // Both agents ready (their readiness probe follows the model load).
    await eventually('two ready agents', async () => ((await agentUrls()).length === 2 ? true : undefined), 60_000, 500);
    const r = await trafficUntil('asr', () => false, 60_000, 4);
    expect(r).toMatchObject({ requests: 4, ok: 4, failures: 0 });
    expect(Object.keys(r.perVersion)).toEqual([base.version]);
    expect((await events('asr')).map((e) => e.reason)).toContain('Deployed');
  });

  it('a good candidate (the finance fine-tune) is stepped and promoted from live WER; the leader is killed mid-rollout and the standby resumes at the same step; no request fails', async () => {
    const candidate = s3Ref(good);
    const applied = Date.now();
    await applyDeployment('asr', { ...candidate });
    let killed: { step: number; stepStartTime: string | undefined; takeoverMs: number } | undefined;
    let servingMs = NaN;
    const { result: d, traffic } = await withTraffic('asr', async () => {
      // Spec change → the candidate serving its first step's share on every agent.
      await Promise.all((await agentUrls()).map((url) => candidateWeight(url, good.version, 0.3)));
      servingMs = Date.now() - applied;
      // At the second step: SIGKILL the leader; the standby takes the Lease and carries on.
      const atStep2 = await until('asr', 'candidate at step 2', (x) => x.status?.candidate?.step === 1 || x.status?.stable?.version === good.version, 180_000);
      if (atStep2.status?.candidate?.step === 1) {
        const t0 = Date.now();
        await leader()?.kill('SIGKILL');
        const standby = operators.find((o) => o.running());
        await standby?.waitFor('Caches synced, controllers running', 30_000);
        const after = await get('asr');
        killed = { step: after.status?.candidate?.step ?? -1, stepStartTime: after.status?.candidate?.stepStartTime, takeoverMs: Date.now() - t0 };
        expect(after.status?.candidate?.stepStartTime).toBe(atStep2.status?.candidate?.stepStartTime);
      }
      // Promoted, and the agents confirmed serving it as stable (Ready).
      return until('asr', 'promoted and Ready', (x) => x.status?.stable?.version === good.version && x.status.phase === 'Healthy' && cond(x, 'Ready')?.status === 'True', 180_000);
    }, 300_000);

    expect(killed).toBeDefined();
    expect(killed?.step).toBe(1);
    expect(d.status?.stable).toEqual({ ...candidate, source: 'spec' });
    expect(d.status?.candidate).toBeUndefined();
    expect(d.spec.model).toEqual(candidate); // the spec is never rewritten: GitOps owns it
    expect(cond(d, 'Ready')?.status).toBe('True');
    const reasons = (await events('asr')).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['RolloutStarted', 'AnalysisSuccessful', 'StepAdvanced', 'Promoted']));
    const promoted = (await events('asr')).find((e) => e.reason === 'Promoted');
    expect(promoted?.note).toMatch(new RegExp(`Promoted ${good.version} to stable \\(was ${base.version}\\).*candidate ${good.version} WER [0-9.]+ .*stable ${base.version} WER [0-9.]+`));
    expect(traffic.failures).toBe(0);
    expect(traffic.feedbackFailures).toBe(0);
    expect(traffic.perVersion[good.version]?.requests).toBeGreaterThan(0);
    expect(traffic.perVersion[base.version]?.requests).toBeGreaterThan(0);
    expect((await modelSet()).models).toEqual([{ name: 'asr', stable: candidate }]);
    process.stdout.write(`good candidate: spec change → serving 30% on 2/2 agents in ${servingMs} ms (sync period ${SYNC_SECONDS} s + model fetch from S3 and load); promoted; ${traffic.requests} requests, 0 failed; leader takeover ${killed?.takeoverMs ?? NaN} ms at step ${(killed?.step ?? 0) + 1}; ` +
      `client-side WER base ${wer(traffic, base.version)} vs finance ${wer(traffic, good.version)}\n`);
  });

  it('a bad candidate (a degraded artifact) is rolled back after failureLimit Failed intervals, with the numbers in status; no request fails', async () => {
    const candidate = s3Ref(bad);
    await applyDeployment('asr', { ...candidate });
    const { result: d, traffic } = await withTraffic('asr', () => until('asr', 'rolled back', (x) => x.status?.phase === 'Degraded', 180_000), 240_000);
    const generation = d.metadata.generation;
    expect(d.status?.stable?.version).toBe(good.version);
    expect(d.status?.candidate).toMatchObject({ version: bad.version, weight: 0, rolledBackGeneration: generation, lastVerdict: 'Failed', failedAnalyses: 2 });
    expect(d.status?.candidate?.lastVerdictMessage).toMatch(new RegExp(`candidate WER above stable WER \\+ maxWerIncrease: candidate ${bad.version} WER [0-9.]+ \\([0-9.]+ errors / [0-9.]+ words\\), stable ${good.version} WER [0-9.]+`));
    expect(cond(d, 'Stalled')).toMatchObject({ status: 'True', reason: 'RolledBack' });
    expect(cond(d, 'Ready')?.status).toBe('False');
    const reasons = (await events('asr')).map((e) => e.reason);
    expect(reasons.filter((r) => r === 'AnalysisFailed').length).toBeGreaterThanOrEqual(2);
    expect(reasons).toEqual(expect.arrayContaining(['RollingBack', 'RolledBack']));
    expect(traffic.failures).toBe(0);
    expect(traffic.perVersion[bad.version]?.requests).toBeGreaterThan(0);
    expect((await modelSet()).models).toEqual([{ name: 'asr', stable: s3Ref(good) }]);
    // After the rollback every request is answered by the stable model.
    await eventually('agents back on stable only', async () => {
      const r = await trafficUntil('asr', () => false, 30_000, 6, false);
      return Object.keys(r.perVersion).join() === good.version && r.failures === 0 ? r : undefined;
    }, 30_000, 1000);
    process.stdout.write(`bad candidate: rolled back; ${traffic.requests} requests, 0 failed; verdict: ${d.status?.candidate?.lastVerdictMessage ?? ''}\n`);
  });

  it('without feedback the rollout holds as Inconclusive and says so; agents restarted mid-rollout get the same weights back', async () => {
    await applyDeployment('asr', { ...base });
    const held = await until('asr', 'an Inconclusive verdict', (x) => x.status?.candidate?.lastVerdict === 'Inconclusive', 90_000);
    expect(held.status?.candidate).toMatchObject({ version: base.version, step: 0, weight: 30 });
    expect(held.status?.candidate?.rolledBackGeneration).toBeUndefined();
    expect(held.status?.candidate?.lastVerdictMessage).toMatch(/too few reference words|word errors unknown|reference words unknown/);
    expect(cond(held, 'Reconciling')?.message).toMatch(/holding at step 1\/2 \(weight 30%\): .*waiting for a Successful analysis \(last Inconclusive/);
    expect((await events('asr')).map((e) => e.reason)).toContain('AnalysisInconclusive');

    // Both agents restarted (pods deleted): the new ones read the same model set, same weights.
    const before = (await agentPods()).map((p) => p.metadata?.name);
    await kubectl(['delete', 'pod', '-n', ns, '-l', `${EDGEPOOL_LABEL}=jetsons`, '--wait=false']);
    const urls = await eventually('two new ready agents', async () => {
      const pods = await agentPods();
      return pods.length === 2 && pods.every((p) => !before.includes(p.metadata?.name)) ? agentUrls() : undefined;
    }, 120_000, 1000);
    for (const url of urls) await candidateWeight(url, base.version, 0.3, 60_000);
    const still = await get('asr');
    expect(still.status?.candidate).toMatchObject({ version: base.version, step: 0, weight: 30 });
  });

  it('a sha256 that does not match the artifact: the agents refuse it, the deployment says so, stable keeps serving', async () => {
    const wrong = { ...s3Ref(bad), sha256: 'e'.repeat(64) };
    await applyDeployment('asr', wrong);
    const { result: d, traffic } = await withTraffic('asr', () => until('asr', 'refused and rolled back', (x) => x.status?.phase === 'Degraded' && x.status.candidate?.sha256 === wrong.sha256, 120_000), 150_000, false);
    expect(d.status?.candidate?.lastVerdictMessage).toMatch(new RegExp(`the pool's agents refused candidate ${bad.version} \\([12] agents? manifest_checksum_mismatch\\)`));
    expect(cond(d, 'Stalled')).toMatchObject({ status: 'True', reason: 'RolledBack' });
    expect(d.status?.stable?.version).toBe(good.version);
    expect(traffic.failures).toBe(0);
    expect(Object.keys(traffic.perVersion)).toEqual(expect.arrayContaining([good.version]));
    expect(traffic.perVersion[bad.version]).toBeUndefined();
  });

  it('fineTuneJobRef: waits for the FineTuneJob, then serves its result', async () => {
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name: 'tuned', namespace: ns },
        spec: { edgePoolRef: { name: 'jetsons' }, model: { fineTuneJobRef: { name: 'finance-later' } }, rollout },
      }),
    });
    const waiting = await until('tuned', 'waiting for its FineTuneJob', (x) => cond(x, 'ModelResolved')?.reason === 'FineTuneJobNotFound');
    expect(cond(waiting, 'Reconciling')).toMatchObject({ status: 'True', reason: 'WaitingForModel' });
    expect((await modelSet()).models.map((m) => m.name)).toEqual(['asr']);

    // STAND-IN: kwok plays the trainer pod; its termination message is the real fine-tune's result.
    const result = { modelUri: s3Ref(good).uri, version: good.version, sha256: good.sha256, parentVersion: base.version, wer: { finance: good.werTuned } };
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name: 'finance-later', namespace: ns },
        spec: {
          baseModel: { uri: base.uri, version: base.version },
          dataset: { scenario: 'finance', synthesize: { corpusUri: 's3://whisperops-datasets/finance_corpus.txt', scenario: 'finance' } },
          output: { uri: s3Ref(good).uri },
          resources: { gpusPerNode: 1, nodeSelector: { type: 'kwok' } },
          podMetadata: { annotations: { [podOutcome.outcome]: 'succeed', [podOutcome.runSeconds]: '2', [podOutcome.terminationMessage]: JSON.stringify(result) } },
        },
      }),
    });
    const served = await until('tuned', 'served', (x) => cond(x, 'Ready')?.status === 'True', 120_000);
    expect(served.status?.stable).toEqual({ ...s3Ref(good), source: 'FineTuneJob/finance-later' });
    expect((await modelSet()).models.map((m) => m.name)).toEqual(['asr', 'tuned']);
    const r = await trafficUntil('tuned', () => false, 30_000, 4, false);
    expect(r).toMatchObject({ ok: 4, failures: 0 });
    expect(Object.keys(r.perVersion)).toEqual([good.version]);
  });
});

/** Waits until the agent at `url` routes `weight` of the deployment's requests to candidate `version` (its /metrics). */
async function candidateWeight(url: string, version: string, weight: number, timeoutMs = 120_000): Promise<void> {
  const series = new RegExp(`^whisperops_agent_model_traffic_weight_ratio\\{(?=[^}]*deployment="asr")(?=[^}]*model_version="${version.replace(/[.+]/g, '\\$&')}")(?=[^}]*role="candidate")[^}]*\\} ${weight}$`, 'm');
  await eventually(`${url} routing ${weight} to candidate ${version}`, async () => {
    const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text()).catch(() => '');
    return series.test(text) ? true : undefined;
  }, timeoutMs, 200);
}

function wer(r: TrafficReport, version: string): string {
  const c = r.perVersion[version];
  return c && c.words > 0 ? (c.errors / c.words).toFixed(3) : 'n/a';
}
