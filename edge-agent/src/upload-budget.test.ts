import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Rejected } from './admission.js';
import { UploadBudget } from './upload-budget.js';

describe('UploadBudget', () => {
  it('grants within capacity, queues FIFO (a large waiter is not overtaken), refuses beyond maxWaiters', async () => {
    const b = new UploadBudget(100, 2);
    const a = b.reserve(60);
    expect(typeof a).toBe('function');
    const big = b.reserve(80);
    const small = b.reserve(10); // would fit now, but waits behind the large one
    expect(big).toBeInstanceOf(Promise);
    expect(small).toBeInstanceOf(Promise);
    expect(b.reserve(1)).toBeInstanceOf(Rejected);
    expect([b.usedBytes, b.waiting]).toEqual([60, 2]);
    const order: string[] = [];
    void (big as Promise<() => void>).then(() => order.push('big'));
    void (small as Promise<() => void>).then(() => order.push('small'));
    (a as () => void)();
    (a as () => void)(); // idempotent
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['big', 'small']);
    expect(b.usedBytes).toBe(90);
  });

  it('clamps a reservation to the capacity and drops an aborted waiter, letting the next one in', async () => {
    const b = new UploadBudget(50, 4);
    const all = b.reserve(1_000) as () => void;
    expect(b.usedBytes).toBe(50);
    const ctl = new AbortController();
    const gone = b.reserve(40, ctl.signal) as Promise<() => void>;
    const next = b.reserve(5) as Promise<() => void>;
    ctl.abort();
    await expect(gone).rejects.toThrow(/aborted/);
    all();
    const r = await next;
    expect([b.usedBytes, b.waiting]).toEqual([5, 0]);
    r();
    expect(b.usedBytes).toBe(0);
  });

  it('never exceeds its capacity and returns to zero (property: random reserve/release/abort sequences)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 150 }), fc.constantFrom('keep', 'release', 'abort')), { maxLength: 40 }), async (ops) => {
        const b = new UploadBudget(100, 8);
        let max = 0;
        const held: (() => void)[] = [];
        const pending: Promise<unknown>[] = [];
        for (const [bytes, what] of ops) {
          const ctl = new AbortController();
          const r = b.reserve(bytes, ctl.signal);
          max = Math.max(max, b.usedBytes);
          if (r instanceof Rejected) continue;
          if (typeof r === 'function') held.push(r);
          else pending.push(r.then((rel) => held.push(rel), () => undefined));
          if (what === 'abort') ctl.abort();
          if (what === 'release') held.shift()?.();
          max = Math.max(max, b.usedBytes);
        }
        // Release everything until nothing waits.
        for (let i = 0; i < 100 && (held.length > 0 || b.waiting > 0); i++) {
          held.shift()?.();
          max = Math.max(max, b.usedBytes);
          await new Promise((r) => setImmediate(r));
        }
        await Promise.all(pending);
        held.forEach((h) => h());
        expect(max).toBeLessThanOrEqual(100);
        expect([b.usedBytes, b.waiting]).toEqual([0, 0]);
      }),
      { numRuns: 200 },
    );
  });
});
