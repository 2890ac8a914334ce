// The process-backed nodes of the local cluster: one `process-node` program (test/cluster/modules/
// process-node, virtual-kubelet v1.13.0) registers 4 Jetson nodes, 1 A100 node and 1 system node whose
// pods of the project's own images (images.yaml) run as real host processes, each with its own
// loopback address 127.B.x.y. kwok keeps every node annotated as fake; these nodes are not.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { clusterSourceDir, repoRoot } from './config.js';
import type { AddonContext } from './control-plane.js';
import { kubeconfigDocument } from './kubeconfig.js';
import { a100Products, edgeTaint } from './nodes.js';

/** Label every process-backed node carries (kwok's nodes carry `type: kwok`). */
export const processNodeLabel = { key: 'type', value: 'process' } as const;
export const processJetsonNodeNames = ['jetson-proc-0', 'jetson-proc-1', 'jetson-proc-2', 'jetson-proc-3'] as const;
export const processA100NodeName = 'a100-proc-0';
export const processSystemNodeName = 'system-proc-0';
export const localStorageClass = 'whisperops-local';

export interface ProcessNodesInfo {
  nodes: string[];
  /** 127.B.0.0/16: nodes are 127.B.0.N, pods 127.B.1.1 upwards */
  podNetwork: string;
  stateDir: string;
  imagesFile: string;
  /** cgroup (v1 cpu controller) of every pod of this cluster */
  cgroup: string;
  storageClass: string;
  binary: string;
}

export interface ProcessNodeSpec {
  name: string;
  labels: Record<string, string>;
  taints: { key: string; value: string; effect: string }[];
  capacity: Record<string, string>;
  address: string;
  note: string;
}

/** The default topology (pure): the same labels and taints as kwok's Jetson and A100 nodes, plus `type: process`. */
export function processNodeSpecs(prefix: string): ProcessNodeSpec[] {
  const base = (name: string, arch: string): Record<string, string> => ({
    'kubernetes.io/os': 'linux',
    'kubernetes.io/arch': arch,
    'beta.kubernetes.io/os': 'linux',
    'beta.kubernetes.io/arch': arch,
    'kubernetes.io/hostname': name,
    [processNodeLabel.key]: processNodeLabel.value,
  });
  const jetsons: ProcessNodeSpec[] = processJetsonNodeNames.map((name, i) => ({
    name,
    labels: { ...base(name, 'arm64'), 'whisperops.dev/device': 'jetson-agx-xavier', 'node-role.kubernetes.io/edge': '' },
    taints: [{ ...edgeTaint }],
    capacity: { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '32Gi' },
    address: `${prefix}.0.${i + 1}`,
    note: 'Process node: containers run as processes of this machine (arm64 Jetson labels, x86-64 CPU, no GPU)',
  }));
  const product = a100Products[0];
  const a100: ProcessNodeSpec = {
    name: processA100NodeName,
    labels: {
      ...base(processA100NodeName, 'amd64'),
      'nvidia.com/gpu.present': 'true',
      'nvidia.com/gpu.product': product,
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.memory': '81920',
      'nvidia.com/gpu.family': 'ampere',
      'nvidia.com/gpu.compute.major': '8',
      'nvidia.com/gpu.compute.minor': '0',
      'node.kubernetes.io/instance-type': 'p4de.24xlarge',
    },
    taints: [],
    capacity: { cpu: '96', memory: '1152Gi', pods: '110', 'ephemeral-storage': '7Ti', 'nvidia.com/gpu': '8' },
    address: `${prefix}.0.${jetsons.length + 1}`,
    note: 'Process node: nvidia.com/gpu is advertised but this machine has no GPU; the trainer runs on the CPU',
  };
  const system: ProcessNodeSpec = {
    name: processSystemNodeName,
    labels: { ...base(processSystemNodeName, 'amd64'), 'node-role.kubernetes.io/system': '' },
    taints: [],
    capacity: { cpu: '4', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' },
    address: `${prefix}.0.${jetsons.length + 2}`,
    note: 'Process node: containers run as processes of this machine',
  };
  return [...jetsons, a100, system];
}

/** Loopback /16 blocks in use by listeners (from /proc/net/tcp{,6}): "127.B" prefixes. */
function prefixesInUse(): Set<string> {
  const used = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local === undefined) continue;
      const hex = local.split(':')[0] ?? '';
      // IPv4 (8 hex digits, little-endian) or the last 8 digits of an IPv4-mapped IPv6 address.
      const v4 = hex.length === 8 ? hex : hex.length === 32 && hex.startsWith('0000000000000000FFFF0000') ? hex.slice(24) : undefined;
      if (v4 === undefined) continue;
      const bytes = [6, 4, 2, 0].map((i) => parseInt(v4.slice(i, i + 2), 16));
      if (bytes[0] === 127) used.add(`127.${String(bytes[1])}`);
    }
  }
  return used;
}

/** A 127.B prefix for this cluster dir (B in 16..250, stable for a dir, moved on when taken). */
export function choosePrefix(dir: string, inUse: Set<string> = prefixesInUse()): string {
  const h = createHash('sha256').update(dir).digest().readUInt32BE(0);
  for (let i = 0; i < 235; i++) {
    const b = 16 + ((h + i) % 235);
    const prefix = `127.${String(b)}`;
    if (!inUse.has(prefix)) return prefix;
  }
  throw new Error('no free 127.B.0.0/16 block for pod addresses');
}

