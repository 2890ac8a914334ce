// Feedback becomes training data, against the local cluster's REAL S3 store (versitygw):
//   1. the agent's dataset writer (edge-agent/src/dataset) puts samples under s3://whisperops-datasets/
//      e2e-<random>/ with the credentials of the store's Secret, as an agent's environment holds them;
//      read back with a plain S3 client AND with the real trainer's reader (read_manifests of the
//      folder URI, every *.jsonl under it, audio relative to each manifest), WAVs byte for byte;
//      a store that refuses is retried, then counted, and nothing is listed;
//   2. a real EdgePool with spec.datasetStore: the operator runs as a local process, its agent runs on a
//      process-backed Jetson node with the pool's Secret as environment; transcriptions + feedback to
//      the agent, and on the agent's SIGTERM (scaled to 0) its samples and manifests are in the store.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { V1Deployment, V1Pod, V1Secret } from '@kubernetes/client-node';
import { decodeWav } from '../../edge-agent/src/audio/wav.js';
import { datasetWav } from '../../edge-agent/src/dataset/layout.js';
import type { SampleInfo } from '../../edge-agent/src/dataset/layout.js';
import { openSampleStore } from '../../edge-agent/src/dataset/store.js';
import { DatasetWriter, DEFAULT_WRITER_TUNING } from '../../edge-agent/src/dataset/writer.js';
import type { DatasetEvents, SampleResult } from '../../edge-agent/src/dataset/writer.js';
import { embeddedRef, speak, testSentences } from '../../edge-agent/src/testing/speech.js';
import type { StoredEdgePool } from '../../operator/src/edgepool/desired.js';
import { EDGEPOOL_LABEL } from '../../operator/src/edgepool/names.js';
import { DEPLOYMENTS, EDGEPOOLS } from '../../operator/src/edgepool/reconciler.js';
import { PODS } from '../../operator/src/kube/client.js';
import { adminClient, REPO_ROOT } from '../../operator/testing/operator-process.js';
import { applyCrds, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, kubectl, objectStore, s3Client } from '../cluster/index.js';
import { startPoolOperator } from './pool-operator.js';
import type { PoolOperator } from './pool-operator.js';

jest.setTimeout(240_000);

const run = promisify(execFile);
const BUCKET = 'whisperops-datasets';
const RUN = `e2e-${randomBytes(4).toString('hex')}`;
const SECRET = 'datasets-s3';
const PORT = 8000;
const tolerations = [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }];

let s3: S3Client;
/** The store Secret's data: what an agent's environment holds (envFrom). */
let env: Record<string, string>;
const sentences = testSentences();

class Recorder implements DatasetEvents {
  readonly counts: Record<SampleResult, number> = { written: 0, dropped_full: 0, dropped_error: 0, expired: 0 };
  bytes = 0;
  retries = 0;
  samples(result: SampleResult, _scenario: string, n: number): void {
    this.counts[result] += n;
  }
  bytesWritten(n: number): void {
    this.bytes += n;
  }
  queue(): void {}
  batch(): void {}
  retry(): void {
    this.retries++;
  }
}

async function keys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
    out.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
    token = page.NextContinuationToken;
  } while (token);
  return out.sort();
}

async function object(key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

/** Every manifest line under `prefix`, with the key its `audio` resolves to (relative to the manifest). */
async function manifestLines(prefix: string): Promise<{ manifest: string; wavKey: string; line: Record<string, unknown> }[]> {
  const out: { manifest: string; wavKey: string; line: Record<string, unknown> }[] = [];
  for (const k of (await keys(prefix)).filter((x) => x.endsWith('.jsonl'))) {
    for (const l of (await object(k)).toString('utf8').trim().split('\n')) {
      const line = JSON.parse(l) as Record<string, unknown>;
      out.push({ manifest: k, wavKey: k.slice(0, k.lastIndexOf('/') + 1) + String(line.audio), line });
    }
  }
  return out;
}

interface TrainerSample { audio: string; text: string; scenario: string; seconds: number }

/** The real trainer reads the folder URI: read_manifests + each sample's audio decoded (16 kHz). */
async function trainerRead(uri: string): Promise<TrainerSample[]> {
  const venv = (await run('bash', [join(REPO_ROOT, 'scripts', 'setup', 'python.sh'), '--print'], { cwd: REPO_ROOT })).stdout.trim().split('\n').pop() ?? '';
  const code = [
    'import json, sys',
    'from whisperops_trainer.data import read_manifests',
    'from whisperops_trainer.uri import read_bytes',
    'from whisperops_trainer.audio import decode_wav_bytes',
    'out = [{"audio": s.audio, "text": s.text, "scenario": s.scenario, "seconds": len(decode_wav_bytes(read_bytes(s.audio))) / 16000} for s in read_manifests(sys.argv[1])]',
    'print(json.dumps(out))',
  ].join('\n');
  const { stdout } = await run(join(venv, 'bin', 'python'), ['-c', code, uri], {
    cwd: REPO_ROOT, env: { ...process.env, ...env, PYTHONPATH: join(REPO_ROOT, 'trainer-image') }, maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as TrainerSample[];
}

beforeAll(async () => {
  const store = await objectStore();
  s3 = await s3Client();
  const secret = JSON.parse(await kubectl(['get', 'secret', '-n', store.secret.namespace, store.secret.name, '-o', 'json'])) as V1Secret;
  env = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  expect(new URL(env.AWS_ENDPOINT_URL ?? '').hostname).toBe('127.0.0.1');
});

afterAll(async () => {
  // Everything this run wrote goes.
  const all = await keys(`${RUN}/`);
  for (let i = 0; i < all.length; i += 500) {
    await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: all.slice(i, i + 500).map((Key) => ({ Key })) } }));
  }
  s3.destroy();
});

