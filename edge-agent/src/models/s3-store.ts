// s3:// model artifacts: s3://bucket/prefix/ + a relative path → one GetObject of bucket
// `prefix/relPath`, its body streamed. Client settings come from the standard AWS environment (an
// EdgePool's spec.artifactCredentials Secret reaches the agent as environment variables). The SDK is
// heavy, so it is loaded on the first s3:// read only: an agent serving file:// or http(s):// models
// never loads it.
import { Readable } from 'node:stream';
import type * as S3SdkModule from '@aws-sdk/client-s3';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { ArtifactError, DEFAULT_IDLE_TIMEOUT_MS, readChunks } from './artifact.js';
import type { ArtifactStore } from './artifact.js';

export const DEFAULT_S3_REGION = 'us-east-1';

/** The S3 client settings that the AWS environment asks for (credentials left out when it names none). */
export interface S3Settings {
  region: string;
  /** An S3-compatible store (AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL); addressed path-style. */
  endpoint?: string;
  forcePathStyle: boolean;
  /** Static keys from the environment; absent → the SDK's default chain (web identity, profiles, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/**
 * AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1; AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL
 * (path-style addressing then: S3-compatible stores rarely serve bucket sub-domains);
 * AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN). Empty values count as unset.
 */
export function s3SettingsFromEnv(env: NodeJS.ProcessEnv): S3Settings {
  const get = (k: string): string | undefined => (env[k] === undefined || env[k] === '' ? undefined : env[k]);
  const endpoint = get('AWS_ENDPOINT_URL_S3') ?? get('AWS_ENDPOINT_URL');
  const accessKeyId = get('AWS_ACCESS_KEY_ID');
  const secretAccessKey = get('AWS_SECRET_ACCESS_KEY');
  const sessionToken = get('AWS_SESSION_TOKEN');
  return {
    region: get('AWS_REGION') ?? get('AWS_DEFAULT_REGION') ?? DEFAULT_S3_REGION,
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: endpoint !== undefined,
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } } : {}),
  };
}

/**
 * The client configuration for `settings`. The SDK's own checksums are off (WHEN_REQUIRED): the
 * manifests' sha256 are the integrity check, and some S3-compatible stores lack the CRC headers.
 * `extra` adds the caller's own (e.g. maxAttempts when it retries itself).
 */
export function s3ClientConfig(settings: S3Settings, extra: Partial<S3ClientConfig> = {}): S3ClientConfig {
  return {
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestChecksumCalculation: 'WHEN_REQUIRED',
    ...extra,
  };
}

/**
 * One S3 client, made on first use: the SDK is heavy, so it is imported only then (an agent without
 * s3:// artifacts or store never loads it). A failed import is reported through `loadError` and
 * tried again on the next use.
 */
type S3Sdk = typeof S3SdkModule;

export class LazyS3Client {
  private loaded: Promise<{ sdk: S3Sdk; client: S3Client }> | undefined;

  constructor(
    private readonly config: () => S3ClientConfig,
    private readonly loadError: (message: string, cause: unknown) => Error,
  ) {}

  get(): Promise<{ sdk: S3Sdk; client: S3Client }> {
    this.loaded ??= import('@aws-sdk/client-s3').then(
      (sdk) => ({ sdk, client: new sdk.S3Client(this.config()) }),
      (err: unknown) => {
        this.loaded = undefined;
        throw this.loadError(`cannot load @aws-sdk/client-s3: ${err instanceof Error ? err.message : String(err)}`, err);
      },
    );
    return this.loaded;
  }

  /** Closes the client's connections (when one was made). */
  async close(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = undefined;
    if (!loaded) return;
    try {
      (await loaded).client.destroy();
    } catch {
      // never loaded: nothing to close
    }
  }
}

