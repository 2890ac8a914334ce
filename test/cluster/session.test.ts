import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveUsers, lockPathFor, registerUser, releaseUser, withLock } from './session.js';

const made: string[] = [];
const tmp = async (): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'wo-session-'));
  made.push(dir);
  return dir;
};
afterAll(async () => {
  await Promise.all(made.map((d) => rm(d, { recursive: true, force: true })));
});
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('withLock', () => {
  it('never lets two holders in at once, and removes the lock afterwards', async () => {
    const lock = join(await tmp(), 'x.lock');
    let inside = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      [1, 2, 3].map((n) =>
        withLock(lock, async () => {
          inside++;
          peak = Math.max(peak, inside);
          await sleep(30);
          order.push(n);
          inside--;
        }),
      ),
    );
    expect(peak).toBe(1);
    expect(order.sort()).toEqual([1, 2, 3]);
    expect(existsSync(lock)).toBe(false);
  });

  it('takes over a lock left by a dead process', async () => {
    const lock = join(await tmp(), 'x.lock');
    await writeFile(lock, '999999999');
    await expect(withLock(lock, () => Promise.resolve('got it'), 5_000)).resolves.toBe('got it');
  });

  it('releases the lock when the work throws', async () => {
    const lock = join(await tmp(), 'x.lock');
    await expect(withLock(lock, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(existsSync(lock)).toBe(false);
  });

  it('puts the lock beside the cluster dir, not inside it', () => {
    expect(lockPathFor('/tmp/whisperops-cluster/')).toBe('/tmp/whisperops-cluster.lock');
  });
});

describe('users', () => {
  it('counts live registered processes and forgets dead ones', async () => {
    const dir = await tmp();
    await registerUser(dir, process.pid);
    await registerUser(dir, 999999999);
    expect(await liveUsers(dir)).toEqual([process.pid]);
    expect(await releaseUser(dir, process.pid)).toEqual([]);
  });
});
