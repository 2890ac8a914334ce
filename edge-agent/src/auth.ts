// Bearer-token authentication for the agent's API, from token files (an EdgePool's auth Secret mounted
// as a volume): one token a line, blank lines and `#` comments ignored, so a rotation can list the old
// and the new token for a while. The file is re-read when it changes (checked at most once a second:
// path, size, mtime, inode — a Secret volume swaps a `..data` symlink), so a rotation needs no restart.
// Transcription (and /v1/models) and feedback have separate files; without a file that route is open
// (loopback development). /healthz, /readyz and /metrics are always open. Tokens are compared by their
// sha256 with timingSafeEqual; a configured file that cannot be read (or holds no token) refuses
// everything (fail closed). A refused request's body is never buffered: up to 1 MiB of it is read and
// dropped so that the client sees the 401, then the connection is closed.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { NextFunction, Request, Response } from 'express';

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** The tokens in one file, re-read when the file changes. */
export class TokenFile {
  private digests: Buffer[] = [];
  private signature = '';
  private checkedAt = -Infinity;
  private checking: Promise<void> | undefined;
  /** Why the file gave no token, when it did not (logged once per change). */
  problem: string | undefined;

  constructor(
    readonly path: string,
    private readonly opts: { recheckMs?: number; now?: () => number; onProblem?: (path: string, problem: string) => void } = {},
  ) {}

  /** The digests of the file's tokens, re-read when it changed (at most once per recheckMs). Never rejects. */
  async current(): Promise<Buffer[]> {
    const now = (this.opts.now ?? Date.now)();
    if (now - this.checkedAt >= (this.opts.recheckMs ?? 1000)) {
      this.checkedAt = now;
      this.checking ??= this.reload().finally(() => (this.checking = undefined));
    }
    if (this.checking) await this.checking;
    return this.digests;
  }

  private async reload(): Promise<void> {
    try {
      const st = await stat(this.path);
      const signature = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (signature === this.signature) return;
      const tokens = (await readFile(this.path, 'utf8'))
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'));
      this.signature = signature;
      this.digests = tokens.map(digest);
      this.setProblem(tokens.length === 0 ? 'the token file holds no token' : undefined);
    } catch (err) {
      this.signature = '';
      this.digests = [];
      const message = (err as { message?: unknown } | null)?.message;
      this.setProblem(`the token file cannot be read: ${typeof message === 'string' ? message : String(err)}`);
    }
  }

  private setProblem(problem: string | undefined): void {
    if (problem !== undefined && problem !== this.problem) this.opts.onProblem?.(this.path, problem);
    this.problem = problem;
  }

  /** True when `token` is one of the file's tokens. */
  async accepts(token: string): Promise<boolean> {
    const d = digest(token);
    let ok = false;
    for (const t of await this.current()) ok = timingSafeEqual(t, d) || ok;
    return ok;
  }
}

/** The token of `Authorization: Bearer <token>`, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header ?? '');
  return m?.[1];
}

export type AuthRoute = 'transcriptions' | 'models' | 'feedback';

/** Which token file guards a request path (undefined: open). */
export function routeOf(path: string): AuthRoute | undefined {
  if (path === '/v1/audio/transcriptions' || path.startsWith('/v1/audio/transcriptions/')) return 'transcriptions';
  if (path === '/v1/models' || path.startsWith('/v1/models/')) return 'models';
  if (path === '/v1/feedback' || path.startsWith('/v1/feedback/')) return 'feedback';
  return undefined;
}

export interface AuthConfig {
  /** Guards /v1/audio/transcriptions and /v1/models. */
  transcription?: TokenFile;
  /** Guards /v1/feedback. */
  feedback?: TokenFile;
  /** A refused request (route), for the auth_failures_total counter. */
  onFailure?: (route: AuthRoute) => void;
}

/**
 * Express middleware: requests to a guarded route need `Authorization: Bearer <a token of its file>`,
 * else 401 in OpenAI's error shape (`invalid_api_key`) with `WWW-Authenticate: Bearer`; the body is
 * not read. Everything else passes.
 */
export function requireBearer(config: AuthConfig): (req: Request, res: Response, next: NextFunction) => void {
  return (req, res, next) => {
    const route = routeOf(req.path);
    const file = route === undefined ? undefined : route === 'feedback' ? config.feedback : config.transcription;
    if (route === undefined || file === undefined) {
      next();
      return;
    }
    const token = bearerToken(req.headers.authorization);
    const check = token === undefined ? Promise.resolve(false) : file.accepts(token);
    void check.then((ok) => {
      if (ok) {
        next();
        return;
      }
      config.onFailure?.(route);
      discardBody(req, () => {
        res.set('WWW-Authenticate', `Bearer realm="whisperops-agent"${token === undefined ? '' : ', error="invalid_token"'}`);
        res.set('Connection', 'close');
        res.status(401).json({
          error: {
            message: token === undefined ? `this route needs an "Authorization: Bearer <token>" header` : 'the bearer token is not valid for this route',
            type: 'invalid_request_error',
            param: null,
            code: 'invalid_api_key',
          },
        });
      });
    });
  };
}

/** Bytes of a refused request's body read and thrown away so that its client sees the 401 (not a reset). */
export const DISCARD_BYTES = 1024 * 1024;
const DISCARD_MS = 2000;

/**
 * Reads and drops a refused request's body (nothing is kept) up to DISCARD_BYTES / DISCARD_MS, then
 * calls `answer` once: a client still sending its upload gets the answer instead of a connection reset;
 * a larger or slower body is cut (the answer closes the connection).
 */
function discardBody(req: Request, answer: () => void): void {
  if (req.complete || req.readableEnded) {
    answer();
    return;
  }
  let seen = 0;
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    req.off('data', onData);
    answer();
  };
  const onData = (chunk: Buffer): void => {
    seen += chunk.length;
    if (seen > DISCARD_BYTES) finish();
  };
  const timer = setTimeout(finish, DISCARD_MS);
  req.on('data', onData);
  req.once('end', finish);
  req.once('error', finish);
  req.resume();
}
