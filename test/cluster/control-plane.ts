// Starts, checks and stops the local control plane: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and the kwok controller, all bound to 127.0.0.1, as detached processes whose ids
// are kept in <cluster dir>/state.json so that another process (`cluster:down`, jest teardown) can
// stop exactly them.
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import {
  adminKubeconfigPath,
  binDir as defaultBinDir,
  clusterDir as defaultClusterDir,
  stagesDir,
  stateFile as defaultStateFile,
  versionKey,
  versions,
} from './config.js';
import { kubeconfigDocument } from './kubeconfig.js';
import { createNodes, desiredNodes, kwokNodeAnnotation } from './nodes.js';
import { startObjectStore, type ObjectStoreInfo } from './object-store.js';
import { createPki, frontProxyClientName, type ClientIdentity, type Pki } from './pki.js';
import { startProcessNodes, sweepProcessNodePods, type ProcessNodesInfo } from './process-nodes.js';
import { startPrometheus, type PrometheusInfo } from './prometheus.js';

export const components = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'] as const;
export type Component = (typeof components)[number];

export interface Ports {
  etcdClient: number;
  etcdPeer: number;
  apiserver: number;
  controllerManager: number;
  scheduler: number;
  kwok: number;
}

export type Owner = 'cli' | 'jest';

/**
 * What an add-on (the process-backed nodes, Prometheus, the S3 store) gets to start itself once the
 * control plane is up. Add-ons live in their own files (process-nodes.ts, prometheus.ts, object-store.ts).
 */
export interface AddonContext {
  /** the cluster dir; an add-on keeps its state under a sub-folder of its own */
  dir: string;
  /** https://127.0.0.1:<port> of the API server */
  server: string;
  pki: Pki;
  adminKubeconfig: string;
  /** the clean environment the control plane's processes run with (PATH, HOME inside the cluster dir) */
  env: NodeJS.ProcessEnv;
  /** <dir>/logs/<name>.log */
  logFile(name: string): string;
  /** Starts a detached process (own process group) logging to logFile(name); returns its pid. */
  startDetached(name: string, binary: string, args: string[], env?: NodeJS.ProcessEnv): number;
}

/** A long-running process an add-on started: stopped (TERM, then KILL) by stopCluster, checked by isHealthy. */
export interface AddonProcess {
  name: string;
  pid: number;
  /** absolute path of the binary it runs (guards against reused pids) */
  binary: string;
}

/** What the add-ons report (URLs, credentials' locations); printed by `cluster:up` and read by tests. */
export interface AddonsInfo {
  processNodes?: ProcessNodesInfo;
  prometheus?: PrometheusInfo;
  objectStore?: ObjectStoreInfo;
}

export interface ClusterState {
  versionKey: string;
  binDir: string;
  dir: string;
  owner: Owner;
  server: string;
  ports: Ports;
  pids: Record<Component, number>;
  edgeNodes: number;
  adminKubeconfig: string;
  startedAt: string;
  startSeconds: number;
  addons: AddonsInfo;
  addonProcesses: AddonProcess[];
}

/** Everything the service CIDR and kwok invent is documentation/private space that nothing here contacts. */
export const serviceCidr = '10.96.0.0/16';
export const kubernetesServiceIp = '10.96.0.1';
export const podCidr = '10.244.0.0/16';
export const serviceAccountIssuer = 'https://kubernetes.default.svc.cluster.local';

const clients: ClientIdentity[] = [
  { file: 'admin', commonName: 'whisperops-admin', organizations: ['system:masters'] },
  { file: 'controller-manager', commonName: 'system:kube-controller-manager', organizations: [] },
  { file: 'scheduler', commonName: 'system:kube-scheduler', organizations: [] },
  // kwok writes node and pod status and leases of every fake node; it runs as a cluster admin like kwokctl's.
  { file: 'kwok', commonName: 'kwok-controller', organizations: ['system:masters'] },
  // The process-backed nodes (virtual-kubelet): one process runs several nodes, mints ServiceAccount
  // tokens for their pods and provisions local volumes, so it runs as a cluster admin like kwok.
  { file: 'process-node', commonName: 'whisperops-process-node', organizations: ['system:masters'] },
  // The API server's client certificate towards the node API (kubectl logs/exec), as kubeadm names it.
  { file: 'apiserver-kubelet-client', commonName: 'kube-apiserver-kubelet-client', organizations: ['system:masters'] },
  // Prometheus discovers pods with its own identity: RBAC grants it list/watch on pods only (prometheus.ts).
  { file: 'prometheus', commonName: 'whisperops-prometheus', organizations: [] },
];

