// Jest global teardown of the "e2e" project: stops the cluster only if the global setup started it
// (a cluster started with `npm run cluster:up` keeps running). WHISPEROPS_KEEP_CLUSTER=1 keeps it
// for debugging.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export default function globalTeardown(_globalConfig: unknown, projectConfig?: { rootDir?: string }): void {
  if (process.env.WHISPEROPS_KEEP_CLUSTER === '1') {
    process.stderr.write('[cluster] WHISPEROPS_KEEP_CLUSTER=1: leaving the cluster running (npm run cluster:down stops it)\n');
    return;
  }
  const root = projectConfig?.rootDir ?? process.cwd();
  const res = spawnSync(join(root, 'node_modules', '.bin', 'tsx'), [join(root, 'test', 'cluster', 'cli.ts'), 'down', '--if-owner', 'jest', '--user-pid', String(process.pid)], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (res.status !== 0) throw new Error(`stopping the test cluster failed (status ${String(res.status)})`);
}