describe('the agent\'s dataset writer against the cluster\'s S3 store', () => {
  it('writes every sample: WAVs byte for byte, manifests listing exactly them, read by the real trainer', async () => {
    const prefix = `${RUN}/writer/`;
    const recorder = new Recorder();
    const writer = new DatasetWriter(openSampleStore(`s3://${BUCKET}/${prefix}`, env), {
      agent: 'e2e-agent-0', pool: 'e2e', retentionSeconds: 600, maxQueueBytes: 64 * 1024 * 1024, flushSamples: 10, flushSeconds: 60, concurrency: 4, ...DEFAULT_WRITER_TUNING,
    }, recorder);
    // 40 samples of real speech (12 distinct clips, ~2–4 s at 22.05 kHz), two scenarios.
    const clips = sentences.slice(0, 12).map((s) => {
      const raw = speak(s);
      return { text: s, wav: datasetWav(raw, decodeWav(raw)) };
    });
    const offered: { info: SampleInfo; wav: Uint8Array }[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 40; i++) {
      const clip = clips[i % clips.length] ?? { text: '', wav: new Uint8Array() };
      const info: SampleInfo = {
        requestId: `req_${randomBytes(16).toString('hex')}`, reference: clip.text, scenario: i % 4 === 0 ? 'general' : 'finance', deployment: 'asr',
        modelVersion: 'tiny-whisper-synth-1.0.0', role: 'stable', hypothesis: '', time: Date.now(), audioSeconds: 0,
      };
      expect(writer.offer(info, clip.wav)).toBe('queued');
      offered.push({ info, wav: clip.wav });
    }
    await writer.close(60_000, 10_000);
    const seconds = (Date.now() - t0) / 1000;
    const wavBytes = offered.reduce((n, o) => n + o.wav.byteLength, 0);
    process.stderr.write(`[dataset-store] writer → S3: 40 samples, ${(wavBytes / 1e6).toFixed(2)} MB of WAV (${(recorder.bytes / 1e6).toFixed(2)} MB with the manifests) in ${seconds.toFixed(2)} s: ${(40 / seconds).toFixed(1)} samples/s, ${(recorder.bytes / seconds / 1e6).toFixed(2)} MB/s (4 uploads in flight, local versitygw, 2 shared cores)\n`);
    expect(recorder.counts).toEqual({ written: 40, dropped_full: 0, dropped_error: 0, expired: 0 });

    const day = new Date().toISOString().slice(0, 10);
    const all = await keys(prefix);
    expect(all.filter((k) => k.endsWith('.wav'))).toEqual(offered.map((o) => `${prefix}${o.info.scenario}/${day}/e2e-agent-0-${o.info.requestId}.wav`).sort());
    for (const m of all.filter((k) => k.endsWith('.jsonl'))) expect(m).toMatch(new RegExp(`^${prefix}(finance|general)/${day}/manifest-e2e-agent-0-\\d{8}T\\d{6}Z-\\d{6}\\.jsonl$`));
    const lines = await manifestLines(prefix);
    expect(lines.map((l) => l.line.requestId).sort()).toEqual(offered.map((o) => o.info.requestId).sort());
    for (const { wavKey, line } of lines) {
      const o = offered.find((x) => x.info.requestId === line.requestId);
      expect(line).toMatchObject({ text: o?.info.reference, scenario: o?.info.scenario, pool: 'e2e', agent: 'e2e-agent-0', modelVersion: 'tiny-whisper-synth-1.0.0' });
      expect((await object(wavKey)).equals(Buffer.from(o?.wav ?? new Uint8Array()))).toBe(true);
    }
    expect(recorder.bytes).toBe(wavBytes + (await Promise.all(all.filter((k) => k.endsWith('.jsonl')).map(object))).reduce((n, b) => n + b.length, 0));

    // The trainer, as a FineTuneJob would read the store: the folder URI, with the same Secret.
    const read = await trainerRead(`s3://${BUCKET}/${prefix}`);
    expect(read).toHaveLength(40);
    expect(read.map((s) => s.text).sort()).toEqual(offered.map((o) => o.info.reference).sort());
    expect(new Set(read.map((s) => s.scenario))).toEqual(new Set(['finance', 'general']));
    for (const s of read) {
      expect(s.audio).toMatch(new RegExp(`^s3://${BUCKET}/${prefix}(finance|general)/${day}/e2e-agent-0-req_[0-9a-f]{32}\\.wav$`));
      expect(s.seconds).toBeGreaterThan(1);
    }
  });

  it('a store that refuses (a wrong secret key): each put retried, then the samples dropped and counted; nothing listed, no secret in a log', async () => {
    const prefix = `${RUN}/refused/`;
    const recorder = new Recorder();
    const logged: string[] = [];
    const log = { info: (o: object, m: string) => logged.push(`${m} ${JSON.stringify(o)}`), warn: (o: object, m: string) => logged.push(`${m} ${JSON.stringify(o)}`) };
    const wrong = { ...env, AWS_SECRET_ACCESS_KEY: `wrong-${randomBytes(8).toString('hex')}` };
    const writer = new DatasetWriter(openSampleStore(`s3://${BUCKET}/${prefix}`, wrong), {
      agent: 'e2e-agent-1', pool: 'e2e', retentionSeconds: 600, maxQueueBytes: 1024 * 1024, flushSamples: 10, flushSeconds: 60, concurrency: 2,
      maxAttempts: 2, backoff: { initialMs: 50, maxMs: 200 }, log,
    }, recorder);
    for (let i = 0; i < 3; i++) {
      writer.offer({ requestId: `req_${i}`, reference: 'x', scenario: 'finance', deployment: 'asr', modelVersion: 'v', role: 'stable', hypothesis: '', time: Date.now(), audioSeconds: 0 }, new Uint8Array(100));
    }
    await writer.close(30_000, 5000);
    expect(recorder.counts).toEqual({ written: 0, dropped_full: 0, dropped_error: 3, expired: 0 });
    expect(recorder.retries).toBe(3);
    expect(await keys(prefix)).toEqual([]);
    expect(logged.filter((l) => l.startsWith('Dropped a dataset sample'))).toHaveLength(3);
    expect(logged.join('\n')).toMatch(/PUT s3:\/\/whisperops-datasets\/e2e-[0-9a-f]+\/refused\/finance\/[\d-]+\/e2e-agent-1-req_0\.wav: SignatureDoesNotMatch \(HTTP 403\)/);
    expect(logged.join('\n')).not.toContain(wrong.AWS_SECRET_ACCESS_KEY);
    expect(logged.join('\n')).not.toContain(env.AWS_SECRET_ACCESS_KEY);
  });
});

