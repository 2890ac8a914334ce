// The S3 store's pure parts: client settings from the AWS environment, s3:// URIs → bucket and key,
// SDK errors → reasons with no secret in the message. Its reads against a real S3 store are in
// test/e2e/agent-s3.e2e.test.ts (the local cluster's versitygw).
import { describe, expect, it } from '@jest/globals';
import { ArtifactError } from './artifact.js';
import { s3Failure, s3Location, s3SettingsFromEnv } from './s3-store.js';

const KEY = 'AKIAEXAMPLEEXAMPLE00';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

describe('s3SettingsFromEnv', () => {
  it.each([
    ['nothing set: us-east-1, AWS endpoints, virtual-host addressing, the SDK\'s credential chain', {}, { region: 'us-east-1', forcePathStyle: false }],
    ['AWS_DEFAULT_REGION when AWS_REGION is unset', { AWS_DEFAULT_REGION: 'eu-west-3' }, { region: 'eu-west-3', forcePathStyle: false }],
    ['AWS_REGION first', { AWS_REGION: 'ap-south-1', AWS_DEFAULT_REGION: 'eu-west-3' }, { region: 'ap-south-1', forcePathStyle: false }],
    ['an endpoint override: path-style', { AWS_ENDPOINT_URL: 'http://127.0.0.1:9000' }, { region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true }],
    ['the S3-specific endpoint first', { AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'http://s3:2' }, { region: 'us-east-1', endpoint: 'http://s3:2', forcePathStyle: true }],
    ['static keys', { AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET }, { region: 'us-east-1', forcePathStyle: false, credentials: { accessKeyId: KEY, secretAccessKey: SECRET } }],
    ['static keys with a session token', { AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: 'tok' },
      { region: 'us-east-1', forcePathStyle: false, credentials: { accessKeyId: KEY, secretAccessKey: SECRET, sessionToken: 'tok' } }],
    ['half a key pair: left to the SDK\'s chain', { AWS_ACCESS_KEY_ID: KEY }, { region: 'us-east-1', forcePathStyle: false }],
    ['empty values count as unset', { AWS_REGION: '', AWS_ENDPOINT_URL: '', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }, { region: 'us-east-1', forcePathStyle: false }],
  ])('%s', (_name, env, expected) => {
    expect(s3SettingsFromEnv(env)).toEqual(expected);
  });
});

describe('s3Location', () => {
  it.each([
    ['s3://whisperops-models/tiny-whisper-synth/1.0.0/', 'whisperops-models', 'tiny-whisper-synth/1.0.0/'],
    ['s3://bucket/', 'bucket', ''],
    ['s3://bucket/a%20b/', 'bucket', 'a b/'],
    ['s3://my.bucket/x', 'my.bucket', 'x/'],
  ])('%s → bucket %s, prefix "%s"', (uri, bucket, prefix) => {
    expect(s3Location(new URL(uri))).toEqual({ bucket, prefix });
  });

  it('refuses a URI without a bucket', () => {
    expect(() => s3Location(new URL('s3:///key/'))).toThrow(ArtifactError);
  });
});

describe('s3Failure', () => {
  const sdkError = (name: string, status: number | undefined, message: string): Error =>
    Object.assign(new Error(message), { name, ...(status === undefined ? {} : { $metadata: { httpStatusCode: status } }) });

  it.each([
    [sdkError('NoSuchKey', 404, 'The specified key does not exist.'), 'missing_file', 'GET s3://b/p/k.onnx: NoSuchKey (HTTP 404): The specified key does not exist.'],
    [sdkError('NoSuchBucket', 404, 'The specified bucket does not exist'), 'missing_file', 'GET s3://b/p/k.onnx: NoSuchBucket (HTTP 404): The specified bucket does not exist'],
    [sdkError('AccessDenied', 403, 'Access Denied'), 'download_error', 'GET s3://b/p/k.onnx: AccessDenied (HTTP 403): Access Denied'],
    // versitygw answers an unknown access key with 404: by name, it is no missing file.
    [sdkError('XAdminUserNotFound', 404, 'XAdminUserNotFound'), 'download_error', 'GET s3://b/p/k.onnx: XAdminUserNotFound (HTTP 404)'],
    [sdkError('Error', undefined, 'connect ECONNREFUSED 127.0.0.1:1'), 'download_error', 'GET s3://b/p/k.onnx: Error: connect ECONNREFUSED 127.0.0.1:1'],
  ])('%s → %s', (err, reason, message) => {
    const got = s3Failure(err, 'b', 'p/k.onnx');
    expect([got.reason, got.message]).toEqual([reason, message]);
    expect(got.cause).toBe(err);
  });

  it('masks the credentials wherever a message would carry them', () => {
    const got = s3Failure(sdkError('SignatureDoesNotMatch', 403, `signed with ${SECRET} and tok-123456`), 'b', 'k', [SECRET, 'tok-123456']);
    expect(got.message).toBe('GET s3://b/k: SignatureDoesNotMatch (HTTP 403): signed with *** and ***');
  });
});
