// The reconcile contract, after controller-runtime's pkg/reconcile: a reconcile gets a key
// ("namespace/name"), converges the world and says "done" or "again after T"; a thrown error is
// retried with backoff, a TerminalError is reported and never retried.

export interface ReconcileResult {
  /** Reconcile this key again after this many ms even if nothing changes (0/undefined: only on events). */
  requeueAfterMs?: number;
}

export const DONE: ReconcileResult = {};

export interface Reconciler {
  reconcile(key: string): Promise<ReconcileResult>;
}

/** A permanent error: retrying the same input cannot succeed (invalid spec). */
export class TerminalError extends Error {
  constructor(message: string, readonly reason = 'InvalidSpec', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
