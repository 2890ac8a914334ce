// Benchmark of the local cluster itself (not a test; prints figures against the bounds):
//   1. cached start: `cli.ts up --json` → control plane, 22 kwok nodes, 6 process-backed nodes,
//      Prometheus and the S3 store all ready, then `cli.ts down` (N runs, default 3). Reported both as
//      the wall time of the `cli.ts up` process (tsx start-up included) and as the harness's own
//      startSeconds. Bound: ≤ 20 s (wall).
//   2. edge agent to Ready: a Deployment of the edge-agent image shaped like the operator's EdgePool
//      agent (operator/src/edgepool/desired.ts: read-only root, uid 1000, /tmp and cache emptyDirs,
//      embedded model, readiness httpGet /readyz on the `http` port, liveness /healthz) on a process-
//      backed Jetson node; time from creating the Deployment to its pod's Ready condition (M runs,
//      default 5, each on a fresh Deployment). Measured with the EdgePool's readiness period (5 s)
//      and with a 1 s period, which shows what the agent itself takes. Bound: ≤ 10 s.
// Everything runs in a private cluster dir (default: a new temp dir; never the shared one).
//   npm run bench:cluster [-- --starts 3 --agents 5 --dir /tmp/wo-bench/cluster]
// Exit code 1 when a median is over its bound.
import { AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'test', 'cluster', 'cli.ts');
const AGENT_IMAGE = 'ghcr.io/whisperops/edge-agent:0.1.0';
const NAMESPACE = 'bench';
const START_BOUND_S = 20;
const AGENT_BOUND_S = 10;

interface Options { starts: number; agents: number; dir: string; ownDir: boolean }

function options(argv: string[]): Options {
  const o: Options = { starts: 3, agents: 5, dir: '', ownDir: false };
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, inline] = (argv[i] ?? '').split('=', 2);
    const value = inline ?? argv[(i += 1)] ?? '';
    switch (flag) {
      case '--starts': o.starts = positive(flag, value); break;
      case '--agents': o.agents = positive(flag, value); break;
      case '--dir': o.dir = value; break;
      default: throw new Error(`unknown flag ${flag ?? ''} (flags: --starts N --agents N --dir PATH)`);
    }
  }
  if (o.dir === '') {
    o.dir = join(mkdtempSync(join(tmpdir(), 'wo-bench-')), 'cluster');
    o.ownDir = true;
  }
  if (o.dir === '/tmp/whisperops-cluster') throw new Error('refusing to benchmark on the shared cluster dir');
  return o;
}

