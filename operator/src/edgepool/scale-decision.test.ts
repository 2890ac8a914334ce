import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { AutoscalingSettings, Load, Recommendation, ScaleInput } from './scale-decision.js';
import { bounds, decideScale, MAX_HISTORY, pruneHistory } from './scale-decision.js';

const now = new Date('2026-12-01T12:00:00Z');
const ago = (s: number): string => new Date(now.getTime() - s * 1000).toISOString();
const known = (streams: number): Load => ({ kind: 'known', streams });
const as: AutoscalingSettings = {
  minReplicas: 1, maxReplicas: 10, targetStreamsPerReplica: 12, tolerance: 0.1, scaleUpStabilizationSeconds: 0, scaleDownStabilizationSeconds: 300,
};

function input(over: Partial<ScaleInput> = {}): ScaleInput {
  return { currentReplicas: 3, autoscaling: as, eligibleNodes: 20, maxAgentsPerDevice: 1, load: known(36), history: [], now, ...over };
}

describe('decideScale', () => {
  it.each<[string, Partial<ScaleInput>, number, string]>([
    ['exactly on target', {}, 3, 'keeping 3 agents: 36 streams / target 12 per agent = 3'],
    ['inside the tolerance band (ratio 1.08)', { load: known(39) }, 3, 'within tolerance 10% of 3 agents'],
    ['just outside the band (ratio 1.11) → up', { load: known(40) }, 4, 'scaling up 3 → 4: 40 streams / target 12 per agent = 4'],
    ['band edge below (ratio 0.9) holds', { load: known(32.4) }, 3, 'within tolerance'],
    ['scale up at once (up window 0)', { load: known(100) }, 9, 'scaling up 3 → 9'],
    ['load above max → maxReplicas', { load: known(1000) }, 10, 'limited by maxReplicas 10'],
    ['zero load → minReplicas after the window', { currentReplicas: 5, load: known(0) }, 1, 'raised to minReplicas 1'],
    ['scale down held by a higher recommendation 100 s ago', { currentReplicas: 5, load: known(12), history: [{ time: ago(100), replicas: 5 }] }, 5,
      'scale-down stabilization: 5 recommended within the last 300 s'],
    ['scale down to the highest of the window', { currentReplicas: 5, load: known(12), history: [{ time: ago(200), replicas: 5 }, { time: ago(100), replicas: 3 }] }, 5, 'stabilization'],
    ['scale down once the higher one left the window', { currentReplicas: 5, load: known(12), history: [{ time: ago(301), replicas: 5 }, { time: ago(100), replicas: 3 }] }, 3,
      'scaling down 5 → 3'],
    ['scale up to the lowest of the up window', { autoscaling: { ...as, scaleUpStabilizationSeconds: 60 }, load: known(96), history: [{ time: ago(30), replicas: 5 }] }, 5,
      'scale-up stabilization: only 5 recommended throughout the last 60 s'],
    ['capacity caps (3 devices × 1)', { eligibleNodes: 3, load: known(100) }, 3, 'limited by device capacity 3 (3 eligible devices × 1)'],
    ['capacity with 2 agents per device', { eligibleNodes: 3, maxAgentsPerDevice: 2, load: known(100) }, 6, 'device capacity 6 (3 eligible devices × 2)'],
    ['capacity wins over minReplicas', { autoscaling: { ...as, minReplicas: 4 }, eligibleNodes: 2, load: known(0), currentReplicas: 4, history: [] }, 2,
      'below minReplicas 4: agents beyond the devices could not run'],
    ['no eligible device → 0', { eligibleNodes: 0 }, 0, 'limited by device capacity 0'],
    ['unknown load holds', { load: { kind: 'unknown', reason: 'Prometheus: empty result' } }, 3, 'load unknown (Prometheus: empty result): holding 3 agents'],
    ['unknown load still obeys bounds', { currentReplicas: 12, load: { kind: 'unknown', reason: 'timeout' } }, 10, 'holding 12 agents, set to 10; limited by maxReplicas 10'],
    ['NaN load is unknown', { load: known(Number.NaN) }, 3, 'load unknown (invalid load NaN)'],
    ['from zero agents', { currentReplicas: 0, autoscaling: { ...as, minReplicas: 0 }, load: known(13) }, 2, 'scaling up 0 → 2'],
    ['zero agents, zero load', { currentReplicas: 0, autoscaling: { ...as, minReplicas: 0 }, load: known(0) }, 0, 'keeping 0 agents'],
    ['float noise: 0.9 / 0.3 is 3', { currentReplicas: 1, autoscaling: { ...as, targetStreamsPerReplica: 0.3, tolerance: 0 }, load: known(0.9) }, 3, '= 3'],
  ])('%s → %s', (_what, over, desired, reason) => {
    const d = decideScale(input(over));
    expect(d.desiredReplicas).toBe(desired);
    expect(d.reason).toContain(reason);
    expect(d.changed).toBe(desired !== (over.currentReplicas ?? 3));
  });

  it('records this round\'s recommendation (after tolerance and maxReplicas) at now', () => {
    expect(decideScale(input({ load: known(39) })).history).toEqual([{ time: now.toISOString(), replicas: 3 }]);
    expect(decideScale(input({ load: known(1000) })).history).toEqual([{ time: now.toISOString(), replicas: 10 }]);
    expect(decideScale(input({ load: known(1000) })).recommendation).toBe(10);
  });

  it('leaves the history alone when the load is unknown', () => {
    const history = [{ time: ago(10), replicas: 7 }];
    const d = decideScale(input({ load: { kind: 'unknown', reason: 'x' }, history }));
    expect(d.history).toEqual(history);
    expect(d.recommendation).toBeUndefined();
  });

  it('a whole scale-down: held for the window, then down in one step', () => {
    let history: Recommendation[] = [];
    let current = 8;
    const seen: number[] = [];
    for (let s = 0; s <= 420; s += 30) {
      const load = s === 0 ? known(96) : known(24);
      const d = decideScale(input({ currentReplicas: current, load, history, now: new Date(now.getTime() + s * 1000) }));
      history = d.history;
      current = d.desiredReplicas;
      seen.push(current);
    }
    // 8 recommended at t=0, 2 from t=30 on; the window is (now − 300 s, now] as in the HPA, so t=0
    // leaves it at t=300: down then, in one step.
    expect(seen).toEqual([8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 2, 2, 2, 2, 2]);
    expect(history.length).toBeLessThanOrEqual(2);
  });
});