export function log(message: string): void {
  process.stderr.write(`[cluster] ${message}\n`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Reserves `count` distinct free TCP ports on 127.0.0.1 (all held open at once, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('unexpected server address');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when `pid` runs a binary from `bin` (guards against a reused process id after a reboot). */
async function isOurProcess(pid: number, bin: string): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.startsWith(bin + '/');
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Flags of each component (pure: they only depend on paths and ports).

export interface Layout {
  dir: string;
  bin: string;
  pki: Pki;
  ports: Ports;
  kubeconfigs: Record<'admin' | 'controller-manager' | 'scheduler' | 'kwok', string>;
  stageFiles: string[];
}

export function etcdArgs(l: Layout): string[] {
  const client = `http://127.0.0.1:${l.ports.etcdClient}`;
  const peer = `http://127.0.0.1:${l.ports.etcdPeer}`;
  return [
    '--name=whisperops',
    `--data-dir=${join(l.dir, 'etcd')}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=whisperops=${peer}`,
    '--initial-cluster-state=new',
    // A throw-away test store: no fsync keeps it fast on a shared disk.
    '--unsafe-no-fsync=true',
    '--quota-backend-bytes=8589934592',
    '--log-level=warn',
  ];
}

export function apiserverArgs(l: Layout): string[] {
  return [
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${l.ports.apiserver}`,
    `--etcd-servers=http://127.0.0.1:${l.ports.etcdClient}`,
    `--tls-cert-file=${l.pki.servingCert}`,
    `--tls-private-key-file=${l.pki.servingKey}`,
    `--client-ca-file=${l.pki.caCert}`,
    '--authorization-mode=Node,RBAC',
    `--service-account-issuer=${serviceAccountIssuer}`,
    `--service-account-key-file=${l.pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${l.pki.serviceAccountKey}`,
    `--service-cluster-ip-range=${serviceCidr}`,
    // The default admission plugins, ServiceAccount and NodeRestriction included.
    '--enable-admission-plugins=NodeRestriction',
    // Request-header authentication (for aggregated API servers), with its own CA as kubeadm sets it up.
    `--requestheader-client-ca-file=${l.pki.frontProxyCaCert}`,
    `--requestheader-allowed-names=${frontProxyClientName}`,
    '--requestheader-username-headers=X-Remote-User',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    `--proxy-client-cert-file=${l.pki.frontProxyClientCert}`,
    `--proxy-client-key-file=${l.pki.frontProxyClientKey}`,
    // The API server would publish its advertise address (127.0.0.1) as the endpoint of the
    // "kubernetes" Service, which Endpoints validation rejects as loopback; nothing in-cluster dials it.
    '--endpoint-reconciler-type=none',
    // kubectl logs/exec reach the process nodes' API with this certificate (they only accept clients of the cluster CA).
    `--kubelet-client-certificate=${l.pki.client('apiserver-kubelet-client').cert}`,
    `--kubelet-client-key=${l.pki.client('apiserver-kubelet-client').key}`,
    '--kubelet-preferred-address-types=InternalIP,Hostname',
    '--allow-privileged=true',
    '--profiling=false',
    '--v=1',
  ];
}

function componentAuthArgs(kubeconfig: string): string[] {
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
    '--bind-address=127.0.0.1',
    '--leader-elect=false',
    '--profiling=false',
    '--v=1',
  ];
}

export function controllerManagerArgs(l: Layout): string[] {
  return [
    ...componentAuthArgs(l.kubeconfigs['controller-manager']),
    `--secure-port=${l.ports.controllerManager}`,
    `--cert-dir=${join(l.dir, 'kube-controller-manager')}`,
    `--root-ca-file=${l.pki.caCert}`,
    `--service-account-private-key-file=${l.pki.serviceAccountKey}`,
    '--use-service-account-credentials=true',
    `--cluster-signing-cert-file=${l.pki.caCert}`,
    `--cluster-signing-key-file=${l.pki.caKey}`,
    `--service-cluster-ip-range=${serviceCidr}`,
    '--cluster-name=whisperops',
    '--controllers=*',
  ];
}

export function schedulerArgs(l: Layout): string[] {
  return [
    ...componentAuthArgs(l.kubeconfigs.scheduler),
    `--secure-port=${l.ports.scheduler}`,
    `--cert-dir=${join(l.dir, 'kube-scheduler')}`,
  ];
}

export function kwokArgs(l: Layout): string[] {
  return [
    `--kubeconfig=${l.kubeconfigs.kwok}`,
    ...l.stageFiles.map((f) => `--config=${f}`),
    `--manage-nodes-with-annotation-selector=${kwokNodeAnnotation.key}=${kwokNodeAnnotation.value}`,
    `--server-address=127.0.0.1:${l.ports.kwok}`,
    // Fake nodes report 127.0.0.1 and kwok's own port as their address, so anything that follows a
    // node address (kubectl logs/exec through the API server) stays on this machine.
    '--node-ip=127.0.0.1',
    `--node-port=${l.ports.kwok}`,
    `--cidr=${podCidr}`,
    '--node-lease-duration-seconds=40',
    // kwok logs every lease renewal at INFO: thousands of lines a minute with 5,000 nodes.
    '--v=WARN',
  ];
}

// ---------------------------------------------------------------------------------------------
// HTTP probes

interface ProbeTls {
  ca?: string;
  cert?: string;
  key?: string;
  /** for the self-signed serving certificates of KCM and the scheduler on 127.0.0.1 */
  insecure?: boolean;
}

function httpGet(url: string, tls: ProbeTls = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.hostname !== '127.0.0.1') {
      reject(new Error(`refusing to probe ${url}: the harness only talks to 127.0.0.1`));
      return;
    }
    const options = {
      method: 'GET',
      timeout: 5000,
      ...(u.protocol === 'https:'
        ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.insecure !== true }
        : {}),
    };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout GET ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  alive: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const dead = alive();
    if (dead !== undefined) throw new Error(`${what}: ${dead}`);
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
    }
    await sleep(250);
  }
}

