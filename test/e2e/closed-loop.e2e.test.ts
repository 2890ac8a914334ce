// The closed loop end to end, small enough for CI, nothing played: two operator replicas (leader and
// standby) as real local processes with the chart's RBAC; two REAL edge agents on the process-backed
// Jetsons serving the embedded model from the REAL S3 store, scraped by the REAL Prometheus; real
// medical and general speech (espeak-ng) with feedback, whose samples the agents write to the store;
// the medical WER breaches a (deliberately low) threshold → the operator creates one FineTuneJob from
// the deployment's template → the REAL trainer runs in its pod on the process-backed A100 node (CPU:
// 8 synthesized utterances, 2 steps, ONNX + INT8), reading the feedback samples and writing its
// artifact to the store → the result is canaried on live traffic and promoted. The leader is SIGKILLed
// while the FineTuneJob runs: the standby carries on and no second FineTuneJob appears.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { FineTuneJob, InferenceDeployment } from '../../api/generated/types.js';
import { INFERENCE_DEPLOYMENTS } from '../../operator/src/edgepool/reconciler.js';
import { FINETUNEJOBS } from '../../operator/src/finetunejob/reconciler.js';
import { CONFIG_MAPS, PODS } from '../../operator/src/kube/client.js';
import { DEPLOYMENT_LABEL } from '../../operator/src/inferencedeployment/retrain.js';
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, operatorServiceAccount, startOperator } from '../../operator/testing/operator-process.js';
import { applyCrds, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, kubectl, objectStore, prometheusUrl, s3Client } from '../cluster/index.js';
import { allAgentsList, eventTimeline, failuresOf, readyAgentUrls, startTraffic } from '../fixtures/loop.js';
import { generalReplayCorpus, heldOutGeneralSentences, heldOutMedicalSentences, MEDICAL_VOICES, medicalSynthesisCorpus, trafficMedicalSentences } from '../fixtures/medical.js';
import { embeddedModelRef } from '../fixtures/models.js';

// A trainer pod (torch import, synthesis, 2 steps, ONNX export + INT8) on the shared 2 cores.
jest.setTimeout(600_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const SECRET = 'store-credentials';
const NAME = 'clinical';
let ns = '';
let dataPrefix = '';
let cleanupRbac: () => Promise<void> = () => Promise.resolve();
const operators: OperatorProcess[] = [];

const get = (name = NAME) => api.get<InferenceDeployment>(INFERENCE_DEPLOYMENTS, ns, name);
const cond = (d: InferenceDeployment, type: string) => d.status?.conditions?.find((c) => c.type === type);
const retrainJobs = async (name = NAME) => (await api.list<FineTuneJob>(FINETUNEJOBS, { namespace: ns, labelSelector: `${DEPLOYMENT_LABEL}=${name}` })).items;
const agentUrls = () => readyAgentUrls(api, ns, 'clinic');

async function modelSetOf(name: string): Promise<{ name: string; candidate?: unknown } | undefined> {
  const cm = await api.get<V1ConfigMap>(CONFIG_MAPS, ns, 'clinic-models');
  return (JSON.parse(cm.data?.['model-set.json'] ?? '{}') as { models: { name: string; candidate?: unknown }[] }).models.find((m) => m.name === name);
}
const leader = () => operators.find((o) => o.running() && o.has('Became leader'));

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('loop');
  dataPrefix = `e2e-loop/${ns}/`;
  const store = await objectStore();
  const source = JSON.parse(await kubectl(['get', 'secret', '-n', store.secret.namespace, store.secret.name, '-o', 'json'])) as V1Secret;
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: SECRET, namespace: ns }, data: source.data }) });
  const s3 = await s3Client();
  try {
    const files: Record<string, string[]> = {
      'medical-synthesis.txt': medicalSynthesisCorpus().slice(0, 200),
      'general-replay.txt': generalReplayCorpus().slice(0, 200),
      'medical-eval.txt': heldOutMedicalSentences(4),
      'general-eval.txt': heldOutGeneralSentences(4),
    };
    for (const [name, lines] of Object.entries(files)) {
      await s3.send(new PutObjectCommand({ Bucket: 'whisperops-datasets', Key: `${dataPrefix}${name}`, Body: `${lines.join('\n')}\n` }));
    }
  } finally {
    s3.destroy();
  }

  let kubeconfig: string;
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
  const extra = [`--prometheus-url=${await prometheusUrl()}`, '--prometheus-loopback-only', '--edgepool-sync-period=2', '--agent-image=ghcr.io/whisperops/edge-agent:0.1.0', '--trainer-image=ghcr.io/whisperops/trainer:0.1.0'];
  for (const identity of ['loop-a', 'loop-b']) {
    const op = startOperator({ kubeconfig, namespace: ns, identity, leaseName: LEASE, leaseDurationSeconds: 3, extra });
    operators.push(op);
    await op.waitFor(identity === 'loop-a' ? 'Caches synced, controllers running' : 'Waiting for leadership', 60_000);
  }
  const data = `s3://whisperops-datasets/${dataPrefix}`;
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'clinic', namespace: ns },
      spec: {
        nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'process' },
        tolerations: [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }],
        autoscaling: { mode: 'off' }, replicas: 2, artifactCredentials: { secretRef: { name: SECRET } },
        datasetStore: { uri: `${data}feedback/`, retentionSeconds: 600, maxBytes: 67_108_864 },
      },
    }),
  });
  await applyDeployment(NAME, { learningRate: 0.0001, maxSteps: 2 }, 3);
}, 300_000);

