// The S3-compatible object store of the local cluster: versitygw (an S3 gateway over a POSIX folder)
// on 127.0.0.1, with root credentials made anew on every cluster start. It holds the embedded model
// (bucket whisperops-models) and data sets (whisperops-datasets: the repository's data/ texts under
// corpora/); the credentials reach workloads as the Secret whisperops-s3 in whisperops-system and in the
// examples' namespace speech, and tests through <cluster dir>/object-store/credentials.json.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import {
  CreateBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type _Object as S3Object,
} from '@aws-sdk/client-s3';
import { CoreV1Api, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { binDir, repoRoot } from './config.js';
import type { AddonContext } from './control-plane.js';
import { assertLoopbackUrl, freeLoopbackPort, loopbackFetch, pidAlive, pollUntil } from './loopback.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface ObjectStoreInfo {
  /** http://127.0.0.1:<port> (path-style addressing: http://127.0.0.1:<port>/<bucket>/<key>) */
  endpoint: string;
  region: string;
  buckets: { models: string; datasets: string };
  /** <cluster dir>/object-store/credentials.json (mode 0600): {accessKeyId, secretAccessKey} */
  credentialsFile: string;
  /** the Secret holding AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL and the bucket names */
  secret: { namespace: string; name: string };
  /** s3://whisperops-models/tiny-whisper-synth/<manifest version>/ */
  embeddedModelUri: string;
  /** s3://whisperops-datasets/corpora/: the repository's data/**\/*.txt (domain/finance_corpus.txt, general/general_corpus.txt, …) */
  corporaUri?: string;
  /** the folder versitygw serves (one sub-folder per bucket) */
  dataDir: string;
  pid: number;
}

export const objectStoreRegion = 'us-east-1';
export const modelsBucket = 'whisperops-models';
export const datasetsBucket = 'whisperops-datasets';
export const systemNamespace = 'whisperops-system';
export const s3SecretName = 'whisperops-s3';
export const embeddedModelDir = join(repoRoot, 'models', 'tiny-whisper-synth');
/** The repository's text corpora (data/**\/*.txt), uploaded for the FineTuneJob examples. */
export const corporaDir = join(repoRoot, 'data');
export const corporaPrefix = 'corpora/';
/** Namespaces that get a copy of the Secret: the examples' own (envFrom reads a Secret of the pod's namespace). */
export const exampleNamespaces = ['speech'];

/** Root credentials for one cluster start: an access key of 20 upper-case letters/digits, a 40-character secret. */
export function newCredentials(random: (n: number) => Buffer = randomBytes): S3Credentials {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const accessKeyId = 'WO' + [...random(18)].map((b) => alphabet[b % 32]).join('');
  const secretAccessKey = random(30).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B');
  return { accessKeyId, secretAccessKey };
}

/** Parses credentials.json; throws (without echoing the file) when it is not {accessKeyId, secretAccessKey}. */
export function parseCredentials(text: string): S3Credentials {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('object-store credentials: not JSON');
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    !('accessKeyId' in value) ||
    !('secretAccessKey' in value) ||
    typeof value.accessKeyId !== 'string' ||
    typeof value.secretAccessKey !== 'string' ||
    value.accessKeyId === '' ||
    value.secretAccessKey === ''
  ) {
    throw new Error('object-store credentials: expected {"accessKeyId": "…", "secretAccessKey": "…"}');
  }
  return { accessKeyId: value.accessKeyId, secretAccessKey: value.secretAccessKey };
}

/** Writes the credentials readable by the owner only (0600, also when the file existed). */
export async function writeCredentials(file: string, creds: S3Credentials): Promise<void> {
  await writeFile(file, JSON.stringify(creds) + '\n', { mode: 0o600 });
  await chmod(file, 0o600);
}

export async function readCredentials(file: string): Promise<S3Credentials> {
  return parseCredentials(await readFile(file, 'utf8'));
}

/** versitygw's command line. The credentials go in its environment (ROOT_ACCESS_KEY/ROOT_SECRET_KEY), never in argv. */
export function versitygwArgs(opts: { port: number; dataDir: string }): string[] {
  return ['--port', `127.0.0.1:${opts.port}`, '--region', objectStoreRegion, '--health', '/health', '--quiet', 'posix', opts.dataDir];
}

