// Helpers shared by the operator benchmarks (bench-operator.ts, bench-edgepool.ts): waiting, the
// operator process's RSS, its /metrics, quantiles of its reconcile-duration histogram, compiling it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../testing/operator-process.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const say = (text: string): void => {
  process.stdout.write(`[bench] ${text}\n`);
};
export const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function procStatusKb(pid: number | undefined, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
}

/** Resident set size now (VmRSS), bytes. */
export function rssBytes(pid: number | undefined): number {
  return procStatusKb(pid, 'VmRSS') * 1024;
}

/** Highest resident set size of the process's life so far (VmHWM), bytes. */
export function peakRssBytes(pid: number | undefined): number {
  return procStatusKb(pid, 'VmHWM') * 1024;
}

export type Metrics = Map<string, number>;

/** Prometheus text format → series (name{labels} as printed) → value. */
export function parseMetrics(text: string): Metrics {
  const out: Metrics = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

export async function scrape(base: string): Promise<Metrics> {
  return parseMetrics(await (await fetch(`${base}/metrics`)).text());
}

export function sum(m: Metrics, prefix: string): number {
  let s = 0;
  for (const [k, v] of m) if (k.startsWith(prefix)) s += v;
  return s;
}

/** after − before, series by series (counters and histogram buckets over a window). */
export function delta(after: Metrics, before: Metrics): Metrics {
  const out: Metrics = new Map();
  for (const [k, v] of after) out.set(k, v - (before.get(k) ?? 0));
  return out;
}

export const heapOf = (m: Metrics): number => m.get('whisperops_operator_nodejs_heap_size_used_bytes') ?? NaN;

/** Reconciles of one controller (every result). */
export function reconcilesOf(m: Metrics, controller: string): number {
  let s = 0;
  for (const [k, v] of m) if (k.startsWith('whisperops_operator_reconcile_total{') && k.includes(`controller="${controller}"`)) s += v;
  return s;
}

/**
 * Quantile (ms) of the reconcile duration histogram of one controller, interpolated inside its
 * bucket (as PromQL's histogram_quantile does). NaN when there is no observation.
 */
export function histogramQuantile(m: Metrics, q: number, controller: string): number {
  const buckets: [number, number][] = [];
  const re = new RegExp(`^whisperops_operator_reconcile_duration_seconds_bucket\\{le="([^"]+)",controller="${controller}"\\}$`);
  for (const [k, v] of m) {
    const match = re.exec(k);
    if (match) buckets.push([match[1] === '+Inf' ? Infinity : Number(match[1]), v]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets[buckets.length - 1]?.[1] ?? 0;
  if (total <= 0) return NaN;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= q * total) {
      const frac = count === prevCount ? 0 : (q * total - prevCount) / (count - prevCount);
      return Number(((prevLe + (Number.isFinite(le) ? le - prevLe : 0) * frac) * 1000).toFixed(2));
    }
    prevLe = le;
    prevCount = count;
  }
  return NaN;
}

/** Observations in the reconcile duration histogram of one controller. */
export const reconcileCount = (m: Metrics, controller: string): number =>
  m.get(`whisperops_operator_reconcile_duration_seconds_count{controller="${controller}"}`) ?? 0;

export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutS: number, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutS} s: ${what}`);
    await sleep(intervalMs);
  }
}

/** Measure what the image runs: the compiled JavaScript (dist/), not tsx compiling TypeScript on the fly. */
export function compileOperator(): Promise<void> {
  say('compiling (tsc -p tsconfig.build.json)…');
  const tsc = spawn(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO_ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    tsc.once('error', reject);
    tsc.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`tsc failed (exit ${String(code)})`))));
  });
}
