import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { defaultControllerRateLimiter, ItemExponentialRateLimiter, TokenBucketRateLimiter } from './rate-limiter.js';

describe('ItemExponentialRateLimiter', () => {
  it('doubles from 5 ms and stops at 1000 s', () => {
    const l = new ItemExponentialRateLimiter();
    const delays = Array.from({ length: 30 }, () => l.when('a', 0));
    expect(delays.slice(0, 5)).toEqual([5, 10, 20, 40, 80]);
    expect(delays[17]).toBe(655_360);
    expect(delays[18]).toBe(1_000_000);
    expect(delays[29]).toBe(1_000_000);
    expect(l.failures('a')).toBe(30);
  });

  it('keeps keys apart and starts over after forget', () => {
    const l = new ItemExponentialRateLimiter();
    l.when('a', 0);
    l.when('a', 0);
    expect(l.when('b', 0)).toBe(5);
    l.forget('a');
    expect(l.when('a', 0)).toBe(5);
    l.forget('a');
    l.forget('b');
    expect(l.size()).toBe(0);
  });

  it('never decreases and never exceeds the cap, for any number of failures', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 100 }), fc.integer({ min: 100, max: 10_000_000 }), (n, base, max) => {
      const l = new ItemExponentialRateLimiter(base, max);
      let last = 0;
      for (let i = 0; i < n; i += 1) {
        const d = l.when('k', 0);
        expect(d).toBeGreaterThanOrEqual(last);
        expect(d).toBeLessThanOrEqual(Math.max(max, base));
        expect(Number.isFinite(d)).toBe(true);
        last = d;
      }
    }));
  });
});

describe('TokenBucketRateLimiter', () => {
  it('lets a burst through, then spaces requests at 1/qps', () => {
    const l = new TokenBucketRateLimiter(10, 3);
    expect([l.when('a', 0), l.when('b', 0), l.when('c', 0)]).toEqual([0, 0, 0]);
    expect(l.when('d', 0)).toBe(100);
    expect(l.when('e', 0)).toBe(200);
    // 1 s later the bucket has refilled 10 tokens (capped at the burst) minus the two reserved.
    expect(l.when('f', 1000)).toBe(0);
  });

  it('never lets more than burst + qps·t requests through without delay', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 300 }), (gaps) => {
      const qps = 10;
      const burst = 5;
      const l = new TokenBucketRateLimiter(qps, burst);
      let t = 0;
      let immediate = 0;
      for (const g of gaps) {
        t += g;
        if (l.when('k', t) === 0) immediate += 1;
      }
      expect(immediate).toBeLessThanOrEqual(burst + Math.floor((t / 1000) * qps) + 1);
    }));
  });

  it('rejects a bucket that can never fill', () => {
    expect(() => new TokenBucketRateLimiter(0, 1)).toThrow('qps > 0');
  });
});

describe('defaultControllerRateLimiter', () => {
  it('takes the longer of the per-item backoff and the overall bucket', () => {
    const l = defaultControllerRateLimiter({ baseDelayMs: 5, maxDelayMs: 1_000_000, qps: 1, burst: 1 });
    expect(l.when('a', 0)).toBe(5);
    expect(l.when('b', 0)).toBe(1000);
  });
});
