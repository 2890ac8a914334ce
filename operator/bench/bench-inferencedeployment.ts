// Benchmark of the InferenceDeployment controller's analysis cost (not a test; prints figures and
// exits 1 when a bound is missed). The real reconciler, real informers over the in-memory API client
// (operator/testing/memory-client.ts: status writes included), and the real HTTP Prometheus client
// against a canned Prometheus in a CHILD process on 127.0.0.1 (so its CPU is not the operator's): it
// answers every query with plausible series and counts what it was asked.
//
// N deployments, each in one of three states, measured in the same run:
//   analysis  a canary in flight whose analysis interval is due (the answers say "too few reference
//             words": Inconclusive, so the canary holds and the next interval costs the same)
//   holding   a canary in flight between intervals (pause running, no analysis due)
//   steady    no canary, the stable model confirmed loaded by the agents (the baseline)
// For each: Prometheus queries per reconcile (= per interval per deployment for `analysis`), operator
// CPU per reconcile (process.cpuUsage: user + system), reconcile wall time p50/p99, and the ratios
// against the steady baseline. The time from a spec change to the candidate serving on every agent
// needs real agents: test/e2e/inferencedeployment.e2e.test.ts measures and prints it.
//   npm run bench:inferencedeployment [-- --deployments 200 --rounds 5]
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import pino from 'pino';
import type { EdgePool, FineTuneJob, InferenceDeployment } from '../../api/generated/types.js';
import { HttpPrometheusClient } from '../src/prometheus/client.js';
import { EDGEPOOLS, FINETUNEJOBS, INFERENCE_DEPLOYMENTS, InferenceDeploymentReconciler } from '../src/inferencedeployment/reconciler.js';
import type { EventRecorder } from '../src/runtime/events.js';
import { Informer } from '../src/runtime/informer.js';
import { MemoryKubeClient } from '../testing/memory-client.js';
import { percentile, say } from './common.js';

/** Bounds: what one analysis interval of one deployment may cost. */
const QUERIES_PER_ANALYSIS = 5; // 2 serving + 3 analysis (each answers candidate and stable)
// 200 deployments in rollout at a 60 s interval → 4 s of CPU a minute (~7 % of a core) at this bound.
const CPU_MS_BOUND = 20;

interface Options { deployments: number; rounds: number }
function options(argv: string[]): Options {
  const o: Options = { deployments: 200, rounds: 5 };
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, inline] = (argv[i] ?? '').split('=', 2);
    const raw = inline ?? argv[(i += 1)] ?? '';
    if (flag === '--deployments') o.deployments = Number(raw);
    else if (flag === '--rounds') o.rounds = Number(raw);
    else throw new Error(`unknown flag ${flag ?? ''}`);
  }
  return o;
}

// The canned Prometheus: loaded → stable v1 and candidate v2 on 2 agents; refused → none; counters
// → 20 reference words (below minSamples: Inconclusive); p99 → 0.4 s.
const CANNED = `
const http = require('node:http');
let queries = 0;
const vec = (series) => JSON.stringify({ status: 'success', data: { resultType: 'vector', result: series.map(([metric, v]) => ({ metric, value: [Date.now() / 1000, String(v)] })) } });
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/count') { res.end(String(queries)); return; }
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    queries += 1;
    const q = url.searchParams.get('query') ?? new URLSearchParams(body).get('query') ?? '';
    res.setHeader('content-type', 'application/json');
    if (q.startsWith('count by (model_version, role)')) res.end(vec([[{ model_version: 'v1', role: 'stable' }, 2], [{ model_version: 'v2', role: 'candidate' }, 2]]));
    else if (q.startsWith('count by (model_version, result)')) res.end(vec([]));
    else if (q.includes('reference_words')) res.end(vec([[{ model_version: 'v2' }, 20], [{ model_version: 'v1' }, 20]]));
    else if (q.includes('word_errors')) res.end(vec([[{ model_version: 'v2' }, 3], [{ model_version: 'v1' }, 3]]));
    else res.end(vec([[{ model_version: 'v2' }, 0.4], [{ model_version: 'v1' }, 0.3]]));
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));
`;

