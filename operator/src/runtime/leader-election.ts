// Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection package.
// Every write is a PUT conditional on the resourceVersion that was read, so two candidates can never
// both win the same term. A lease is judged expired on the local clock — from when this process
// last saw the record change, plus leaseDuration — never by comparing clocks across machines.
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';
import { isAlreadyExists, isConflict, isNotFound, LEASES } from '../kube/client.js';

export interface LeaderElectionSettings {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: LeaseSpec;
}

export interface LeaderCallbacks {
  onStartedLeading(): void;
  /** Leadership lost (renewal failed past the deadline). Not called on a deliberate release. */
  onStoppedLeading(): void;
  onNewLeader?(identity: string): void;
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function validateLeaderElection(s: Pick<LeaderElectionSettings, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>): string[] {
  const problems: string[] = [];
  if (!(s.leaseDurationMs > s.renewDeadlineMs)) problems.push('leaseDuration must be greater than renewDeadline');
  if (!(s.renewDeadlineMs > s.retryPeriodMs * 1.2)) problems.push('renewDeadline must be greater than 1.2 × retryPeriod');
  if (!(s.retryPeriodMs > 0)) problems.push('retryPeriod must be positive');
  return problems;
}

export class LeaderElector {
  private observed: { holder: string; renewTime: string; transitions: number } | undefined;
  private observedAt = 0;
  private leading = false;
  private lastRenew = 0;
  private reportedLeader = '';

  constructor(
    private readonly client: KubeClient,
    private readonly settings: LeaderElectionSettings,
    private readonly log: Logger,
    private readonly callbacks: LeaderCallbacks,
    private readonly now: () => number = Date.now,
  ) {}

  isLeader(): boolean {
    return this.leading;
  }

  /** Campaigns until it wins, then renews until leadership is lost or the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && !this.leading) {
      if (await this.attempt()) {
        this.leading = true;
        this.lastRenew = this.now();
        this.log.info({ lease: this.leaseRef(), identity: this.settings.identity }, 'Became leader');
        this.callbacks.onStartedLeading();
        break;
      }
      await sleep(this.settings.retryPeriodMs * (1 + Math.random() * 0.2), signal);
    }
    while (!signal.aborted && this.leading) {
      await sleep(this.settings.retryPeriodMs, signal);
      if (signal.aborted) break;
      const left = this.lastRenew + this.settings.renewDeadlineMs - this.now();
      const ok = await withTimeout(this.attempt(), Math.max(left, 1));
      if (ok) {
        this.lastRenew = this.now();
      } else if (this.now() - this.lastRenew >= this.settings.renewDeadlineMs) {
        this.leading = false;
        this.log.error({ lease: this.leaseRef(), identity: this.settings.identity }, 'Lost leadership: could not renew the Lease before the renew deadline');
        this.callbacks.onStoppedLeading();
      }
    }
  }

  /** Gives the Lease up (shutdown) so that another replica takes over at once instead of after leaseDuration. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.client.get<Lease>(LEASES, this.settings.namespace, this.settings.name);
      if (lease.spec?.holderIdentity !== this.settings.identity) return;
      const now = microTime(this.now());
      await this.client.replace<Lease>(LEASES, this.settings.namespace, this.settings.name, {
        ...lease,
        spec: { leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: lease.spec.leaseTransitions ?? 0 },
      });
      this.log.info({ lease: this.leaseRef(), identity: this.settings.identity }, 'Released the Lease');
    } catch (err) {
      this.log.warn({ lease: this.leaseRef(), err }, 'Could not release the Lease; the next leader waits for it to expire');
    }
  }

  private leaseRef(): string {
    return `${this.settings.namespace}/${this.settings.name}`;
  }

  /** One try to acquire or renew; false when someone else holds a live lease or a write lost a race. */
  private async attempt(): Promise<boolean> {
    const { namespace, name, identity } = this.settings;
    const durationSeconds = Math.ceil(this.settings.leaseDurationMs / 1000);
    const now = this.now();
    try {
      let lease: Lease;
      try {
        lease = await this.client.get<Lease>(LEASES, namespace, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        const created = await this.client.create<Lease>(LEASES, namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'whisperops' } },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        this.observe(created.spec ?? {}, now);
        return true;
      }
      const spec = lease.spec ?? {};
      this.observe(spec, now);
      const holder = spec.holderIdentity ?? '';
      const theirDurationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
      if (holder !== '' && holder !== identity && this.observedAt + theirDurationMs > now) return false;
      const renewing = holder === identity;
      const updated = await this.client.replace<Lease>(LEASES, namespace, name, {
        ...lease,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: renewing && spec.acquireTime ? spec.acquireTime : microTime(now),
          renewTime: microTime(now),
          leaseTransitions: (spec.leaseTransitions ?? 0) + (renewing ? 0 : 1),
        },
      });
      this.observe(updated.spec ?? {}, now);
      return true;
    } catch (err) {
      if (isConflict(err) || isAlreadyExists(err)) return false;
      this.log.warn({ lease: this.leaseRef(), err }, 'Lease acquire/renew failed');
      return false;
    }
  }

  private observe(spec: LeaseSpec, now: number): void {
    const record = { holder: spec.holderIdentity ?? '', renewTime: spec.renewTime ?? '', transitions: spec.leaseTransitions ?? 0 };
    const o = this.observed;
    if (!o || o.holder !== record.holder || o.renewTime !== record.renewTime || o.transitions !== record.transitions) {
      this.observed = record;
      this.observedAt = now;
    }
    if (record.holder !== '' && record.holder !== this.reportedLeader) {
      this.reportedLeader = record.holder;
      if (record.holder !== this.settings.identity) this.log.info({ lease: this.leaseRef(), leader: record.holder }, 'New leader observed');
      this.callbacks.onNewLeader?.(record.holder);
    }
  }
}

function withTimeout(p: Promise<boolean>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then((v) => {
      clearTimeout(t);
      resolve(v);
    }, () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', done);
      resolve();
    }, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
