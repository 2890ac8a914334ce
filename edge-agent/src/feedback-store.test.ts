import { describe, expect, it } from '@jest/globals';
import { ScenarioLabels } from './metrics.js';
import { RecentRequests } from './feedback-store.js';
import type { RecentRequest } from './feedback-store.js';

const req = (id: string, at: number): RecentRequest => ({ id, deployment: 'd', modelVersion: 'v', role: 'stable', text: 'hello', at, audioSeconds: 1 });

describe('RecentRequests', () => {
  it('forgets requests beyond the count and age bounds', () => {
    let now = 0;
    const r = new RecentRequests({ maxEntries: 2, maxAgeSeconds: 10 }, undefined, () => now);
    r.remember(req('a', 0));
    r.remember(req('b', 0));
    r.remember(req('c', 0));
    expect(r.get('a')).toBeUndefined();
    expect(r.get('b')?.text).toBe('hello');
    now = 11_000;
    expect(r.get('c')).toBeUndefined();
  });

  it('keeps audio only with a dataset store, within its retention and byte bounds', () => {
    let now = 0;
    let bytes = -1;
    const r = new RecentRequests({ maxEntries: 100, maxAgeSeconds: 3600, dataset: { dir: '/unused', retentionSeconds: 5, maxRetainedBytes: 3000, maxStoreBytes: 1e9 } }, (b) => (bytes = b), () => now);
    r.remember(req('a', 0), new Float32Array(1000), 16000);
    expect(bytes).toBe(2000);
    r.remember(req('b', 0), new Float32Array(1000), 16000); // over 3000 bytes: the oldest audio goes
    expect(r.get('a')?.audio).toBeUndefined();
    expect(r.get('b')?.audio?.pcm.length).toBe(1000);
    now = 6000;
    expect(r.get('b')?.audio).toBeUndefined();
    expect(r.get('b')?.text).toBe('hello');
    expect(bytes).toBe(0);
    const plain = new RecentRequests({ maxEntries: 10, maxAgeSeconds: 10 });
    plain.remember(req('x', Date.now()), new Float32Array(10), 16000);
    expect(plain.get('x')?.audio).toBeUndefined();
  });
});

describe('ScenarioLabels', () => {
  it.each([
    [undefined, 'unspecified'],
    ['Medical', 'medical'],
    ['has spaces', 'other'],
    ['x'.repeat(80), 'other'],
  ])('%s → %s', (input, label) => {
    expect(new ScenarioLabels(undefined).label(input)).toBe(label);
  });

  it('bounds label values by an allow-list or a cap', () => {
    const allow = new ScenarioLabels(new Set(['medical']));
    expect([allow.label('medical'), allow.label('finance')]).toEqual(['medical', 'other']);
    const capped = new ScenarioLabels(undefined, 2);
    expect(['a', 'b', 'c', 'a'].map((s) => capped.label(s))).toEqual(['a', 'b', 'other', 'a']);
  });
});
