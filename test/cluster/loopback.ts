// Small helpers the add-ons (Prometheus, the S3 store) and their test helpers share: everything the
// harness dials is on 127.0.0.1, and these refuse anything else before a byte is sent.
import { createServer } from 'node:net';

export class NotLoopbackError extends Error {
  constructor(
    readonly url: string,
    options?: ErrorOptions,
  ) {
    super(`refusing to contact ${url}: the harness only talks to 127.0.0.1`, options);
    this.name = 'NotLoopbackError';
  }
}

/** Parses `url` and throws unless it is http(s)://127.0.0.1[:port]/… (no other host, no user info). */
export function assertLoopbackUrl(url: string | URL): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new NotLoopbackError(String(url), { cause: err });
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname !== '127.0.0.1' || u.username !== '' || u.password !== '') {
    throw new NotLoopbackError(u.toString());
  }
  return u;
}

/** `fetch` to 127.0.0.1 only, with a timeout (default 10 s). */
export async function loopbackFetch(url: string | URL, init: RequestInit = {}, timeoutMs = 10_000): Promise<Response> {
  const u = assertLoopbackUrl(url);
  return fetch(u, { ...init, redirect: 'error', signal: init.signal ?? AbortSignal.timeout(timeoutMs) });
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === 'string') reject(new Error('unexpected server address'));
        else resolve(address.port);
      });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs` (with the last
 * error as cause) or as soon as `dead()` returns a reason (the process it waits for has exited).
 */
export async function pollUntil(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; dead?: () => string | undefined },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const reason = opts.dead?.();
    if (reason !== undefined) throw new Error(`${what}: ${reason}`);
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}`, { cause: lastError });
    await sleep(opts.intervalMs ?? 100);
  }
}

/** True while the process `pid` exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
