// Operator configuration: defaults ← config file (YAML, --config or WHISPEROPS_CONFIG) ← environment
// (WHISPEROPS_<FLAG NAME>) ← command-line flags (--flag=value or --flag value). Pure: argv, env and a
// file reader come in; a checked config or a ConfigError listing every problem comes out.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { urlProblem } from './prometheus/client.js';
import { validateLeaderElection } from './runtime/leader-election.js';
import { OPERATOR_VERSION } from './version.js';

export interface OperatorConfig {
  /** Path of a kubeconfig; '' = in-cluster, then $KUBECONFIG / ~/.kube/config. */
  kubeconfig: string;
  /** Namespace to watch, or several separated by commas; '' = all namespaces. */
  namespace: string;
  workers: number;
  resyncPeriodSeconds: number;
  /** Seconds after which the API server ends each watch (randomized up to twice this). */
  watchTimeoutSeconds: number;
  queue: { baseDelayMs: number; maxDelaySeconds: number; qps: number; burst: number };
  leaderElection: {
    enabled: boolean;
    leaseName: string;
    /** '' = $POD_NAMESPACE, else the watched namespace, else "whisperops-system". */
    leaseNamespace: string;
    leaseDurationSeconds: number;
    renewDeadlineSeconds: number;
    retryPeriodSeconds: number;
    /** '' = $POD_NAME or the host name, plus a random suffix. */
    identity: string;
  };
  http: { bindAddress: string };
  trainer: { image: string; imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never'; serviceAccountName: string; masterPort: number; tmpSizeLimit: string; shmSizeLimit: string };
  /** The edge agent run by EdgePools (spec.agent.image overrides the image per pool). */
  agent: { image: string; imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never' };
  /** EdgePool controller: how often a builtin-mode pool re-reads its load and decides its size. */
  edgePool: { syncPeriodSeconds: number };
  prometheus: {
    /** Base URL of the Prometheus the built-in scaler queries ('' = none; a pool may name its own). */
    url: string;
    /** Refuse Prometheus hosts outside 127.0.0.0/8 (tests and the local cluster set it; production leaves it off). */
    loopbackOnly: boolean;
    timeoutSeconds: number;
  };
  shutdownTimeoutSeconds: number;
  /** A leader whose caches have not synced after this long exits and gives the Lease up (0: wait forever). */
  cacheSyncTimeoutSeconds: number;
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' };
}

export function defaultConfig(): OperatorConfig {
  return {
    kubeconfig: '',
    namespace: '',
    workers: 8,
    resyncPeriodSeconds: 600,
    watchTimeoutSeconds: 300,
    queue: { baseDelayMs: 5, maxDelaySeconds: 1000, qps: 10, burst: 100 },
    leaderElection: {
      enabled: true, leaseName: 'whisperops-operator', leaseNamespace: '',
      leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2, identity: '',
    },
    http: { bindAddress: '0.0.0.0:8080' },
    trainer: { image: `ghcr.io/whisperops/trainer:${OPERATOR_VERSION}`, imagePullPolicy: 'IfNotPresent', serviceAccountName: '', masterPort: 29500, tmpSizeLimit: '100Gi', shmSizeLimit: '16Gi' },
    agent: { image: `ghcr.io/whisperops/edge-agent:${OPERATOR_VERSION}`, imagePullPolicy: 'IfNotPresent' },
    edgePool: { syncPeriodSeconds: 15 },
    prometheus: { url: '', loopbackOnly: false, timeoutSeconds: 5 },
    shutdownTimeoutSeconds: 30,
    cacheSyncTimeoutSeconds: 120,
    log: { level: 'info' },
  };
}

type Kind = 'string' | 'number' | 'boolean';
interface Option { flag: string; path: string; kind: Kind; help: string }

export const OPTIONS: Option[] = [
  { flag: 'kubeconfig', path: 'kubeconfig', kind: 'string', help: 'kubeconfig file (default: in-cluster, then $KUBECONFIG)' },
  { flag: 'namespace', path: 'namespace', kind: 'string', help: 'only watch this namespace, or these (comma-separated; default: all)' },
  { flag: 'workers', path: 'workers', kind: 'number', help: 'concurrent reconciles per controller' },
  { flag: 'resync-period', path: 'resyncPeriodSeconds', kind: 'number', help: 'seconds between full resyncs of the cache' },
  { flag: 'watch-timeout', path: 'watchTimeoutSeconds', kind: 'number', help: 'seconds before the API server ends a watch (randomized ×1–2)' },
  { flag: 'queue-base-delay-ms', path: 'queue.baseDelayMs', kind: 'number', help: 'first retry delay of a failing key' },
  { flag: 'queue-max-delay', path: 'queue.maxDelaySeconds', kind: 'number', help: 'longest retry delay of a failing key' },
  { flag: 'queue-qps', path: 'queue.qps', kind: 'number', help: 'overall rate of retries (token bucket)' },
  { flag: 'queue-burst', path: 'queue.burst', kind: 'number', help: 'burst of the token bucket' },
  { flag: 'leader-elect', path: 'leaderElection.enabled', kind: 'boolean', help: 'run the controllers only while holding the leader Lease' },
  { flag: 'leader-election-lease-name', path: 'leaderElection.leaseName', kind: 'string', help: 'name of the Lease' },
  { flag: 'leader-election-namespace', path: 'leaderElection.leaseNamespace', kind: 'string', help: 'namespace of the Lease (default: $POD_NAMESPACE)' },
  { flag: 'leader-election-lease-duration', path: 'leaderElection.leaseDurationSeconds', kind: 'number', help: 'seconds a Lease stays valid without renewal' },
  { flag: 'leader-election-renew-deadline', path: 'leaderElection.renewDeadlineSeconds', kind: 'number', help: 'seconds the leader keeps trying to renew before it gives up' },
  { flag: 'leader-election-retry-period', path: 'leaderElection.retryPeriodSeconds', kind: 'number', help: 'seconds between acquire/renew attempts' },
  { flag: 'leader-election-id', path: 'leaderElection.identity', kind: 'string', help: 'identity written to the Lease (default: pod name + random suffix)' },
  { flag: 'http-bind-address', path: 'http.bindAddress', kind: 'string', help: 'host:port of /healthz, /readyz and /metrics' },
  { flag: 'trainer-image', path: 'trainer.image', kind: 'string', help: 'trainer image used when a FineTuneJob sets no spec.image' },
  { flag: 'trainer-image-pull-policy', path: 'trainer.imagePullPolicy', kind: 'string', help: 'Always, IfNotPresent or Never' },
  { flag: 'trainer-service-account', path: 'trainer.serviceAccountName', kind: 'string', help: 'ServiceAccount of trainer pods (default: the namespace default)' },
  { flag: 'trainer-master-port', path: 'trainer.masterPort', kind: 'number', help: 'torchrun rendezvous port' },
  { flag: 'trainer-tmp-size-limit', path: 'trainer.tmpSizeLimit', kind: 'string', help: 'sizeLimit of the trainer pods\' /tmp emptyDir (a quantity, e.g. 100Gi)' },
  { flag: 'trainer-shm-size-limit', path: 'trainer.shmSizeLimit', kind: 'string', help: 'sizeLimit of the trainer pods\' memory-backed /dev/shm (a quantity, e.g. 16Gi)' },
  { flag: 'agent-image', path: 'agent.image', kind: 'string', help: 'edge agent image used when an EdgePool sets no spec.agent.image' },
  { flag: 'agent-image-pull-policy', path: 'agent.imagePullPolicy', kind: 'string', help: 'Always, IfNotPresent or Never' },
  { flag: 'edgepool-sync-period', path: 'edgePool.syncPeriodSeconds', kind: 'number', help: 'seconds between load reads and scale decisions of a builtin-mode EdgePool (and between checks that an InferenceDeployment\'s new stable model is loaded by its agents)' },
  { flag: 'prometheus-url', path: 'prometheus.url', kind: 'string', help: 'Prometheus base URL of the built-in scaler ("" = none)' },
  { flag: 'prometheus-loopback-only', path: 'prometheus.loopbackOnly', kind: 'boolean', help: 'refuse Prometheus hosts outside 127.0.0.0/8 (local clusters and tests)' },
  { flag: 'prometheus-timeout', path: 'prometheus.timeoutSeconds', kind: 'number', help: 'seconds one Prometheus query may take' },
  { flag: 'shutdown-timeout', path: 'shutdownTimeoutSeconds', kind: 'number', help: 'seconds to finish in-flight reconciles on SIGTERM' },
  { flag: 'cache-sync-timeout', path: 'cacheSyncTimeoutSeconds', kind: 'number', help: 'seconds a new leader waits for its caches to sync before it exits and gives the Lease up (0 = forever)' },
  { flag: 'log-level', path: 'log.level', kind: 'string', help: 'fatal, error, warn, info, debug or trace' },
];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid operator configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export function envName(flag: string): string {
  return `WHISPEROPS_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function coerce(raw: string, kind: Kind, where: string, problems: string[]): string | number | boolean | undefined {
  if (kind === 'string') return raw;
  if (kind === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) {
      problems.push(`${where}: "${raw}" is not a number`);
      return undefined;
    }
    return n;
  }
  if (/^(true|1|yes)$/i.test(raw)) return true;
  if (/^(false|0|no)$/i.test(raw)) return false;
  problems.push(`${where}: "${raw}" is not a boolean`);
  return undefined;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (!isRecord(next)) return;
    node = next;
  }
  node[parts[parts.length - 1] ?? path] = value;
}

/** Copies a YAML document onto the defaults, refusing unknown keys and wrong types. */
function mergeFile(target: Record<string, unknown>, doc: Record<string, unknown>, prefix: string, problems: string[]): void {
  for (const [key, value] of Object.entries(doc)) {
    const where = prefix ? `${prefix}.${key}` : key;
    if (!(key in target)) {
      problems.push(`config file: unknown setting "${where}"`);
      continue;
    }
    const current = target[key];
    if (isRecord(current)) {
      if (isRecord(value)) mergeFile(current, value, where, problems);
      else problems.push(`config file: "${where}" must be a mapping`);
    } else if (typeof value !== typeof current) {
      problems.push(`config file: "${where}" must be a ${typeof current}, got ${JSON.stringify(value)}`);
    } else {
      target[key] = value;
    }
  }
}

export interface ConfigSources {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  readFile: (path: string) => string;
}

export function usage(): string {
  const lines = OPTIONS.map((o) => `  --${o.flag}${o.kind === 'boolean' ? '[=true|false]' : '=VALUE'}  ${o.help}  (env ${envName(o.flag)})`);
  return ['Usage: whisperops-operator [--config=FILE] [flags]', '  --config=FILE  YAML file with the settings below, in camelCase (env WHISPEROPS_CONFIG)', ...lines].join('\n');
}

export function loadConfig(src: ConfigSources): OperatorConfig {
  const problems: string[] = [];
  const config = defaultConfig();
  const root = config as unknown as Record<string, unknown>;

  // Flags first, so that --config is known before the file is read.
  const flags = new Map<string, string>();
  const args = [...src.argv];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] ?? '';
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument "${arg}"`);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const option = OPTIONS.find((o) => o.flag === name);
    if (name !== 'config' && !option) {
      problems.push(`unknown flag --${name}`);
      continue;
    }
    if (eq >= 0) flags.set(name, arg.slice(eq + 1));
    else if (option?.kind === 'boolean' && (args[i + 1] === undefined || args[i + 1]?.startsWith('--'))) flags.set(name, 'true');
    else if (args[i + 1] === undefined) problems.push(`flag --${name} needs a value`);
    else {
      flags.set(name, args[i + 1] ?? '');
      i += 1;
    }
  }