describe('pruneHistory', () => {
  it.each<[string, Recommendation[], Recommendation[]]>([
    ['drops what left the longer window', [{ time: ago(400), replicas: 9 }, { time: ago(10), replicas: 2 }], [{ time: ago(10), replicas: 2 }]],
    ['drops an older lower one (a newer higher one outlasts it for the maximum; up window 0)', [{ time: ago(100), replicas: 2 }, { time: ago(10), replicas: 5 }], [{ time: ago(10), replicas: 5 }]],
    ['keeps a decreasing run', [{ time: ago(100), replicas: 5 }, { time: ago(50), replicas: 4 }, { time: ago(10), replicas: 2 }],
      [{ time: ago(100), replicas: 5 }, { time: ago(50), replicas: 4 }, { time: ago(10), replicas: 2 }]],
    ['equal values: the newest stays', [{ time: ago(100), replicas: 3 }, { time: ago(10), replicas: 3 }], [{ time: ago(10), replicas: 3 }]],
    ['sorts by time', [{ time: ago(10), replicas: 2 }, { time: ago(100), replicas: 5 }], [{ time: ago(100), replicas: 5 }, { time: ago(10), replicas: 2 }]],
  ])('%s', (_what, history, kept) => {
    expect(pruneHistory(history, as, now)).toEqual(kept);
  });

  it('keeps an older lower one when the up window needs it', () => {
    const h = [{ time: ago(30), replicas: 2 }, { time: ago(10), replicas: 5 }];
    expect(pruneHistory(h, { ...as, scaleUpStabilizationSeconds: 60 }, now)).toEqual(h);
  });

  it(`never keeps more than ${MAX_HISTORY}`, () => {
    const h = Array.from({ length: 500 }, (_, i) => ({ time: ago(500 - i), replicas: 1000 - i }));
    expect(pruneHistory(h, { ...as, scaleDownStabilizationSeconds: 3600 }, now)).toHaveLength(MAX_HISTORY);
  });
});

// ---- properties -------------------------------------------------------------------------------

const settingsArb = fc.record({
  minReplicas: fc.integer({ min: 0, max: 30 }),
  maxReplicas: fc.integer({ min: 1, max: 60 }),
  targetStreamsPerReplica: fc.double({ min: 0.1, max: 64, noNaN: true }),
  tolerance: fc.double({ min: 0, max: 1, noNaN: true }),
  scaleUpStabilizationSeconds: fc.integer({ min: 0, max: 600 }),
  scaleDownStabilizationSeconds: fc.integer({ min: 0, max: 600 }),
}).filter((s) => s.minReplicas <= s.maxReplicas);

const historyArb = fc.array(fc.record({
  time: fc.integer({ min: 0, max: 900 }).map((s) => ago(s)),
  replicas: fc.integer({ min: 0, max: 60 }),
}), { maxLength: 12 });

const inputArb = fc.record({
  currentReplicas: fc.integer({ min: 0, max: 80 }),
  autoscaling: settingsArb,
  eligibleNodes: fc.integer({ min: 0, max: 40 }),
  maxAgentsPerDevice: fc.integer({ min: 1, max: 4 }),
  load: fc.double({ min: 0, max: 5000, noNaN: true }).map(known),
  history: historyArb,
  now: fc.constant(now),
});

