import { describe, expect, it } from '@jest/globals';
import type { FineTuneJob } from '../../../api/generated/types.js';
import { parseS3Uri, resolveModel, uriProblem } from './resolve.js';

const sha = 'ab'.repeat(32);
function job(phase: NonNullable<FineTuneJob['status']>['phase'], result?: { modelUri: string; version: string; sha256: string }, message?: string): FineTuneJob {
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name: 'finance-v2', namespace: 'edge' },
    spec: {} as FineTuneJob['spec'],
    status: { phase, ...(result ? { result } : {}), ...(message ? { conditions: [{ type: 'Ready', status: 'False', reason: 'Failed', message, lastTransitionTime: '2026-12-01T00:00:00Z' }] } : {}) },
  };
}

describe('resolveModel', () => {
  it('spec.model uri + version + sha256 → that artifact, from the spec', () => {
    expect(resolveModel({ uri: 'https://models.example/m/', version: '1.0.0', sha256: sha }, undefined)).toEqual({
      kind: 'resolved', model: { uri: 'https://models.example/m/', version: '1.0.0', sha256: sha, source: 'spec' }, message: 'spec.model: 1.0.0 at https://models.example/m/',
    });
  });

  it.each<[string, string | undefined, RegExp]>([
    ['with the pool\'s credentials Secret', 'models-s3', /agents read it with the pool's artifactCredentials Secret models-s3$/],
    ['without one', undefined, /the pool names no artifactCredentials Secret: agents use their ambient AWS credentials$/],
  ])('s3:// says where the agents get credentials: %s', (_what, secret, want) => {
    const r = resolveModel({ uri: 's3://whisperops-models/finance/1/', version: '1', sha256: sha }, undefined, secret);
    expect(r.kind).toBe('resolved');
    expect(r.message).toMatch(want);
  });

  it.each<[string, FineTuneJob | undefined, { kind: string; reason?: string; permanent?: boolean; message: RegExp }]>([
    ['missing: waited for', undefined, { kind: 'unresolved', reason: 'FineTuneJobNotFound', permanent: false, message: /FineTuneJob finance-v2 does not exist/ }],
    ['Running: waited for', job('Running'), { kind: 'unresolved', reason: 'FineTuneJobNotSucceeded', permanent: false, message: /is Running: waiting for it to succeed/ }],
    ['Succeeded without a result yet: waited for', job('Succeeded'), { kind: 'unresolved', reason: 'FineTuneJobNotSucceeded', permanent: false, message: /is Succeeded/ }],
    ['Failed: permanent, with its reason', job('Failed', undefined, 'trainer exited 2: base model not found'), { kind: 'unresolved', reason: 'FineTuneJobFailed', permanent: true, message: /Failed: trainer exited 2: base model not found; fix or replace it/ }],
    ['Succeeded: its result', job('Succeeded', { modelUri: 's3://whisperops-models/ft/finance-v2/', version: 'ft-2', sha256: sha }), { kind: 'resolved', message: /^FineTuneJob finance-v2 result: ft-2 at s3:\/\/whisperops-models\/ft\/finance-v2\// }],
    ['Succeeded with a URI the agents cannot fetch: permanent', job('Succeeded', { modelUri: 'gs://bucket/x', version: 'ft-2', sha256: sha }), { kind: 'unresolved', reason: 'UnsupportedURI', permanent: true, message: /scheme gs: of gs:\/\/bucket\/x is not one the agents fetch/ }],
  ])('fineTuneJobRef, job %s', (_what, j, want) => {
    const r = resolveModel({ fineTuneJobRef: { name: 'finance-v2' } }, j);
    expect(r).toMatchObject({ ...want, message: expect.stringMatching(want.message) });
    if (r.kind === 'resolved') expect(r.model).toEqual({ uri: 's3://whisperops-models/ft/finance-v2/', version: 'ft-2', sha256: sha, source: 'FineTuneJob/finance-v2' });
  });

  it('a hand-built object without sha256 is a permanent InvalidSpec, not a crash', () => {
    expect(resolveModel({ uri: 'file:///m', version: '1' }, undefined)).toMatchObject({ kind: 'unresolved', reason: 'InvalidSpec', permanent: true });
  });
});

describe('s3 URIs', () => {
  it.each<[string, ReturnType<typeof parseS3Uri>]>([
    ['s3://whisperops-models/tiny/1.0.0/', { bucket: 'whisperops-models', key: 'tiny/1.0.0/' }],
    ['s3://bucket', { bucket: 'bucket', key: '' }],
    ['s3://Bad_Bucket/x', { problem: 'bucket "Bad_Bucket" of s3://Bad_Bucket/x is not a valid S3 bucket name' }],
    ['s3:///x', { problem: 's3:///x is not s3://bucket/key' }],
  ])('%s', (uri, want) => {
    expect(parseS3Uri(uri)).toEqual(want);
  });
  it.each<[string, string | undefined]>([
    ['file:///models/x', undefined], ['https://h/x', undefined], ['s3://b-1/x', undefined],
    ['ftp://h/x', 'scheme ftp: of ftp://h/x is not one the agents fetch (file://, http(s)://, s3://)'], ['not a uri', 'not a uri is not a URI'],
    ['file://localhost/models/x', undefined],
    ['file://host/models/x', 'file://host/models/x names another host; a file:// URI must be file:///path or file://localhost/path'],
  ])('uriProblem(%s)', (uri, want) => {
    expect(uriProblem(uri)).toBe(want);
  });
});
