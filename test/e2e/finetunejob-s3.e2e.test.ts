// A FineTuneJob delivers a model through the cluster's S3 store: the real operator (as its own
// ServiceAccount) makes the Job, the real trainer image runs in it on the process-backed A100 node
// (on the CPU: the smallest real run — 4 synthesized utterances, 1 step, no ONNX export), reads the
// base model and its corpus from S3 with the keys of the Secret named in spec.artifactCredentials,
// writes the artifact to S3 (every file, then model-manifest.json), and its result lands in
// status.result. A store the trainer cannot use — bad keys, or no store at the endpoint — fails the
// run at preflight: exit 2, phase Failed, no retry, the reason in status. And the shipped examples'
// URIs all pass the trainer's preflight against this cluster's store, with the Secret of their namespace.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { KubernetesObject, V1Job, V1Pod, V1Secret } from '@kubernetes/client-node';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { FineTuneJobSpec } from '../../api/generated/types.js';
import type { StoredFineTuneJob } from '../../operator/src/finetunejob/desired.js';
import { FINETUNEJOBS } from '../../operator/src/finetunejob/reconciler.js';
import { JOBS, PODS } from '../../operator/src/kube/client.js';
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, deleteFineTuneJobs, operatorServiceAccount, REPO_ROOT, startOperator } from '../../operator/testing/operator-process.js';
import { applyCrds, createTestNamespace, deleteTestNamespace, eventually, kubectl, objectStore, s3Client } from '../cluster/index.js';

// Pod start, torch + transformers imports, espeak-ng, a 31 MB model down and up, one step, on 2 shared cores.
jest.setTimeout(480_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const IMAGE = 'ghcr.io/whisperops/trainer:0.1.0';
const BASE_MANIFEST = readFileSync(join(REPO_ROOT, 'models', 'tiny-whisper-synth', 'model-manifest.json'));
const BASE_SHA = createHash('sha256').update(BASE_MANIFEST).digest('hex');

let ns = '';
let operator: OperatorProcess | undefined;
let cleanupRbac: () => Promise<void> = () => Promise.resolve();
let s3: S3Client | undefined;
let store: Awaited<ReturnType<typeof objectStore>>;
let runPrefix = '';

function client(): S3Client {
  if (!s3) throw new Error('no S3 client');
  return s3;
}

async function secret(name: string, data: Record<string, string>): Promise<void> {
  const body: V1Secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, type: 'Opaque', stringData: data };
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(body) });
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** The smallest real run, everything on S3, on the process-backed A100 node. */
/** The spec as written (the API server fills in the defaults). */
function smallJob(name: string, secretName: string): KubernetesObject & { spec: Record<string, unknown> } {
  return {
    apiVersion: 'whisperops.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name, namespace: ns },
    spec: {
      baseModel: { uri: store.embeddedModelUri, version: 'tiny-whisper-synth-1.0.0', sha256: BASE_SHA },
      artifactCredentials: { secretRef: { name: secretName } },
      dataset: {
        scenario: 'finance',
        // 6 sentences: 1 held out as the finance evaluation set, 4 of the other 5 spoken for training
        synthesize: { corpusUri: `s3://${store.buckets.datasets}/${runPrefix}finance-6.txt`, scenario: 'finance', maxUtterances: 4 },
      },
      method: { type: 'freezeEncoder' },
      training: { learningRate: 0.0003, batchSize: 2, maxSteps: 1, seed: 42 },
      export: { onnx: false },
      resources: { gpusPerNode: 1, nodes: 1, gpuProducts: ['NVIDIA-A100-SXM4-80GB'], nodeSelector: { type: 'process' } },
      output: { uri: `s3://${store.buckets.models}/${runPrefix}${name}/` },
      image: IMAGE,
      backoffLimit: 2,
    },
  };
}

async function finished(name: string, timeoutMs: number): Promise<StoredFineTuneJob> {
  return eventually(`FineTuneJob ${name} finished`, async () => {
    const f = await api.get<StoredFineTuneJob>(FINETUNEJOBS, ns, name);
    return f.status?.phase === 'Succeeded' || f.status?.phase === 'Failed' ? f : undefined;
  }, timeoutMs, 1000);
}

async function podsOf(ftj: string): Promise<V1Pod[]> {
  const jobs = (await api.list<V1Job>(JOBS, { namespace: ns, labelSelector: `whisperops.dev/finetunejob=${ftj}` })).items;
  const job = jobs[0]?.metadata?.name ?? '';
  return (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `batch.kubernetes.io/job-name=${job}` })).items;
}

