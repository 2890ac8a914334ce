// TLS end to end: an EdgePool with spec.tls naming a kubernetes.io/tls Secret; the operator (a real
// process, as its ServiceAccount, which may not read Secrets) mounts it into a REAL edge agent on a
// process-backed Jetson. Before the Secret exists the pool says why its agent cannot start (condition
// and Warning Event, no crash loop); then the official `openai` package's Realtime client streams
// espeak-ng speech in real time over wss:// to the pod's own 127.x address, trusting only the test CA,
// and its file transcription goes over https; the kubelet's probes (HTTPS) make the agent ready,
// Prometheus scrapes it over TLS (a live session seen as a stream); plain HTTP on the pod's address is
// refused; the Secret replaced by a certificate of another CA is served without a restart, timed.
// The live turn then takes feedback by its item_id (over https): a labelled sample in the pool's S3
// dataset store, its audio the turn as streamed. A pair that does not load: kept out of the running
// agent, and a new agent's crash loop is named in the pool's status.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { KubernetesObject, V1Pod, V1Secret } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, getCACertificates, setDefaultCACertificates } from 'node:tls';
import OpenAI, { toFile } from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { parseDocument } from 'yaml';
import { resample } from '../../edge-agent/src/audio/resample.js';
import { decodeWav, encodeWav16 } from '../../edge-agent/src/audio/wav.js';
import { recordTranscriptionSession, SESSION_RATE } from '../../edge-agent/src/testing/realtime.js';
import { embeddedRef, speak, tempDir } from '../../edge-agent/src/testing/speech.js';
import { wordErrors } from '../../edge-agent/src/text/wer.js';
import type { StoredEdgePool } from '../../operator/src/edgepool/desired.js';
import { EDGEPOOL_LABEL } from '../../operator/src/edgepool/names.js';
import { EDGEPOOLS } from '../../operator/src/edgepool/reconciler.js';
import { EVENTS, PODS } from '../../operator/src/kube/client.js';
import { adminClient, OPERATOR_SA, REPO_ROOT } from '../../operator/testing/operator-process.js';
import { applyCrds, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, helm, kubectl, objectStore, promQuery, s3Client } from '../cluster/index.js';
import { startPoolOperator } from './pool-operator.js';
import type { PoolOperator } from './pool-operator.js';

jest.setTimeout(420_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const TLS_PORT = 8443;
// The agent's plain HTTP is loopback-only with TLS, and process nodes share the machine's loopback:
// a port of its own, so it cannot clash with anything else on 127.0.0.1.
const PLAIN_PORT = 20_000 + (process.pid % 20_000);
const SECRET = 'agent-tls';
const S3_SECRET = 'datasets-s3';
const BUCKET = 'whisperops-datasets';
const PREFIX = `e2e-tls-${randomBytes(4).toString('hex')}/`;
const tolerations = [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }];
const defaultCAs = getCACertificates('default');
const dir = tempDir('agent-tls-e2e');

let ns = '';
let operator: PoolOperator | undefined;