  const file = flags.get('config') ?? src.env.WHISPEROPS_CONFIG;
  if (file) {
    try {
      const doc: unknown = parseYaml(src.readFile(file));
      if (doc !== null && doc !== undefined) {
        if (isRecord(doc)) mergeFile(root, doc, '', problems);
        else problems.push(`config file ${file}: the document must be a mapping`);
      }
    } catch (err) {
      problems.push(`config file ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  for (const option of OPTIONS) {
    const raw = src.env[envName(option.flag)];
    if (raw === undefined) continue;
    const value = coerce(raw, option.kind, envName(option.flag), problems);
    if (value !== undefined) setPath(root, option.path, value);
  }
  if (!config.kubeconfig && src.env.KUBECONFIG && !src.env.KUBERNETES_SERVICE_HOST) config.kubeconfig = src.env.KUBECONFIG;
  for (const option of OPTIONS) {
    const raw = flags.get(option.flag);
    if (raw === undefined) continue;
    const value = coerce(raw, option.kind, `--${option.flag}`, problems);
    if (value !== undefined) setPath(root, option.path, value);
  }

  // Derived defaults.
  const le = config.leaderElection;
  if (!le.leaseNamespace) le.leaseNamespace = src.env.POD_NAMESPACE || config.namespace.split(',')[0]?.trim() || 'whisperops-system';
  if (!le.identity) le.identity = `${src.env.POD_NAME || hostname()}_${randomBytes(4).toString('hex')}`;

  problems.push(...validate(config));
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

export function validate(c: OperatorConfig): string[] {
  const problems: string[] = [];
  const positiveInt = (v: number, what: string) => {
    if (!Number.isInteger(v) || v < 1) problems.push(`${what} must be a positive integer, got ${v}`);
  };
  positiveInt(c.workers, 'workers');
  positiveInt(c.queue.burst, 'queue.burst');
  positiveInt(c.trainer.masterPort, 'trainer.masterPort');
  if (c.trainer.masterPort > 65535) problems.push('trainer.masterPort must be ≤ 65535');
  for (const k of ['tmpSizeLimit', 'shmSizeLimit'] as const) {
    if (!/^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/.test(c.trainer[k])) problems.push(`trainer.${k} must be a quantity such as 16Gi (got "${c.trainer[k]}")`);
  }
  if (!(c.queue.qps > 0)) problems.push('queue.qps must be > 0');
  if (!(c.queue.baseDelayMs > 0)) problems.push('queue.baseDelayMs must be > 0');
  if (!(c.queue.maxDelaySeconds * 1000 >= c.queue.baseDelayMs)) problems.push('queue.maxDelaySeconds must be ≥ queue.baseDelayMs');
  if (!(c.resyncPeriodSeconds >= 0)) problems.push('resyncPeriodSeconds must be ≥ 0 (0 = off)');
  if (!(c.watchTimeoutSeconds >= 1)) problems.push('watchTimeoutSeconds must be ≥ 1');
  if (!(c.shutdownTimeoutSeconds >= 0)) problems.push('shutdownTimeoutSeconds must be ≥ 0');
  if (!(c.cacheSyncTimeoutSeconds >= 0)) problems.push('cacheSyncTimeoutSeconds must be ≥ 0');
  if (!['Always', 'IfNotPresent', 'Never'].includes(c.trainer.imagePullPolicy)) problems.push(`trainer.imagePullPolicy must be Always, IfNotPresent or Never, got ${c.trainer.imagePullPolicy}`);
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(c.log.level)) problems.push(`log.level must be fatal, error, warn, info, debug or trace, got ${c.log.level}`);
  if (c.trainer.image === '') problems.push('trainer.image must not be empty');
  if (c.agent.image === '') problems.push('agent.image must not be empty');
  if (!['Always', 'IfNotPresent', 'Never'].includes(c.agent.imagePullPolicy)) problems.push(`agent.imagePullPolicy must be Always, IfNotPresent or Never, got ${c.agent.imagePullPolicy}`);
  if (!(c.edgePool.syncPeriodSeconds >= 1)) problems.push(`edgePool.syncPeriodSeconds must be ≥ 1, got ${c.edgePool.syncPeriodSeconds}`);
  if (!(c.prometheus.timeoutSeconds > 0)) problems.push(`prometheus.timeoutSeconds must be > 0, got ${c.prometheus.timeoutSeconds}`);
  if (c.prometheus.url !== '') {
    const problem = urlProblem(c.prometheus.url, { loopbackOnly: c.prometheus.loopbackOnly });
    if (problem) problems.push(`prometheus.url: ${problem}`);
  }
  if (!parseBindAddress(c.http.bindAddress)) problems.push(`http.bindAddress must be host:port, got "${c.http.bindAddress}"`);
  const le = c.leaderElection;
  if (le.enabled) {
    if (!Number.isInteger(le.leaseDurationSeconds) || le.leaseDurationSeconds < 1) problems.push('leaderElection.leaseDurationSeconds must be a whole number of seconds ≥ 1 (the Lease stores whole seconds)');
    problems.push(...validateLeaderElection({
      leaseDurationMs: le.leaseDurationSeconds * 1000, renewDeadlineMs: le.renewDeadlineSeconds * 1000, retryPeriodMs: le.retryPeriodSeconds * 1000,
    }).map((p) => `leaderElection: ${p}`));
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(le.leaseName)) problems.push(`leaderElection.leaseName "${le.leaseName}" is not a valid object name`);
  }
  return problems;
}

/** "host:port", ":port" (all interfaces) or "[::1]:port". */
export function parseBindAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