async function keys(prefix: string): Promise<{ Key: string; Size: number; LastModified: Date }[]> {
  const out = await client().send(new ListObjectsV2Command({ Bucket: store.buckets.models, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => ({ Key: o.Key ?? '', Size: o.Size ?? 0, LastModified: o.LastModified ?? new Date(0) }));
}

function readyMessage(f: StoredFineTuneJob): string {
  return f.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '';
}

beforeAll(async () => {
  await applyCrds();
  store = await objectStore();
  s3 = await s3Client();
  ns = await createTestNamespace('ftj-s3');
  runPrefix = `e2e/${ns}/`;
  const corpus = readFileSync(join(REPO_ROOT, 'data', 'domain', 'finance_corpus.txt'), 'utf8').split('\n').slice(0, 6).join('\n') + '\n';
  await client().send(new PutObjectCommand({ Bucket: store.buckets.datasets, Key: `${runPrefix}finance-6.txt`, Body: corpus }));
  const good = {
    AWS_ACCESS_KEY_ID: store.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: store.credentials.secretAccessKey,
    AWS_REGION: store.region, AWS_ENDPOINT_URL: store.endpoint,
  };
  await secret('store', good);
  await secret('bad-keys', { ...good, AWS_SECRET_ACCESS_KEY: 'not-the-secret-key-of-this-store-at-all0' });
  await secret('no-store', { ...good, AWS_ENDPOINT_URL: `http://127.0.0.1:${await closedPort()}` });
  let kubeconfig = '';
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
  operator = startOperator({ kubeconfig, namespace: ns, identity: 'ftj-s3-e2e', leaseName: LEASE });
  await operator.waitFor('Caches synced, controllers running', 60_000);
});

afterAll(async () => {
  if (ns) await deleteFineTuneJobs(ns);
  await operator?.kill('SIGTERM');
  await cleanupRbac();
  if (ns) await deleteTestNamespace(ns);
  if (s3 && runPrefix) {
    for (const bucket of [store.buckets.models, store.buckets.datasets]) {
      const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: runPrefix }));
      const objects = (list.Contents ?? []).map((o) => ({ Key: o.Key ?? '' }));
      if (objects.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
    }
  }
  s3?.destroy();
  await api.close();
});

