// Prometheus 3.x for the local cluster: discovers pods through the API server with an identity of its
// own (RBAC: list/watch pods, nothing else) and scrapes only those that run on this machine.
//
// kwok's fake pods have invented 10.244.x.y IPs and kubernetes_sd finds them like any other pod, so the
// scrape job keeps only pods whose IP is in 127.0.0.0/8: Prometheus never sends a packet off the host.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig, RbacAuthorizationV1Api, type V1ClusterRole, type V1ClusterRoleBinding } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { binDir } from './config.js';
import type { AddonContext } from './control-plane.js';
import { freeLoopbackPort, loopbackFetch, pidAlive, pollUntil } from './loopback.js';

export interface PrometheusInfo {
  /** http://127.0.0.1:<port> */
  url: string;
  /** <cluster dir>/prometheus/prometheus.yml */
  configFile: string;
  /** <cluster dir>/prometheus/data */
  dataDir: string;
  scrapeIntervalSeconds: number;
  /** the identity it discovers pods with (client certificate CN = RBAC user) */
  user: string;
  /** the scrape job of annotated pods */
  podsJob: string;
  pid: number;
}

export const prometheusUser = 'whisperops-prometheus';
export const prometheusRbacName = 'whisperops-prometheus';
export const podsJobName = 'kubernetes-pods';
export const selfJobName = 'prometheus';
export const defaultScrapeIntervalSeconds = 2;
/** Samples are kept this long: the cluster is thrown away, queries look back minutes at most. */
export const retention = '2h';

/**
 * RE2 (Prometheus anchors it: ^(?:…)$) for an IPv4 address in 127.0.0.0/8, every octet 0–255 in
 * canonical decimal form.
 */
const octet = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
export const loopbackIpRegex = `127(?:\\.${octet}){3}`;

/** The annotations the pods job reads, and the meta labels kubernetes_sd derives from them. */
export const scrapeAnnotations = {
  scrape: 'prometheus.io/scrape',
  port: 'prometheus.io/port',
  path: 'prometheus.io/path',
  scheme: 'prometheus.io/scheme',
} as const;
const meta = '__meta_kubernetes_';
const annotationLabel = (annotation: string): string => `${meta}pod_annotation_${annotation.replace(/[^a-zA-Z0-9_]/g, '_')}`;

/** WHISPEROPS_PROMETHEUS_SCRAPE_INTERVAL: whole seconds ("5" or "5s", 1–300); default 2. */
export function scrapeIntervalFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.WHISPEROPS_PROMETHEUS_SCRAPE_INTERVAL;
  if (raw === undefined || raw.trim() === '') return defaultScrapeIntervalSeconds;
  const m = /^\s*(\d+)s?\s*$/.exec(raw);
  const seconds = m?.[1] !== undefined ? Number(m[1]) : NaN;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 300) {
    throw new Error(`WHISPEROPS_PROMETHEUS_SCRAPE_INTERVAL=${raw}: expected whole seconds between 1 and 300 (e.g. "2" or "2s")`);
  }
  return seconds;
}

export interface PrometheusConfigInput {
  /** https://127.0.0.1:<port> of the API server */
  apiServer: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  scrapeIntervalSeconds: number;
  /** 127.0.0.1:<port> Prometheus listens on (its own scrape job) */
  listenAddress: string;
}

export interface RelabelConfig {
  source_labels?: string[];
  separator?: string;
  regex?: string;
  target_label?: string;
  replacement?: string;
  action?: 'keep' | 'drop' | 'replace' | 'labelmap';
}

/** The relabelling of the pods job: which discovered pods become targets, and their labels. */
export function podRelabelConfigs(): RelabelConfig[] {
  return [
    // Opt-in per pod.
    { source_labels: [annotationLabel(scrapeAnnotations.scrape)], regex: 'true', action: 'keep' },
    // Only pods on this machine: kwok invents 10.244.x.y IPs that must never be dialled.
    { source_labels: [`${meta}pod_ip`], regex: loopbackIpRegex, action: 'keep' },
    { source_labels: [`${meta}pod_phase`], regex: 'Running', action: 'keep' },
    // Address: pod IP + the port annotation; without it, the container port kubernetes_sd found.
    {
      source_labels: [`${meta}pod_ip`, annotationLabel(scrapeAnnotations.port)],
      separator: ';',
      regex: '(.+);([0-9]+)',
      replacement: '$1:$2',
      target_label: '__address__',
      action: 'replace',
    },
    { source_labels: [annotationLabel(scrapeAnnotations.path)], regex: '(.+)', target_label: '__metrics_path__', action: 'replace' },
    { source_labels: [annotationLabel(scrapeAnnotations.scheme)], regex: '(https?)', target_label: '__scheme__', action: 'replace' },
    // The address may only be on 127.0.0.0/8 after all rewrites too.
    { source_labels: ['__address__'], regex: `${loopbackIpRegex}(?::[0-9]+)?`, action: 'keep' },
    { regex: `${meta}pod_label_(.+)`, action: 'labelmap' },
    { source_labels: [`${meta}namespace`], target_label: 'namespace', action: 'replace' },
    { source_labels: [`${meta}pod_name`], target_label: 'pod', action: 'replace' },
    { source_labels: [`${meta}pod_node_name`], target_label: 'node', action: 'replace' },
    { source_labels: [`${meta}pod_container_name`], target_label: 'container', action: 'replace' },
  ];
}

