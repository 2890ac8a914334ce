// Log redaction: URL user-info and query strings (presigned URLs), bearer tokens and secret-named
// fields never reach a log line.
import { describe, expect, it } from '@jest/globals';
import { agentLogger, redactText, redactUri, redactValue } from './redact.js';

describe('redaction', () => {
  it('strips user-info and query strings from URLs, in URIs and inside free text', () => {
    expect(redactUri('https://bucket.s3.example/models/v1/model-manifest.json?X-Amz-Credential=AKIA123&X-Amz-Signature=abc')).toBe('https://bucket.s3.example/models/v1/model-manifest.json?<redacted>');
    expect(redactUri('http://user:pa55@127.0.0.1:9000/a/b/')).toBe('http://<redacted>@127.0.0.1:9000/a/b/');
    expect(redactUri('s3://bucket/prefix/')).toBe('s3://bucket/prefix/');
    expect(redactUri('file:///models/tiny')).toBe('file:///models/tiny');
    expect(redactText('GET https://h/x?sig=1: HTTP 500; then "http://u:p@h/y?t=2#frag" failed')).toBe('GET https://h/x?<redacted> HTTP 500; then "http://<redacted>@h/y?<redacted>" failed');
    expect(redactText('Authorization: Bearer abc.DEF-123_x')).toBe('Authorization: Bearer <redacted>');
  });

  it('redacts nested log fields and secret-named keys', () => {
    expect(redactValue({ uri: 'https://h/p?sig=s', headers: { authorization: 'Bearer t' }, n: 1, list: ['http://a:b@h/'], err: new Error('GET https://h/?sig=s') })).toEqual({
      uri: 'https://h/p?<redacted>',
      headers: { authorization: '<redacted>' },
      n: 1,
      list: ['http://<redacted>@h/'],
      err: expect.objectContaining({ message: 'GET https://h/?<redacted>' }) as unknown,
    });
  });

  it('the agent logger redacts fields and messages', () => {
    const lines: string[] = [];
    const log = agentLogger('info', { write: (l: string) => void lines.push(l) });
    log.info({ uri: 'https://h/m/?X-Amz-Signature=s3cr3t', token: 'tok' }, 'fetching https://u:pw@h/m/?X-Amz-Signature=s3cr3t');
    log.child({ datasetStore: 's3://b/p/?k=v' }).warn('Bearer s3cr3t was refused');
    const text = lines.join('');
    expect(text).not.toMatch(/s3cr3t|pw@|tok"/);
    expect(text).toContain('https://<redacted>@h/m/?<redacted>');
  });
});
