// metav1.Condition bookkeeping: lastTransitionTime only moves when a condition's status changes,
// every condition carries the generation it was computed from.

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

const MAX_MESSAGE = 4096;
const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

/** Kubernetes timestamps: RFC 3339, seconds precision, UTC. */
export function rfc3339(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** A reason the API server accepts (CamelCase identifier); anything else becomes a safe spelling. */
export function safeReason(reason: string): string {
  if (REASON.test(reason)) return reason;
  const cleaned = reason.replace(/[^A-Za-z0-9_]/g, '').replace(/^[^A-Za-z]+/, '');
  return cleaned === '' ? 'Unknown' : cleaned;
}

export function truncateMessage(message: string, max = MAX_MESSAGE): string {
  return message.length <= max ? message : `${message.slice(0, max - 1)}…`;
}

/**
 * The new condition list: one entry per wanted type, in the given order. lastTransitionTime is kept
 * from the previous condition of the same type when its status did not change. Conditions of types
 * not in `wanted` are dropped.
 */
export function mergeConditions(
  previous: readonly Condition[] | undefined,
  wanted: readonly ConditionInput[],
  generation: number,
  now: Date,
): Condition[] {
  return wanted.map((w) => {
    const before = previous?.find((c) => c.type === w.type);
    const lastTransitionTime = before && before.status === w.status ? before.lastTransitionTime : rfc3339(now);
    return {
      type: w.type,
      status: w.status,
      observedGeneration: generation,
      lastTransitionTime,
      reason: safeReason(w.reason),
      message: truncateMessage(w.message),
    };
  });
}
