// Benchmark of the operator against the real local control plane (not a test; prints figures):
//   1. apply → Job created: p50/p99 over N FineTuneJobs created at a steady rate (default 100, 10/s);
//   2. operator RSS (and JS heap) idle, with 100 and with 1,000 FineTuneJobs converged;
//   3. reconciles per second at saturation: converging 900 new FineTuneJobs at once (every reconcile
//      writes: finalizer, ConfigMap, Job, status), and a cold start over 1,000 converged ones (no-op
//      reconciles: the level-based resync a restart or leader change does).
// The operator runs as a real process with its ServiceAccount's RBAC. FineTuneJobs are created
// suspended, so their Jobs start no pods: the figures are the operator's, not the scheduler's.
//   npm run bench:operator [-- --latency-count 100 --total 1000 --rate 10 --workers 8]
import type { KubernetesObject, V1Job } from '@kubernetes/client-node';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import pino from 'pino';
import { createTestNamespace, deleteTestNamespace, loadAdminKubeConfig } from '../../test/cluster/index.js';
import { applyCrds } from '../../test/cluster/index.js';
import type { StoredFineTuneJob } from '../src/finetunejob/desired.js';
import { CHILD_SELECTOR } from '../src/finetunejob/names.js';
import { FINETUNEJOBS, ownerKey } from '../src/finetunejob/reconciler.js';
import { JOBS } from '../src/kube/client.js';
import { HttpKubeClient } from '../src/kube/http-client.js';
import { Informer } from '../src/runtime/informer.js';
import type { OperatorProcess } from '../testing/operator-process.js';
import { compileOperator, heapOf, histogramQuantile, mib, percentile, reconcilesOf, rssBytes, say, scrape, sleep, until } from './common.js';
import { deleteFineTuneJobs, operatorServiceAccount, REPO_ROOT, startOperator } from '../testing/operator-process.js';

interface Options { latencyCount: number; total: number; rate: number; workers: number; phaseTimeoutS: number }