/** True when at least `expected` nodes report Ready=True. */
async function countReady(core: CoreV1Api, expected: number): Promise<boolean> {
  const list = await core.listNode();
  const ready = list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  return ready.length >= expected;
}

// ---------------------------------------------------------------------------------------------
// State

export async function readState(file = defaultStateFile()): Promise<ClusterState | undefined> {
  if (!existsSync(file)) return undefined;
  return JSON.parse(await readFile(file, 'utf8')) as ClusterState;
}

async function tail(file: string, lines = 30): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Healthy = every process alive and the API server answers /readyz for the admin. */
export async function isHealthy(state: ClusterState): Promise<boolean> {
  for (const c of components) {
    if (!isAlive(state.pids[c]) || !(await isOurProcess(state.pids[c], state.binDir))) return false;
  }
  for (const p of state.addonProcesses ?? []) {
    if (!isAlive(p.pid) || !(await isOurProcess(p.pid, dirname(p.binary)))) return false;
  }
  const pki = join(state.dir, 'pki');
  try {
    const res = await httpGet(`${state.server}/readyz`, {
      ca: await readFile(join(pki, 'ca.crt'), 'utf8'),
      cert: await readFile(join(pki, 'admin.crt'), 'utf8'),
      key: await readFile(join(pki, 'admin.key'), 'utf8'),
    });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Stops the processes recorded in `state` (TERM, then KILL after 10 s), newest first. */
export async function stopProcesses(state: ClusterState): Promise<void> {
  for (const p of [...(state.addonProcesses ?? [])].reverse()) {
    if (!isAlive(p.pid) || !(await isOurProcess(p.pid, dirname(p.binary)))) continue;
    // Add-ons run in process groups of their own: the group goes with them (pods of the process nodes
    // have groups of their own, which the process-node program stops itself; see process-nodes.ts).
    await stopPid(p.pid, p.name, true);
  }
  const swept = sweepProcessNodePods(state.addons?.processNodes);
  if (swept > 0) log(`killed ${swept} left-over pod processes of the process nodes`);
  for (const c of [...components].reverse()) {
    const pid = state.pids[c];
    if (!pid || !isAlive(pid) || !(await isOurProcess(pid, state.binDir))) continue;
    await stopPid(pid, c, false);
  }
}

/** TERM, then KILL after 10 s (with `group`, to the whole process group whose leader is pid). */
async function stopPid(pid: number, name: string, group: boolean): Promise<void> {
  const target = group ? -pid : pid;
  try {
    process.kill(target, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  try {
    if (group || isAlive(pid)) process.kill(target, 'SIGKILL');
  } catch {
    // already gone
  }
  log(`stopped ${name} (pid ${pid})`);
}

/** Stops the cluster whose state is in the cluster dir and removes that dir. */
export async function stopCluster(dir = defaultClusterDir()): Promise<boolean> {
  const state = await readState(join(dir, 'state.json'));
  if (state !== undefined) await stopProcesses(state);
  if (existsSync(dir)) {
    // Only the harness's own files live here; refuse anything that does not look like it.
    const entries = await readdir(dir);
    if (entries.length > 0 && !entries.includes('state.json') && !entries.includes('pki')) {
      throw new Error(`${dir} does not look like a whisperops cluster dir; not removing it`);
    }
    await rm(dir, { recursive: true, force: true });
  }
  return state !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Start

export interface StartOptions {
  edgeNodes: number;
  owner: Owner;
  dir?: string;
  bin?: string;
}

function startProcess(bin: string, name: Component, args: string[], logFile: string, env: NodeJS.ProcessEnv): number {
  return spawnDetached(join(bin, name), args, logFile, env);
}

function spawnDetached(binary: string, args: string[], logFile: string, env: NodeJS.ProcessEnv): number {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(binary, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env,
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${binary}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export async function writeKubeconfig(
  path: string,
  server: string,
  pki: Pki,
  file: string,
  userName: string,
): Promise<void> {
  const { cert, key } = pki.client(file);
  const doc = kubeconfigDocument({
    clusterName: 'whisperops-test',
    server,
    caData: await readFile(pki.caCert, 'utf8'),
    userName,
    user: { clientCertificateData: await readFile(cert, 'utf8'), clientKeyData: await readFile(key, 'utf8') },
  });
  await writeFile(path, doc, { mode: 0o600 });
}

export async function startCluster(opts: StartOptions): Promise<ClusterState> {
  const t0 = Date.now();
  const dir = opts.dir ?? defaultClusterDir();
  const bin = opts.bin ?? defaultBinDir();
  for (const b of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'kubectl']) {
    if (!existsSync(join(bin, b))) {
      throw new Error(`${join(bin, b)} is missing: run \`bash scripts/setup/cluster.sh\` to build the binaries`);
    }
  }
  await stopCluster(dir);
  await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o700 });

  const [etcdClient, etcdPeer, apiserver, controllerManager, scheduler, kwok] = await freePorts(6);
  if (kwok === undefined || etcdClient === undefined || etcdPeer === undefined || apiserver === undefined) {
    throw new Error('could not reserve ports');
  }
  const ports: Ports = {
    etcdClient,
    etcdPeer,
    apiserver,
    controllerManager: controllerManager ?? 0,
    scheduler: scheduler ?? 0,
    kwok,
  };
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const pki = await createPki(join(dir, 'pki'), kubernetesServiceIp, clients);
  const kubeconfigs = {
    admin: adminKubeconfigPath({ ...process.env, WHISPEROPS_CLUSTER_DIR: dir }),
    'controller-manager': join(dir, 'controller-manager.kubeconfig'),
    scheduler: join(dir, 'scheduler.kubeconfig'),
    kwok: join(dir, 'kwok.kubeconfig'),
  };
  await Promise.all([
    writeKubeconfig(kubeconfigs.admin, server, pki, 'admin', 'whisperops-admin'),
    writeKubeconfig(kubeconfigs['controller-manager'], server, pki, 'controller-manager', 'system:kube-controller-manager'),
    writeKubeconfig(kubeconfigs.scheduler, server, pki, 'scheduler', 'system:kube-scheduler'),
    writeKubeconfig(kubeconfigs.kwok, server, pki, 'kwok', 'kwok-controller'),
  ]);
  const stageFiles = (await readdir(stagesDir)).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(stagesDir, f));
  const layout: Layout = { dir, bin, pki, ports, kubeconfigs, stageFiles };
  log(`certificates and kubeconfigs ready in ${dir} (${Date.now() - t0} ms)`);

  // A clean environment: no KUBECONFIG of the user's, and HOME inside the cluster dir so no
  // component reads or writes ~/.kube or ~/.kwok.
  const home = join(dir, 'home');
  await mkdir(home, { recursive: true });
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8' };

  const pids: Partial<Record<Component, number>> = {};
  const addons: AddonsInfo = {};
  const addonProcesses: AddonProcess[] = [];
  const logFile = (c: Component): string => join(dir, 'logs', `${c}.log`);
  const deadCheck = (c: Component) => (): string | undefined => {
    const pid = pids[c];
    return pid !== undefined && !isAlive(pid) ? `${c} exited; see ${logFile(c)}` : undefined;
  };
  const state = (): ClusterState => ({
    versionKey: versionKey(versions()),
    binDir: bin,
    dir,
    owner: opts.owner,
    server,
    ports,
    pids: pids as Record<Component, number>,
    edgeNodes: opts.edgeNodes,
    adminKubeconfig: kubeconfigs.admin,
    startedAt: new Date(t0).toISOString(),
    startSeconds: (Date.now() - t0) / 1000,
    addons,
    addonProcesses,
  });
  const saveState = async (): Promise<void> => {
    await writeFile(join(dir, 'state.json'), JSON.stringify(state(), null, 2) + '\n');
  };
  const withLogOnFailure = async (c: Component, p: Promise<void>): Promise<void> => {
    try {
      await p;
    } catch (err) {
      throw new Error(`${c} did not become ready; last lines of ${logFile(c)}:\n${await tail(logFile(c))}`, { cause: err });
    }
  };

  try {
    pids.etcd = startProcess(bin, 'etcd', etcdArgs(layout), logFile('etcd'), env);
    await saveState();
    await withLogOnFailure(
      'etcd',
      waitFor('etcd /health', 30_000, async () => {
        const res = await httpGet(`http://127.0.0.1:${ports.etcdClient}/health`);
        return res.status === 200 && res.body.includes('"health":"true"');
      }, deadCheck('etcd')),
    );
    log(`etcd ready (${Date.now() - t0} ms)`);

    pids['kube-apiserver'] = startProcess(bin, 'kube-apiserver', apiserverArgs(layout), logFile('kube-apiserver'), env);
    await saveState();
    const adminTls = {
      ca: await readFile(pki.caCert, 'utf8'),
      cert: await readFile(pki.client('admin').cert, 'utf8'),
      key: await readFile(pki.client('admin').key, 'utf8'),
    };
    await withLogOnFailure(
      'kube-apiserver',
      waitFor('kube-apiserver /readyz', 90_000, async () => (await httpGet(`${server}/readyz`, adminTls)).status === 200, deadCheck('kube-apiserver')),
    );
    log(`kube-apiserver ready at ${server} (${Date.now() - t0} ms)`);

    pids['kube-controller-manager'] = startProcess(bin, 'kube-controller-manager', controllerManagerArgs(layout), logFile('kube-controller-manager'), env);
    pids['kube-scheduler'] = startProcess(bin, 'kube-scheduler', schedulerArgs(layout), logFile('kube-scheduler'), env);
    pids.kwok = startProcess(bin, 'kwok', kwokArgs(layout), logFile('kwok'), env);
    await saveState();

    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigs.admin);
    const core = kc.makeApiClient(CoreV1Api);
    const nodes = desiredNodes(opts.edgeNodes);
    const tNodes = Date.now();
    await createNodes(core, nodes, 64);
    log(`created ${nodes.length} nodes in ${Date.now() - tNodes} ms`);

    await Promise.all([
      withLogOnFailure(
        'kube-controller-manager',
        waitFor('kube-controller-manager /healthz', 60_000, async () => {
          return (await httpGet(`https://127.0.0.1:${ports.controllerManager}/healthz`, { insecure: true })).status === 200;
        }, deadCheck('kube-controller-manager')),
      ),
      withLogOnFailure(
        'kube-scheduler',
        waitFor('kube-scheduler /healthz', 60_000, async () => {
          return (await httpGet(`https://127.0.0.1:${ports.scheduler}/healthz`, { insecure: true })).status === 200;
        }, deadCheck('kube-scheduler')),
      ),
      withLogOnFailure(
        'kwok',
        waitFor('kwok /healthz', 60_000, async () => (await httpGet(`http://127.0.0.1:${ports.kwok}/healthz`)).status === 200, deadCheck('kwok')),
      ),
    ]);
    log(`controller-manager, scheduler and kwok healthy (${Date.now() - t0} ms)`);

    await withLogOnFailure(
      'kwok',
      waitFor(`${nodes.length} nodes Ready`, 60_000 + nodes.length * 20, () => countReady(core, nodes.length), deadCheck('kwok')),
    );
    log(`${nodes.length} nodes Ready (${Date.now() - t0} ms)`);

    await withLogOnFailure(
      'kube-controller-manager',
      waitFor('default ServiceAccount', 60_000, async () => {
        await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
        return true;
      }, deadCheck('kube-controller-manager')),
    );
    await saveState();

    // Add-ons: the process-backed nodes, Prometheus and the S3 store, started side by side.
    const ctx: AddonContext = {
      dir,
      server,
      pki,
      adminKubeconfig: kubeconfigs.admin,
      env,
      logFile: (name) => join(dir, 'logs', `${name}.log`),
      startDetached: (name, binary, args, extraEnv) => {
        const pid = spawnDetached(binary, args, join(dir, 'logs', `${name}.log`), { ...env, ...extraEnv });
        addonProcesses.push({ name, pid, binary });
        return pid;
      },
    };
    const [processNodes, prometheus, objectStore] = await Promise.all([
      startProcessNodes(ctx).finally(saveState),
      startPrometheus(ctx).finally(saveState),
      startObjectStore(ctx).finally(saveState),
    ]);
    if (processNodes !== undefined) addons.processNodes = processNodes;
    if (prometheus !== undefined) addons.prometheus = prometheus;
    if (objectStore !== undefined) addons.objectStore = objectStore;
    log(`add-ons ready (${Date.now() - t0} ms)`);
    await saveState();
    const s = state();
    log(`cluster ready in ${s.startSeconds.toFixed(1)} s; admin kubeconfig: ${kubeconfigs.admin}`);
    return s;
  } catch (err) {
    await stopProcesses(state());
    throw err;
  }
}

/** Adds Jetson nodes to a running cluster until it has `edgeNodes` of them; waits until they are Ready. */
export async function addEdgeNodes(state: ClusterState, edgeNodes: number): Promise<ClusterState> {
  const t0 = Date.now();
  const kc = new KubeConfig();
  kc.loadFromFile(state.adminKubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const nodes = desiredNodes(edgeNodes);
  await createNodes(core, nodes.slice(2 + state.edgeNodes), 64);
  await waitFor(`${nodes.length} nodes Ready`, 60_000 + nodes.length * 20, async () => countReady(core, nodes.length));
  const next = { ...state, edgeNodes };
  await writeFile(join(state.dir, 'state.json'), JSON.stringify(next, null, 2) + '\n');
  log(`added ${edgeNodes - state.edgeNodes} Jetson nodes in ${Date.now() - t0} ms`);
  return next;
}

// ---------------------------------------------------------------------------------------------
// Faults: stop and restart one component of a running cluster (the fault e2e tests)

export interface RestartOptions {
  /** How it goes down: SIGKILL (a crash, the default) or SIGTERM (a clean stop). */
  signal?: 'SIGKILL' | 'SIGTERM';
  /** Time it stays down before it is started again. */
  downMs?: number;
  /** Runs while it is down (e.g. writes that must fail or wait). */
  whileDown?: () => Promise<void>;
  /** Changes its command line for the new process (e.g. add `--watch-cache=false`; restart again without it to restore). */
  args?: (args: string[]) => string[];
}

/**
 * Stops etcd or kube-apiserver of the cluster in `dir` and starts it again with exactly the command
 * line and data it had (read from /proc/<pid>/cmdline: same ports, certificates, etcd data dir),
 * waits until it is healthy again and records the new pid in state.json, so that cluster:down and the
 * jest teardown stop the new process. Returns the seconds it was unavailable (stop → healthy).
 */
export async function restartComponent(component: 'etcd' | 'kube-apiserver', opts: RestartOptions = {}, dir = defaultClusterDir()): Promise<number> {
  const file = join(dir, 'state.json');
  const state = await readState(file);
  if (state === undefined) throw new Error(`no cluster state in ${dir}`);
  const pid = state.pids[component];
  if (!isAlive(pid) || !(await isOurProcess(pid, state.binDir))) throw new Error(`${component} (pid ${pid}) is not running`);
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((a) => a !== '');
  const binary = argv[0] ?? '';
  const args = opts.args ? opts.args(argv.slice(1)) : argv.slice(1);
  const t0 = Date.now();
  process.kill(pid, opts.signal ?? 'SIGKILL');
  const deadline = Date.now() + 15_000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  while (isAlive(pid)) await sleep(50);
  log(`${component} (pid ${pid}) stopped with ${opts.signal ?? 'SIGKILL'}`);
  if (opts.whileDown) await opts.whileDown();
  if (opts.downMs) await sleep(opts.downMs);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home'), LANG: 'C.UTF-8' };
  const logFile = join(dir, 'logs', `${component}.log`);
  const newPid = spawnDetached(binary, args, logFile, env);
  const fresh = (await readState(file)) ?? state;
  fresh.pids[component] = newPid;
  await writeFile(file, JSON.stringify(fresh, null, 2) + '\n');
  const alive = () => (isAlive(newPid) ? undefined : `${component} exited after its restart; see ${logFile}`);
  if (component === 'etcd') {
    await waitFor('etcd /health after restart', 60_000, async () => {
      const res = await httpGet(`http://127.0.0.1:${state.ports.etcdClient}/health`);
      return res.status === 200 && res.body.includes('"health":"true"');
    }, alive);
  }
  const pkiDir = join(dir, 'pki');
  const adminTls = {
    ca: await readFile(join(pkiDir, 'ca.crt'), 'utf8'),
    cert: await readFile(join(pkiDir, 'admin.crt'), 'utf8'),
    key: await readFile(join(pkiDir, 'admin.key'), 'utf8'),
  };
  // Either way the API server must answer again (after an etcd restart it reconnects on its own).
  await waitFor('kube-apiserver /readyz after restart', 90_000, async () => (await httpGet(`${state.server}/readyz`, adminTls)).status === 200, alive);
  const seconds = (Date.now() - t0) / 1000;
  log(`${component} restarted as pid ${newPid}; unavailable for ${seconds.toFixed(1)} s`);
  return seconds;
}

/**
 * Compacts etcd's history up to its current revision (POST /v3/kv/compaction through etcd's gRPC
 * gateway): every resourceVersion older than now is gone, so a watch or list from one gets 410 Gone
 * once the API server's watch cache no longer has it. Returns the compacted revision.
 */
export async function compactEtcd(dir = defaultClusterDir()): Promise<number> {
  const state = await readState(join(dir, 'state.json'));
  if (state === undefined) throw new Error(`no cluster state in ${dir}`);
  const base = `http://127.0.0.1:${state.ports.etcdClient}`;
  const range = await httpPostJson(`${base}/v3/kv/range`, { key: Buffer.from('/').toString('base64'), limit: 1 });
  const revision = Number((range as { header?: { revision?: string } }).header?.revision ?? NaN);
  if (!Number.isFinite(revision)) throw new Error(`etcd answered no revision: ${JSON.stringify(range)}`);
  await httpPostJson(`${base}/v3/kv/compaction`, { revision: String(revision), physical: true });
  log(`etcd compacted at revision ${revision}`);
  return revision;
}

function httpPostJson(url: string, body: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.hostname !== '127.0.0.1') {
      reject(new Error(`refusing to call ${url}: the harness only talks to 127.0.0.1`));
      return;
    }
    const payload = JSON.stringify(body);
    const req = httpRequest(u, { method: 'POST', timeout: 10_000, headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        if ((res.statusCode ?? 0) !== 200) {
          reject(new Error(`POST ${url}: HTTP ${res.statusCode ?? 0}: ${text.slice(0, 300)}`));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch (err) {
          reject(new Error(`POST ${url}: not JSON`, { cause: err }));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout POST ${url}`)));
    req.on('error', reject);
    req.end(payload);
  });
}
