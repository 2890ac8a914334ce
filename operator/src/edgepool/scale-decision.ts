// The built-in scaler's decision for an EdgePool: how many agents the observed load calls for.
// Kubernetes HPA semantics (pkg/controller/podautoscaler/horizontal.go), written as a pure function
// of plain data and a clock so that it can be tested with tables and properties:
//
//   raw          = ceil(load / targetStreamsPerReplica)
//   tolerance    : |load / (current × target) − 1| ≤ tolerance → recommendation = current
//   recommend    = min(raw, maxReplicas)            (stored in the history)
//   scale up     : to the LOWEST recommendation of the scale-up window (current one included)
//   scale down   : to the HIGHEST recommendation of the scale-down window (current one included)
//   bounds       : clamp to [minReplicas, maxReplicas] and to the device capacity
//                  (eligibleNodes × maxAgentsPerDevice); capacity wins over minReplicas, since an
//                  agent beyond the eligible devices could never be scheduled
//   unknown load : no load-driven change — the current size is held (bounds still apply)
//
// The history lives in the EdgePool's status (status.recommendations), so a restarted operator or a
// new leader honours the windows of the one before.
import type { EdgePoolSpec, EdgePoolStatus } from '../../../api/generated/types.js';

export type Recommendation = NonNullable<EdgePoolStatus['recommendations']>[number];

export type AutoscalingSettings = Pick<
  EdgePoolSpec['autoscaling'],
  'minReplicas' | 'maxReplicas' | 'targetStreamsPerReplica' | 'tolerance' | 'scaleUpStabilizationSeconds' | 'scaleDownStabilizationSeconds'
>;

/** Total in-flight + queued streams across the pool's agents, or why it is not known (never a silent 0). */
export type Load = { kind: 'known'; streams: number } | { kind: 'unknown'; reason: string };

export interface ScaleInput {
  /** Agents the Deployment has now (its spec.replicas). */
  currentReplicas: number;
  autoscaling: AutoscalingSettings;
  /** Ready devices that match the pool's nodeSelector. */
  eligibleNodes: number;
  maxAgentsPerDevice: number;
  load: Load;
  /** status.recommendations as last written (any order). */
  history: readonly Recommendation[];
  now: Date;
}

export type Limit = 'minReplicas' | 'maxReplicas' | 'capacity';

export interface ScaleDecision {
  desiredReplicas: number;
  /** The history to write back to status.recommendations (pruned, newest last). */
  history: Recommendation[];
  /** Human-readable, with the numbers: goes to status.lastScaleReason and Events. */
  reason: string;
  changed: boolean;
  /** This round's recommendation (after tolerance and maxReplicas); absent when the load is unknown. */
  recommendation?: number;
  /** The bound that cut the stabilized size, if any. */
  limitedBy?: Limit;
  /** eligibleNodes × maxAgentsPerDevice. */
  capacity: number;
}

/** Most entries kept in status.recommendations (the CRD's maxItems). */
export const MAX_HISTORY = 128;
/** Float noise: 0.9 / 0.3 is 3.0000000000000004, which must not ask for a fourth agent. */
const EPSILON = 1e-9;

/** Lowest and highest size allowed: [min(minReplicas, upper), min(maxReplicas, capacity)], never below 0. */
export function bounds(autoscaling: Pick<AutoscalingSettings, 'minReplicas' | 'maxReplicas'>, capacity: number): { lower: number; upper: number } {
  const upper = Math.max(0, Math.min(autoscaling.maxReplicas, capacity));
  const lower = Math.max(0, Math.min(autoscaling.minReplicas, upper));
  return { lower, upper };
}

function clampWithLimit(n: number, autoscaling: AutoscalingSettings, capacity: number): { value: number; limitedBy?: Limit } {
  const { lower, upper } = bounds(autoscaling, capacity);
  if (n > upper) return { value: upper, limitedBy: capacity < autoscaling.maxReplicas ? 'capacity' : 'maxReplicas' };
  if (n < lower) return { value: lower, limitedBy: lower < autoscaling.minReplicas ? 'capacity' : 'minReplicas' };
  return { value: n };
}

function limitText(limit: Limit | undefined, input: ScaleInput, capacity: number): string {
  switch (limit) {
    case 'capacity': {
      const capped = capacity < input.autoscaling.minReplicas ? ` (below minReplicas ${input.autoscaling.minReplicas}: agents beyond the devices could not run)` : '';
      return `; limited by device capacity ${capacity} (${input.eligibleNodes} eligible device${input.eligibleNodes === 1 ? '' : 's'} × ${input.maxAgentsPerDevice})${capped}`;
    }
    case 'maxReplicas': return `; limited by maxReplicas ${input.autoscaling.maxReplicas}`;
    case 'minReplicas': return `; raised to minReplicas ${input.autoscaling.minReplicas}`;
    default: return '';
  }
}

const timeOf = (r: Recommendation): number => {
  const t = Date.parse(r.time);
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
};

