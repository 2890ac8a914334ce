import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Admission, Rejected } from './admission.js';

describe('Admission', () => {
  it('admits up to maxActive, queues up to maxQueue in FIFO order, rejects beyond with Retry-After', async () => {
    const seen: [number, number][] = [];
    const a = new Admission(2, 2, (act, q) => seen.push([act, q]));
    const r1 = a.acquire();
    const r2 = a.acquire();
    expect(typeof r1).toBe('function');
    expect(typeof r2).toBe('function');
    const q1 = a.acquire();
    const q2 = a.acquire();
    expect(q1).toBeInstanceOf(Promise);
    const rej = a.acquire();
    expect(rej).toBeInstanceOf(Rejected);
    expect((rej as Rejected).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect([a.activeCount, a.queuedCount]).toEqual([2, 2]);
    const order: string[] = [];
    void (q1 as Promise<() => void>).then(() => order.push('q1'));
    void (q2 as Promise<() => void>).then(() => order.push('q2'));
    (r1 as () => void)();
    (r1 as () => void)(); // idempotent
    await Promise.resolve();
    expect(order).toEqual(['q1']);
    expect([a.activeCount, a.queuedCount]).toEqual([2, 1]);
    expect(seen[seen.length - 1]).toEqual([2, 1]);
  });

  it('drops a queued request whose client went away', async () => {
    const a = new Admission(1, 1);
    const held = a.acquire() as () => void;
    const ac = new AbortController();
    const q = a.acquire(ac.signal) as Promise<() => void>;
    ac.abort();
    await expect(q).rejects.toThrow(/aborted/);
    expect(a.queuedCount).toBe(0);
    held();
    expect(a.activeCount).toBe(0);
  });

  it('never exceeds its bounds and returns to idle (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.array(fc.boolean(), { maxLength: 40 }), async (maxA, maxQ, ops) => {
        const a = new Admission(maxA, maxQ);
        const held: (() => void)[] = [];
        for (const op of ops) {
          if (op) {
            const t = a.acquire();
            if (typeof t === 'function') held.push(t);
            else if (t instanceof Promise) void t.then((r) => held.push(r));
          } else held.shift()?.();
          await Promise.resolve();
          expect(a.activeCount).toBeLessThanOrEqual(maxA);
          expect(a.queuedCount).toBeLessThanOrEqual(maxQ);
        }
        while (a.activeCount > 0) {
          held.shift()?.();
          await Promise.resolve();
        }
        expect(a.queuedCount).toBe(0);
      }),
    );
  });
});