async function startCanned(): Promise<{ url: string; child: ChildProcess; count: () => Promise<number> }> {
  const child = spawn(process.execPath, ['-e', CANNED], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`canned Prometheus exited ${String(code)}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return { url, child, count: async () => Number(await (await fetch(`${url}/count`)).text()) };
}

const sha = (c: string) => c.repeat(64);
const T0 = Date.parse('2026-12-01T12:00:00Z');
const iso = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}Z`;
type State = 'analysis' | 'holding' | 'steady';

function deployment(i: number, state: State): InferenceDeployment {
  const stable = { uri: 's3://models/v1/', version: 'v1', sha256: sha('a'), source: 'spec' };
  const candidate = { uri: 's3://models/v2/', version: 'v2', sha256: sha('b') };
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment',
    metadata: { name: `d-${String(i).padStart(4, '0')}`, namespace: 'bench', generation: 2, uid: `uid-${i}` },
    spec: {
      edgePoolRef: { name: 'pool' },
      model: state === 'steady' ? { uri: stable.uri, version: stable.version, sha256: stable.sha256 } : candidate,
      rollout: {
        steps: [{ weight: 10, pauseSeconds: 3600 }, { weight: 50, pauseSeconds: 60 }],
        analysis: { intervalSeconds: 60, maxWerIncrease: 0.02, maxP99LatencySeconds: 5, minSamples: 200, failureLimit: 2 },
      },
    },
    status: {
      observedGeneration: 2, phase: state === 'steady' ? 'Healthy' : 'Progressing', stable,
      conditions: [{ type: 'Serving', status: 'True', reason: 'Loaded', message: "stable v1 loaded by the pool's agents", lastTransitionTime: iso(T0), observedGeneration: 2 }],
      ...(state === 'steady' ? {} : { candidate: { ...candidate, weight: 10, step: 0, stepStartTime: iso(T0), failedAnalyses: 0, ...(state === 'holding' ? { lastAnalysisTime: iso(T0 + 3_650_000) } : {}) } }),
    },
  };
}

const silentEvents: EventRecorder = { normal: () => undefined, warning: () => undefined, flush: () => Promise.resolve() };

async function main(): Promise<number> {
  const o = options(process.argv.slice(2));
  const canned = await startCanned();
  const log = pino({ level: 'warn' });
  const api = new MemoryKubeClient();
  api.put(EDGEPOOLS, { apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'pool', namespace: 'bench' }, spec: { nodeSelector: {} } });
  const states: State[] = ['analysis', 'holding', 'steady'];
  const keys: Record<State, string[]> = { analysis: [], holding: [], steady: [] };
  for (let i = 0; i < o.deployments * states.length; i += 1) {
    const state = states[i % states.length] ?? 'steady';
    const d = deployment(i, state);
    api.put(INFERENCE_DEPLOYMENTS, d as never);
    keys[state].push(`bench/${d.metadata.name ?? ''}`);
  }
  const caches = {
    inferenceDeployments: new Informer<InferenceDeployment>(api, INFERENCE_DEPLOYMENTS, log, { resyncPeriodMs: 0 }),
    fineTuneJobs: new Informer<FineTuneJob>(api, FINETUNEJOBS, log, { resyncPeriodMs: 0 }),
    edgePools: new Informer<EdgePool>(api, EDGEPOOLS, log, { resyncPeriodMs: 0 }),
  };
  for (const inf of Object.values(caches)) inf.start();
  await Promise.all(Object.values(caches).map((inf) => inf.waitForSync()));

  let now = T0 + 3_600_000; // an hour in: analyses due, holding ones analysed recently
  const reconciler = new InferenceDeploymentReconciler({
    client: api, caches, events: silentEvents, syncPeriodMs: 15_000, log, now: () => new Date(now),
    prometheus: { url: canned.url, loopbackOnly: true, connect: (url) => new HttpPrometheusClient({ baseUrl: url, loopbackOnly: true, timeoutMs: 5000 }) },
  });

  const results: Record<State, { cpuMs: number; queries: number; reconciles: number; wall: number[] }> = {
    analysis: { cpuMs: 0, queries: 0, reconciles: 0, wall: [] }, holding: { cpuMs: 0, queries: 0, reconciles: 0, wall: [] }, steady: { cpuMs: 0, queries: 0, reconciles: 0, wall: [] },
  };
  // Warm-up round (JIT, connections), not counted.
  for (const state of states) for (const key of keys[state].slice(0, 20)) await reconciler.reconcile(key);
  for (let round = 0; round < o.rounds; round += 1) {
    now += 60_000; // one analysis interval later: every `analysis` deployment is due again
    for (const state of states) {
      const q0 = await canned.count();
      const cpu0 = process.cpuUsage();
      for (const key of keys[state]) {
        const t = performance.now();
        await reconciler.reconcile(key);
        results[state].wall.push(performance.now() - t);
      }
      const cpu = process.cpuUsage(cpu0);
      results[state].cpuMs += (cpu.user + cpu.system) / 1000;
      results[state].queries += (await canned.count()) - q0;
      results[state].reconciles += keys[state].length;
    }
    // `holding` must stay holding: push its last analysis forward with the clock.
    for (const key of keys.holding) {
      const d = caches.inferenceDeployments.get(key);
      if (d?.status?.candidate) api.put(INFERENCE_DEPLOYMENTS, { ...d, status: { ...d.status, candidate: { ...d.status.candidate, lastAnalysisTime: iso(now + 30_000) } } });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const inf of Object.values(caches)) await inf.stop();
  canned.child.kill();

  const per = (s: State) => {
    const r = results[s];
    const sorted = [...r.wall].sort((a, b) => a - b);
    return { queries: r.queries / r.reconciles, cpuMs: r.cpuMs / r.reconciles, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  };
  const a = per('analysis');
  const h = per('holding');
  const s = per('steady');
  say(`${o.deployments} deployments per state, ${o.rounds} intervals; canned Prometheus in a child process on 127.0.0.1`);
  for (const [name, r] of [['analysis (interval due)', a], ['holding (between intervals)', h], ['steady (baseline)', s]] as const) {
    say(`${name.padEnd(28)} ${r.queries.toFixed(2)} queries/reconcile, CPU ${r.cpuMs.toFixed(3)} ms/reconcile, wall p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms`);
  }
  say(`analysis interval vs steady baseline: CPU ×${(a.cpuMs / s.cpuMs).toFixed(2)}, wall p50 ×${(a.p50 / s.p50).toFixed(2)}; holding vs steady: CPU ×${(h.cpuMs / s.cpuMs).toFixed(2)}`);
  say(`per deployment in rollout: ${a.queries.toFixed(0)} Prometheus queries and ${a.cpuMs.toFixed(2)} ms operator CPU per analysis interval (60 s here: ${(a.queries / 60).toFixed(3)} queries/s)`);
  let ok = true;
  if (Math.abs(a.queries - QUERIES_PER_ANALYSIS) > 0.01) {
    say(`FAIL: ${a.queries} queries per analysis interval, expected ${QUERIES_PER_ANALYSIS}`);
    ok = false;
  }
  if (s.queries !== 0) {
    say(`FAIL: a steady deployment whose stable is confirmed issued ${s.queries} queries per reconcile (expected 0)`);
    ok = false;
  }
  if (a.cpuMs > CPU_MS_BOUND) {
    say(`FAIL: ${a.cpuMs.toFixed(2)} ms CPU per analysis (bound ${CPU_MS_BOUND} ms)`);
    ok = false;
  }
  return ok ? 0 : 1;
}

main().then((code) => {
  process.exitCode = code;
}, (err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