/** A deployment on pool clinic: the embedded model, a medical threshold it is sure to breach, retraining with `training`. */
async function applyDeployment(name: string, training: { learningRate: number; maxSteps: number; method?: string }, failureLimit: number): Promise<void> {
  const store = await objectStore();
  const data = `s3://whisperops-datasets/${dataPrefix}`;
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name, namespace: ns },
      spec: {
        edgePoolRef: { name: 'clinic' },
        model: { ...embeddedModelRef(), uri: store.embeddedModelUri },
        rollout: { steps: [{ weight: 50, pauseSeconds: 0 }], analysis: { intervalSeconds: 10, minSamples: 40, maxWerIncrease: 0.15, maxP99LatencySeconds: 10, failureLimit } },
        // A threshold the embedded model is sure to breach on medical speech: the loop starts at once.
        monitoring: { scenarios: [{ name: 'medical', maxWer: 0.05, windowSeconds: 60, minReferenceWords: 60 }, { name: 'general', maxWer: 0.9, windowSeconds: 60, minReferenceWords: 60 }] },
        retraining: {
          enabled: true, cooldownSeconds: 3600,
          template: {
            dataset: {
              scenario: 'medical',
              synthesize: { corpusUri: `${data}medical-synthesis.txt`, scenario: 'medical', maxUtterances: 8 },
              evaluation: [{ scenario: 'medical', uri: `${data}medical-eval.txt` }, { scenario: 'general', uri: `${data}general-eval.txt` }],
            },
            method: { type: training.method ?? 'freezeEncoder' },
            training: { learningRate: training.learningRate, batchSize: 4, maxSteps: training.maxSteps, seed: 42 },
            export: { onnx: true, quantization: 'int8', maxWerIncrease: 1 },
            resources: { gpusPerNode: 1, nodeSelector: { type: 'process' } },
            artifactCredentials: { secretRef: { name: SECRET } },
            output: { uri: `s3://whisperops-models/${dataPrefix}retrains/` },
          },
        },
      },
    }),
  });
}

