// The harness's library for end-to-end tests: talk to the local control plane started by the jest
// global setup (or by `npm run cluster:up`).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { S3Client } from '@aws-sdk/client-s3';
import { adminKubeconfigPath, binDir, clusterDir, repoRoot, stateFile } from './config.js';
import { readState, type ClusterState } from './control-plane.js';

export { compactEtcd, restartComponent } from './control-plane.js';
export type { RestartOptions } from './control-plane.js';
import { kubeconfigDocument } from './kubeconfig.js';
import { loopbackFetch } from './loopback.js';
import { makeS3Client, readCredentials, type ObjectStoreInfo, type S3Credentials } from './object-store.js';
import type { PrometheusInfo } from './prometheus.js';

export { binDir } from './config.js';
export { assertLoopbackUrl, loopbackFetch } from './loopback.js';
export { a100NodeNames, a100Products, edgeTaint, kwokNodeAnnotation } from './nodes.js';

/** Pod annotations read by the kwok stages in test/cluster/stages (see README). */
export const podOutcome = {
  outcome: 'test.whisperops.dev/outcome',
  exitCode: 'test.whisperops.dev/exit-code',
  terminationMessage: 'test.whisperops.dev/termination-message',
  reason: 'test.whisperops.dev/reason',
  runSeconds: 'test.whisperops.dev/run-seconds',
} as const;

/** Path of the admin kubeconfig (system:masters) of the running test cluster. */
export function testKubeconfigPath(): string {
  const path = process.env.WHISPEROPS_TEST_KUBECONFIG ?? adminKubeconfigPath();
  if (!existsSync(path)) {
    throw new Error(`no test cluster kubeconfig at ${path}: run the e2e project (its global setup starts the cluster) or \`npm run cluster:up\``);
  }
  return path;
}

export function loadAdminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(testKubeconfigPath());
  return kc;
}

export function helmPath(): string {
  return join(binDir(), 'helm');
}

export function kubectlPath(): string {
  return join(binDir(), 'kubectl');
}

export interface KubectlOptions {
  /** written to kubectl's stdin (for `-f -`) */
  input?: string;
  /** another kubeconfig (e.g. a ServiceAccount's); default: the admin one */
  kubeconfig?: string;
  timeoutMs?: number;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly stdout: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'CommandError';
  }
}