export function versitygwEnv(creds: S3Credentials): NodeJS.ProcessEnv {
  return { ROOT_ACCESS_KEY: creds.accessKeyId, ROOT_SECRET_KEY: creds.secretAccessKey };
}

/** A standard S3 client for the store (path-style; refuses any endpoint but 127.0.0.1). */
export function makeS3Client(endpoint: string, creds: S3Credentials): S3Client {
  assertLoopbackUrl(endpoint);
  return new S3Client({
    endpoint,
    region: objectStoreRegion,
    forcePathStyle: true,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    maxAttempts: 2,
  });
}

/** The data of the Secret whisperops-s3 (the AWS SDKs read the first four from the environment). */
export function s3SecretData(endpoint: string, creds: S3Credentials): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: creds.accessKeyId,
    AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    AWS_REGION: objectStoreRegion,
    AWS_ENDPOINT_URL: endpoint,
    WHISPEROPS_S3_MODELS_BUCKET: modelsBucket,
    WHISPEROPS_S3_DATASETS_BUCKET: datasetsBucket,
  };
}

export interface LocalFile {
  /** path relative to the folder, with '/' separators: the key suffix */
  relPath: string;
  absPath: string;
  size: number;
}

/** Every regular file under `dir` (recursively), sorted. */
export async function listFiles(dir: string): Promise<LocalFile[]> {
  const out: LocalFile[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const absPath = join(entry.parentPath, entry.name);
    out.push({ relPath: relative(dir, absPath).split(sep).join('/'), absPath, size: (await stat(absPath)).size });
  }
  return out.sort((a, b) => a.relPath.localeCompare(b.relPath));
}

export async function md5Hex(file: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The files that must be uploaded: those whose key is missing, or whose size or ETag (the MD5 of a
 * single-part upload) differs from what the bucket holds.
 */
export function filesToUpload(
  local: Array<LocalFile & { md5: string }>,
  remote: Array<Pick<S3Object, 'Key' | 'Size' | 'ETag'>>,
  prefix: string,
): Array<LocalFile & { md5: string }> {
  const byKey = new Map(remote.map((o) => [o.Key, o]));
  return local.filter((f) => {
    const o = byKey.get(prefix + f.relPath);
    return o === undefined || o.Size !== f.size || o.ETag?.replace(/"/g, '') !== f.md5;
  });
}

async function listAll(s3: S3Client, bucket: string, prefix: string): Promise<S3Object[]> {
  const out: S3Object[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    out.push(...(page.Contents ?? []));
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return out;
}

/**
 * Uploads every file of `dir` (those `keep` accepts) to s3://bucket/prefix…, skipping those already
 * there with the same size and ETag.
 */
export async function syncFolder(
  s3: S3Client, dir: string, bucket: string, prefix: string, keep: (f: LocalFile) => boolean = () => true,
): Promise<{ uploaded: number; skipped: number; bytes: number }> {
  const local = await Promise.all((await listFiles(dir)).filter(keep).map(async (f) => ({ ...f, md5: await md5Hex(f.absPath) })));
  const todo = filesToUpload(local, await listAll(s3, bucket, prefix), prefix);
  await Promise.all(
    todo.map(async (f) => {
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: prefix + f.relPath,
          Body: await readFile(f.absPath),
          ContentMD5: Buffer.from(f.md5, 'hex').toString('base64'),
        }),
      );
    }),
  );
  return { uploaded: todo.length, skipped: local.length - todo.length, bytes: todo.reduce((n, f) => n + f.size, 0) };
}

/** The version of the embedded model (model-manifest.json `version`). */
export async function embeddedModelVersion(dir = embeddedModelDir): Promise<string> {
  const manifest: unknown = JSON.parse(await readFile(join(dir, 'model-manifest.json'), 'utf8'));
  if (typeof manifest !== 'object' || manifest === null || !('version' in manifest) || typeof manifest.version !== 'string' || manifest.version === '') {
    throw new Error(`${dir}/model-manifest.json has no version`);
  }
  return manifest.version;
}