/** A CA of its own (name) and a server certificate for `ip` signed by it (openssl, P-256). */
function makeCert(name: string, ip: string): { ca: string; cert: string; key: string; serial: string } {
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`, '-days', '1', '-subj', `/CN=whisperops e2e ${name} CA`);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=IP:${ip}\n`);
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${ip}`);
  const serial = name === 'first' ? '0A01' : '0B02';
  run('x509', '-req', '-in', `${name}.csr`, '-CA', `${name}-ca.crt`, '-CAkey', `${name}-ca.key`, '-set_serial', `0x${serial}`, '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return { ca: read(`${name}-ca.crt`), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), serial };
}

/** Creates or replaces the kubernetes.io/tls Secret with kubectl (as a user would). */
async function tlsSecret(cert: string, key: string): Promise<void> {
  const yaml = await kubectl(['create', 'secret', 'tls', SECRET, '-n', ns, `--cert=${cert}`, `--key=${key}`, '--dry-run=client', '-o', 'yaml']);
  await kubectl(['apply', '-f', '-'], { input: yaml });
}

/** The serial number of the certificate served at ip:port (verified against `ca`). */
function servedSerial(ip: string, port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: ip, port, ca, servername: '' }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.setTimeout(5000, () => s.destroy(new Error('TLS handshake timed out')));
    s.once('error', reject);
  });
}

async function agentPod(): Promise<V1Pod | undefined> {
  const pods = (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `${EDGEPOOL_LABEL}=secure` })).items;
  return pods.find((p) => !p.metadata?.deletionTimestamp);
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('tls');
  // The store's credentials for the pool's dataset store (live-turn samples).
  const store = await objectStore();
  const source = JSON.parse(await kubectl(['get', 'secret', '-n', store.secret.namespace, store.secret.name, '-o', 'json'])) as V1Secret;
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: S3_SECRET, namespace: ns }, data: source.data }) });
  operator = await startPoolOperator(ns, 'tls-e2e', LEASE);
});

afterAll(async () => {
  setDefaultCACertificates(defaultCAs);
  await operator?.stop();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('agent TLS through EdgePool spec.tls (real agent on a process node)', () => {
  it('reports a missing Secret, then serves Realtime over wss and files over https with the test CA, refuses plain HTTP, turns feedback on the live turn into an S3 sample, and takes a rotated certificate without a restart', async () => {
    // The operator's ServiceAccount may not read Secrets: the kubelet mounts them.
    expect((await kubectl(['auth', 'can-i', 'get', 'secrets', '-n', ns, `--as=system:serviceaccount:${ns}:${OPERATOR_SA}`]).catch((e: unknown) => String((e as { stdout?: string }).stdout ?? e))).trim()).toMatch(/^no/);
    const pool = {
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'secure', namespace: ns },
      spec: {
        nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'process' }, tolerations,
        agent: { threads: 2, port: PLAIN_PORT }, autoscaling: { mode: 'off' }, replicas: 1,
        tls: { secretRef: { name: SECRET }, port: TLS_PORT },
        artifactCredentials: { secretRef: { name: S3_SECRET } },
        datasetStore: { uri: `s3://${BUCKET}/${PREFIX}` },
      },
    };
    await kubectl(['apply', '-f', '-'], { input: JSON.stringify(pool) });
    const ref = embeddedRef();
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name: 'tiny', namespace: ns },
        spec: { edgePoolRef: { name: 'secure' }, model: { uri: 'file:///app/models/tiny-whisper-synth', version: ref.version, sha256: ref.sha256 } },
      }),
    });

    // 1. No Secret yet: the pool says why (Ready False, Stalled, a Warning Event), the agent never runs.
    const stuck = await eventually('the pool reporting the missing Secret', async () => {
      const p = await api.get<StoredEdgePool>(EDGEPOOLS, ns, 'secure');
      const ready = p.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.reason === 'AgentsCannotStart' ? p : undefined;
    }, 120_000, 500);
    const ready0 = stuck.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready0?.status).toBe('False');
    expect(ready0?.message).toContain(`secret "${SECRET}" not found`);
    expect(ready0?.message).toContain(`spec.tls.secretRef ${SECRET} (a kubernetes.io/tls Secret with tls.crt and tls.key)`);
    expect(stuck.status?.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'AgentsCannotStart' });
    expect(stuck.status?.endpoints).toBeUndefined();
    const warning = await eventually('the AgentsCannotStart Event', async () => (await api.list<KubernetesObject & { reason: string; type: string; note: string; regarding: { name: string } }>(EVENTS, { namespace: ns })).items
      .find((e) => e.regarding.name === 'secure' && e.reason === 'AgentsCannotStart'), 30_000, 500);
    expect(warning.type).toBe('Warning');
    const pending = await eventually('the pending agent pod with its address', async () => {
      const p = await agentPod();
      return p?.status?.podIP ? p : undefined;
    }, 60_000, 500);
    expect(pending.status?.containerStatuses?.[0]?.restartCount ?? 0).toBe(0);
    const ip = pending.status?.podIP ?? '';
    expect(ip).toMatch(/^127\./);

    // 2. The Secret appears: a certificate for the pod's address from the first test CA.
    const first = makeCert('first', ip);
    await tlsSecret(first.cert, first.key);
    const readyPool = await eventually('the pool ready with an https endpoint', async () => {
      const p = await api.get<StoredEdgePool>(EDGEPOOLS, ns, 'secure');
      return p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? p : undefined;
    }, 240_000, 1000);
    const base = `https://${ip}:${TLS_PORT}`;
    expect(readyPool.status?.endpoints).toEqual([base]);
    const pod = await agentPod();
    expect(pod?.metadata?.name).toBe(pending.metadata?.name);
    const container = pod?.spec?.containers[0];
    expect(container?.readinessProbe?.httpGet).toMatchObject({ port: 'https', scheme: 'HTTPS' });
    expect(container?.ports?.map((p) => p.name)).toEqual(['https']);
    const started = pod?.status?.containerStatuses?.[0]?.state?.running?.startedAt;
    // The chart's PodMonitor (prometheus-operator) has an endpoint for this pod's port: https, scheme https.
    const podMonitor = parseDocument(await helm(['template', 'wo', join(REPO_ROOT, 'charts', 'whisperops'), '--set', 'podMonitor.enabled=true', '--show-only', 'templates/podmonitor.yaml'])).toJS() as {
      spec: { podMetricsEndpoints: { port: string; scheme?: string; tlsConfig?: { insecureSkipVerify?: boolean } }[] };
    };
    expect(podMonitor.spec.podMetricsEndpoints.find((e) => e.port === 'https')).toMatchObject({ scheme: 'https', tlsConfig: { insecureSkipVerify: true } });

    // Plain HTTP on the pod's address is refused (the agent's plain listener is on loopback only),
    // and TLS without the test CA is not trusted.
    const failure = (url: string) => fetch(url).then(() => 'answered', (e: unknown) => String((e as { cause?: { code?: string } }).cause?.code));
    expect(await failure(`http://${ip}:${PLAIN_PORT}/healthz`)).toBe('ECONNREFUSED');
    expect((await fetch(`http://127.0.0.1:${PLAIN_PORT}/healthz`)).status).toBe(200); // loopback (process nodes share the machine's)
    expect(await failure(`${base}/healthz`)).toMatch(/CERT|SIGNATURE/);

    // 3. The official SDK trusting the test CA: a file transcription over https, then a Realtime session over wss.
    setDefaultCACertificates([...defaultCAs, first.ca]);
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused' });
    const speech = decodeWav(speak('please call me back when you have finished the report', 'en-us', 160));
    const fileText = (await client.audio.transcriptions.create({ file: await toFile(encodeWav16(speech.samples, speech.sampleRate), 'a.wav'), model: 'tiny' })).text;
    expect(fileText.split(/\s+/).length).toBeGreaterThan(4);

    const rt = new OpenAIRealtimeWS({ intent: 'transcription', options: { ca: first.ca } }, client);
    expect(rt.url.toString()).toMatch(new RegExp(`^wss://${ip.replace(/\./g, '\\.')}:${TLS_PORT}/v1/realtime`));
    const { events, errors, streamRealTime } = await recordTranscriptionSession(rt, 'tiny');
    const SR = SESSION_RATE;
    const voiced = resample(speech.samples, speech.sampleRate, SR);
    const audio = new Float32Array(voiced.length + Math.round(1.2 * SR));
    audio.set(voiced);
    await streamRealTime(audio); // 40 ms chunks in real time
    const completed = await eventually('the turn completed', () => Promise.resolve(events.find((x) => x.type === 'conversation.item.input_audio_transcription.completed')), 60_000, 50);
    // Prometheus scrapes the agent over TLS and sees the open session as a stream (what the autoscaler reads).
    const scraped = await eventually('the live session scraped as a stream', async () => {
      const r = await promQuery(`max_over_time(whisperops_agent_active_streams{namespace="${ns}",pod="${pod?.metadata?.name ?? ''}"}[1m])`);
      const v = r.resultType === 'vector' ? Number(r.result[0]?.value[1]) : NaN;
      return v >= 1 ? v : undefined;
    }, 30_000, 1000);
    expect(scraped).toBeGreaterThanOrEqual(1);
    rt.close();
    expect(errors).toEqual([]);
    expect(events[0]?.type).toBe('session.created');
    const deltas = events.filter((x) => x.type === 'conversation.item.input_audio_transcription.delta');
    expect(deltas.some((d) => d.sending)).toBe(true); // text while audio was still being sent
    expect(deltas.map((d) => d.e.delta).join('')).toBe(completed.e.transcript);
    const wer = wordErrors(fileText, String(completed.e.transcript));
    expect(wer.errors / wer.referenceWords).toBeLessThanOrEqual(0.2);
    process.stdout.write(`agent-tls e2e: file "${fileText}"; live "${String(completed.e.transcript)}"; ${deltas.length} deltas, ${deltas.filter((d) => d.sending).length} while sending\n`);

    // The live turn in the dataset loop: feedback by its item_id over https → a sample in the pool's store.
    const itemId = String(completed.e.item_id);
    const fb = await fetch(`${base}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request_id: itemId, reference: 'please call me back when you have finished the report', scenario: 'clinic' }) });
    expect(fb.status).toBe(200);
    expect(await fb.json()).toMatchObject({ request_id: itemId, transcript: completed.e.transcript, dataset_sample: 'queued' });
    const s3 = await s3Client();
    const read = async (key: string): Promise<Buffer> => Buffer.from(await ((await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    const manifestKey = await eventually('the live sample\'s manifest in the store', async () => (await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: PREFIX }))).Contents
      ?.map((o) => o.Key ?? '').find((k) => k.endsWith('.jsonl')), 60_000, 1000);
    const line = JSON.parse((await read(manifestKey)).toString('utf8').trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ requestId: itemId, text: 'please call me back when you have finished the report', scenario: 'clinic', hypothesis: completed.e.transcript, agent: pod?.metadata?.name });
    const sample = decodeWav(await read(manifestKey.slice(0, manifestKey.lastIndexOf('/') + 1) + String(line.audio)));
    expect(sample.sampleRate).toBe(SR);
    // The turn's audio: about the speech sent (plus pre-roll and the silence that ended the turn).
    expect(sample.samples.length / SR).toBeGreaterThan(voiced.length / SR - 0.2);
    expect(sample.samples.length / SR).toBeLessThan(voiced.length / SR + 1.0);
    s3.destroy();

    // 4. Rotation to a certificate of another CA: served without a restart, timed from the Secret update.
    expect(await servedSerial(ip, TLS_PORT, first.ca)).toBe(first.serial);
    const second = makeCert('second', ip);
    const r0 = Date.now();
    await tlsSecret(second.cert, second.key);
    await eventually('the rotated certificate served', async () => ((await servedSerial(ip, TLS_PORT, second.ca).catch(() => '')) === second.serial ? true : undefined), 120_000, 200);
    const rotatedMs = Date.now() - r0;
    // The old CA no longer verifies the agent; the SDK with the new CA does.
    await expect(servedSerial(ip, TLS_PORT, first.ca)).rejects.toThrow();
    setDefaultCACertificates([...defaultCAs, second.ca]);
    const again = await new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused' }).audio.transcriptions.create({ file: await toFile(encodeWav16(speech.samples, speech.sampleRate), 'a.wav'), model: 'tiny' });
    expect(again.text).toBe(fileText);
    const after = await api.get<V1Pod>(PODS, ns, pod?.metadata?.name ?? '');
    expect(after.status?.containerStatuses?.[0]?.state?.running?.startedAt).toEqual(started);
    expect(after.status?.containerStatuses?.[0]?.restartCount ?? 0).toBe(0);
    process.stdout.write(`agent-tls e2e: rotated certificate served ${rotatedMs} ms after the Secret update\n`);

    // 5. A pair that does not load (the second certificate with the first key): the running agent keeps
    // the pair it has; an agent started now cannot start, and the pool says why (not a silent crash loop).
    // (kubectl create secret tls refuses such a pair; the API server does not check it.)
    const b64 = (f: string) => readFileSync(f).toString('base64');
    await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: SECRET, namespace: ns }, data: { 'tls.crt': b64(second.cert), 'tls.key': b64(first.key) } }) });
    await new Promise((r) => setTimeout(r, 5000)); // > the volume sync (2 s) + the agent's poll (1 s)
    expect(await servedSerial(ip, TLS_PORT, second.ca)).toBe(second.serial);
    await kubectl(['delete', 'pod', pod?.metadata?.name ?? '', '-n', ns, '--wait=false']);
    const crashing = await eventually('the pool naming the crash loop', async () => {
      const p = await api.get<StoredEdgePool>(EDGEPOOLS, ns, 'secure');
      const message = p.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '';
      return message.includes('crash-looping') ? message : undefined;
    }, 180_000, 1000);
    expect(crashing).toMatch(/failed to start: .*key values mismatch/);
    process.stdout.write(`agent-tls e2e: ${crashing}\n`);
  });
});
