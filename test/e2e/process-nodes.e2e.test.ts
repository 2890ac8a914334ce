// Process-backed nodes of the local cluster (test/cluster/modules/process-node): pods of the project's
// own images run as real sandboxed host processes with their own 127.B.x.y address. These tests drive
// them as a kubelet's user would — the real edge agent behind its probes, logs, exec, projected
// volumes, graceful shutdown, crash-loop back-off, env and volume resolution — and check what the
// node reports against what the processes really did.
//
// The tests are independent and run concurrently (each in its own namespace), so the file takes
// about as long as its slowest test rather than the sum.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, jest } from '@jest/globals';
import { AppsV1Api, CoreV1Api, Watch, type CoreV1Event, type V1Container, type V1Pod, type V1PodSpec } from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';
import { embeddedRef, speak, testSentences } from '../../edge-agent/src/testing/speech.js';
import { clusterDir } from '../cluster/config.js';
import {
  clusterState,
  CommandError,
  createTestNamespace,
  deleteTestNamespace,
  edgeTaint,
  eventually,
  kubectl,
  kubectlPath,
  loadAdminKubeConfig,
  promQuery,
  testKubeconfigPath,
} from '../cluster/index.js';
import { localStorageClass, processJetsonNodeNames, processNodeLabel } from '../cluster/process-nodes.js';

jest.setTimeout(240_000);

const kc = loadAdminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);

const agentImage = 'ghcr.io/whisperops/edge-agent:test';
const processSelector = { [processNodeLabel.key]: processNodeLabel.value };
const jetsonSelector = { ...processSelector, 'whisperops.dev/device': 'jetson-agx-xavier' };
const edgeToleration = { key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect };
const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';
/** The embedded model as the agent image sees it (the repo is its /app layer). */
const embeddedModel = { ...embeddedRef(), uri: 'file:///app/models/tiny-whisper-synth' };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `fn` in a fresh test namespace and deletes the namespace afterwards (its pods are stopped). */
async function inNamespace<T>(prefix: string, fn: (ns: string) => Promise<T>): Promise<T> {
  const ns = await createTestNamespace(prefix);
  try {
    return await fn(ns);
  } finally {
    await deleteTestNamespace(ns);
  }
}

function readPod(ns: string, name: string): Promise<V1Pod> {
  return core.readNamespacedPod({ name, namespace: ns });
}

async function waitForPod(ns: string, name: string, what: string, ok: (p: V1Pod) => boolean, timeoutMs = 60_000): Promise<V1Pod> {
  return eventually(
    `${ns}/${name}: ${what}`,
    async () => {
      const p = await readPod(ns, name);
      return ok(p) ? p : undefined;
    },
    timeoutMs,
    250,
  );
}

const isReady = (p: V1Pod): boolean => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** A pod IP of a process node: in 127.0.0.0/8 and not 127.0.0.1. */
function expectPodLoopbackIp(ip: string | undefined): string {
  expect(ip).toMatch(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/);
  expect(ip).not.toBe('127.0.0.1');
  return ip ?? '';
}

