// Jest global setup of the "e2e" project: starts the local control plane (or reuses one started by
// `npm run cluster:up`) and hands its admin kubeconfig to the tests as WHISPEROPS_TEST_KUBECONFIG.
// It runs test/cluster/cli.ts in a child process (tsx), so the cluster's processes outlive neither
// more nor less than the CLI defines, and this file stays free of ESM-only syntax.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

interface UpResult {
  reused: boolean;
  adminKubeconfig: string;
  dir: string;
  server: string;
  startSeconds: number;
}

export default function globalSetup(_globalConfig: unknown, projectConfig?: { rootDir?: string }): void {
  const root = projectConfig?.rootDir ?? process.cwd();
  const t0 = Date.now();
  const res = spawnSync(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'test', 'cluster', 'cli.ts'), 'up', '--owner', 'jest', '--json', '--user-pid', String(process.pid)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (res.status !== 0) {
    throw new Error(`starting the test cluster failed (status ${String(res.status)}); see the [cluster] lines above`);
  }
  const line = res.stdout.trim().split('\n').pop() ?? '';
  const up = JSON.parse(line) as UpResult;
  process.env.WHISPEROPS_TEST_KUBECONFIG = up.adminKubeconfig;
  process.env.WHISPEROPS_CLUSTER_DIR = up.dir;
  process.stderr.write(
    `\n[cluster] ${up.reused ? 'reusing the running cluster' : `cluster started in ${up.startSeconds.toFixed(1)} s`} at ${up.server} ` +
      `(global setup took ${((Date.now() - t0) / 1000).toFixed(1)} s); WHISPEROPS_TEST_KUBECONFIG=${up.adminKubeconfig}\n`,
  );
}
