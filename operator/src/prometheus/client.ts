// The Prometheus port: instant queries over the HTTP API (/api/v1/query). Every way a query can
// fail to give a number is an explicit `unknown` verdict with a reason — network error, timeout,
// 4xx, 5xx, a body that is not Prometheus JSON, status "error", an empty result, NaN or ±Inf — and
// never a 0 the caller could mistake for "no load" (KEDA #3065: an empty result read as 0 scaled
// workloads to their minimum). The port never throws for a failed query.

export interface Sample {
  labels: Record<string, string>;
  value: number;
  /** Unix seconds of the evaluation. */
  timestamp: number;
}

export type UnknownReason =
  | 'network' // connection refused/reset, DNS, TLS
  | 'timeout' // no answer within the request timeout
  | 'aborted' // the caller's signal fired (shutdown)
  | 'redirect' // a 3xx: never followed (it could lead off the allowed hosts)
  | 'bad_data' // 4xx: the query or its parameters are wrong
  | 'server_error' // 5xx: Prometheus could not evaluate (timeout, overload, unavailable)
  | 'unparsable' // not the Prometheus API's JSON
  | 'prometheus_error' // status "error" in a 2xx answer
  | 'empty' // no series: the metric does not exist (yet) for these labels
  | 'not_finite' // NaN or ±Inf
  | 'unsupported_result' // a matrix or string, or several series where one was wanted
  | 'too_large'; // body above the limit

export type QueryResult =
  | { kind: 'vector'; samples: Sample[]; warnings: string[] }
  | { kind: 'scalar'; value: number; timestamp: number; warnings: string[] }
  | { kind: 'unknown'; reason: UnknownReason; message: string; status?: number; errorType?: string };

export type Unknown = Extract<QueryResult, { kind: 'unknown' }>;

export interface QueryOptions {
  /** Evaluation time; Prometheus's "now" when absent. */
  time?: Date;
  /** Overrides the client's timeout for this request. */
  timeoutMs?: number;
  /** Aborts the request (e.g. on shutdown); gives `unknown` with reason `aborted`. */
  signal?: AbortSignal;
}

export interface PrometheusPort {
  /** An instant query. Never rejects: failures are `unknown` verdicts. */
  query(promql: string, options?: QueryOptions): Promise<QueryResult>;
}

export interface HostGuard {
  /**
   * Refuse every host outside 127.0.0.0/8 (and ::1, localhost) that allowedHosts does not list.
   * Default true, so nothing is sent off the machine unless configuration says so. A production
   * Prometheus (e.g. http://prometheus-operated.monitoring.svc:9090) is not on loopback: production
   * configuration sets this false, or lists that host in allowedHosts. The local test cluster keeps
   * the default, so a test can never query a real Prometheus by mistake.
   */
  loopbackOnly?: boolean;
  /** Host names or IP addresses allowed besides loopback (compared case-insensitively, without port). */
  allowedHosts?: readonly string[];
}

export interface PrometheusClientOptions extends HostGuard {
  /** Base URL, e.g. http://127.0.0.1:9090 or https://prom.example/prometheus (a path prefix is kept). */
  baseUrl: string;
  /** Per-request timeout (default 5000 ms); also sent to Prometheus as its evaluation `timeout`. */
  timeoutMs?: number;
  /** POST (form body, default: long queries fit) or GET. */
  method?: 'POST' | 'GET';
  /** Largest accepted body (default 8 MiB). */
  maxBodyBytes?: number;
  /** Extra headers (e.g. Authorization); never logged here. */
  headers?: Record<string, string>;
  /** For tests: the fetch to use (default: node's global fetch). */
  fetch?: typeof fetch;
}

export class PrometheusConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PrometheusConfigError';
  }
}