/** The whole prometheus.yml as a plain object (see prometheusConfigYaml). */
export function prometheusConfig(input: PrometheusConfigInput): Record<string, unknown> {
  const interval = `${input.scrapeIntervalSeconds}s`;
  return {
    global: {
      scrape_interval: interval,
      evaluation_interval: interval,
      scrape_timeout: `${Math.max(1, input.scrapeIntervalSeconds - 1)}s`,
      external_labels: { cluster: 'whisperops-local' },
    },
    storage: { tsdb: { retention: { time: retention } } },
    scrape_configs: [
      // Prometheus itself: `up{job="prometheus"}` is there from the first scrape on.
      { job_name: selfJobName, static_configs: [{ targets: [input.listenAddress] }] },
      {
        job_name: podsJobName,
        honor_labels: false,
        kubernetes_sd_configs: [
          {
            role: 'pod',
            api_server: input.apiServer,
            tls_config: { ca_file: input.caFile, cert_file: input.certFile, key_file: input.keyFile },
          },
        ],
        // Pods annotated prometheus.io/scheme: https (an EdgePool with spec.tls) serve /metrics over TLS
        // with a certificate of their own CA, which Prometheus cannot know per pod: the scrape encrypts
        // without verifying, as the kubelet's HTTPS probes do. /metrics is open on the agents anyway.
        tls_config: { insecure_skip_verify: true },
        relabel_configs: podRelabelConfigs(),
      },
    ],
  };
}

export function prometheusConfigYaml(input: PrometheusConfigInput): string {
  return '# Written by test/cluster/prometheus.ts on every cluster start.\n' + stringify(prometheusConfig(input), { lineWidth: 0 });
}

export function prometheusArgs(opts: { configFile: string; dataDir: string; listenAddress: string }): string[] {
  return [
    `--config.file=${opts.configFile}`,
    `--web.listen-address=${opts.listenAddress}`,
    `--storage.tsdb.path=${opts.dataDir}`,
    '--web.enable-lifecycle',
    '--log.level=info',
  ];
}

/** The ClusterRole (list/watch pods only) and its binding to the Prometheus user. */
export function prometheusRbac(): { role: V1ClusterRole; binding: V1ClusterRoleBinding } {
  const labels = { 'app.kubernetes.io/part-of': 'whisperops-test-cluster', 'app.kubernetes.io/name': 'prometheus' };
  return {
    role: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: prometheusRbacName, labels },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] }],
    },
    binding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: prometheusRbacName, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: prometheusRbacName },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: prometheusUser }],
    },
  };
}

function statusCode(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number' ? err.code : undefined;
}

async function applyRbac(kubeconfig: string): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const { role, binding } = prometheusRbac();
  try {
    await rbac.createClusterRole({ body: role });
  } catch (err) {
    if (statusCode(err) !== 409) throw new Error(`create ClusterRole ${prometheusRbacName}`, { cause: err });
    await rbac.replaceClusterRole({ name: prometheusRbacName, body: role });
  }
  try {
    await rbac.createClusterRoleBinding({ body: binding });
  } catch (err) {
    if (statusCode(err) !== 409) throw new Error(`create ClusterRoleBinding ${prometheusRbacName}`, { cause: err });
    await rbac.replaceClusterRoleBinding({ name: prometheusRbacName, body: binding });
  }
}

async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Applies the RBAC, writes prometheus.yml, starts Prometheus and waits until it is ready and has listed pods. */
export async function startPrometheus(ctx: AddonContext): Promise<PrometheusInfo | undefined> {
  const t0 = Date.now();
  const scrapeIntervalSeconds = scrapeIntervalFromEnv();
  const home = join(ctx.dir, 'prometheus');
  const dataDir = join(home, 'data');
  const configFile = join(home, 'prometheus.yml');
  await mkdir(dataDir, { recursive: true });
  const port = await freeLoopbackPort();
  const listenAddress = `127.0.0.1:${port}`;
  const url = `http://${listenAddress}`;
  const client = ctx.pki.client('prometheus');
  await Promise.all([
    applyRbac(ctx.adminKubeconfig),
    writeFile(
      configFile,
      prometheusConfigYaml({
        apiServer: ctx.server,
        caFile: ctx.pki.caCert,
        certFile: client.cert,
        keyFile: client.key,
        scrapeIntervalSeconds,
        listenAddress,
      }),
    ),
  ]);
  const binary = join(binDir(), 'prometheus');
  const pid = ctx.startDetached('prometheus', binary, prometheusArgs({ configFile, dataDir, listenAddress }));
  const logFile = ctx.logFile('prometheus');
  const dead = (): string | undefined => (pidAlive(pid) ? undefined : 'prometheus exited');
  try {
    await pollUntil('Prometheus /-/ready', async () => (await loopbackFetch(`${url}/-/ready`)).status === 200, { timeoutMs: 60_000, dead });
    // The targets API answers once the scrape and discovery managers run. Discovered targets reach the
    // scrape manager in batches, at most every 5 s (Prometheus's discovery manager), so new pods show up
    // there within about 5 s plus a scrape interval; waiting for that here would only slow the start.
    await pollUntil('Prometheus /api/v1/targets', async () => (await loopbackFetch(`${url}/api/v1/targets?state=any`)).status === 200, {
      timeoutMs: 30_000,
      dead,
    });
  } catch (err) {
    throw new Error(`Prometheus did not become ready; last lines of ${logFile}:\n${await tail(logFile)}`, { cause: err });
  }
  process.stderr.write(`[cluster] Prometheus ready at ${url} (${Date.now() - t0} ms)\n`);
  return { url, configFile, dataDir, scrapeIntervalSeconds, user: prometheusUser, podsJob: podsJobName, pid };
}
