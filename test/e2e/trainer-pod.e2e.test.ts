// The real trainer in a real pod: a batch/v1 Job of the trainer image on the process-backed A100 node
// runs `python -m whisperops_trainer run` (on the CPU: the node advertises nvidia.com/gpu but has
// none) on the smallest FineTuneJob that still does every stage — 4 synthesized finance utterances,
// 1 training step, base and fine-tuned evaluation on 2 held-out utterances, no ONNX export — and its
// result JSON comes back the way the operator reads it: the termination message in the pod status.
// The job file is mounted from a ConfigMap at /etc/whisperops/job, as the operator mounts it; the
// base model and the corpora come from the repository through read-only hostPath volumes.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { join } from 'node:path';
import { parseTrainerResult } from '../../operator/src/finetunejob/trainer-result.js';
import { createTestNamespace, deleteTestNamespace, eventually, kubectl } from '../cluster/index.js';

// A pod start, Python with torch and transformers importing, espeak-ng and one training step on 2 shared cores.
jest.setTimeout(300_000);

const REPO = process.cwd();
const IMAGE = 'ghcr.io/whisperops/trainer:0.1.0';
const JOB_DIR = '/etc/whisperops/job';
const JOB_KEY = 'finetunejob.json';
const UID = '0f1e2d3c-e2e0-4000-8000-000000000001';

let ns = '';
beforeAll(async () => {
  ns = await createTestNamespace('trainer-pod');
});
afterAll(async () => {
  if (ns) await deleteTestNamespace(ns);
});

/** The FineTuneJob document the operator would mount (metadata + spec), smallest real run. */
function jobDocument(name: string, baseModelUri: string): Record<string, unknown> {
  return {
    apiVersion: 'whisperops.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name, namespace: ns, uid: UID, generation: 1 },
    spec: {
      baseModel: { uri: baseModelUri, version: 'tiny-whisper-synth-1.0.0' },
      dataset: {
        scenario: 'finance',
        synthesize: { corpusUri: 'file:///data/domain/finance_corpus.txt', scenario: 'finance', maxUtterances: 4 },
      },
      method: { type: 'freezeEncoder' },
      training: { learningRate: 0.0003, batchSize: 2, maxSteps: 1, seed: 42 },
      export: { onnx: false },
      output: { uri: `file:///output/${name}` },
    },
  };
}

/** A ConfigMap with the job file and a backoffLimit-0 Job of the trainer image on the process A100 node. */
async function createTrainerJob(name: string, baseModelUri: string): Promise<void> {
  const configMap = {
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name: `${name}-spec`, namespace: ns },
    data: { [JOB_KEY]: JSON.stringify(jobDocument(name, baseModelUri)) },
  };
  const job: V1Job = {
    apiVersion: 'batch/v1', kind: 'Job',
    metadata: { name, namespace: ns },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: 600,
      template: {
        metadata: { labels: { app: 'trainer-e2e' } },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          nodeSelector: { type: 'process', 'nvidia.com/gpu.present': 'true' },
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{
            name: 'trainer',
            image: IMAGE,
            imagePullPolicy: 'IfNotPresent',
            env: [
              { name: 'WHISPEROPS_JOB_FILE', value: `${JOB_DIR}/${JOB_KEY}` },
              { name: 'WHISPEROPS_EVAL_MAX', value: '2' },
              { name: 'NPROC_PER_NODE', value: '1' },
              { name: 'NNODES', value: '1' },
              { name: 'NODE_RANK', value: '0' },
              { name: 'HOME', value: '/tmp' },
            ],
            resources: { requests: { 'nvidia.com/gpu': '1' }, limits: { 'nvidia.com/gpu': '1' } },
            volumeMounts: [
              { name: 'job', mountPath: JOB_DIR, readOnly: true },
              { name: 'model', mountPath: '/models/tiny-whisper-synth', readOnly: true },
              { name: 'data', mountPath: '/data', readOnly: true },
              { name: 'output', mountPath: '/output' },
              { name: 'tmp', mountPath: '/tmp' },
              { name: 'dshm', mountPath: '/dev/shm' },
            ],
            terminationMessagePath: '/dev/termination-log',
            terminationMessagePolicy: 'FallbackToLogsOnError',
            securityContext: {
              allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true,
              runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000,
            },
          }],
          volumes: [
            { name: 'job', configMap: { name: `${name}-spec`, items: [{ key: JOB_KEY, path: JOB_KEY }] } },
            { name: 'model', hostPath: { path: join(REPO, 'models', 'tiny-whisper-synth'), type: 'Directory' } },
            { name: 'data', hostPath: { path: join(REPO, 'data'), type: 'Directory' } },
            { name: 'output', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
            { name: 'dshm', emptyDir: { medium: 'Memory' } },
          ],
        },
      },
    },
  };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [configMap, job] }) });
}

async function podsOf(job: string): Promise<V1Pod[]> {
  const out = await kubectl(['get', 'pods', '-n', ns, '-l', `batch.kubernetes.io/job-name=${job}`, '-o', 'json']);
  return (JSON.parse(out) as { items: V1Pod[] }).items;
}

async function jobOf(name: string): Promise<V1Job> {
  return JSON.parse(await kubectl(['get', 'job', name, '-n', ns, '-o', 'json'])) as V1Job;
}