/**
 * The history worth keeping: entries inside the longer window that can still decide a future
 * stabilization. An older entry is dropped when a newer one makes it irrelevant for both windows
 * (newer ≥ it for the scale-down maximum, newer ≤ it for the scale-up minimum): the newer entry
 * stays in every window longer. This keeps the list short however often the decision runs.
 */
export function pruneHistory(history: readonly Recommendation[], autoscaling: AutoscalingSettings, now: Date): Recommendation[] {
  const upCut = now.getTime() - autoscaling.scaleUpStabilizationSeconds * 1000;
  const downCut = now.getTime() - autoscaling.scaleDownStabilizationSeconds * 1000;
  const sorted = [...history].map((r, i) => ({ r, i, t: timeOf(r) })).sort((a, b) => a.t - b.t || a.i - b.i);
  const kept: Recommendation[] = [];
  let newerMax = Number.NEGATIVE_INFINITY;
  let newerMin = Number.POSITIVE_INFINITY;
  for (let k = sorted.length - 1; k >= 0; k--) {
    const e = sorted[k];
    if (!e) continue;
    const forDown = e.t > downCut && e.r.replicas > newerMax;
    const forUp = e.t > upCut && e.r.replicas < newerMin;
    if (forDown || forUp) kept.push({ time: e.r.time, replicas: e.r.replicas });
    newerMax = Math.max(newerMax, e.r.replicas);
    newerMin = Math.min(newerMin, e.r.replicas);
  }
  kept.reverse();
  return kept.length > MAX_HISTORY ? kept.slice(kept.length - MAX_HISTORY) : kept;
}

export function decideScale(input: ScaleInput): ScaleDecision {
  const { currentReplicas: current, autoscaling: as, load, now } = input;
  const capacity = Math.max(0, input.eligibleNodes) * input.maxAgentsPerDevice;

  if (load.kind === 'unknown' || !Number.isFinite(load.streams) || load.streams < 0) {
    const why = load.kind === 'unknown' ? load.reason : `invalid load ${String(load.streams)}`;
    const { value, limitedBy } = clampWithLimit(current, as, capacity);
    const reason = `load unknown (${why}): holding ${current} agent${current === 1 ? '' : 's'}${value !== current ? `, set to ${value}${limitText(limitedBy, input, capacity)}` : ''}`;
    return {
      desiredReplicas: value, history: [...input.history], reason, changed: value !== current, capacity,
      ...(limitedBy ? { limitedBy } : {}),
    };
  }

  const streams = load.streams;
  const target = as.targetStreamsPerReplica;
  const raw = Math.max(0, Math.ceil(streams / target - EPSILON));
  let recommendation = raw;
  let band = '';
  if (current > 0) {
    const ratio = streams / (current * target);
    if (Math.abs(ratio - 1) <= as.tolerance + EPSILON) {
      recommendation = current;
      band = ` (within tolerance ${fmt(as.tolerance * 100)}% of ${current} agents: ratio ${fmt(ratio)})`;
    }
  }
  const aboveMax = recommendation > as.maxReplicas;
  recommendation = Math.min(recommendation, as.maxReplicas);

  const nowMs = now.getTime();
  const upCut = nowMs - as.scaleUpStabilizationSeconds * 1000;
  const downCut = nowMs - as.scaleDownStabilizationSeconds * 1000;
  let up = recommendation;
  let down = recommendation;
  for (const h of input.history) {
    const t = timeOf(h);
    if (t > upCut) up = Math.min(up, h.replicas);
    if (t > downCut) down = Math.max(down, h.replicas);
  }
  let stabilized = current;
  let held = '';
  if (stabilized < up) stabilized = up;
  if (stabilized > down) stabilized = down;
  if (stabilized !== recommendation) {
    held = stabilized > recommendation
      ? `; scale-down stabilization: ${down} recommended within the last ${as.scaleDownStabilizationSeconds} s`
      : `; scale-up stabilization: only ${up} recommended throughout the last ${as.scaleUpStabilizationSeconds} s`;
  }
  const clamped = clampWithLimit(stabilized, as, capacity);
  const { value } = clamped;
  const limitedBy = clamped.limitedBy ?? (aboveMax && value === as.maxReplicas ? 'maxReplicas' : undefined);
  const history = pruneHistory([...input.history, { time: now.toISOString(), replicas: recommendation }], as, now);
  const head = value === current ? `keeping ${current} agent${current === 1 ? '' : 's'}` : `scaling ${value > current ? 'up' : 'down'} ${current} → ${value}`;
  const reason = `${head}: ${fmt(streams)} streams / target ${fmt(target)} per agent = ${raw}${band}${held}${limitText(limitedBy, input, capacity)}`;
  return {
    desiredReplicas: value, history, reason, changed: value !== current, recommendation, capacity,
    ...(limitedBy ? { limitedBy } : {}),
  };
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/0+$/, '').replace(/\.$/, '');
}