/** The bucket and key prefix of an artifact folder URI (`s3://bucket/prefix/`); the prefix is '' or ends with '/'. */
export function s3Location(base: URL): { bucket: string; prefix: string } {
  const bucket = decodeURIComponent(base.host);
  if (base.protocol !== 's3:' || bucket === '') throw new ArtifactError('unsupported_uri', `${base.href} is not s3://bucket/key`);
  const path = decodeURIComponent(base.pathname.replace(/^\//, ''));
  return { bucket, prefix: path === '' || path.endsWith('/') ? path : `${path}/` };
}

function field(err: unknown, name: string): unknown {
  return typeof err === 'object' && err !== null && name in err ? (err as Record<string, unknown>)[name] : undefined;
}

/**
 * An S3 SDK error as an ArtifactError: no such key or bucket → missing_file, anything else (denied,
 * bad signature, throttled, network) → download_error. The message names the object and the error,
 * and every value in `secrets` is masked out of it: credentials never reach a log line.
 */
export function s3Failure(err: unknown, bucket: string, key: string, secrets: readonly string[] = []): ArtifactError {
  const name = typeof field(err, 'name') === 'string' ? (field(err, 'name') as string) : 'Error';
  const status = field(field(err, '$metadata'), 'httpStatusCode');
  let text = err instanceof Error ? err.message : String(err);
  for (const s of secrets) if (s.length >= 4) text = text.split(s).join('***');
  const what = `GET s3://${bucket}/${key}`;
  const detail = `${name}${typeof status === 'number' ? ` (HTTP ${status})` : ''}${text && text !== name ? `: ${text}` : ''}`;
  const missing = name === 'NoSuchKey' || name === 'NoSuchBucket' || name === 'NotFound';
  return new ArtifactError(missing ? 'missing_file' : 'download_error', `${what}: ${detail}`, { cause: err });
}

export class S3ArtifactStore implements ArtifactStore {
  readonly schemes = ['s3:'] as const;
  private readonly settings: S3Settings;
  private readonly s3: LazyS3Client;

  /**
   * `env`: where the AWS settings are read (the process environment in the agent; a Secret's data in
   * tests). `idleTimeoutMs`: longest wait for a response, then for each next chunk of a body.
   */
  constructor(env: NodeJS.ProcessEnv = process.env, private readonly idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS) {
    this.settings = s3SettingsFromEnv(env);
    this.s3 = new LazyS3Client(() => s3ClientConfig(this.settings), (message, cause) => new ArtifactError('download_error', message, { cause }));
  }

  async open(base: URL, relPath: string, maxBytes: number): Promise<AsyncIterable<Uint8Array>> {
    const { bucket, prefix } = s3Location(base);
    const key = prefix + relPath;
    const { sdk, client } = await this.s3.get();
    const secrets = [this.settings.credentials?.secretAccessKey, this.settings.credentials?.sessionToken].filter((s): s is string => s !== undefined);
    const ms = this.idleTimeoutMs;
    // The timer covers the request up to the response headers (retries included) and is cleared
    // then: aborting later would cut the body, whose silence readChunks times instead.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no response in ${ms} ms`)), ms);
    let body: unknown;
    let length: number | undefined;
    try {
      const res = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: abort.signal });
      body = res.Body;
      length = res.ContentLength;
    } catch (err) {
      if (abort.signal.aborted) throw new ArtifactError('download_error', `GET s3://${bucket}/${key}: no response in ${ms} ms`, { cause: err });
      throw s3Failure(err, bucket, key, secrets);
    } finally {
      clearTimeout(timer);
    }
    if (!(body instanceof Readable)) {
      throw new ArtifactError('download_error', `GET s3://${bucket}/${key}: the SDK returned no stream`);
    }
    const stream = body;
    if (length !== undefined && length > maxBytes) {
      stream.destroy();
      throw new ArtifactError('file_too_large', `GET s3://${bucket}/${key}: Content-Length ${length}`);
    }
    return readChunks(stream, `s3://${bucket}/${key}`, { ms, abort: (reason) => stream.destroy(reason) });
  }

  /** Closes the client's connections (when one was made). */
  close(): Promise<void> {
    return this.s3.close();
  }

}