function jobCondition(job: V1Job, type: string): { status: string; reason?: string } | undefined {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

/** Waits for the Job to finish (Complete or Failed), then returns it with its only pod. */
async function finished(name: string, timeoutMs: number): Promise<{ job: V1Job; pod: V1Pod }> {
  const job = await eventually(`Job ${name} finished`, async () => {
    const j = await jobOf(name);
    return jobCondition(j, 'Complete') || jobCondition(j, 'Failed') ? j : undefined;
  }, timeoutMs, 1000);
  const pods = await podsOf(name);
  expect(pods).toHaveLength(1);
  const [pod] = pods;
  if (pod === undefined) throw new Error(`no pod of Job ${name}`);
  return { job, pod };
}

describe('the trainer image in a pod on the process-backed A100 node', () => {
  it('runs the real trainer on a minimal FineTuneJob and returns its result through the termination message', async () => {
    const started = Date.now();
    await createTrainerJob('tiny-ft', 'file:///models/tiny-whisper-synth');
    const { job, pod } = await finished('tiny-ft', 240_000);
    const seconds = (Date.now() - started) / 1000;

    expect(pod.spec?.nodeName).toBe('a100-proc-0');
    expect(pod.status?.podIP).toMatch(/^127\./);
    expect(pod.spec?.containers[0]?.resources?.requests?.['nvidia.com/gpu']).toBe('1');
    const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated;
    expect(terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(pod.status?.phase).toBe('Succeeded');
    expect(jobCondition(job, 'Complete')).toBeDefined();
    expect(job.status?.succeeded).toBe(1);

    // The termination message is the trainer's result, and the operator's own parser accepts it.
    const message = terminated?.message ?? '';
    expect(Buffer.byteLength(message)).toBeLessThanOrEqual(4096);
    const doc = JSON.parse(message) as Record<string, unknown>;
    expect(Object.keys(doc).sort()).toEqual(['baseWer', 'durationSeconds', 'modelUri', 'parentVersion', 'quantization', 'sha256', 'totalParams', 'trainableParams', 'version', 'wer']);
    const verdict = parseTrainerResult(message);
    if (!verdict.ok) throw new Error(`the operator refuses the trainer's result: ${verdict.message}`);
    expect(verdict.result).toMatchObject({
      modelUri: 'file:///output/tiny-ft', version: 'tiny-ft-0f1e2d3c', parentVersion: 'tiny-whisper-synth-1.0.0',
      quantization: 'none', wer: { finance: expect.any(Number) }, baseWer: { finance: expect.any(Number) },
      werSummary: expect.stringMatching(/^finance=\d/),
    });
    expect(verdict.result.sha256).toMatch(/^[a-f0-9]{64}$/);
    expect(verdict.result.trainableParams).toBeGreaterThan(0);
    expect(verdict.result.trainableParams).toBeLessThan(verdict.result.totalParams ?? 0);
    expect(verdict.result.durationSeconds).toBeGreaterThan(0);
    expect(verdict.result.durationSeconds).toBeLessThan(seconds);

    // `kubectl logs`: every stdout line of the trainer is a JSON log record, through all the stages.
    const logs = await kubectl(['logs', '-n', ns, pod.metadata?.name ?? '', '-c', 'trainer']);
    const records = logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; stage: string; level: string; [k: string]: unknown });
    expect(records.length).toBeGreaterThan(5);
    expect(records.every((r) => typeof r.ts === 'string' && typeof r.level === 'string' && typeof r.stage === 'string')).toBe(true);
    expect(records.find((r) => r.msg === 'Job loaded')).toMatchObject({ name: 'tiny-ft', namespace: ns, generation: 1 });
    expect(records.find((r) => r.msg === 'Trained')).toMatchObject({ stage: 'train', steps: 1 });
    expect(records.find((r) => r.msg === 'Done')).toMatchObject({ modelUri: 'file:///output/tiny-ft', version: 'tiny-ft-0f1e2d3c' });
  });

  it('exits 2 at preflight on a base model that is not there, says why in the termination message, and the Job fails without a retry', async () => {
    await createTrainerJob('bad-base', 'file:///models/does-not-exist');
    const { job, pod } = await finished('bad-base', 180_000);

    const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated;
    expect(terminated).toMatchObject({ exitCode: 2, reason: 'Error' });
    expect(pod.status?.phase).toBe('Failed');
    const failure = JSON.parse(terminated?.message ?? '') as { error: { reason: string; message: string } };
    expect(failure.error.reason).toBe('PreflightFailed');
    expect(failure.error.message).toBe('preflight: spec.baseModel.uri file:///models/does-not-exist: not found');

    expect(jobCondition(job, 'Failed')).toMatchObject({ reason: 'BackoffLimitExceeded' });
    expect(job.status?.failed).toBe(1);
    expect(job.status?.succeeded ?? 0).toBe(0);
    // backoffLimit 0: one pod, never a second attempt
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await podsOf('bad-base')).toHaveLength(1);
    const logs = await kubectl(['logs', '-n', ns, pod.metadata?.name ?? '']);
    expect(logs).toMatch(/"level": ?"error".*"stage": ?"preflight".*"reason": ?"PreflightFailed"/);
  });
});