/** Builds (or finds cached) the process-node program; returns its bin dir. */
export function processNodeBinDir(): string {
  const script = join(clusterSourceDir, 'build', 'build-process-node.sh');
  const res = spawnSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (res.status !== 0) throw new Error(`${script} failed with status ${String(res.status)}`);
  const dir = res.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(join(dir, 'process-node'))) throw new Error(`${script} printed no bin dir`);
  return dir;
}

/** The trainer's venv (scripts/setup/python.sh) and the Python home it was made from. */
function pythonVars(): { PYTHON_VENV: string; PYTHON_HOME: string } {
  const res = spawnSync('bash', [join(repoRoot, 'scripts', 'setup', 'python.sh'), '--print'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (res.status !== 0) throw new Error('scripts/setup/python.sh --print failed: the trainer image needs its venv');
  const venv = res.stdout.trim().split('\n').pop() ?? '';
  const cfg = readFileSync(join(venv, 'pyvenv.cfg'), 'utf8');
  const home = /^home\s*=\s*(.+)$/m.exec(cfg)?.[1]?.trim();
  if (home === undefined) throw new Error(`${venv}/pyvenv.cfg has no home`);
  return { PYTHON_VENV: venv, PYTHON_HOME: dirname(home) };
}

export async function startProcessNodes(ctx: AddonContext): Promise<ProcessNodesInfo> {
  const t0 = Date.now();
  const bin = processNodeBinDir();
  const stateDir = join(ctx.dir, 'process-nodes');
  await mkdir(stateDir, { recursive: true });
  const prefix = choosePrefix(ctx.dir);
  const nodes = processNodeSpecs(prefix);
  const server = new URL(ctx.server);
  const cgroup = `whisperops-${prefix.replace('.', '-')}`;
  const imagesFile = join(clusterSourceDir, 'images.yaml');
  const config = {
    stateDir,
    imagesFile,
    vars: { REPO: repoRoot, NODE_BIN_DIR: dirname(process.execPath), ...pythonVars() },
    bindShim: join(bin, 'bindshim.so'),
    podNetworkPrefix: prefix,
    apiServerHost: server.hostname,
    apiServerPort: Number(server.port),
    clusterCAFile: ctx.pki.caCert,
    nodeAPIPort: 10250,
    cgroupName: cgroup,
    volumeSyncSeconds: 2,
    storageClass: localStorageClass,
    nodes,
  };
  const configFile = join(stateDir, 'config.json');
  await writeFile(configFile, JSON.stringify(config, null, 2) + '\n');
  const { cert, key } = ctx.pki.client('process-node');
  const kubeconfig = join(ctx.dir, 'process-node.kubeconfig');
  await writeFile(
    kubeconfig,
    kubeconfigDocument({
      clusterName: 'whisperops-test',
      server: ctx.server,
      caData: await readFile(ctx.pki.caCert, 'utf8'),
      userName: 'whisperops-process-node',
      user: { clientCertificateData: await readFile(cert, 'utf8'), clientKeyData: await readFile(key, 'utf8') },
    }),
    { mode: 0o600 },
  );
  const pid = ctx.startDetached('process-node', join(bin, 'process-node'), ['run', '--config', configFile, '--kubeconfig', kubeconfig]);

  const kc = new KubeConfig();
  kc.loadFromFile(ctx.adminKubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const names = new Set(nodes.map((n) => n.name));
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      throw new Error(`process-node exited; see ${ctx.logFile('process-node')}`);
    }
    const list = await core.listNode({ labelSelector: `${processNodeLabel.key}=${processNodeLabel.value}` });
    const ready = list.items.filter((n) => names.has(n.metadata?.name ?? '') && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    if (ready.length === names.size) break;
    if (Date.now() > deadline) throw new Error(`process nodes not Ready after 60 s; see ${ctx.logFile('process-node')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  process.stderr.write(`[cluster] ${String(nodes.length)} process nodes Ready, pods on ${prefix}.0.0/16 (${String(Date.now() - t0)} ms)\n`);
  return { nodes: nodes.map((n) => n.name), podNetwork: `${prefix}.0.0/16`, stateDir, imagesFile, cgroup, storageClass: localStorageClass, binary: join(bin, 'process-node') };
}

/**
 * Kills whatever is left of the process nodes' pods after the process-node program stopped (it stops
 * its pods itself; this catches processes of a program that was SIGKILLed), and removes the cgroups.
 */
export function sweepProcessNodePods(info: ProcessNodesInfo | undefined): number {
  if (info === undefined) return 0;
  const base = join('/sys/fs/cgroup/cpu', info.cgroup);
  if (!existsSync(base)) return 0;
  let killed = 0;
  const dirs: string[] = [];
  const walk = (d: string): void => {
    dirs.push(d);
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
    }
  };
  for (let round = 0; round < 20; round++) {
    dirs.length = 0;
    walk(base);
    const pids = dirs.flatMap((d) => {
      try {
        return readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      } catch {
        return [];
      }
    });
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // gone already
      }
    }
    spawnSync('sleep', ['0.05']);
  }
  for (const d of dirs.reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // busy or gone
    }
  }
  return killed;
}
