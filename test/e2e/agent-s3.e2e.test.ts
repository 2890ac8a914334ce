// The edge agent's S3 store against the real S3-compatible store of the local cluster (versitygw):
// the embedded model fetched from its s3:// URI with ArtifactFetcher + S3ArtifactStore, configured
// only by the environment an EdgePool's artifactCredentials Secret gives an agent (here the
// cluster's Secret whisperops-system/whisperops-s3, read as the kubelet would) — and the ways it fails.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CoreV1Api } from '@kubernetes/client-node';
import { ArtifactError, ArtifactFetcher, filesToFetch, MANIFEST, sha256, type ArtifactStore, type ModelManifest } from '../../edge-agent/src/models/artifact.js';
import { S3ArtifactStore } from '../../edge-agent/src/models/s3-store.js';
import { loadAdminKubeConfig, objectStore, s3Client } from '../cluster/index.js';
import { embeddedModelDir } from '../cluster/object-store.js';

jest.setTimeout(120_000);

let store: Awaited<ReturnType<typeof objectStore>>;
let s3: S3Client;
/** The Secret's data, as the agent's environment. */
let env: Record<string, string>;
const temps: string[] = [];
const stores: S3ArtifactStore[] = [];
const manifestBytes = readFileSync(join(embeddedModelDir, MANIFEST));
const manifest = JSON.parse(manifestBytes.toString('utf8')) as ModelManifest;

function cacheDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'whisperops-agent-s3-'));
  temps.push(dir);
  return dir;
}

function s3Store(environment: Record<string, string> = env): S3ArtifactStore {
  const s = new S3ArtifactStore(environment, 20_000);
  stores.push(s);
  return s;
}

async function failure(p: Promise<unknown>): Promise<ArtifactError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ArtifactError);
    return err as ArtifactError;
  }
  throw new Error('the fetch succeeded');
}

beforeAll(async () => {
  store = await objectStore();
  s3 = await s3Client();
  const core = loadAdminKubeConfig().makeApiClient(CoreV1Api);
  const secret = await core.readNamespacedSecret({ name: store.secret.name, namespace: store.secret.namespace });
  env = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
});

