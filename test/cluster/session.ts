// Several engineers' test runs share one cluster dir on this machine: a lock file serialises
// `up`/`down`, and each jest run registers its pid under <cluster dir>/users so that one run's
// teardown does not stop the cluster under another run's tests.
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlive, log } from './control-plane.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** Runs `fn` while holding `lockPath` (created exclusively; a lock of a dead process is taken over). */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = 60 * 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
    }
    const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(holder) || holder <= 0 || !isAlive(holder)) {
      // Left behind by a process that died (or is being written right now: give it a moment).
      await sleep(200);
      const again = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (again === holder) await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (!announced) {
      log(`waiting for ${lockPath} (held by pid ${holder})`);
      announced = true;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${lockPath} held by pid ${holder}`);
    await sleep(500);
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

export function lockPathFor(clusterDir: string): string {
  return `${clusterDir.replace(/\/+$/, '')}.lock`;
}

/** Records that process `pid` (a jest run) uses the cluster. */
export async function registerUser(clusterDir: string, pid: number): Promise<void> {
  await mkdir(join(clusterDir, 'users'), { recursive: true });
  await writeFile(join(clusterDir, 'users', String(pid)), new Date().toISOString() + '\n');
}

/** The pids registered as users that are still alive (entries of dead ones are removed). */
export async function liveUsers(clusterDir: string): Promise<number[]> {
  const dir = join(clusterDir, 'users');
  if (!existsSync(dir)) return [];
  const live: number[] = [];
  for (const entry of await readdir(dir)) {
    const pid = Number(entry);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) live.push(pid);
    else await unlink(join(dir, entry)).catch(() => undefined);
  }
  return live.sort((a, b) => a - b);
}

/** Removes `pid` from the users; returns the users that remain. */
export async function releaseUser(clusterDir: string, pid: number): Promise<number[]> {
  await unlink(join(clusterDir, 'users', String(pid))).catch(() => undefined);
  return liveUsers(clusterDir);
}
