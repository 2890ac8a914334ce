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

  it('keeps audio only with a dataset store, within its retention and its byte bound (shared with the upload queue)', () => {
    let now = 0;
    let bytes = -1;
    let queued = 0;
    const wav = (n: number) => new Uint8Array(n);
    const r = new RecentRequests({ maxEntries: 100, maxAgeSeconds: 3600, dataset: { retentionSeconds: 5, maxBytes: 3000, heldElsewhere: () => queued } }, (b) => (bytes = b), () => now);
    r.remember(req('a', 0), wav(2000));
    expect(bytes).toBe(2000);
    r.remember(req('b', 0), wav(1000));
    expect(bytes).toBe(3000);
    r.remember(req('c', 0), wav(1000)); // over 3000 bytes: the oldest audio goes
    const a = r.get('a');
    expect(a?.audio).toBeUndefined();
    expect(a && r.takeAudio(a)).toBe('dropped_full');
    expect(bytes).toBe(2000);
    // Bytes waiting for upload count too: b goes (oldest), c stays.
    queued = 1500;
    r.remember(req('d', 0), wav(500));
    expect([r.get('b')?.audioDropped, r.get('c')?.audio?.length, r.get('d')?.audio?.length]).toEqual(['dropped_full', 1000, 500]);
    // Taking the audio hands the bytes over (no longer counted here), once.
    const c = r.get('c');
    const taken = c && r.takeAudio(c);
    expect(taken).toBeInstanceOf(Uint8Array);
    expect(bytes).toBe(500);
    expect(c && r.takeAudio(c)).toBe('expired');
    // Past the retention the audio goes, the transcript stays (word-error feedback still works).
    now = 6000;
    const d = r.get('d');
    expect(d?.audio).toBeUndefined();
    expect(d?.text).toBe('hello');
    expect(d && r.takeAudio(d)).toBe('expired');
    expect(bytes).toBe(0);
    const plain = new RecentRequests({ maxEntries: 10, maxAgeSeconds: 10 });
    plain.remember(req('x', Date.now()), wav(10));
    expect(plain.get('x')?.audio).toBeUndefined();
    expect(plain.keepsAudio).toBe(false);
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
