// Dataset stores: where the agent writes feedback samples. One small port (`SampleStore.put` of a
// whole object under a key relative to the store's root) with two implementations: s3://bucket/prefix/
// (PutObject; the SDK and its settings as for s3:// model artifacts, models/s3-store.ts) and
// file:///folder/ (a file written beside its final name, then renamed: a reader never sees half an
// object). Objects are written whole and never appended to: S3 has no append.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LazyS3Client, s3ClientConfig, s3Location, s3SettingsFromEnv } from '../models/s3-store.js';
import type { S3Settings } from '../models/s3-store.js';

/** A put that failed; the message names the object and the error, never a credential. */
export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export interface SampleStore {
  /** The store's root URI, ending in `/`. */
  readonly uri: string;
  /** Writes `body` as the object `key` (relative to the root); rejects with a StoreError. */
  put(key: string, body: Uint8Array, contentType: string, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** The root URI with a trailing `/`. */
export function storeRoot(uri: string): string {
  return uri.endsWith('/') ? uri : `${uri}/`;
}

export class UnsupportedStoreError extends Error {}

/** The store for `uri` (file:// or s3://); throws UnsupportedStoreError for anything else. */
export function openSampleStore(uri: string, env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000): SampleStore {
  let url: URL;
  try {
    url = new URL(storeRoot(uri));
  } catch (err) {
    throw new UnsupportedStoreError(`dataset store ${uri} is not a URI`, { cause: err });
  }
  if (url.protocol === 'file:') return new FileSampleStore(url);
  if (url.protocol === 's3:') {
    try {
      return new S3SampleStore(url, env, timeoutMs);
    } catch (err) {
      throw new UnsupportedStoreError(`dataset store ${uri}: ${(err as Error).message}`, { cause: err });
    }
  }
  throw new UnsupportedStoreError(`dataset store ${uri}: only file:// and s3:// can be written`);
}

export class FileSampleStore implements SampleStore {
  readonly uri: string;
  private readonly root: string;

  constructor(url: URL) {
    this.uri = url.href;
    this.root = normalize(fileURLToPath(url)).replace(/[\\/]+$/, '');
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const path = normalize(join(this.root, key));
    if (!path.startsWith(this.root + sep)) throw new StoreError(`${key} escapes the dataset store ${this.uri}`);
    // A hidden name that no reader matches (*.jsonl, *.wav), renamed into place when complete.
    const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.partial`);
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(tmp, body);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new StoreError(`write ${this.uri}${key}: ${(err as Error).message}`, { cause: err });
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function field(err: unknown, name: string): unknown {
  return typeof err === 'object' && err !== null && name in err ? (err as Record<string, unknown>)[name] : undefined;
}

export class S3SampleStore implements SampleStore {
  readonly uri: string;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly settings: S3Settings;
  private readonly s3: LazyS3Client;

  /** `env`: the AWS settings (the process environment in the agent). `timeoutMs`: longest put. */
  constructor(url: URL, env: NodeJS.ProcessEnv, private readonly timeoutMs: number) {
    this.uri = url.href;
    ({ bucket: this.bucket, prefix: this.prefix } = s3Location(url));
    this.settings = s3SettingsFromEnv(env);
    // The writer retries with its own capped back-off and counts each try; one policy, not two.
    this.s3 = new LazyS3Client(() => s3ClientConfig(this.settings, { maxAttempts: 1 }), (message, cause) => new StoreError(message, { cause }));
  }


  async put(key: string, body: Uint8Array, contentType: string, signal?: AbortSignal): Promise<void> {
    const { sdk, client } = await this.s3.get();
    const where = `PUT s3://${this.bucket}/${this.prefix}${key}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer in ${this.timeoutMs} ms`)), this.timeoutMs);
    const onAbort = (): void => abort.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await client.send(
        new sdk.PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: body, ContentType: contentType, ContentLength: body.byteLength }),
        { abortSignal: abort.signal },
      );
    } catch (err) {
      if (abort.signal.aborted) throw new StoreError(`${where}: aborted (${String((abort.signal.reason as Error | undefined)?.message ?? 'shutdown')})`, { cause: err });
      const name = typeof field(err, 'name') === 'string' ? (field(err, 'name') as string) : 'Error';
      const status = field(field(err, '$metadata'), 'httpStatusCode');
      let text = err instanceof Error ? err.message : String(err);
      for (const s of [this.settings.credentials?.secretAccessKey, this.settings.credentials?.sessionToken]) {
        if (s !== undefined && s.length >= 4) text = text.split(s).join('***');
      }
      throw new StoreError(`${where}: ${name}${typeof status === 'number' ? ` (HTTP ${status})` : ''}${text && text !== name ? `: ${text}` : ''}`, { cause: err });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  close(): Promise<void> {
    return this.s3.close();
  }

}