/** Whether `hostname` (as URL.hostname gives it) is a loopback address or `localhost`. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255) && m[1] === '127';
}

/** The problem with sending to `url` under `guard`, or undefined when it is allowed. */
export function urlProblem(url: string, guard: HostGuard = {}): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${u.protocol} is not http: or https:`;
  if (u.username || u.password) return 'credentials in the URL are not accepted (use headers)';
  if (u.search || u.hash) return 'the base URL must not have a query or fragment';
  const host = u.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if ((guard.loopbackOnly ?? true) && !isLoopbackHost(host) && !(guard.allowedHosts ?? []).some((a) => a.toLowerCase() === host)) {
    return `host ${host} is outside 127.0.0.0/8 and not in allowedHosts (loopbackOnly is on)`;
  }
  return undefined;
}

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_MAX_BODY = 8 * 1024 * 1024;

export class HttpPrometheusClient implements PrometheusPort {
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly method: 'POST' | 'GET';
  private readonly maxBodyBytes: number;
  private readonly headers: Record<string, string>;
  private readonly fetchFn: typeof fetch;

  /** Throws PrometheusConfigError when the URL is malformed or refused by the host guard. */
  constructor(options: PrometheusClientOptions) {
    const problem = urlProblem(options.baseUrl, options);
    if (problem) throw new PrometheusConfigError(`Prometheus URL refused: ${problem}`);
    this.endpoint = `${options.baseUrl.replace(/\/+$/, '')}/api/v1/query`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new PrometheusConfigError(`timeoutMs must be > 0, got ${this.timeoutMs}`);
    this.method = options.method ?? 'POST';
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
    this.headers = { ...(options.headers ?? {}) };
    this.fetchFn = options.fetch ?? fetch;
  }

  async query(promql: string, options: QueryOptions = {}): Promise<QueryResult> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const params = new URLSearchParams({ query: promql, timeout: `${Math.max(1, Math.floor(timeoutMs))}ms` });
    if (options.time) params.set('time', (options.time.getTime() / 1000).toFixed(3));
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    const init: RequestInit = {
      method: this.method,
      headers: { accept: 'application/json', ...this.headers, ...(this.method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      redirect: 'manual',
      signal,
      ...(this.method === 'POST' ? { body: params.toString() } : {}),
    };
    const url = this.method === 'POST' ? this.endpoint : `${this.endpoint}?${params.toString()}`;
    let response: Response;
    let text: string;
    try {
      response = await this.fetchFn(url, init);
      text = await readBody(response, this.maxBodyBytes);
    } catch (err) {
      if (options.signal?.aborted) return unknown('aborted', 'query aborted by the caller');
      if (timeout.aborted) return unknown('timeout', `no answer within ${timeoutMs} ms`);
      if (err instanceof BodyTooLarge) return unknown('too_large', err.message);
      return unknown('network', describeError(err));
    }
    return interpret(response.status, text);
  }
}

class BodyTooLarge extends Error {}

async function readBody(response: Response, max: number): Promise<string> {
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Leaving the loop early cancels the stream.
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) throw new BodyTooLarge(`answer larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** "fetch failed: ECONNREFUSED" (duck-typed: undici's errors may come from another realm). */
function describeError(err: unknown): string {
  const e = err as { message?: unknown; cause?: { code?: unknown; message?: unknown } } | null;
  if (typeof e !== 'object' || e === null || typeof e.message !== 'string') return String(err);
  const code = e.cause?.code ?? e.cause?.message;
  return typeof code === 'string' ? `${e.message}: ${code}` : e.message;
}

function unknown(reason: UnknownReason, message: string, extra: { status?: number; errorType?: string } = {}): Unknown {
  return { kind: 'unknown', reason, message, ...extra };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Prometheus sample values are strings: "1.5", "NaN", "+Inf", "-Inf". */
function sampleValue(pair: unknown): { timestamp: number; value: number } | string {
  if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'number' || typeof pair[1] !== 'string') return 'a sample is not [time, "value"]';
  const text = pair[1].trim();
  const value = text === '' ? Number.NaN : Number(text.replace(/^\+?Inf$/i, 'Infinity').replace(/^-Inf$/i, '-Infinity'));
  return { timestamp: pair[0], value };
}

/** The verdict for an HTTP status and body (exported for tests). */
export function interpret(status: number, text: string): QueryResult {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const errorType = isObject(body) && typeof body.errorType === 'string' ? body.errorType : undefined;
  const error = isObject(body) && typeof body.error === 'string' ? body.error : undefined;
  const detail = `${errorType ?? ''}${errorType && error ? ': ' : ''}${error ?? (body === undefined ? text.slice(0, 200).trim() : '')}`;
  const extra = { status, ...(errorType ? { errorType } : {}) };
  if (status >= 300 && status < 400) return unknown('redirect', `HTTP ${status}: redirects are not followed`, extra);
  if (status >= 400 && status < 500) return unknown('bad_data', `HTTP ${status}${detail ? `: ${detail}` : ''}`, extra);
  if (status >= 500) return unknown('server_error', `HTTP ${status}${detail ? `: ${detail}` : ''}`, extra);
  if (status < 200) return unknown('unparsable', `HTTP ${status}`, extra);
  if (!isObject(body)) return unknown('unparsable', `the answer is not JSON: ${text.slice(0, 200)}`, extra);
  if (body.status === 'error') return unknown('prometheus_error', detail || 'status "error"', extra);
  if (body.status !== 'success' || !isObject(body.data)) return unknown('unparsable', 'no status "success" with data', extra);
  const warnings = Array.isArray(body.warnings) ? body.warnings.filter((w): w is string => typeof w === 'string') : [];
  const { resultType, result } = body.data;
  if (resultType === 'scalar') {
    const v = sampleValue(result);
    if (typeof v === 'string') return unknown('unparsable', v, extra);
    if (!Number.isFinite(v.value)) return unknown('not_finite', `scalar is ${String(v.value)}`, extra);
    return { kind: 'scalar', value: v.value, timestamp: v.timestamp, warnings };
  }
  if (resultType !== 'vector') return unknown('unsupported_result', `result type ${String(resultType)} (an instant query of a vector or scalar was expected)`, extra);
  if (!Array.isArray(result)) return unknown('unparsable', 'vector result is not a list', extra);
  if (result.length === 0) return unknown('empty', 'no series matched', extra);
  const samples: Sample[] = [];
  for (const s of result) {
    if (!isObject(s) || !isObject(s.metric)) return unknown('unparsable', 'a series has no metric labels', extra);
    const v = sampleValue(s.value);
    if (typeof v === 'string') return unknown('unparsable', v, extra);
    const labels = Object.fromEntries(Object.entries(s.metric).filter((e): e is [string, string] => typeof e[1] === 'string'));
    if (!Number.isFinite(v.value)) return unknown('not_finite', `series ${seriesName(labels)} is ${String(v.value)}`, extra);
    samples.push({ labels, value: v.value, timestamp: v.timestamp });
  }
  return { kind: 'vector', samples, warnings };
}

function seriesName(labels: Record<string, string>): string {
  const name = labels.__name__ ?? '';
  const rest = Object.entries(labels).filter(([k]) => k !== '__name__').map(([k, v]) => `${k}="${v}"`).join(',');
  return `${name}{${rest}}`;
}

/**
 * One number from a verdict: a scalar, or a vector of exactly one series (what `sum(...)` gives).
 * Several series are `unsupported_result`, not a silently picked one.
 */
export function singleValue(result: QueryResult): { kind: 'value'; value: number } | Unknown {
  if (result.kind === 'unknown') return result;
  if (result.kind === 'scalar') return { kind: 'value', value: result.value };
  const [only, ...more] = result.samples;
  if (!only || more.length > 0) return unknown('unsupported_result', `${result.samples.length} series where one was expected`);
  return { kind: 'value', value: only.value };
}