/** fetch to a pod's loopback address only (refuses anything outside 127.0.0.0/8 before sending a byte). */
async function podFetch(url: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<Response> {
  const u = new URL(url);
  if (u.protocol !== 'http:' || !/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(u.hostname)) throw new Error(`refusing to contact ${url}: not a 127/8 address`);
  return fetch(u, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
}

function exec(ns: string, pod: string, container: string, argv: string[]): Promise<string> {
  return kubectl(['exec', '-n', ns, pod, '-c', container, '--', ...argv]);
}

async function events(ns: string, pod: string): Promise<CoreV1Event[]> {
  return (await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${pod}` })).items;
}

async function waitForEvent(ns: string, pod: string, reason: string, message: RegExp, timeoutMs = 30_000): Promise<CoreV1Event> {
  return eventually(`event ${reason} ~ ${String(message)} for ${ns}/${pod}`, async () => (await events(ns, pod)).find((e) => e.reason === reason && message.test(e.message ?? '')), timeoutMs, 500);
}

/** A utility container of the agent image (its root is the host's, so sh, cat, id exist). */
function shell(name: string, script: string, extra: Partial<V1Container> = {}): V1Container {
  return { name, image: agentImage, command: ['sh', '-c', script], ...extra };
}

/** Distinct lower-case words. */
function words(text: string): Set<string> {
  return new Set(text.toLowerCase().replace(/[^a-z' ]/g, ' ').split(/\s+/).filter(Boolean));
}

/** Fraction of the spoken sentence's words that are in the transcript. */
function wordOverlap(spoken: string, transcript: string): number {
  const said = words(spoken);
  const heard = words(transcript);
  return [...said].filter((w) => heard.has(w)).length / said.size;
}

/** `kubectl logs -f` as a child process; `waitFor` resolves with the first streamed line matching. */
function followLogs(args: string[]): { waitFor: (re: RegExp, timeoutMs: number) => Promise<string>; stop: () => void; lines: () => string[] } {
  const child = spawn(kubectlPath(), ['logs', '-f', ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(clusterDir(), 'home'), KUBECONFIG: testKubeconfigPath() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const w of waiters.filter((x) => x.re.test(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  return {
    lines: () => [...lines],
    stop: () => {
      child.kill('SIGTERM');
    },
    waitFor: (re, timeoutMs) => {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`kubectl logs -f: no line matching ${String(re)} within ${timeoutMs} ms; got ${JSON.stringify(lines)}`)), timeoutMs);
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
  };
}

/** Whether something accepts TCP connections at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Listening sockets (IPv4, "a.b.c.d:port") from /proc/net/tcp. */
function ipv4Listeners(): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    if (local === undefined || f[3] !== '0A') continue;
    const [hex = '', portHex = ''] = local.split(':');
    const ip = [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
    out.add(`${ip}:${String(parseInt(portHex, 16))}`);
  }
  return out;
}

function modelSet(models: string[], defaultModel: string): string {
  return toYaml({ pool: 'process-nodes-e2e', defaultModel, models: models.map((name) => ({ name, stable: embeddedModel })) });
}

/** The agent's container as the chart would run it (read-only root, writable /tmp and cache). */
function agentContainer(env: Record<string, string>, extra: Partial<V1Container> = {}): V1Container {
  return {
    name: 'agent',
    image: agentImage,
    args: ['--config', '/etc/whisperops/model-set.yaml'],
    env: Object.entries({ WHISPEROPS_AGENT_WORKERS: '1', ...env }).map(([name, value]) => ({ name, value })),
    ports: [{ name: 'http', containerPort: 8000 }],
    readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 1, failureThreshold: 1 },
    livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 5, failureThreshold: 24 },
    securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
    volumeMounts: [
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'cache', mountPath: '/var/cache/whisperops-agent' },
      { name: 'model-set', mountPath: '/etc/whisperops', readOnly: true },
    ],
    ...extra,
  };
}

function agentPodSpec(container: V1Container, extraVolumes: V1PodSpec['volumes'] = []): V1PodSpec {
  return {
    nodeSelector: jetsonSelector,
    tolerations: [edgeToleration],
    securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 },
    terminationGracePeriodSeconds: 30,
    containers: [container],
    volumes: [{ name: 'tmp', emptyDir: {} }, { name: 'cache', emptyDir: {} }, { name: 'model-set', configMap: { name: 'model-set' } }, ...(extraVolumes ?? [])],
  };
}

async function createModelSet(ns: string, models: string[], defaultModel: string): Promise<void> {
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'model-set' }, data: { 'model-set.yaml': modelSet(models, defaultModel) } } });
}

interface ModelList {
  data: { id: string; stable?: { version: string } }[];
}

describe('process-backed nodes', () => {
  it.concurrent('run the edge agent for real: probes, pod IP, transcription, logs, ConfigMap hot reload, exec, token, Prometheus', async () => {
    await inNamespace('pn-agent', async (ns) => {
      await createModelSet(ns, ['general'], 'general');
      const labels = { app: 'edge-agent' };
      await apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          metadata: { name: 'edge-agent' },
          spec: {
            replicas: 1,
            selector: { matchLabels: labels },
            template: {
              metadata: { labels, annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8000', 'prometheus.io/path': '/metrics' } },
              spec: agentPodSpec(agentContainer({})),
            },
          },
        },
      });
      const pod = await eventually(
        'the agent pod Ready',
        async () => (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=edge-agent' })).items.find(isReady),
        120_000,
        500,
      );
      const name = pod.metadata?.name ?? '';
      const uid = pod.metadata?.uid ?? '';
      expect(processJetsonNodeNames).toContain(pod.spec?.nodeName);
      const ip = expectPodLoopbackIp(pod.status?.podIP);
      expect(pod.status?.podIPs).toEqual([{ ip }]);
      expect(pod.status?.containerStatuses?.[0]).toMatchObject({ ready: true, restartCount: 0 });
      // Ready came from the real readiness probe: /readyz answers 200 at the pod IP.
      const readyz = await podFetch(`http://${ip}:8000/readyz`);
      expect(readyz.status).toBe(200);

      // The bind shim put the agent's 0.0.0.0:8000 on its pod IP, not on every loopback address.
      expect(ipv4Listeners()).toContain(`${ip}:8000`);
      expect(await accepts('127.0.0.1', 8000)).toBe(false);
      expect(await accepts(ip, 8000)).toBe(true);

      // Real speech through the real model.
      const sentence = testSentences()[1] ?? '';
      expect(sentence.split(' ').length).toBeGreaterThan(4);
      const form = new FormData();
      form.set('file', new Blob([speak(sentence)], { type: 'audio/wav' }), 'speech.wav');
      form.set('model', 'general');
      const res = await podFetch(`http://${ip}:8000/v1/audio/transcriptions`, { method: 'POST', body: form }, 60_000);
      expect(res.status).toBe(200);
      const { text } = (await res.json()) as { text: string };
      expect(wordOverlap(sentence, text)).toBeGreaterThanOrEqual(0.4);

      // kubectl logs through the node API.
      const all = await kubectl(['logs', '-n', ns, name]);
      const listening = all.split('\n').find((l) => l.includes('"msg":"Edge agent listening"'));
      expect(listening).toBeDefined();
      expect((JSON.parse(listening ?? '{}') as { url?: string }).url).toBe('http://0.0.0.0:8000');
      const tail = await kubectl(['logs', '-n', ns, name, '--tail=1']);
      expect(tail.endsWith('\n')).toBe(true);
      expect(tail.trimEnd().split('\n')).toHaveLength(1);
      expect(all.trimEnd().endsWith(tail.trimEnd())).toBe(true);

      // A ConfigMap change reaches the running process through the ..data swap: -f streams the
      // agent's "Applied model set" line, GET /v1/models lists the new deployment, no restart.
      const follow = followLogs(['-n', ns, name, '--tail=1']);
      try {
        await sleep(500);
        const before = (await (await podFetch(`http://${ip}:8000/v1/models`)).json()) as ModelList;
        expect(before.data.map((m) => m.id)).toEqual(['general']);
        const changedAt = Date.now();
        await core.patchNamespacedConfigMap({
          name: 'model-set',
          namespace: ns,
          body: [{ op: 'replace', path: '/data/model-set.yaml', value: modelSet(['general', 'medical'], 'medical') }],
        });
        const applied = await follow.waitFor(/"msg":"Applied model set".*"deployments":2|"deployments":2.*"msg":"Applied model set"/, 20_000);
        expect(applied).toContain('/etc/whisperops/model-set.yaml');
        const after = await eventually(
          'GET /v1/models lists medical',
          async () => {
            const list = (await (await podFetch(`http://${ip}:8000/v1/models`)).json()) as ModelList;
            return list.data.some((m) => m.id === 'medical') ? list : undefined;
          },
          20_000,
          500,
        );
        expect(Date.now() - changedAt).toBeLessThan(20_000);
        expect(after.data.map((m) => m.id).sort()).toEqual(['general', 'medical']);
        // The line streamed by -f was written after the stream started (not one of the --tail=1 lines).
        expect(follow.lines().indexOf(applied)).toBeGreaterThanOrEqual(1);
      } finally {
        follow.stop();
      }
      const still = await readPod(ns, name);
      expect(still.metadata?.uid).toBe(uid);
      expect(still.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      expect(isReady(still)).toBe(true);

      // kubectl exec: the container's user, hostname, ServiceAccount files and read-only root.
      expect((await exec(ns, name, 'agent', ['id', '-u'])).trim()).toBe('1000');
      expect((await exec(ns, name, 'agent', ['hostname'])).trim()).toBe(name);
      expect((await exec(ns, name, 'agent', ['ls', serviceAccountDir])).split('\n')).toEqual(expect.arrayContaining(['token', 'ca.crt', 'namespace']));
      expect((await exec(ns, name, 'agent', ['cat', `${serviceAccountDir}/namespace`])).trim()).toBe(ns);
      const write = await exec(ns, name, 'agent', ['sh', '-c', 'echo x > /probe-write']).then(
        () => 'written',
        (err: unknown) => (err instanceof CommandError ? err.stderr : String(err)),
      );
      expect(write).toMatch(/read-only file system/i);
      expect((await exec(ns, name, 'agent', ['sh', '-c', 'echo x > /tmp/ok && cat /tmp/ok'])).trim()).toBe('x');

      // The projected token authenticates as the pod's ServiceAccount, from inside the pod.
      const review = `
        const https = require('node:https'); const fs = require('node:fs'); const d = '${serviceAccountDir}/';
        const req = https.request({ host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT,
          path: '/apis/authentication.k8s.io/v1/selfsubjectreviews', method: 'POST', ca: fs.readFileSync(d + 'ca.crt'),
          headers: { authorization: 'Bearer ' + fs.readFileSync(d + 'token', 'utf8').trim(), 'content-type': 'application/json' } },
          (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body: JSON.parse(b) }))); });
        req.on('error', (e) => { console.error(e.message); process.exit(1); });
        req.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }));`;
      const answer = JSON.parse(await exec(ns, name, 'agent', ['node', '-e', review])) as { status: number; body: { status?: { userInfo?: { username?: string } } } };
      expect(answer.status).toBe(201);
      expect(answer.body.status?.userInfo?.username).toBe(`system:serviceaccount:${ns}:default`);

      // Prometheus scrapes the pod at its IP, and has its request counter with the pod label.
      const up = await eventually(
        `up{pod="${name}"} == 1`,
        async () => {
          const data = await promQuery(`up{namespace="${ns}",pod="${name}"}`);
          return data.resultType === 'vector' ? data.result.find((s) => s.value[1] === '1') : undefined;
        },
        20_000,
        500,
      );
      expect(up.metric).toMatchObject({ pod: name, namespace: ns, instance: `${ip}:8000` });
      const requests = await eventually(
        'whisperops_agent_requests_total of the transcription',
        async () => {
          const data = await promQuery(`whisperops_agent_requests_total{namespace="${ns}",pod="${name}",route="transcriptions",code="200"}`);
          return data.resultType === 'vector' && data.result.length > 0 ? data.result : undefined;
        },
        20_000,
        500,
      );
      expect(requests[0]?.metric).toMatchObject({ pod: name, deployment: 'general' });
      expect(Number(requests[0]?.value[1])).toBeGreaterThanOrEqual(1);
    });
  });

  it.concurrent('deliver SIGTERM on delete: preStop runs first, readiness drops, the agent drains and exits 0 within the grace period', async () => {
    const hostDir = mkdtempSync(join(tmpdir(), 'whisperops-prestop-'));
    chmodSync(hostDir, 0o777);
    try {
      await inNamespace('pn-shutdown', async (ns) => {
        await createModelSet(ns, ['general'], 'general');
        const name = 'agent';
        // The preStop hook asks the agent itself for /healthz: its answer in the file proves the
        // process was still serving when the hook ran.
        const hook = `fetch('http://' + process.env.WHISPEROPS_POD_IP + ':8000/healthz').then((r) => r.text()).then((t) => require('node:fs').writeFileSync('/hooks/prestop', Date.now() + ' ' + t))`;
        const container = agentContainer(
          { WHISPEROPS_AGENT_SHUTDOWN_DELAY_SECONDS: '2' },
          { lifecycle: { preStop: { exec: { command: ['node', '-e', hook] } } } },
        );
        container.volumeMounts = [...(container.volumeMounts ?? []), { name: 'hooks', mountPath: '/hooks' }];
        await core.createNamespacedPod({
          namespace: ns,
          body: { metadata: { name }, spec: agentPodSpec(container, [{ name: 'hooks', hostPath: { path: hostDir, type: 'DirectoryOrCreate' } }]) },
        });
        await waitForPod(ns, name, 'Ready', isReady, 120_000);

        const seen: { at: number; type: string; pod: V1Pod }[] = [];
        let gone: (() => void) | undefined;
        const deleted = new Promise<void>((resolve) => (gone = resolve));
        const watch = await new Watch(kc).watch(
          `/api/v1/namespaces/${ns}/pods`,
          { fieldSelector: `metadata.name=${name}` },
          (type: string, obj: V1Pod) => {
            seen.push({ at: Date.now(), type, pod: obj });
            if (type === 'DELETED') gone?.();
          },
          () => undefined,
        );
        try {
          await sleep(300);
          const t0 = Date.now();
          await core.deleteNamespacedPod({ name, namespace: ns });
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([deleted, new Promise<void>((resolve) => (timer = setTimeout(resolve, 40_000)))]);
          clearTimeout(timer);
          const last = seen.at(-1);
          expect(last?.type).toBe('DELETED');
          const tookMs = (last?.at ?? Infinity) - t0;
          // The agent waited its shutdown delay (2 s) before it exited, and was not killed at 30 s.
          expect(tookMs).toBeGreaterThanOrEqual(2000);
          expect(tookMs).toBeLessThan(20_000);
          const final = last?.pod.status?.containerStatuses?.[0];
          expect(final?.state?.terminated?.exitCode).toBe(0);
          expect(final?.state?.terminated?.reason).toBe('Completed');
          // Ready went False while the container was still running, before it terminated.
          const after = seen.filter((e) => e.at >= t0);
          const notReadyWhileRunning = after.findIndex(
            (e) => e.pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False') === true && e.pod.status.containerStatuses?.[0]?.state?.running !== undefined,
          );
          const terminated = after.findIndex((e) => e.pod.status?.containerStatuses?.[0]?.state?.terminated !== undefined);
          expect(notReadyWhileRunning).toBeGreaterThanOrEqual(0);
          expect(terminated).toBeGreaterThan(notReadyWhileRunning);
        } finally {
          watch.abort();
        }
        const prestop = join(hostDir, 'prestop');
        expect(existsSync(prestop)).toBe(true);
        const [stamp = '', body = ''] = readFileSync(prestop, 'utf8').split(/ (.*)/s);
        expect(JSON.parse(body)).toEqual({ status: 'ok' });
        expect(Number(stamp)).toBeGreaterThan(0);
        const logs = (await events(ns, name)).map((e) => e.reason);
        expect(logs).toContain('Killing');
        expect(logs).not.toContain('FailedPreStopHook');
      });
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  it.concurrent('restart a crashing container with back-off, and leave a restartPolicy Never pod Failed with its log as termination message', async () => {
    await inNamespace('pn-crash', async (ns) => {
      const crash: V1Container = { name: 'crash', image: agentImage, command: ['node', '-e', "console.log('boom'); process.exit(3)"] };
      await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'looping' }, spec: { nodeSelector: processSelector, containers: [crash] } } });
      await core.createNamespacedPod({
        namespace: ns,
        body: { metadata: { name: 'once' }, spec: { nodeSelector: processSelector, restartPolicy: 'Never', containers: [{ ...crash, terminationMessagePolicy: 'FallbackToLogsOnError' }] } },
      });

      const first = await waitForPod(ns, 'looping', 'back-off 10s', (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.message?.startsWith('back-off 10s') === true, 60_000);
      const cs1 = first.status?.containerStatuses?.[0];
      expect(cs1?.state?.waiting?.reason).toBe('CrashLoopBackOff');
      expect(cs1?.lastState?.terminated).toMatchObject({ exitCode: 3, reason: 'Error' });

      const once = await waitForPod(ns, 'once', 'Failed', (p) => p.status?.phase === 'Failed', 60_000);
      const onceStatus = once.status?.containerStatuses?.[0];
      expect(onceStatus?.state?.terminated).toMatchObject({ exitCode: 3, reason: 'Error' });
      expect(onceStatus?.state?.terminated?.message?.trim()).toBe('boom');
      expect(onceStatus?.restartCount).toBe(0);

      const second = await waitForPod(ns, 'looping', 'back-off 20s', (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.message?.startsWith('back-off 20s') === true, 60_000);
      const cs2 = second.status?.containerStatuses?.[0];
      expect(cs2?.restartCount).toBeGreaterThanOrEqual(1);
      expect(cs2?.state?.waiting?.reason).toBe('CrashLoopBackOff');
      expect(cs2?.state?.waiting?.message).toContain('container=crash pod=looping');
      expect(cs2?.lastState?.terminated?.exitCode).toBe(3);
      expect(second.status?.phase).toBe('Running');
      expect((await kubectl(['logs', '-n', ns, 'looping', '--previous'])).trim()).toBe('boom');
      expect((await events(ns, 'looping')).map((e) => e.reason)).toContain('BackOff');

      // Never: not started again.
      const later = await readPod(ns, 'once');
      expect(later.status?.phase).toBe('Failed');
      expect(later.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      await expect(kubectl(['logs', '-n', ns, 'once', '--previous'])).rejects.toThrow(/previous terminated container/);
      expect((await kubectl(['logs', '-n', ns, 'once'])).trim()).toBe('boom');
    });
  });

  it.concurrent('report an image that is not in images.yaml instead of running it', async () => {
    await inNamespace('pn-image', async (ns) => {
      await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'nope' }, spec: { nodeSelector: processSelector, containers: [{ name: 'nope', image: 'registry.invalid/nope:1' }] } } });
      const pod = await waitForPod(ns, 'nope', 'ErrImageNeverPull', (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ErrImageNeverPull', 30_000);
      expect(pod.spec?.nodeName).toMatch(/-proc-\d+$/);
      expect(pod.status?.phase).toBe('Pending');
      expect(pod.status?.containerStatuses?.[0]?.state?.waiting?.message).toContain('images.yaml');
      expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      const event = await waitForEvent(ns, 'nope', 'ErrImageNeverPull', /images\.yaml/);
      expect(event.type).toBe('Warning');
      await sleep(2000);
      const later = await readPod(ns, 'nope');
      expect(later.status?.phase).toBe('Pending');
      expect(later.status?.containerStatuses?.[0]?.state?.running).toBeUndefined();
    });
  });

  it.concurrent('resolve env, downward API, secret, emptyDir, PVC and cpu limits as the kubelet does', async () => {
    await inNamespace('pn-env', async (ns) => {
      const token = randomBytes(6).toString('hex');
      await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'settings' }, data: { color: 'blue', size: 'large' } } });
      await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'creds' }, stringData: { password: `pw-${token}`, other: 'not-projected' } } });
      await core.createNamespacedPersistentVolumeClaim({
        namespace: ns,
        body: { metadata: { name: 'data' }, spec: { storageClassName: localStorageClass, accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Mi' } } } },
      });
      const name = 'env';
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name, labels: { app: 'env' } },
          spec: {
            nodeSelector: processSelector,
            securityContext: { runAsUser: 1000, runAsGroup: 1000 },
            terminationGracePeriodSeconds: 2,
            containers: [
              shell('main', 'env; echo ---; sleep 3600', {
                env: [
                  { name: 'GREETING', value: 'hello' },
                  { name: 'EXPANDED', value: '$(GREETING)-world $$(GREETING) $(UNDEFINED_VAR)' },
                  { name: 'MY_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                  { name: 'MY_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'COLOR', valueFrom: { configMapKeyRef: { name: 'settings', key: 'color' } } },
                  { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } },
                ],
                envFrom: [{ prefix: 'CM_', configMapRef: { name: 'settings' } }],
                resources: { limits: { cpu: '500m' } },
                volumeMounts: [
                  { name: 'podinfo', mountPath: '/etc/podinfo' },
                  { name: 'secret', mountPath: '/etc/secret' },
                  { name: 'shared', mountPath: '/shared' },
                ],
              }),
              shell('writer', `echo from-writer-${token} > /shared/msg; sleep 3600`, { volumeMounts: [{ name: 'shared', mountPath: '/shared' }] }),
            ],
            volumes: [
              { name: 'podinfo', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
              { name: 'secret', secret: { secretName: 'creds', items: [{ key: 'password', path: 'pw', mode: 0o400 }] } },
              { name: 'shared', emptyDir: {} },
            ],
          },
        },
      });
      const pod = await waitForPod(ns, name, 'Ready', isReady, 60_000);
      const ip = expectPodLoopbackIp(pod.status?.podIP);

      // The environment the process really got (printed by it at start).
      const envText = await eventually('env printed', async () => {
        const out = await kubectl(['logs', '-n', ns, name, '-c', 'main']);
        return out.includes('\n---') ? out : undefined;
      });
      const env = new Map(
        envText
          .split('\n---')[0]
          ?.split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
      );
      expect(env.get('EXPANDED')).toBe('hello-world $(GREETING) $(UNDEFINED_VAR)');
      expect(env.get('MY_POD_IP')).toBe(ip);
      expect(env.get('MY_POD_NAME')).toBe(name);
      expect(env.get('COLOR')).toBe('blue');
      expect(env.get('PASSWORD')).toBe(`pw-${token}`);
      expect(env.get('CM_color')).toBe('blue');
      expect(env.get('CM_size')).toBe('large');
      expect(env.get('HOSTNAME') ?? name).toBe(name);

      // Downward API labels follow a label change.
      expect(await exec(ns, name, 'main', ['cat', '/etc/podinfo/labels'])).toBe('app="env"');
      await kubectl(['label', 'pod', '-n', ns, name, `extra=${token}`]);
      const labels = await eventually(
        'the labels file updated',
        async () => {
          const text = await exec(ns, name, 'main', ['cat', '/etc/podinfo/labels']);
          return text.includes('extra=') ? text : undefined;
        },
        20_000,
        500,
      );
      expect(labels.split('\n')).toEqual(['app="env"', `extra="${token}"`]);
      expect(await exec(ns, name, 'main', ['readlink', '/etc/podinfo/labels'])).toBe('..data/labels\n');

      // Secret volume: only the listed item, with its mode, owned so the pod's user can read it.
      expect((await exec(ns, name, 'main', ['ls', '/etc/secret'])).trim()).toBe('pw');
      expect((await exec(ns, name, 'main', ['stat', '-L', '-c', '%a %u', '/etc/secret/pw'])).trim()).toBe('400 1000');
      expect(await exec(ns, name, 'main', ['cat', '/etc/secret/pw'])).toBe(`pw-${token}`);

      // emptyDir shared by the two containers.
      expect((await exec(ns, name, 'main', ['cat', '/shared/msg'])).trim()).toBe(`from-writer-${token}`);

      // cpu limit 500m → CFS quota 50 ms per 100 ms period in the container's own cgroup, holding its process.
      const cgroup = (await clusterState()).addons.processNodes?.cgroup;
      expect(cgroup).toMatch(/^whisperops-/);
      const dir = join('/sys/fs/cgroup/cpu', cgroup ?? '', pod.metadata?.uid ?? '', 'main');
      expect(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('50000');
      expect(readFileSync(join(dir, 'cpu.cfs_period_us'), 'utf8').trim()).toBe('100000');
      expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim()).not.toBe('');
      const writerDir = join('/sys/fs/cgroup/cpu', cgroup ?? '', pod.metadata?.uid ?? '', 'writer');
      expect(readFileSync(join(writerDir, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('-1');

      // A dynamically provisioned volume outlives the pod that wrote it.
      const pvcPod = (podName: string, script: string): V1Pod => ({
        metadata: { name: podName },
        spec: {
          nodeSelector: processSelector,
          restartPolicy: 'Never',
          containers: [shell('c', script, { volumeMounts: [{ name: 'data', mountPath: '/data' }] })],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
        },
      });
      await core.createNamespacedPod({ namespace: ns, body: pvcPod('pvc-writer', `echo persisted-${token} > /data/file && id -u`) });
      const writer = await waitForPod(ns, 'pvc-writer', 'Succeeded', (p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed', 60_000);
      expect(writer.status?.phase).toBe('Succeeded');
      const pvc = await core.readNamespacedPersistentVolumeClaim({ name: 'data', namespace: ns });
      expect(pvc.status?.phase).toBe('Bound');
      expect(pvc.spec?.volumeName).toBeTruthy();
      await core.deleteNamespacedPod({ name: 'pvc-writer', namespace: ns });
      await eventually(
        'pvc-writer gone',
        () =>
          readPod(ns, 'pvc-writer').then(
            () => undefined,
            () => true,
          ),
        30_000,
      );
      await core.createNamespacedPod({ namespace: ns, body: pvcPod('pvc-reader', 'cat /data/file') });
      const reader = await waitForPod(ns, 'pvc-reader', 'Succeeded', (p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed', 60_000);
      expect(reader.status?.phase).toBe('Succeeded');
      expect((await kubectl(['logs', '-n', ns, 'pvc-reader'])).trim()).toBe(`persisted-${token}`);
    });
  });

  it.concurrent('run exec readiness and tcpSocket liveness probes, and restart a container whose liveness probe fails', async () => {
    await inNamespace('pn-probes', async (ns) => {
      const server = "require('node:net').createServer((s) => s.end()).listen(8080, '0.0.0.0')";
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: 'probed' },
          spec: {
            nodeSelector: processSelector,
            containers: [
              {
                name: 'app',
                image: agentImage,
                command: ['node', '-e', server],
                ports: [{ name: 'tcp', containerPort: 8080 }],
                readinessProbe: { exec: { command: ['test', '-f', '/tmp/ready'] }, periodSeconds: 1, failureThreshold: 1 },
                livenessProbe: { tcpSocket: { port: 'tcp' }, periodSeconds: 1, failureThreshold: 2 },
              },
            ],
          },
        },
      });
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: 'dead' },
          spec: {
            nodeSelector: processSelector,
            terminationGracePeriodSeconds: 1,
            containers: [shell('app', 'sleep 3600', { livenessProbe: { tcpSocket: { port: 8081 }, periodSeconds: 1, failureThreshold: 2 } })],
          },
        },
      });

      // Running but not Ready while /tmp/ready is missing.
      const running = await waitForPod(ns, 'probed', 'Running', (p) => p.status?.containerStatuses?.[0]?.state?.running !== undefined, 60_000);
      await sleep(3000);
      const notYet = await readPod(ns, 'probed');
      expect(isReady(notYet)).toBe(false);
      expect(notYet.status?.containerStatuses?.[0]?.ready).toBe(false);
      await waitForEvent(ns, 'probed', 'Unhealthy', /^Readiness probe failed/);
      await exec(ns, 'probed', 'app', ['touch', '/tmp/ready']);
      const ready = await waitForPod(ns, 'probed', 'Ready', isReady, 15_000);
      // The tcpSocket liveness probe reaches the server at the pod IP: no restart.
      expect(ready.metadata?.uid).toBe(running.metadata?.uid);
      expect(ready.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      // (a liveness failure before the server listened is below the threshold and kills nothing)
      expect((await events(ns, 'probed')).filter((e) => e.reason === 'Killing')).toEqual([]);

      // Nothing listens on 8081: killed and restarted.
      const restarted = await waitForPod(ns, 'dead', 'restarted', (p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1, 60_000);
      expect(restarted.status?.containerStatuses?.[0]?.lastState?.terminated).toBeDefined();
      await waitForEvent(ns, 'dead', 'Unhealthy', /^Liveness probe failed/);
      await waitForEvent(ns, 'dead', 'Killing', /failed liveness probe, will be restarted/);
    });
  });
});