function positive(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer`);
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `node --import tsx test/cluster/cli.ts <args>` on the private dir; resolves with stdout. */
function cli(dir: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: REPO, env: { ...process.env, WHISPEROPS_CLUSTER_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString('utf8'); });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`cli.ts ${args.join(' ')} exited ${String(code)}: ${err.slice(-2000)}`))));
  });
}

interface UpResult { wallS: number; startS: number; kubeconfig: string }

async function up(dir: string): Promise<UpResult> {
  const t0 = performance.now();
  const out = await cli(dir, ['up', '--json']);
  const wallS = (performance.now() - t0) / 1000;
  const state = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { reused?: boolean; startSeconds?: number; adminKubeconfig?: string; addons?: Record<string, unknown> };
  if (state.reused !== false) throw new Error(`${dir} had a running cluster: the start was not measured`);
  for (const addon of ['prometheus', 'objectStore', 'processNodes']) {
    if (state.addons?.[addon] === undefined) throw new Error(`the cluster started without its ${addon} add-on`);
  }
  return { wallS, startS: state.startSeconds ?? Number.NaN, kubeconfig: state.adminKubeconfig ?? '' };
}

async function down(dir: string): Promise<void> {
  await cli(dir, ['down', '--force']);
}

/** The edge agent as the operator's EdgePool runs it, on a process-backed Jetson node. */
function agentDeployment(name: string, readinessPeriodS: number): V1Deployment {
  const labels = { app: name };
  return {
    metadata: { name, namespace: NAMESPACE, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          nodeSelector: { type: 'process', 'whisperops.dev/device': 'jetson-agx-xavier' },
          tolerations: [{ key: 'whisperops.dev/edge', operator: 'Exists', effect: 'NoSchedule' }],
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 45,
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{
            name: 'agent',
            image: AGENT_IMAGE,
            imagePullPolicy: 'IfNotPresent',
            env: [
              { name: 'WHISPEROPS_AGENT_POOL', value: 'bench' },
              { name: 'WHISPEROPS_AGENT_WORKERS', value: '1' },
              { name: 'WHISPEROPS_AGENT_THREADS', value: '1' },
              { name: 'WHISPEROPS_AGENT_CACHE_DIR', value: '/var/cache/whisperops-agent' },
              { name: 'HOME', value: '/tmp' },
            ],
            ports: [{ name: 'http', containerPort: 8000, protocol: 'TCP' }],
            readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: readinessPeriodS, timeoutSeconds: 2, failureThreshold: 2 },
            livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
            terminationMessagePolicy: 'FallbackToLogsOnError',
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true },
            volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, { name: 'cache', mountPath: '/var/cache/whisperops-agent' }],
          }],
          volumes: [{ name: 'tmp', emptyDir: {} }, { name: 'cache', emptyDir: {} }],
        },
      },
    },
  };
}

async function podsOf(core: CoreV1Api, name: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `app=${name}` })).items;
}

/** Creates the Deployment, returns seconds until its pod is Ready, then deletes it and waits for the pod to go. */
async function agentToReady(apps: AppsV1Api, core: CoreV1Api, name: string, readinessPeriodS: number): Promise<number> {
  const t0 = performance.now();
  await apps.createNamespacedDeployment({ namespace: NAMESPACE, body: agentDeployment(name, readinessPeriodS) });
  let seconds = Number.NaN;
  for (const deadline = t0 + 120_000; performance.now() < deadline; await sleep(100)) {
    const pods = await podsOf(core, name);
    const pod = pods[0];
    if (pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) {
      seconds = (performance.now() - t0) / 1000;
      break;
    }
    const waiting = pod?.status?.containerStatuses?.[0]?.state?.waiting;
    if (waiting?.reason === 'ErrImageNeverPull' || waiting?.reason === 'CrashLoopBackOff') throw new Error(`agent pod ${waiting.reason}: ${waiting.message ?? ''}`);
  }
  await apps.deleteNamespacedDeployment({ namespace: NAMESPACE, name });
  for (const deadline = performance.now() + 90_000; performance.now() < deadline && (await podsOf(core, name)).length > 0;) await sleep(250);
  if (Number.isNaN(seconds)) throw new Error(`agent ${name} not Ready within 120 s`);
  return seconds;
}

interface Row { what: string; values: number[]; bound?: number }

function stats(values: number[]): { min: number; median: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? Number.NaN) + (s[mid] ?? Number.NaN)) / 2;
  return { min: s[0] ?? Number.NaN, median, max: s[s.length - 1] ?? Number.NaN };
}

function report(rows: Row[]): boolean {
  let ok = true;
  const lines = [`${'measure'.padEnd(58)} ${'n'.padStart(2)} ${'min'.padStart(7)} ${'median'.padStart(7)} ${'max'.padStart(7)}  bound`];
  for (const r of rows) {
    const { min, median, max } = stats(r.values);
    const verdict = r.bound === undefined ? '' : median <= r.bound ? `≤ ${r.bound} s  ok${max > r.bound ? ' (max over)' : ''}` : `≤ ${r.bound} s  OVER`;
    if (r.bound !== undefined && median > r.bound) ok = false;
    lines.push(`${r.what.padEnd(58)} ${String(r.values.length).padStart(2)} ${min.toFixed(2).padStart(7)} ${median.toFixed(2).padStart(7)} ${max.toFixed(2).padStart(7)}  ${verdict}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return ok;
}

async function main(): Promise<number> {
  const o = options(process.argv.slice(2));
  const log = (msg: string) => process.stderr.write(`[bench-cluster] ${msg}\n`);
  log(`private cluster dir ${o.dir}; ${o.starts} starts, ${o.agents} agent runs per readiness period`);
  if (existsSync(join(o.dir, 'state.json'))) throw new Error(`${o.dir} holds a cluster: stop it first or choose another --dir`);
  const wall: number[] = [];
  const internal: number[] = [];
  const ready5: number[] = [];
  const ready1: number[] = [];
  try {
    for (let i = 1; i <= o.starts; i += 1) {
      const r = await up(o.dir);
      wall.push(r.wallS);
      internal.push(r.startS);
      log(`start ${i}: ${r.wallS.toFixed(2)} s (cli.ts up), ${r.startS.toFixed(2)} s (harness)`);
      if (i === o.starts) {
        const kc = new KubeConfig();
        kc.loadFromFile(r.kubeconfig);
        const apps = kc.makeApiClient(AppsV1Api);
        const core = kc.makeApiClient(CoreV1Api);
        await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
        for (const [period, into] of [[5, ready5], [1, ready1]] as const) {
          for (let j = 1; j <= o.agents; j += 1) {
            const s = await agentToReady(apps, core, `agent-p${period}-${j}`, period);
            into.push(s);
            log(`agent (readiness period ${period} s) ${j}: Ready in ${s.toFixed(2)} s`);
          }
        }
      }
      await down(o.dir);
    }
  } finally {
    if (existsSync(join(o.dir, 'state.json'))) await down(o.dir).catch((err: unknown) => log(`down failed: ${String(err)}`));
    if (o.ownDir) rmSync(dirname(o.dir), { recursive: true, force: true });
  }
  const ok = report([
    { what: 'cached start, cli.ts up --json wall (all add-ons)', values: wall, bound: START_BOUND_S },
    { what: 'cached start, harness startSeconds', values: internal },
    { what: 'agent Deployment → pod Ready (EdgePool probe, period 5 s)', values: ready5, bound: AGENT_BOUND_S },
    { what: 'agent Deployment → pod Ready (probe period 1 s)', values: ready1, bound: AGENT_BOUND_S },
  ]);
  return ok ? 0 : 1;
}

main().then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`bench-cluster: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