function options(argv: string[]): Options {
  const o: Options = { latencyCount: 100, total: 1000, rate: 10, workers: 8, phaseTimeoutS: 300 };
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, inline] = (argv[i] ?? '').split('=', 2);
    const value = Number(inline ?? argv[(i += 1)]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${flag ?? ''} needs a positive number`);
    switch (flag) {
      case '--latency-count': o.latencyCount = value; break;
      case '--total': o.total = value; break;
      case '--rate': o.rate = value; break;
      case '--workers': o.workers = value; break;
      case '--phase-timeout': o.phaseTimeoutS = value; break;
      default: throw new Error(`unknown flag ${flag ?? ''}`);
    }
  }
  if (o.total < o.latencyCount) o.total = o.latencyCount;
  return o;
}

function fineTuneJob(ns: string, name: string): KubernetesObject {
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob',
    metadata: { name, namespace: ns, labels: { bench: 'operator' } },
    spec: {
      baseModel: { uri: 'file:///models/tiny-whisper-synth', version: '1.0.0' },
      dataset: { uri: 'file:///data/finance/manifest.jsonl', scenario: 'finance' },
      output: { uri: `file:///models/bench/${name}` },
      suspend: true,
    },
  } as KubernetesObject;
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const up = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test', 'cluster', 'cli.ts'), 'up'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (up.status !== 0) throw new Error('could not start or reuse the local cluster (npm run cluster:up)');
  await compileOperator();
  await applyCrds();
  const api = HttpKubeClient.fromKubeConfig(loadAdminKubeConfig());
  const ns = await createTestNamespace('bench-operator');
  const { kubeconfig, cleanup } = await operatorServiceAccount(ns, 'whisperops-operator');
  const figures: Record<string, string | number> = {};
  let operator: OperatorProcess | undefined;
  const startBenchOperator = (identity: string) => startOperator({
    kubeconfig, namespace: ns, identity, leaseName: 'whisperops-operator',
    extra: [`--workers=${o.workers}`, '--log-level=info'],
    compiled: true,
  });
  const jobSeen = new Map<string, number>();
  const jobs = new Informer<V1Job>(api, JOBS, pino({ level: 'silent' }), { namespace: ns, labelSelector: CHILD_SELECTOR, resyncPeriodMs: 0 });
  jobs.addHandlers({ onAdd: (j) => {
    const owner = ownerKey(j);
    if (owner && !jobSeen.has(owner)) jobSeen.set(owner, performance.now());
  } });
  try {
    jobs.start();
    await jobs.waitForSync();
    operator = startBenchOperator('bench-1');
    await operator.waitFor('Caches synced, controllers running', 60_000);
    const base = await operator.baseUrl();
    await sleep(1000);
    figures.rssIdle = rssBytes(operator.pid);
    figures.heapIdle = heapOf(await scrape(base));
    say(`operator idle: RSS ${mib(figures.rssIdle)}, heap ${mib(figures.heapIdle)}`);

    // 1. apply → Job created, at a steady rate.
    const applied = new Map<string, number>();
    const latencyNames = Array.from({ length: o.latencyCount }, (_, i) => `lat-${String(i).padStart(4, '0')}`);
    const t1 = performance.now();
    for (const [i, name] of latencyNames.entries()) {
      const due = t1 + (i * 1000) / o.rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      applied.set(`${ns}/${name}`, performance.now());
      await api.create(FINETUNEJOBS, ns, fineTuneJob(ns, name) as StoredFineTuneJob);
    }
    await until(`${o.latencyCount} Jobs created`, () => latencyNames.every((n) => jobSeen.has(`${ns}/${n}`)), o.phaseTimeoutS);
    const latencies = [...applied].map(([key, t]) => (jobSeen.get(key) ?? NaN) - t).sort((a, b) => a - b);
    figures.applyToJobP50Ms = Number(percentile(latencies, 50).toFixed(1));
    figures.applyToJobP99Ms = Number(percentile(latencies, 99).toFixed(1));
    figures.applyToJobMaxMs = Number((latencies[latencies.length - 1] ?? NaN).toFixed(1));
    say(`apply → Job created over ${o.latencyCount} FineTuneJobs at ${o.rate}/s: p50 ${figures.applyToJobP50Ms} ms, p99 ${figures.applyToJobP99Ms} ms, max ${figures.applyToJobMaxMs} ms`);
    const converged = async (n: number) => {
      const list = await api.list<StoredFineTuneJob>(FINETUNEJOBS, { namespace: ns, limit: 5000 });
      return list.items.filter((f) => f.status?.phase === 'Suspended').length >= n;
    };
    await until('100 converged', () => converged(o.latencyCount), o.phaseTimeoutS);
    await sleep(1000);
    figures.rss100 = rssBytes(operator.pid);
    figures.heap100 = heapOf(await scrape(base));
    say(`operator with ${o.latencyCount} FineTuneJobs: RSS ${mib(figures.rss100)}, heap ${mib(figures.heap100)}`);

    // 3a. saturation with writes: the rest created as fast as the API server takes them.
    const rest = Array.from({ length: o.total - o.latencyCount }, (_, i) => `sat-${String(i).padStart(4, '0')}`);
    const m2 = await scrape(base);
    const before = reconcilesOf(m2, 'finetunejob');
    const cpuBefore = m2.get('whisperops_operator_process_cpu_seconds_total') ?? NaN;
    const t3 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < rest.length) {
        const name = rest[next] ?? '';
        next += 1;
        await api.create(FINETUNEJOBS, ns, fineTuneJob(ns, name) as StoredFineTuneJob);
      }
    }));
    const createdS = (performance.now() - t3) / 1000;
    await until(`${o.total} converged`, () => converged(o.total), o.phaseTimeoutS);
    const convergeS = (performance.now() - t3) / 1000;
    const m3 = await scrape(base);
    const reconciles = reconcilesOf(m3, 'finetunejob') - before;
    figures.convergeFineTuneJobs = rest.length;
    figures.convergeSeconds = Number(convergeS.toFixed(1));
    figures.convergeReconcilesPerSecond = Number((reconciles / convergeS).toFixed(0));
    figures.convergeFineTuneJobsPerSecond = Number((rest.length / convergeS).toFixed(0));
    // CPU the operator itself used: how much of the wall time it was the bottleneck.
    const cpuS = (m3.get('whisperops_operator_process_cpu_seconds_total') ?? NaN) - cpuBefore;
    figures.convergeOperatorCpuSeconds = Number(cpuS.toFixed(1));
    figures.convergeOperatorCpuMsPerFineTuneJob = Number(((cpuS * 1000) / rest.length).toFixed(1));
    say(`converging ${rest.length} new FineTuneJobs (created in ${createdS.toFixed(1)} s): ${convergeS.toFixed(1)} s, ${reconciles} reconciles → ${figures.convergeReconcilesPerSecond} reconciles/s, ${figures.convergeFineTuneJobsPerSecond} FineTuneJobs/s; operator CPU ${figures.convergeOperatorCpuSeconds} s (${figures.convergeOperatorCpuMsPerFineTuneJob} ms per FineTuneJob)`);
    await sleep(2000);
    figures.rssTotal = rssBytes(operator.pid);
    figures.heapTotal = heapOf(await scrape(base));
    say(`operator with ${o.total} FineTuneJobs (+${o.total} Jobs, ConfigMaps in cache): RSS ${mib(figures.rssTotal)}, heap ${mib(figures.heapTotal)}`);

    // 3b. cold start over everything: every key reconciled once, nothing to write.
    const benchCreated = operator.count('Created Job');
    await operator.kill('SIGTERM');
    operator = startBenchOperator('bench-2');
    const base2 = await operator.baseUrl();
    const synced = await operator.waitFor('Caches synced, controllers running', 60_000);
    const startedAt = Date.parse(String(synced.time));
    let doneAt = NaN;
    await until(`${o.total} no-op reconciles`, async () => {
      const n = reconcilesOf(await scrape(base2), 'finetunejob');
      if (n >= o.total) doneAt = Date.now();
      return n >= o.total;
    }, o.phaseTimeoutS, 5);
    const noopS = (doneAt - startedAt) / 1000;
    const m4 = await scrape(base2);
    figures.resyncReconcilesPerSecond = Number((o.total / Math.max(noopS, 0.001)).toFixed(0));
    figures.reconcileP50Ms = histogramQuantile(m4, 0.5, 'finetunejob');
    say(`cold start over ${o.total} converged FineTuneJobs: ${o.total} reconciles in ${noopS.toFixed(2)} s after the caches synced → ${figures.resyncReconcilesPerSecond} reconciles/s (no writes; p50 reconcile ${figures.reconcileP50Ms} ms)`);
    // Another whisperops operator watching all namespaces (a demo, say) would race this one for the
    // same FineTuneJobs: count what this one did, so such a disturbed run is visible.
    const createdByBench = benchCreated + operator.count('Created Job');
    figures.jobsCreatedByThisOperator = createdByBench;
    if (createdByBench < o.total) say(`WARNING: only ${createdByBench} of ${o.total} Jobs were created by the benchmarked operator: another operator is acting on this cluster, the figures are disturbed`);
    process.stdout.write(`${JSON.stringify({ bench: 'operator', workers: o.workers, ...figures })}\n`);
  } catch (err) {
    if (operator && !operator.running()) say(`the operator exited:\n${operator.tail(10)}`);
    throw err;
  } finally {
    await jobs.stop();
    // The operator must run while the namespace goes: it removes its finalizers.
    if (!operator?.running()) {
      operator = startBenchOperator('bench-cleanup');
      await operator.waitFor('Caches synced, controllers running', 60_000).catch(() => undefined);
    }
    say('cleaning up (the operator removes its finalizers)…');
    const t = performance.now();
    const forced = await deleteFineTuneJobs(ns, 240_000);
    say(`deleted ${o.total} FineTuneJobs (finalizer: Job foreground deletion, ConfigMap) in ${((performance.now() - t) / 1000).toFixed(1)} s${forced ? `; ${forced} finalizers removed by hand after the timeout` : ''}`);
    await deleteTestNamespace(ns).catch(() => undefined);
    await operator.kill('SIGTERM');
    await cleanup();
    await api.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
