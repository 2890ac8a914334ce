// The S3-compatible store of the local cluster (versitygw on 127.0.0.1): a standard S3 client round
// trip, the embedded model at its URI, presigned SigV4 GETs, refused wrong credentials and the Secret
// that hands the credentials to workloads.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { CoreV1Api } from '@kubernetes/client-node';
import { loadAdminKubeConfig, loopbackFetch, objectStore, s3Client } from '../cluster/index.js';
import { embeddedModelDir, listFiles, makeS3Client, syncFolder } from '../cluster/object-store.js';

jest.setTimeout(60_000);

let s3: S3Client;
let store: Awaited<ReturnType<typeof objectStore>>;

beforeAll(async () => {
  store = await objectStore();
  s3 = await s3Client();
});

afterAll(() => {
  s3.destroy();
});

async function bytesOf(bucket: string, key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (res.Body === undefined) throw new Error(`no body for s3://${bucket}/${key}`);
  return Buffer.from(await res.Body.transformToByteArray());
}

/** s3://bucket/prefix/ → [bucket, prefix/] */
function splitUri(uri: string): [string, string] {
  const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(uri);
  if (m?.[1] === undefined || m[2] === undefined) throw new Error(`not an s3:// URI: ${uri}`);
  return [m[1], m[2]];
}

function statusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const meta = err.$metadata;
  return typeof meta === 'object' && meta !== null && 'httpStatusCode' in meta && typeof meta.httpStatusCode === 'number' ? meta.httpStatusCode : undefined;
}

/** The HTTP status a rejected S3 call carries; fails when the call succeeds. */
async function rejectionStatus(call: Promise<unknown>): Promise<number | undefined> {
  try {
    await call;
  } catch (err) {
    return statusOf(err);
  }
  throw new Error('the call succeeded');
}

describe('object store', () => {
  it('listens on 127.0.0.1 with both buckets', () => {
    expect(new URL(store.endpoint).hostname).toBe('127.0.0.1');
    expect(store.buckets).toEqual({ models: 'whisperops-models', datasets: 'whisperops-datasets' });
    expect(store.region).toBe('us-east-1');
  });

  it('round-trips a file with the standard S3 client: put, head, get, list, delete', async () => {
    const key = `e2e/${randomBytes(6).toString('hex')}/clip.bin`;
    const body = randomBytes(256 * 1024 + 7);
    const bucket = store.buckets.datasets;
    const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/octet-stream' }));
    expect(put.ETag?.replace(/"/g, '')).toBe(createHash('md5').update(body).digest('hex'));

    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ContentLength).toBe(body.length);
    expect(head.ContentType).toBe('application/octet-stream');

    expect((await bytesOf(bucket, key)).equals(body)).toBe(true);

    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key.slice(0, key.lastIndexOf('/') + 1) }));
    expect(listed.Contents?.map((o) => [o.Key, o.Size])).toEqual([[key, body.length]]);

    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    expect(await rejectionStatus(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })))).toBe(404);
  });

  it('holds the embedded model at its URI, byte for byte as in the manifest', async () => {
    const localManifestText = await readFile(join(embeddedModelDir, 'model-manifest.json'), 'utf8');
    const manifest = JSON.parse(localManifestText) as { name: string; version: string; files: Record<string, { sha256: string }> };
    expect(store.embeddedModelUri).toBe(`s3://whisperops-models/tiny-whisper-synth/${manifest.version}/`);
    const [bucket, prefix] = splitUri(store.embeddedModelUri);

    expect((await bytesOf(bucket, `${prefix}model-manifest.json`)).toString('utf8')).toBe(localManifestText);
    const file = 'onnx/encoder_model_quantized.onnx';
    const expected = manifest.files[file]?.sha256;
    expect(expected).toMatch(/^[0-9a-f]{64}$/);
    expect(createHash('sha256').update(await bytesOf(bucket, prefix + file)).digest('hex')).toBe(expected);

    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (listed.Contents ?? []).map((o) => o.Key?.slice(prefix.length));
    for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json', 'onnx/encoder_model.onnx', 'onnx/decoder_model_merged.onnx', 'onnx/decoder_model_merged_quantized.onnx']) {
      expect(keys).toContain(f);
    }
    // Every file the manifest lists is there.
    for (const f of Object.keys(manifest.files)) expect(keys).toContain(f);
  });

  it('skips the upload of the embedded model when it is there already (same keys, sizes, ETags)', async () => {
    const [bucket, prefix] = splitUri(store.embeddedModelUri);
    const files = await listFiles(embeddedModelDir);
    expect(await syncFolder(s3, embeddedModelDir, bucket, prefix)).toEqual({ uploaded: 0, skipped: files.length, bytes: 0 });
  });

  it('serves a presigned SigV4 GET to plain fetch, and refuses it unsigned', async () => {
    const [bucket, prefix] = splitUri(store.embeddedModelUri);
    const key = `${prefix}config.json`;
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 300 });
    expect(new URL(url).searchParams.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    const res = await loopbackFetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(await readFile(join(embeddedModelDir, 'config.json')))).toBe(true);

    const unsigned = await loopbackFetch(`${store.endpoint}/${bucket}/${key}`);
    expect(unsigned.status).toBe(403);
    await unsigned.arrayBuffer();
  });

  it('refuses a wrong secret with 403', async () => {
    const bad = makeS3Client(store.endpoint, { accessKeyId: store.credentials.accessKeyId, secretAccessKey: 'wrong-secret-wrong-secret-wrong-secret00' });
    try {
      const [bucket, prefix] = splitUri(store.embeddedModelUri);
      expect(await rejectionStatus(bad.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}config.json` })))).toBe(403);
      expect(await rejectionStatus(bad.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}config.json` })))).toBe(403);
      expect(await rejectionStatus(bad.send(new ListObjectsV2Command({ Bucket: bucket })))).toBe(403);
      expect(await rejectionStatus(bad.send(new PutObjectCommand({ Bucket: bucket, Key: 'e2e/intruder', Body: 'x' })))).toBe(403);
    } finally {
      bad.destroy();
    }
  });

  it('refuses an unknown access key (versitygw answers 404 XAdminUserNotFound where AWS answers 403)', async () => {
    const bad = makeS3Client(store.endpoint, { accessKeyId: 'AKIAUNKNOWNUNKNOWN00', secretAccessKey: 'wrong-secret-wrong-secret-wrong-secret00' });
    try {
      const [bucket, prefix] = splitUri(store.embeddedModelUri);
      const err: unknown = await bad.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}config.json` })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect([403, 404]).toContain(statusOf(err));
      expect(err instanceof Error ? err.name : '').toMatch(/^(XAdminUserNotFound|InvalidAccessKeyId)$/);
      expect([403, 404]).toContain(await rejectionStatus(bad.send(new ListObjectsV2Command({ Bucket: bucket }))));
    } finally {
      bad.destroy();
    }
  });

  it('hands the credentials to workloads as the Secret whisperops-system/whisperops-s3', async () => {
    expect(store.secret).toEqual({ namespace: 'whisperops-system', name: 'whisperops-s3' });
    const core = loadAdminKubeConfig().makeApiClient(CoreV1Api);
    const secret = await core.readNamespacedSecret({ name: store.secret.name, namespace: store.secret.namespace });
    const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    expect(data).toEqual({
      AWS_ACCESS_KEY_ID: store.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: store.credentials.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: store.endpoint,
      WHISPEROPS_S3_MODELS_BUCKET: 'whisperops-models',
      WHISPEROPS_S3_DATASETS_BUCKET: 'whisperops-datasets',
    });
  });
});