/** Runs a binary with only the harness's kubeconfig in its environment; resolves with stdout. */
export function runTool(binary: string, args: string[], kubeconfig: string, opts: KubectlOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      binary,
      args,
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: join(clusterDir(), 'home'),
          KUBECONFIG: kubeconfig,
          // helm keeps caches and repositories out of the user's home as well
          HELM_CACHE_HOME: join(clusterDir(), 'home', '.cache', 'helm'),
          HELM_CONFIG_HOME: join(clusterDir(), 'home', '.config', 'helm'),
          HELM_DATA_HOME: join(clusterDir(), 'home', '.local', 'share', 'helm'),
        },
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 120_000,
      },
      (err, stdout, stderr) => {
        if (err) {
          const name = binary.split('/').pop() ?? binary;
          reject(new CommandError(`${name} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, stderr, stdout, { cause: err }));
        } else {
          resolve(stdout);
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs the cached kubectl against the test cluster; resolves with stdout, rejects with stderr. */
export function kubectl(args: string[], opts: KubectlOptions = {}): Promise<string> {
  return runTool(kubectlPath(), args, opts.kubeconfig ?? testKubeconfigPath(), opts);
}

/** Runs the cached helm against the test cluster. */
export function helm(args: string[], opts: KubectlOptions = {}): Promise<string> {
  return runTool(helmPath(), args, opts.kubeconfig ?? testKubeconfigPath(), opts);
}

/**
 * Applies every crds/*.yaml of the repo (server-side) and waits until each CRD is Established.
 * Returns the names of the CRDs (e.g. `finetunejobs.whisperops.dev`).
 */
export async function applyCrds(dir = join(repoRoot, 'crds')): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort();
  if (files.length === 0) throw new Error(`no CRD files in ${dir}`);
  const args = ['apply', '--server-side', '--force-conflicts', '--field-manager=whisperops-tests', '-o', 'name'];
  for (const f of files) args.push('-f', join(dir, f));
  const out = await kubectl(args);
  const names = out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('customresourcedefinition.apiextensions.k8s.io/'));
  if (names.length === 0) throw new Error(`kubectl apply of ${dir} created no CustomResourceDefinition`);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...names]);
  return names.map((n) => n.slice('customresourcedefinition.apiextensions.k8s.io/'.length));
}

/** Creates a namespace `<prefix>-<random>` labelled as a test namespace; returns its name. */
export async function createTestNamespace(prefix: string): Promise<string> {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'test';
  const name = `${clean}-${randomBytes(4).toString('hex')}`;
  const core = loadAdminKubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({
    body: { metadata: { name, labels: { 'whisperops.dev/test': 'true', 'whisperops.dev/test-prefix': clean } } },
  });
  return name;
}

/** Deletes a namespace (without waiting for its finalization). */
export async function deleteTestNamespace(name: string): Promise<void> {
  const core = loadAdminKubeConfig().makeApiClient(CoreV1Api);
  await core.deleteNamespace({ name });
}

/**
 * Mints a token for a ServiceAccount (TokenRequest API) and writes a kubeconfig that authenticates
 * as it, so a test can run the operator with exactly its RBAC. Returns the file's path.
 */
export async function serviceAccountKubeconfigFile(namespace: string, name: string, expirationSeconds = 3600): Promise<string> {
  const admin = loadAdminKubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  const tr = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  const cluster = admin.getCurrentCluster();
  if (cluster === null) throw new Error('admin kubeconfig has no current cluster');
  const caData = cluster.caData !== undefined ? Buffer.from(cluster.caData, 'base64').toString('utf8') : await readFile(join(clusterDir(), 'pki', 'ca.crt'), 'utf8');
  const dir = join(clusterDir(), 'serviceaccounts');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${namespace}.${name}.kubeconfig`);
  await writeFile(
    path,
    kubeconfigDocument({
      clusterName: 'whisperops-test',
      server: cluster.server,
      caData,
      userName: `system:serviceaccount:${namespace}:${name}`,
      user: { token },
      namespace,
    }),
    { mode: 0o600 },
  );
  return path;
}

/** A KubeConfig that authenticates as the ServiceAccount `namespace/name` (see serviceAccountKubeconfigFile). */
export async function serviceAccountKubeConfig(namespace: string, name: string, expirationSeconds = 3600): Promise<KubeConfig> {
  const kc = new KubeConfig();
  kc.loadFromFile(await serviceAccountKubeconfigFile(namespace, name, expirationSeconds));
  return kc;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `intervalMs` until it returns a value other than undefined, or throws on timeout. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Add-ons: Prometheus and the S3 store of the running cluster (see README "Prometheus", "Object store")

/** state.json of the running cluster (WHISPEROPS_CLUSTER_DIR or the shared one). */
export async function clusterState(): Promise<ClusterState> {
  const state = await readState(stateFile());
  if (state === undefined) throw new Error(`no cluster state at ${stateFile()}: is the test cluster running?`);
  return state;
}

export async function prometheusInfo(): Promise<PrometheusInfo> {
  const info = (await clusterState()).addons.prometheus;
  if (info === undefined) throw new Error('the running cluster has no Prometheus (started by an older harness?)');
  return info;
}

/** http://127.0.0.1:<port> of the cluster's Prometheus. */
export async function prometheusUrl(): Promise<string> {
  return (await prometheusInfo()).url;
}

export type PromLabels = Record<string, string>;
/** [unix seconds, value as Prometheus prints it ("1", "NaN", "+Inf")] */
export type PromSample = [number, string];
export type PromQueryData =
  | { resultType: 'vector'; result: Array<{ metric: PromLabels; value: PromSample }> }
  | { resultType: 'matrix'; result: Array<{ metric: PromLabels; values: PromSample[] }> }
  | { resultType: 'scalar'; result: PromSample }
  | { resultType: 'string'; result: PromSample };

export class PromQueryError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errorType?: string,
  ) {
    super(message);
    this.name = 'PromQueryError';
  }
}

/**
 * GET /api/v1/query of the cluster's Prometheus (127.0.0.1 only). Returns `data` (`resultType` and
 * `result`; an empty vector is `result: []`); throws PromQueryError unless the answer is `success`.
 */
export async function promQuery(expr: string, time?: Date): Promise<PromQueryData> {
  const url = new URL('/api/v1/query', await prometheusUrl());
  url.searchParams.set('query', expr);
  if (time !== undefined) url.searchParams.set('time', String(time.getTime() / 1000));
  const res = await loopbackFetch(url, {}, 5_000);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new PromQueryError(`query ${expr}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`, res.status);
  }
  if (typeof body !== 'object' || body === null || !('status' in body)) {
    throw new PromQueryError(`query ${expr}: HTTP ${res.status}, unexpected answer`, res.status);
  }
  if (body.status !== 'success' || !res.ok || !('data' in body)) {
    const errorType = 'errorType' in body && typeof body.errorType === 'string' ? body.errorType : undefined;
    const error = 'error' in body && typeof body.error === 'string' ? body.error : 'no error message';
    throw new PromQueryError(`query ${expr}: HTTP ${res.status} ${errorType ?? ''}: ${error}`, res.status, errorType);
  }
  return body.data as PromQueryData;
}

/** The store's info from state.json plus its root credentials (from credentials.json; never log them). */
export async function objectStore(): Promise<ObjectStoreInfo & { credentials: S3Credentials }> {
  const info = (await clusterState()).addons.objectStore;
  if (info === undefined) throw new Error('the running cluster has no object store (started by an older harness?)');
  return { ...info, credentials: await readCredentials(info.credentialsFile) };
}

/** A standard S3 client (@aws-sdk/client-s3, path-style) for the cluster's store; destroy() it when done. */
export async function s3Client(): Promise<S3Client> {
  const store = await objectStore();
  return makeS3Client(store.endpoint, store.credentials);
}
