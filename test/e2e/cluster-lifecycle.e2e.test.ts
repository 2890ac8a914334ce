// `cluster:down` leaves nothing behind: a second, private cluster (its own WHISPEROPS_CLUSTER_DIR)
// is started with `cli.ts up --json`, runs a pod as a real process on a process-backed node, and is
// stopped with `cli.ts down --force`. Afterwards no process on this machine mentions the cluster dir
// in its command line or environment, the pod's own process is gone, and the dir is removed.
// (The shared test cluster of the other e2e tests is not touched.)
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, kubectl } from '../cluster/index.js';

// Starting a second cluster (≈ 10–15 s alone) on 2 cores shared with other clusters and test runs.
jest.setTimeout(300_000);

const REPO = process.cwd();

let parent = '';
let dir = '';

/** Runs `npx tsx test/cluster/cli.ts <args>` against the private cluster dir; resolves with stdout. */
function cli(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('npx', ['tsx', join(REPO, 'test', 'cluster', 'cli.ts'), ...args], {
      cwd: REPO, env: { ...process.env, WHISPEROPS_CLUSTER_DIR: dir }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024,
    }, (err, stdout, stderr) => (err ? reject(new Error(`cli.ts ${args.join(' ')} failed: ${stderr.slice(-3000)}`, { cause: err })) : resolve(stdout)));
  });
}

/** Every process whose command line or environment mentions `needle` (a /proc scan; vanished processes are skipped). */
function processesMentioning(needle: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      let environ = '';
      try {
        environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      } catch {
        // a kernel thread or a process of another user: its command line is still checked
      }
      if (cmdline.includes(needle) || environ.includes(needle)) found.push({ pid, cmdline });
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

beforeAll(async () => {
  parent = await mkdtemp(join(tmpdir(), 'wo-lifecycle-'));
  dir = join(parent, 'cluster');
});

afterAll(async () => {
  if (dir && existsSync(dir)) await cli(['down', '--force'], 120_000).catch(() => undefined);
  if (parent) rmSync(parent, { recursive: true, force: true });
});

describe('cluster:down of a private cluster', () => {
  it('stops every process it started, pods on process nodes included, and removes the cluster dir', async () => {
    const out = await cli(['up', '--json'], 180_000);
    const state = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { reused: boolean; dir: string; adminKubeconfig: string; pids: Record<string, number>; addonProcesses: { name: string; pid: number }[] };
    expect(state).toMatchObject({ reused: false, dir });
    const kubeconfig = state.adminKubeconfig;
    expect(kubeconfig.startsWith(`${dir}/`)).toBe(true);

    // A long-running pod of the edge-agent image, run as a real process by a process-backed node.
    const pod: V1Pod = {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { name: 'sleeper', namespace: 'default' },
      spec: {
        nodeSelector: { type: 'process' },
        tolerations: [{ key: 'whisperops.dev/edge', operator: 'Exists', effect: 'NoSchedule' }],
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 30,
        containers: [{ name: 'sleeper', image: 'ghcr.io/whisperops/edge-agent:0.1.0', command: ['sh', '-c', 'sleep 3600'] }],
      },
    };
    await kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod), kubeconfig });
    const running = await eventually('the pod Running on a process node', async () => {
      const p = JSON.parse(await kubectl(['get', 'pod', 'sleeper', '-n', 'default', '-o', 'json'], { kubeconfig })) as V1Pod;
      return p.status?.phase === 'Running' && p.status.containerStatuses?.[0]?.state?.running ? p : undefined;
    }, 90_000, 500);
    const [, node, pidText] = /^process:\/\/([^/]+)\/(\d+)$/.exec(running.status?.containerStatuses?.[0]?.containerID ?? '') ?? [];
    expect(node).toBe(running.spec?.nodeName);
    const podPid = Number(pidText);
    expect(existsSync(`/proc/${podPid}`)).toBe(true);
    expect(readFileSync(`/proc/${podPid}/cmdline`, 'utf8')).toMatch(/sleep/);

    // The scan sees the cluster while it runs: the control plane's own processes name the dir.
    const before = processesMentioning(dir).map((p) => p.pid);
    for (const pid of Object.values(state.pids)) expect(before).toContain(pid);
    expect(state.addonProcesses.map((a) => a.name)).toEqual(expect.arrayContaining(['prometheus', 'versitygw', 'process-node']));
    for (const addon of state.addonProcesses) expect(before).toContain(addon.pid);

    await cli(['down', '--force'], 120_000);

    expect(processesMentioning(dir)).toEqual([]);
    expect(existsSync(`/proc/${podPid}`)).toBe(false);
    for (const pid of before) expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(existsSync(dir)).toBe(false);
  });
});
