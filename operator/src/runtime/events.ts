// Kubernetes Events (events.k8s.io/v1) about the objects the operator manages. Recording is best
// effort: a failed Event is logged and never fails a reconcile. Identical events for the same object
// within a short window are dropped, so a hot loop cannot flood the API server.
import type { KubernetesObject } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';
import { EVENTS } from '../kube/client.js';
import { microTime } from './leader-election.js';
import { safeReason, truncateMessage } from './conditions.js';

export interface EventRecorder {
  normal(obj: KubernetesObject, reason: string, action: string, note: string): void;
  warning(obj: KubernetesObject, reason: string, action: string, note: string): void;
  /** Waits for the events still being sent (shutdown). */
  flush(): Promise<void>;
}

export class ApiEventRecorder implements EventRecorder {
  private readonly pending = new Set<Promise<void>>();
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly client: KubeClient,
    private readonly controller: string,
    private readonly instance: string,
    private readonly log: Logger,
    private readonly dedupWindowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  normal(obj: KubernetesObject, reason: string, action: string, note: string): void {
    this.record(obj, 'Normal', reason, action, note);
  }

  warning(obj: KubernetesObject, reason: string, action: string, note: string): void {
    this.record(obj, 'Warning', reason, action, note);
  }

  async flush(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  private record(obj: KubernetesObject, type: 'Normal' | 'Warning', reason: string, action: string, note: string): void {
    const meta = obj.metadata;
    const namespace = meta?.namespace;
    const name = meta?.name;
    if (!namespace || !name) return;
    const now = this.now();
    const dedupKey = `${meta.uid ?? name}|${type}|${reason}|${note}`;
    const last = this.recent.get(dedupKey);
    if (last !== undefined && now - last < this.dedupWindowMs) return;
    this.recent.set(dedupKey, now);
    if (this.recent.size > 10_000) {
      for (const [k, t] of this.recent) if (now - t >= this.dedupWindowMs) this.recent.delete(k);
    }
    const event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: `${name}.${now.toString(16)}${randomBytes(3).toString('hex')}`, namespace },
      eventTime: microTime(now),
      reportingController: this.controller,
      reportingInstance: this.instance.slice(0, 128),
      action,
      reason: safeReason(reason),
      note: truncateMessage(note, 1024),
      type,
      regarding: {
        apiVersion: obj.apiVersion, kind: obj.kind, namespace, name, uid: meta.uid, resourceVersion: meta.resourceVersion,
      },
    };
    const p = this.client.create(EVENTS, namespace, event as KubernetesObject).then(
      () => undefined,
      (err: unknown) => this.log.warn({ err, namespace, name, reason }, 'Could not record Event'),
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }
}