afterAll(async () => {
  await Promise.all(operators.map((o) => o.kill('SIGTERM')));
  await cleanupRbac();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('the closed loop (real agents, Prometheus, S3 store, trainer pod)', () => {
  it('medical WER breach → one FineTuneJob (kept across a leader SIGKILL) → the real trainer in its pod → canary → promotion; no request fails', async () => {
    await eventually('the embedded model served by both agents', async () => {
      const d = await get();
      return cond(d, 'Ready')?.status === 'True' && (await agentUrls()).length === 2 ? d : undefined;
    }, 180_000, 1000);
    const general = generalReplayCorpus().filter((x) => x.split(' ').length >= 5 && x.split(' ').length <= 10).slice(0, 40);
    const traffic = startTraffic({ urls: agentUrls, model: NAME, streams: [{ sentences: trafficMedicalSentences(40), scenario: 'medical', voices: MEDICAL_VOICES }, { sentences: general, scenario: 'general', voices: MEDICAL_VOICES }], concurrency: 2, deadlineMs: 540_000 });
    let d: InferenceDeployment;
    try {
      d = await eventually('the medical breach to start a retrain', async () => {
        const x = await get();
        return x.status?.lastRetrain ? x : undefined;
      }, 180_000, 1000);
      const jobName = d.status?.lastRetrain?.fineTuneJob ?? '';
      expect(d.status?.scenarios?.find((s) => s.name === 'medical')).toMatchObject({ state: 'Degraded' });
      expect(d.status?.retrains).toBe(1);
      expect(d.status?.lastRetrain).toMatchObject({ fineTuneJob: `${NAME}-retrain-1`, scenario: 'medical', generation: 1 });
      expect(d.status?.lastRetrain?.reason).toMatch(/^scenario medical Degraded: WER [0-9.]+ > maxWer 0.05 over \d+ reference words of stable tiny-whisper-synth-1.0.0$/);
      const [job, ...more] = await retrainJobs();
      expect(more).toEqual([]);
      expect(job?.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'InferenceDeployment', name: NAME, controller: true })]);
      expect(job?.spec.baseModel).toEqual({ uri: d.status?.stable?.uri, version: 'tiny-whisper-synth-1.0.0', sha256: d.status?.stable?.sha256 });
      expect(job?.spec.dataset.uri).toBe(`s3://whisperops-datasets/${dataPrefix}feedback/medical/`);
      traffic.pause(); // the trainer gets the cores

      // The leader dies while the trainer runs: the standby takes over, no second FineTuneJob.
      const pod = await eventually('the trainer pod running', async () => {
        const pods = (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `whisperops.dev/finetunejob=${jobName}` })).items;
        return pods.find((p) => p.status?.phase === 'Running');
      }, 180_000, 1000);
      expect(pod.spec?.nodeName).toMatch(/^a100-proc-/);
      await leader()?.kill('SIGKILL');
      await operators.find((o) => o.running())?.waitFor('Caches synced, controllers running', 30_000);

      const done = await eventually(`FineTuneJob ${jobName} done`, async () => {
        const j = await api.get<FineTuneJob>(FINETUNEJOBS, ns, jobName);
        return j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed' ? j : undefined;
      }, 480_000, 2000);
      expect(done.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '').toBeDefined();
      expect(done.status?.phase).toBe('Succeeded');
      expect(done.status?.result?.modelUri).toBe(`s3://whisperops-models/${dataPrefix}retrains/${jobName}/`);
      expect(await retrainJobs()).toHaveLength(1);

      // The agents' feedback samples are in the store: WAVs and the manifests the trainer reads.
      const keys = await eventually('feedback manifests in the dataset store', async () => {
        const s3 = await s3Client();
        try {
          const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'whisperops-datasets', Prefix: `${dataPrefix}feedback/medical/` }));
          const all = (listed.Contents ?? []).map((o) => o.Key ?? '');
          return all.some((k) => k.endsWith('.jsonl')) ? all : undefined;
        } finally {
          s3.destroy();
        }
      }, 90_000, 2000);
      expect(keys.some((k) => k.endsWith('.wav'))).toBe(true);

      traffic.resume();
      d = await eventually('the retrained model promoted', async () => {
        const x = await get();
        if (x.status?.candidate?.rolledBackGeneration !== undefined) throw new Error(`rolled back: ${x.status.candidate.lastVerdictMessage ?? ''}`);
        return x.status?.stable?.source === `FineTuneJob/${jobName}` ? x : undefined;
      }, 240_000, 1000);
    } finally {
      const report = await traffic.stop();
      expect(failuresOf(report)).toEqual({ failures: 0, statuses: {}, firstErrors: [] });
      process.stdout.write(`closed loop: ${report.requests} requests, ${report.failures} failed; per version ${JSON.stringify(report.perVersion)}\n`);
    }
    expect(d.status?.stable).toMatchObject({ version: expect.stringMatching(/.+/) as unknown as string, source: `FineTuneJob/${NAME}-retrain-1` });
    expect(d.spec.model.version).toBe('tiny-whisper-synth-1.0.0'); // GitOps owns the spec: never rewritten
    // The cooldown holds: still exactly one retrain.
    expect(await retrainJobs()).toHaveLength(1);
    const events = await eventTimeline(api, ns, [{ kind: 'InferenceDeployment', name: NAME }]);
    const reasons = events.map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Deployed', 'ScenarioDegraded', 'RetrainStarted', 'RolloutStarted', 'Promoted']));
    expect(reasons.filter((r) => r === 'RetrainStarted')).toHaveLength(1);
    const t0 = events[0]?.time.getTime() ?? 0;
    process.stdout.write(`timeline:\n${events.map((e) => `  +${Math.round((e.time.getTime() - t0) / 1000)} s ${e.reason}: ${e.note.slice(0, 140)}`).join('\n')}\n`);
  });

  it('a worse model from retraining is rolled back: the stable stays, and the next retrain waits out the cooldown', async () => {
    // Full fine-tuning at a learning rate 100× too high for 6 steps: a genuinely worse model.
    await applyDeployment('harmful', { learningRate: 0.01, maxSteps: 6, method: 'full' }, 2);
    await eventually('harmful served', async () => (cond(await get('harmful'), 'Ready')?.status === 'True' ? true : undefined), 120_000, 1000);
    // Ready says one agent serves it; the traffic below goes to both.
    await eventually('both agents list harmful', async () => ((await allAgentsList(await agentUrls(), 'harmful')) ? true : undefined), 60_000, 500);
    const general = generalReplayCorpus().filter((x) => x.split(' ').length >= 5 && x.split(' ').length <= 10).slice(40, 80);
    const traffic = startTraffic({ urls: agentUrls, model: 'harmful', streams: [{ sentences: trafficMedicalSentences(40), scenario: 'medical', voices: MEDICAL_VOICES }, { sentences: general, scenario: 'general', voices: MEDICAL_VOICES }], concurrency: 2, deadlineMs: 540_000 });
    let d: InferenceDeployment;
    try {
      const started = await eventually('a retrain of harmful', async () => {
        const x = await get('harmful');
        return x.status?.lastRetrain ? x : undefined;
      }, 180_000, 1000);
      const jobName = started.status?.lastRetrain?.fineTuneJob ?? '';
      traffic.pause();
      const finished = await eventually(`FineTuneJob ${jobName} finished`, async () => {
        const j = await api.get<FineTuneJob>(FINETUNEJOBS, ns, jobName);
        return j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed' ? j : undefined;
      }, 480_000, 2000);
      const ready = finished.status?.conditions?.find((c) => c.type === 'Ready');
      expect({ phase: finished.status?.phase, reason: ready?.reason, message: ready?.message }).toMatchObject({ phase: 'Succeeded' });
      traffic.resume();
      d = await eventually('the retrained candidate rolled back', async () => {
        const x = await get('harmful');
        return x.status?.candidate?.rolledBackGeneration !== undefined && x.status.phase !== 'RollingBack' ? x : undefined;
      }, 240_000, 1000);
    } finally {
      const report = await traffic.stop();
      expect(failuresOf(report)).toEqual({ failures: 0, statuses: {}, firstErrors: [] });
    }
    expect(d.status?.stable).toMatchObject({ version: 'tiny-whisper-synth-1.0.0', source: 'spec' });
    expect(d.status?.candidate).toMatchObject({ weight: 0, lastVerdict: 'Failed', source: `FineTuneJob/harmful-retrain-1` });
    expect(d.status?.candidate?.lastVerdictMessage).toMatch(/candidate WER above stable WER \+ maxWerIncrease/);
    expect((await modelSetOf('harmful'))?.candidate).toBeUndefined();
    // Still Degraded, but the cooldown holds: one retrain, and the condition says until when.
    const later = await eventually('the cooldown reported', async () => {
      const x = await get('harmful');
      return /cooldown of 3600 s since retrain harmful-retrain-1: no retrain before /.test(cond(x, 'Retraining')?.message ?? '') ? x : undefined;
    }, 60_000, 1000);
    expect(later.status?.retrains).toBe(1);
    expect(await retrainJobs('harmful')).toHaveLength(1);
    process.stdout.write(`worse retrain rolled back: ${d.status?.candidate?.lastVerdictMessage ?? ''}\n`);
  });
});