describe('an EdgePool with spec.datasetStore: a real agent on a process-backed Jetson writes feedback samples to S3', () => {
  const api = adminClient();
  let ns = '';
  let operator: PoolOperator | undefined;
  const pool = (name: string) => api.get<StoredEdgePool>(EDGEPOOLS, ns, name);
  const cond = (p: StoredEdgePool, type: string) => p.status?.conditions?.find((c) => c.type === type);
  const until = (name: string, what: string, ok: (p: StoredEdgePool) => boolean, ms = 120_000) =>
    eventually(`EdgePool ${name}: ${what}`, async () => {
      const p = await pool(name);
      return ok(p) ? p : undefined;
    }, ms, 500);
  const agentPods = async (name: string) => (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `${EDGEPOOL_LABEL}=${name}` })).items;

  beforeAll(async () => {
    await applyCrds();
    ns = await createTestNamespace('dstore');
    const store = await objectStore();
    const source = JSON.parse(await kubectl(['get', 'secret', '-n', store.secret.namespace, store.secret.name, '-o', 'json'])) as V1Secret;
    await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: SECRET, namespace: ns }, data: source.data }) });
    operator = await startPoolOperator(ns, 'dstore-e2e', 'whisperops-operator');
  });

  afterAll(async () => {
    await operator?.stop();
    if (ns) await deleteTestNamespace(ns);
    await api.close();
  });

  it('the agent gets the store, feedback is answered at once (queued), and on SIGTERM its samples and manifest are in the store, as the trainer reads them', async () => {
    const prefix = `${RUN}/pool/`;
    const ref = embeddedRef();
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'samples', namespace: ns },
        spec: {
          nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'process' }, tolerations,
          agent: { threads: 1, port: PORT }, autoscaling: { mode: 'off' }, replicas: 1,
          artifactCredentials: { secretRef: { name: SECRET } },
          datasetStore: { uri: `s3://${BUCKET}/${prefix}`, retentionSeconds: 600, maxBytes: 16 * 1024 * 1024 },
        },
      }),
    });
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name: 'tiny', namespace: ns },
        spec: { edgePoolRef: { name: 'samples' }, model: { uri: 'file:///app/models/tiny-whisper-synth', version: ref.version, sha256: ref.sha256 }, monitoring: { scenarios: [{ name: 'finance', maxWer: 0.5 }, { name: 'general', maxWer: 0.5 }] } },
      }),
    });
    const p = await until('samples', 'agent ready, store handed over', (x) => x.status?.readyReplicas === 1 && cond(x, 'DatasetStoreSupported')?.status === 'True', 180_000);
    expect(cond(p, 'DatasetStoreSupported')).toMatchObject({
      reason: 'AgentsWriteSamples', message: `agents write feedback samples to s3://${BUCKET}/${prefix}<scenario>/<yyyy-mm-dd>/ (WAVs and manifest-*.jsonl), with the artifactCredentials Secret ${SECRET}`,
    });
    const dep = await api.get<V1Deployment>(DEPLOYMENTS, ns, 'samples-agent');
    const envNames = (dep.spec?.template.spec?.containers[0]?.env ?? []).map((e) => e.name);
    expect(envNames).toEqual(expect.arrayContaining(['WHISPEROPS_AGENT_DATASET_STORE_URI', 'WHISPEROPS_AGENT_DATASET_RETENTION_SECONDS', 'WHISPEROPS_AGENT_DATASET_MAX_BYTES', 'POD_NAME']));
    const pod = (await agentPods('samples')).find((x) => x.status?.podIP);
    const ip = pod?.status?.podIP ?? '';
    const podName = pod?.metadata?.name ?? '';
    if (!/^127\./.test(ip)) throw new Error(`refusing to dial ${ip}: not a loopback pod IP`);
    const url = `http://${ip}:${PORT}`;

    // Six requests with feedback: four finance, two general; one more without feedback.
    const sent: { id: string; text: string; scenario: string; wav: Uint8Array; ms: number }[] = [];
    for (let i = 0; i < 7; i++) {
      const text = sentences[(i + 5) % sentences.length] ?? '';
      expect(text.split(' ').length).toBeGreaterThan(3);
      const wav = speak(text);
      const form = new FormData();
      form.set('file', new Blob([wav], { type: 'audio/wav' }), 'speech.wav');
      form.set('model', 'tiny');
      const t0 = Date.now();
      const res = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body: form, signal: AbortSignal.timeout(60_000) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { text: string }).text.trim()).not.toBe('');
      sent.push({ id: res.headers.get('x-request-id') ?? '', text, scenario: i < 4 ? 'finance' : 'general', wav, ms: Date.now() - t0 });
    }
    for (const s of sent.slice(0, 6)) {
      const t0 = Date.now();
      const res = await fetch(`${url}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request_id: s.id, reference: s.text, scenario: s.scenario }) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { dataset_sample: string }).dataset_sample).toBe('queued');
      expect(Date.now() - t0).toBeLessThan(2000);
    }
    // Uploaded in the background: six WAVs wait for their manifest (flush after 100 samples or 60 s).
    const metric = async (name: string, labels = ''): Promise<number> => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
    };
    await eventually('six WAVs uploaded', async () => ((await metric('whisperops_agent_dataset_batch_samples')) === 6 ? true : undefined), 30_000, 250);
    expect(await metric('whisperops_agent_dataset_queue_samples')).toBe(0);
    expect(await metric('whisperops_agent_dataset_max_bytes')).toBe(16 * 1024 * 1024);
    const day = new Date().toISOString().slice(0, 10);
    expect((await keys(prefix)).filter((k) => k.endsWith('.jsonl'))).toEqual([]);
    expect((await keys(prefix)).filter((k) => k.endsWith('.wav'))).toHaveLength(6);

    // SIGTERM (scaled to 0): the agent drains and writes its last manifests before it exits.
    await kubectl(['patch', 'edgepool', 'samples', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { replicas: 0 } })]);
    await eventually('the agent gone', async () => ((await agentPods('samples')).length === 0 ? true : undefined), 90_000, 500);
    const all = await keys(prefix);
    expect(all.filter((k) => k.endsWith('.jsonl'))).toEqual([
      expect.stringMatching(new RegExp(`^${prefix}finance/${day}/manifest-${podName}-\\d{8}T\\d{6}Z-00000[12]\\.jsonl$`)),
      expect.stringMatching(new RegExp(`^${prefix}general/${day}/manifest-${podName}-\\d{8}T\\d{6}Z-00000[12]\\.jsonl$`)),
    ]);
    const lines = await manifestLines(prefix);
    expect(lines.map((l) => l.line.requestId).sort()).toEqual(sent.slice(0, 6).map((s) => s.id).sort());
    for (const { wavKey, line } of lines) {
      const s = sent.find((x) => x.id === line.requestId);
      expect(wavKey).toBe(`${prefix}${s?.scenario}/${day}/${podName}-${s?.id}.wav`);
      expect(line).toMatchObject({ text: s?.text, scenario: s?.scenario, deployment: 'tiny', modelVersion: ref.version, role: 'stable', pool: 'samples', agent: podName, requestId: s?.id });
      expect(typeof line.hypothesis).toBe('string');
      // espeak-ng streams its WAVs (sizes unset): the sample holds the same 16-bit samples, re-headed.
      const stored = decodeWav(await object(wavKey));
      const orig = decodeWav(s?.wav ?? new Uint8Array());
      expect(stored.sampleRate).toBe(orig.sampleRate);
      expect(Buffer.from(stored.samples.buffer).equals(Buffer.from(orig.samples.buffer))).toBe(true);
    }
    const read = await trainerRead(`s3://${BUCKET}/${prefix}`);
    expect(read.map((s) => s.text).sort()).toEqual(sent.slice(0, 6).map((s) => s.text).sort());
    for (const r of read) expect(r.seconds).toBeGreaterThan(1);
    const ms = sent.map((s) => s.ms).sort((a, b) => a - b);
    process.stderr.write(`[dataset-store] EdgePool agent: 6 feedback samples on S3 after SIGTERM; transcription p50 ${ms[3]} ms (7 requests, writer on)\n`);
  });

  it('a dataset store the agents cannot write (file://) is reported, and not handed to them', async () => {
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'local-path', namespace: ns },
        spec: {
          nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'kwok' }, tolerations, autoscaling: { mode: 'off' }, replicas: 0,
          datasetStore: { uri: 'file:///var/lib/whisperops/samples' },
        },
      }),
    });
    const p = await until('local-path', 'DatasetStoreSupported False', (x) => cond(x, 'DatasetStoreSupported')?.status === 'False');
    expect(cond(p, 'DatasetStoreSupported')).toMatchObject({ reason: 'UnsupportedDatasetStore' });
    expect(cond(p, 'DatasetStoreSupported')?.message).toMatch(/s3:\/\/bucket\/prefix\/ only \(a file:\/\/ path would be a folder inside each agent's container\); feedback samples are not stored/);
    const dep = await api.get<V1Deployment>(DEPLOYMENTS, ns, 'local-path-agent');
    expect((dep.spec?.template.spec?.containers[0]?.env ?? []).map((e) => e.name)).not.toContain('WHISPEROPS_AGENT_DATASET_STORE_URI');
    // Fixed: the condition turns True, the agents get the store.
    await kubectl(['patch', 'edgepool', 'local-path', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { datasetStore: { uri: `s3://${BUCKET}/${RUN}/unused/` } } })]);
    await until('local-path', 'DatasetStoreSupported True', (x) => cond(x, 'DatasetStoreSupported')?.status === 'True');
    const fixed = await api.get<V1Deployment>(DEPLOYMENTS, ns, 'local-path-agent');
    expect((fixed.spec?.template.spec?.containers[0]?.env ?? []).find((e) => e.name === 'WHISPEROPS_AGENT_DATASET_STORE_URI')?.value).toBe(`s3://${BUCKET}/${RUN}/unused/`);
  });
});