describe('FineTuneJob with S3 storage (real operator, real trainer pod on the process-backed A100 node)', () => {
  it('trains from S3 and delivers the model to S3, manifest last; bad keys or no store fail at preflight, not retried', async () => {
    const started = Date.now();
    // All three at once: the two that fail do so in seconds, beside the one that trains.
    for (const [name, sec] of [['tiny-s3', 'store'], ['bad-keys', 'bad-keys'], ['no-store', 'no-store']] as const) {
      await kubectl(['apply', '-f', '-'], { input: JSON.stringify(smallJob(name, sec)) });
    }

    // --- bad credentials: exit 2 at preflight, Failed, one attempt, the reason in status
    const bad = await finished('bad-keys', 240_000);
    expect(bad.status).toMatchObject({ phase: 'Failed', attempts: 1, failedAttempts: 1 });
    expect(bad.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'InvalidInput' });
    expect(readyMessage(bad)).toContain(`trainer exited with code 2 (invalid input): PreflightFailed: preflight: spec.baseModel.uri ${store.embeddedModelUri}: access denied: SignatureDoesNotMatch`);
    expect(readyMessage(bad)).toContain(`spec.output.uri s3://${store.buckets.models}/${runPrefix}bad-keys/: not writable: access denied`);
    expect(readyMessage(bad)).not.toContain(store.credentials.secretAccessKey);

    // --- no store at the endpoint: the same, saying so
    const gone = await finished('no-store', 240_000);
    expect(gone.status).toMatchObject({ phase: 'Failed', attempts: 1, failedAttempts: 1 });
    expect(readyMessage(gone)).toMatch(/PreflightFailed: preflight: spec\.baseModel\.uri s3:\/\/\S+: object store unreachable at http:\/\/127\.0\.0\.1:\d+ \(EndpointConnectionError\)/);

    // --- the real run
    const done = await finished('tiny-s3', 420_000);
    const wall = (Date.now() - started) / 1000;
    expect([done.status?.phase, readyMessage(done)]).toEqual(['Succeeded', expect.any(String)]);
    const [pod, ...morePods] = await podsOf('tiny-s3');
    expect(morePods).toEqual([]);
    expect(pod?.spec?.nodeName).toBe('a100-proc-0');
    expect(pod?.spec?.containers[0]?.envFrom).toEqual([{ secretRef: { name: 'store' } }]);
    const outPrefix = `${runPrefix}tiny-s3/`;
    const result = done.status?.result;
    expect(result).toMatchObject({
      modelUri: `s3://${store.buckets.models}/${outPrefix}`, version: `tiny-s3-${done.metadata.uid.replace(/-/g, '').slice(0, 8)}`,
      parentVersion: 'tiny-whisper-synth-1.0.0', quantization: 'none', wer: { finance: expect.any(Number) }, baseWer: { finance: expect.any(Number) },
    });

    // The artifact in the store: the manifest's sha256 is the result's, every file it lists is there with its size, and it was written last.
    const manifestObj = await client().send(new GetObjectCommand({ Bucket: store.buckets.models, Key: `${outPrefix}model-manifest.json` }));
    const manifestBytes = Buffer.from(await manifestObj.Body?.transformToByteArray() ?? new Uint8Array());
    expect(createHash('sha256').update(manifestBytes).digest('hex')).toBe(result?.sha256);
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as { version: string; parentVersion: string; files: Record<string, { sha256: string; bytes: number }> };
    expect(manifest.version).toBe(result?.version);
    const objects = await keys(outPrefix);
    const byKey = new Map(objects.map((o) => [o.Key.slice(outPrefix.length), o]));
    expect(Object.keys(manifest.files)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));
    for (const [rel, meta] of Object.entries(manifest.files)) expect([rel, byKey.get(rel)?.Size]).toEqual([rel, meta.bytes]);
    expect([...byKey.keys()].sort()).toEqual([...Object.keys(manifest.files), 'model-manifest.json'].sort()); // no probe left behind
    const manifestTime = byKey.get('model-manifest.json')?.LastModified.getTime() ?? 0;
    for (const o of objects) expect(o.LastModified.getTime()).toBeLessThanOrEqual(manifestTime);
    const safetensors = await client().send(new HeadObjectCommand({ Bucket: store.buckets.models, Key: `${outPrefix}model.safetensors` }));
    expect(safetensors.ContentLength).toBe(manifest.files['model.safetensors']?.bytes);

    // The trainer's log: preflight, base model downloaded, published — in that order, with sizes and times.
    const logs = (await kubectl(['logs', '-n', ns, pod?.metadata?.name ?? '', '-c', 'trainer'])).split('\n')
      .filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; [k: string]: unknown });
    const at = (msg: string) => logs.findIndex((l) => l.msg === msg);
    expect(at('Preflight passed')).toBeGreaterThanOrEqual(0);
    expect(at('Preflight passed')).toBeLessThan(at('Downloaded base model'));
    expect(at('Downloaded base model')).toBeLessThan(at('Trained'));
    expect(at('Trained')).toBeLessThan(at('Published model'));
    const down = logs[at('Downloaded base model')];
    const up = logs[at('Published model')];
    const term = pod?.status?.containerStatuses?.[0]?.state?.terminated;
    const podSeconds = term?.startedAt && term.finishedAt ? (new Date(term.finishedAt).getTime() - new Date(term.startedAt).getTime()) / 1000 : NaN;
    process.stderr.write(`[finetunejob-s3] created → Succeeded ${wall.toFixed(1)} s; trainer container ${podSeconds} s; ` +
      `trainer durationSeconds ${String(result?.durationSeconds)}; base model down ${String(down?.bytes)} B in ${String(down?.seconds)} s; ` +
      `artifact up ${String(up?.bytes)} B in ${String(up?.seconds)} s; preflight failures after ` +
      `${((new Date(bad.status?.completionTime ?? 0).getTime() - new Date(bad.status?.startTime ?? 0).getTime()) / 1000).toFixed(0)} s / ` +
      `${((new Date(gone.status?.completionTime ?? 0).getTime() - new Date(gone.status?.startTime ?? 0).getTime()) / 1000).toFixed(0)} s\n`);

    // Never retried, though backoffLimit allows 2 more attempts.
    expect((await podsOf('bad-keys')).length).toBe(1);
    expect((await podsOf('no-store')).length).toBe(1);
  });

  it('writes the model to a PersistentVolumeClaim named by pvc:// (mounted read-write), inputs from a read-only claim', async () => {
    for (const claim of ['ftj-in', 'ftj-out']) {
      await kubectl(['apply', '-f', '-'], { input: JSON.stringify({
        apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: claim, namespace: ns },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      }) });
    }
    const job = smallJob('tiny-pvc', 'store');
    // an empty folder of feedback manifests on the input claim (no samples: synthesis supplies them), the model to the output claim
    job.spec.dataset = { ...(job.spec.dataset as Record<string, unknown>), uri: 'pvc://ftj-in/' };
    job.spec.output = { uri: 'pvc://ftj-out/runs/tiny-pvc' };
    await kubectl(['apply', '-f', '-'], { input: JSON.stringify(job) });
    const done = await finished('tiny-pvc', 420_000);
    expect([done.status?.phase, readyMessage(done)]).toEqual(['Succeeded', expect.any(String)]);
    expect(done.status?.result?.modelUri).toBe('pvc://ftj-out/runs/tiny-pvc');

    const [pod] = await podsOf('tiny-pvc');
    expect(pod?.spec?.volumes?.filter((v) => v.persistentVolumeClaim)).toEqual([
      { name: 'pvc-0', persistentVolumeClaim: { claimName: 'ftj-in', readOnly: true } },
      { name: 'pvc-1', persistentVolumeClaim: { claimName: 'ftj-out' } },
    ]);
    expect(pod?.spec?.containers[0]?.volumeMounts?.filter((m) => m.name.startsWith('pvc-'))).toEqual([
      { name: 'pvc-0', mountPath: '/mnt/whisperops/pvc/ftj-in', readOnly: true },
      { name: 'pvc-1', mountPath: '/mnt/whisperops/pvc/ftj-out' },
    ]);
    // The claim's volume (a hostPath PV of the local provisioner) holds the artifact, renamed into place.
    const pvName = (await kubectl(['get', 'pvc', 'ftj-out', '-n', ns, '-o', 'jsonpath={.spec.volumeName}'])).trim();
    const hostDir = (await kubectl(['get', 'pv', pvName, '-o', 'jsonpath={.spec.hostPath.path}'])).trim();
    const out = join(hostDir, 'runs', 'tiny-pvc');
    const manifestBytes = readFileSync(join(out, 'model-manifest.json'));
    expect(createHash('sha256').update(manifestBytes).digest('hex')).toBe(done.status?.result?.sha256);
    const files = (JSON.parse(manifestBytes.toString('utf8')) as { files: Record<string, { sha256: string }> }).files;
    for (const [rel, meta] of Object.entries(files)) {
      expect([rel, createHash('sha256').update(readFileSync(join(out, rel))).digest('hex')]).toEqual([rel, meta.sha256]);
    }
    expect(readdirSync(join(hostDir, 'runs')).sort()).toEqual(['tiny-pvc']); // no .partial or .old left
    const logs = await kubectl(['logs', '-n', ns, pod?.metadata?.name ?? '', '-c', 'trainer']);
    expect(logs).toMatch(/"msg": "No manifests under the dataset folder".*"uri": "pvc:\/\/ftj-in\/"/);
  });

  it('the shipped FineTuneJob examples pass the trainer\'s preflight against this store, with the Secret of their namespace', async () => {
    const secretDoc = JSON.parse(await kubectl(['get', 'secret', 'whisperops-s3', '-n', 'speech', '-o', 'json'])) as V1Secret;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(secretDoc.data ?? {})) env[k] = Buffer.from(v, 'base64').toString('utf8');
    expect(env.AWS_ENDPOINT_URL).toBe(store.endpoint);
    const venv = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'setup', 'python.sh'), '--print'], { encoding: 'utf8' }).stdout.trim();
    const dir = mkdtempSync(join(tmpdir(), 'ftj-examples-'));
    try {
      for (const file of ['finetunejob-finance-lora.yaml', 'finetunejob-medical-freeze-encoder.yaml']) {
        const doc = parseYaml(readFileSync(join(REPO_ROOT, 'examples', file), 'utf8')) as KubernetesObject & { spec: FineTuneJobSpec };
        expect(doc.spec.artifactCredentials?.secretRef.name).toBe('whisperops-s3');
        const jobFile = join(dir, `${file}.json`);
        writeFileSync(jobFile, JSON.stringify({ ...doc, metadata: { ...doc.metadata, uid: '00000000-0000-4000-8000-000000000000', generation: 1 } }));
        const p = spawnSync(join(venv, 'bin', 'python'), ['-m', 'whisperops_trainer', 'preflight', '--job', jobFile], {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, PYTHONPATH: join(REPO_ROOT, 'trainer-image'), WHISPEROPS_CRD_DIR: join(REPO_ROOT, 'crds'), ...env },
          timeout: 120_000,
        });
        expect([file, p.status, p.stderr.trim().split('\n').slice(-3).join('\n')]).toEqual([file, 0, '']);
        expect(p.stdout).toContain('"msg": "Preflight passed"');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The corpora the examples read were uploaded by the cluster's object-store add-on.
    const corpus = await client().send(new HeadObjectCommand({ Bucket: store.buckets.datasets, Key: 'corpora/domain/finance_corpus.txt' }));
    expect(corpus.ContentLength).toBe(readFileSync(join(REPO_ROOT, 'data', 'domain', 'finance_corpus.txt')).length);
  });
});