afterAll(async () => {
  for (const s of stores) await s.close();
  s3.destroy();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe('S3ArtifactStore against the cluster\'s S3 store', () => {
  const ref = () => ({ uri: store.embeddedModelUri, version: manifest.version, sha256: sha256(manifestBytes) });

  it('fetches the files an INT8 agent reads of the embedded model from s3://, byte for byte, into the content-addressed cache; once', async () => {
    expect(new URL(env.AWS_ENDPOINT_URL ?? '').hostname).toBe('127.0.0.1');
    const cache = cacheDir();
    const s3s = s3Store();
    const opened: string[] = [];
    const counting: ArtifactStore = { schemes: s3s.schemes, open: (base, rel, max) => { opened.push(rel); return s3s.open(base, rel, max); } };
    const fetcher = new ArtifactFetcher([counting], cache);
    const t0 = Date.now();
    const got = await fetcher.fetch(ref(), 'int8');
    const seconds = (Date.now() - t0) / 1000;
    const wanted = filesToFetch(manifest, 'int8');
    const bytes = (files: string[]): number => files.reduce((n, f) => n + (manifest.files[f]?.bytes ?? 0), 0);
    process.stderr.write(`[agent-s3] fetched ${wanted.length} of ${Object.keys(manifest.files).length} files, ${(bytes(wanted) / 1e6).toFixed(1)} of ${(bytes(Object.keys(manifest.files)) / 1e6).toFixed(1)} MB, from S3 in ${seconds.toFixed(2)} s\n`);
    expect(got.dir).toBe(join(cache, ref().sha256));
    expect(got.dtype).toBe('int8');
    expect(got.manifest.version).toBe(manifest.version);
    for (const rel of wanted) {
      expect([rel, readFileSync(join(got.dir, rel)).equals(readFileSync(join(embeddedModelDir, rel)))]).toEqual([rel, true]);
    }
    expect(wanted).toContain('onnx/encoder_model_quantized.onnx');
    expect(wanted).not.toContain('onnx/encoder_model.onnx');
    expect(wanted).not.toContain('model.safetensors');
    expect(readFileSync(join(got.dir, MANIFEST)).equals(manifestBytes)).toBe(true);
    expect(readdirSync(cache)).toEqual([ref().sha256]);
    expect(opened.sort()).toEqual([MANIFEST, ...wanted].sort());
    // A second fetch re-verifies the cache and downloads nothing but the manifest.
    opened.length = 0;
    const again = await fetcher.fetch({ ...ref(), uri: store.embeddedModelUri.replace(/\/$/, '') }, 'int8');
    expect(again.dir).toBe(got.dir);
    expect(opened).toEqual([MANIFEST]);
  });

  it('refuses the artifact when the model set names another manifest sha256 (manifest_checksum_mismatch)', async () => {
    const cache = cacheDir();
    const err = await failure(new ArtifactFetcher([s3Store()], cache).fetch({ ...ref(), sha256: 'e'.repeat(64) }, 'int8'));
    expect(err.reason).toBe('manifest_checksum_mismatch');
    expect(err.message).toBe(`${MANIFEST} of ${store.embeddedModelUri} has sha256 ${ref().sha256}, the model set expects ${'e'.repeat(64)}`);
    expect(readdirSync(cache)).toEqual([]);
  });

  it('says missing_file for a key that is not there: no manifest, or a listed file absent (and leaves nothing behind)', async () => {
    const cache = cacheDir();
    const fetcher = new ArtifactFetcher([s3Store()], cache);
    const nowhere = `s3://${store.buckets.models}/e2e/no-such-model-${randomBytes(4).toString('hex')}/`;
    const none = await failure(fetcher.fetch({ ...ref(), uri: nowhere }, 'int8'));
    expect(none.reason).toBe('missing_file');
    expect(none.message).toMatch(new RegExp(`^GET ${nowhere.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}${MANIFEST}: NoSuchKey \\(HTTP 404\\)`));

    // The manifest alone under a new prefix: it verifies, then its first file is missing.
    const prefix = `e2e/manifest-only-${randomBytes(4).toString('hex')}/`;
    await s3.send(new PutObjectCommand({ Bucket: store.buckets.models, Key: prefix + MANIFEST, Body: manifestBytes }));
    try {
      const uri = `s3://${store.buckets.models}/${prefix}`;
      const partial = await failure(fetcher.fetch({ ...ref(), uri }, 'int8'));
      const first = filesToFetch(manifest, 'int8')[0] ?? '';
      expect(partial.reason).toBe('missing_file');
      expect(partial.message).toMatch(new RegExp(`^GET s3://${store.buckets.models}/${prefix}${first.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: NoSuchKey`));
      expect(readdirSync(cache)).toEqual([]);
    } finally {
      await s3.send(new DeleteObjectCommand({ Bucket: store.buckets.models, Key: prefix + MANIFEST }));
    }
  });

  it('a wrong secret is a download_error naming the object, never the credentials', async () => {
    const wrong = { ...env, AWS_SECRET_ACCESS_KEY: `wrong-${randomBytes(16).toString('hex')}` };
    const err = await failure(new ArtifactFetcher([s3Store(wrong)], cacheDir()).fetch(ref(), 'int8'));
    expect(err.reason).toBe('download_error');
    expect(err.message).toContain(`GET ${store.embeddedModelUri}${MANIFEST}: `);
    expect(err.message).toContain('(HTTP 403)');
    for (const secret of [wrong.AWS_SECRET_ACCESS_KEY, env.AWS_SECRET_ACCESS_KEY]) expect(err.message).not.toContain(secret);
  });
});