describe('decideScale properties', () => {
  it('is monotone in the load (same current size, history and time)', () => {
    fc.assert(fc.property(inputArb, fc.double({ min: 0, max: 5000, noNaN: true }), fc.double({ min: 0, max: 5000, noNaN: true }), (inp, a, b) => {
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      expect(decideScale({ ...inp, load: known(lo) }).desiredReplicas).toBeLessThanOrEqual(decideScale({ ...inp, load: known(hi) }).desiredReplicas);
    }), { numRuns: 500 });
  });

  it('never leaves [min(minReplicas, upper), upper] with upper = min(maxReplicas, capacity) — capacity wins', () => {
    fc.assert(fc.property(inputArb, fc.boolean(), (inp, unknown) => {
      const d = decideScale(unknown ? { ...inp, load: { kind: 'unknown', reason: 'x' } } : inp);
      const capacity = inp.eligibleNodes * inp.maxAgentsPerDevice;
      const upper = Math.min(inp.autoscaling.maxReplicas, capacity);
      expect(bounds(inp.autoscaling, capacity)).toEqual({ upper, lower: Math.min(inp.autoscaling.minReplicas, upper) });
      expect(d.desiredReplicas).toBeLessThanOrEqual(upper);
      expect(d.desiredReplicas).toBeGreaterThanOrEqual(Math.min(inp.autoscaling.minReplicas, upper));
      expect(d.desiredReplicas).toBeGreaterThanOrEqual(0);
      expect(Number.isInteger(d.desiredReplicas)).toBe(true);
      expect(d.changed).toBe(d.desiredReplicas !== inp.currentReplicas);
    }), { numRuns: 500 });
  });

  it('unknown load keeps the current size whenever it is within bounds', () => {
    fc.assert(fc.property(inputArb, (inp) => {
      const capacity = inp.eligibleNodes * inp.maxAgentsPerDevice;
      const { lower, upper } = bounds(inp.autoscaling, capacity);
      fc.pre(inp.currentReplicas >= lower && inp.currentReplicas <= upper);
      const d = decideScale({ ...inp, load: { kind: 'unknown', reason: 'empty result' } });
      expect(d.desiredReplicas).toBe(inp.currentReplicas);
      expect(d.changed).toBe(false);
      expect(d.history).toEqual(inp.history);
    }), { numRuns: 300 });
  });

  it('no scale-down below a recommendation made within the down window; no scale-up above one made within the up window', () => {
    fc.assert(fc.property(inputArb, (inp) => {
      const d = decideScale(inp);
      const { lower, upper } = bounds(inp.autoscaling, inp.eligibleNodes * inp.maxAgentsPerDevice);
      const clamp = (n: number) => Math.max(lower, Math.min(upper, n));
      for (const h of inp.history) {
        const age = (now.getTime() - Date.parse(h.time)) / 1000;
        if (age < inp.autoscaling.scaleDownStabilizationSeconds && d.desiredReplicas < inp.currentReplicas) {
          expect(d.desiredReplicas).toBeGreaterThanOrEqual(clamp(Math.min(h.replicas, inp.currentReplicas)));
        }
        if (age < inp.autoscaling.scaleUpStabilizationSeconds && d.desiredReplicas > inp.currentReplicas) {
          expect(d.desiredReplicas).toBeLessThanOrEqual(clamp(Math.max(h.replicas, inp.currentReplicas)));
        }
      }
    }), { numRuns: 500 });
  });

  it('inside the tolerance band the size holds (empty history, within bounds)', () => {
    fc.assert(fc.property(inputArb, fc.double({ min: -1, max: 1, noNaN: true }), (inp, f) => {
      const { lower, upper } = bounds(inp.autoscaling, inp.eligibleNodes * inp.maxAgentsPerDevice);
      fc.pre(inp.currentReplicas > 0 && inp.currentReplicas >= lower && inp.currentReplicas <= upper);
      const streams = inp.currentReplicas * inp.autoscaling.targetStreamsPerReplica * (1 + f * inp.autoscaling.tolerance);
      const d = decideScale({ ...inp, history: [], load: known(streams) });
      expect(d.desiredReplicas).toBe(inp.currentReplicas);
    }), { numRuns: 500 });
  });

  it('pruning changes no decision: deciding from the pruned history gives the same size now and later', () => {
    fc.assert(fc.property(inputArb, fc.integer({ min: 0, max: 700 }), fc.double({ min: 0, max: 5000, noNaN: true }), (inp, later, nextLoad) => {
      const d = decideScale(inp);
      const full = [...inp.history, { time: now.toISOString(), replicas: d.recommendation ?? 0 }];
      const at = new Date(now.getTime() + later * 1000);
      const next = { ...inp, currentReplicas: d.desiredReplicas, load: known(nextLoad), now: at };
      expect(decideScale({ ...next, history: d.history }).desiredReplicas).toBe(decideScale({ ...next, history: full }).desiredReplicas);
    }), { numRuns: 500 });
  });
});