/** Key prefix of a model version in the models bucket: <name>/<version>/ */
export function modelPrefix(name: string, version: string): string {
  return `${name}/${version}/`;
}

function statusCode(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number' ? err.code : undefined;
}

async function storeSecret(kubeconfig: string, data: Record<string, string>): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  for (const namespace of [systemNamespace, ...exampleNamespaces]) {
    try {
      await core.createNamespace({ body: { metadata: { name: namespace } } });
    } catch (err) {
      if (statusCode(err) !== 409) throw new Error(`create namespace ${namespace}`, { cause: err });
    }
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: { name: s3SecretName, namespace, labels: { 'app.kubernetes.io/part-of': 'whisperops-test-cluster' } },
      stringData: data,
    };
    try {
      await core.createNamespacedSecret({ namespace, body });
    } catch (err) {
      if (statusCode(err) !== 409) throw new Error(`create Secret ${namespace}/${s3SecretName}`, { cause: err });
      await core.replaceNamespacedSecret({ name: s3SecretName, namespace, body });
    }
  }
}

async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function createBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if (!(err instanceof Error && err.name === 'BucketAlreadyOwnedByYou')) throw new Error(`create bucket ${bucket}`, { cause: err });
  }
}

/** Starts versitygw, creates the buckets, uploads the embedded model and the corpora, and stores the Secret. */
export async function startObjectStore(ctx: AddonContext): Promise<ObjectStoreInfo | undefined> {
  const t0 = Date.now();
  const home = join(ctx.dir, 'object-store');
  const dataDir = join(home, 'data');
  const credentialsFile = join(home, 'credentials.json');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const creds = newCredentials();
  await writeCredentials(credentialsFile, creds);
  const port = await freeLoopbackPort();
  const endpoint = `http://127.0.0.1:${port}`;
  const binary = join(binDir(), 'versitygw');
  const pid = ctx.startDetached('versitygw', binary, versitygwArgs({ port, dataDir }), versitygwEnv(creds));
  const logFile = ctx.logFile('versitygw');
  try {
    await pollUntil('versitygw /health', async () => (await loopbackFetch(`${endpoint}/health`)).status === 200, {
      timeoutMs: 30_000,
      dead: () => (pidAlive(pid) ? undefined : 'versitygw exited'),
    });
  } catch (err) {
    throw new Error(`versitygw did not become ready; last lines of ${logFile}:\n${await tail(logFile)}`, { cause: err });
  }
  const s3 = makeS3Client(endpoint, creds);
  try {
    await Promise.all([createBucket(s3, modelsBucket), createBucket(s3, datasetsBucket)]);
    const version = await embeddedModelVersion();
    const prefix = modelPrefix('tiny-whisper-synth', version);
    const tUpload = Date.now();
    const [sync, corpora] = await Promise.all([
      syncFolder(s3, embeddedModelDir, modelsBucket, prefix),
      syncFolder(s3, corporaDir, datasetsBucket, corporaPrefix, (f) => f.relPath.endsWith('.txt')),
      storeSecret(ctx.adminKubeconfig, s3SecretData(endpoint, creds)),
    ]);
    process.stderr.write(
      `[cluster] object store ready at ${endpoint}: embedded model ${version} ` +
        `(${sync.uploaded} files, ${(sync.bytes / 1e6).toFixed(1)} MB uploaded in ${Date.now() - tUpload} ms; ${sync.skipped} unchanged), ` +
        `corpora (${corpora.uploaded} files, ${(corpora.bytes / 1e6).toFixed(1)} MB; ${corpora.skipped} unchanged) ` +
        `(${Date.now() - t0} ms)\n`,
    );
    return {
      endpoint,
      region: objectStoreRegion,
      buckets: { models: modelsBucket, datasets: datasetsBucket },
      credentialsFile,
      secret: { namespace: systemNamespace, name: s3SecretName },
      embeddedModelUri: `s3://${modelsBucket}/${prefix}`,
      corporaUri: `s3://${datasetsBucket}/${corporaPrefix}`,
      dataDir,
      pid,
    };
  } finally {
    s3.destroy();
  }
}
