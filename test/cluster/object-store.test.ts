import { afterAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  embeddedModelDir,
  embeddedModelVersion,
  filesToUpload,
  listFiles,
  makeS3Client,
  md5Hex,
  modelPrefix,
  newCredentials,
  parseCredentials,
  readCredentials,
  s3SecretData,
  versitygwArgs,
  versitygwEnv,
  writeCredentials,
} from './object-store.js';


// Temporary folders of these tests, removed at the end.
const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.map((d) => rm(d, { recursive: true, force: true })));
});

describe('credentials', () => {
  it('are new on every call, an S3-style access key and a 40-character secret', () => {
    const a = newCredentials();
    const b = newCredentials();
    expect(a.accessKeyId).toMatch(/^WO[A-Z2-7]{18}$/);
    expect(a.secretAccessKey).toMatch(/^[A-Za-z0-9=]{40}$/);
    expect(a.accessKeyId).not.toBe(b.accessKeyId);
    expect(a.secretAccessKey).not.toBe(b.secretAccessKey);
  });

  it('are written readable by the owner only, also over an existing file, and read back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wo-creds-'));
    made.push(dir);
    const file = join(dir, 'credentials.json');
    await writeFile(file, 'old', { mode: 0o644 });
    const creds = newCredentials();
    await writeCredentials(file, creds);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readCredentials(file)).toEqual(creds);
  });

  it.each(['', 'null', '{}', '{"accessKeyId":"a"}', '{"accessKeyId":"","secretAccessKey":"s"}', '{"accessKeyId":1,"secretAccessKey":"s"}'])(
    'refuses %j without echoing it',
    (text) => {
      expect(() => parseCredentials(text)).toThrow(/object-store credentials/);
    },
  );

  it('does not echo a secret in its error', () => {
    expect(() => parseCredentials('{"accessKeyId":"AKID","secretAccessKey": 42, "x": "TOPSECRET"}')).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('TOPSECRET') as unknown }),
    );
  });

  it('reach versitygw through its environment, never its command line', () => {
    const creds = newCredentials();
    const args = versitygwArgs({ port: 7070, dataDir: '/c/object-store/data' });
    expect(args.join(' ')).not.toContain(creds.secretAccessKey);
    expect(args.join(' ')).not.toContain(creds.accessKeyId);
    expect(versitygwEnv(creds)).toEqual({ ROOT_ACCESS_KEY: creds.accessKeyId, ROOT_SECRET_KEY: creds.secretAccessKey });
    expect(args.slice(0, 2)).toEqual(['--port', '127.0.0.1:7070']);
    expect(args.slice(-2)).toEqual(['posix', '/c/object-store/data']);
  });

  it('land in the Secret under the names the AWS SDKs read', () => {
    const creds = newCredentials();
    expect(s3SecretData('http://127.0.0.1:7070', creds)).toEqual({
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:7070',
      WHISPEROPS_S3_MODELS_BUCKET: 'whisperops-models',
      WHISPEROPS_S3_DATASETS_BUCKET: 'whisperops-datasets',
    });
  });
});

describe('S3 client', () => {
  it.each(['http://10.0.0.1:7070', 'https://s3.amazonaws.com', 'http://localhost:7070', 'http://user:pw@127.0.0.1:1'])('refuses endpoint %s', (endpoint) => {
    expect(() => makeS3Client(endpoint, newCredentials())).toThrow(/only talks to 127\.0\.0\.1/);
  });
});

describe('model upload', () => {
  it('lists every file of a folder with a /-separated relative path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wo-files-'));
    made.push(dir);
    await mkdir(join(dir, 'onnx'));
    await writeFile(join(dir, 'config.json'), '{}');
    await writeFile(join(dir, 'onnx', 'encoder.onnx'), 'abc');
    const files = await listFiles(dir);
    expect(files.map((f) => [f.relPath, f.size])).toEqual([
      ['config.json', 2],
      ['onnx/encoder.onnx', 3],
    ]);
    expect(await md5Hex(join(dir, 'onnx', 'encoder.onnx'))).toBe(createHash('md5').update('abc').digest('hex'));
  });

  it('uploads only missing or changed files (size or ETag)', () => {
    const local = [
      { relPath: 'a.json', absPath: '/m/a.json', size: 2, md5: 'aa' },
      { relPath: 'b.json', absPath: '/m/b.json', size: 3, md5: 'bb' },
      { relPath: 'onnx/c.onnx', absPath: '/m/onnx/c.onnx', size: 4, md5: 'cc' },
      { relPath: 'd.txt', absPath: '/m/d.txt', size: 5, md5: 'dd' },
    ];
    const remote = [
      { Key: 'm/v1/a.json', Size: 2, ETag: '"aa"' },
      { Key: 'm/v1/b.json', Size: 4, ETag: '"bb"' },
      { Key: 'm/v1/onnx/c.onnx', Size: 4, ETag: '"xx"' },
      { Key: 'other/d.txt', Size: 5, ETag: '"dd"' },
    ];
    expect(filesToUpload(local, remote, 'm/v1/').map((f) => f.relPath)).toEqual(['b.json', 'onnx/c.onnx', 'd.txt']);
    expect(filesToUpload(local, [], 'm/v1/')).toHaveLength(4);
  });

  it('keys the embedded model by its manifest version', async () => {
    const manifest = JSON.parse(await readFile(join(embeddedModelDir, 'model-manifest.json'), 'utf8')) as { version: string };
    expect(await embeddedModelVersion()).toBe(manifest.version);
    expect(modelPrefix('tiny-whisper-synth', manifest.version)).toBe(`tiny-whisper-synth/${manifest.version}/`);
  });
});
