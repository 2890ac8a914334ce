// The manager runs the controllers of one operator process: it campaigns for the leader Lease (when
// enabled), starts the informers and the controllers once it leads, and shuts down gracefully:
// readiness fails, no new keys are taken, reconciles in flight finish, the Lease is released.
// Losing the Lease stops the process (like controller-runtime): a replica that might act on stale
// leadership must not keep running.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeClient } from '../kube/client.js';
import type { Controller } from './controller.js';
import type { EventRecorder } from './events.js';
import type { Informer } from './informer.js';
import type { LeaderElectionSettings } from './leader-election.js';
import { LeaderElector } from './leader-election.js';
import type { OperatorMetrics } from './metrics.js';

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  metrics: OperatorMetrics;
  events: EventRecorder;
  /** undefined: no leader election (a single replica). */
  leaderElection: LeaderElectionSettings | undefined;
  shutdownTimeoutMs: number;
}

export type ManagerState = 'standby' | 'starting' | 'leading' | 'stopping' | 'stopped';

export class Manager {
  private readonly informers: Informer<KubernetesObject>[] = [];
  private readonly controllers: Controller[] = [];
  private readonly elector: LeaderElector | undefined;
  private readonly abort = new AbortController();
  private state: ManagerState = 'standby';
  private exit: ((code: number) => void) | undefined;
  private readonly exited: Promise<number>;
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: ManagerOptions) {
    this.exited = new Promise((resolve) => {
      this.exit = resolve;
    });
    if (opts.leaderElection) {
      this.elector = new LeaderElector(opts.client, opts.leaderElection, opts.log, {
        onStartedLeading: () => void this.lead(),
        onStoppedLeading: () => void this.stop('lost leadership', 1),
      });
    }
  }

  add(controller: Controller, informers: Informer<KubernetesObject>[]): void {
    this.controllers.push(controller);
    this.informers.push(...informers);
  }

  getState(): ManagerState {
    return this.state;
  }

  isLeader(): boolean {
    return this.state === 'leading';
  }

  /** Ready: not draining; a leader also needs synced caches. A standby replica is ready (it is healthy and waiting). */
  ready(): { ready: boolean; reason: string } {
    switch (this.state) {
      case 'stopping':
      case 'stopped':
        return { ready: false, reason: 'shutting down' };
      case 'starting':
        return { ready: false, reason: 'leading, waiting for caches to sync' };
      default:
        return { ready: true, reason: '' };
    }
  }

  /** Starts; resolves with the process exit code once the manager has stopped. */
  run(): Promise<number> {
    if (this.elector) {
      this.opts.log.info({ lease: `${this.opts.leaderElection?.namespace}/${this.opts.leaderElection?.name}`, identity: this.opts.leaderElection?.identity }, 'Waiting for leadership');
      this.elector.run(this.abort.signal).catch((err: unknown) => {
        this.opts.log.error({ err }, 'Leader election failed');
        void this.stop('leader election failed', 1);
      });
    } else {
      void this.lead();
    }
    return this.exited;
  }

  private async lead(): Promise<void> {
    if (this.state !== 'standby') return;
    this.state = 'starting';
    this.opts.metrics.leader.set(1);
    for (const inf of this.informers) inf.start();
    await Promise.all(this.informers.map((inf) => inf.waitForSync()));
    // Stopped while syncing, or the caches never synced.
    if (this.state !== 'starting') return;
    for (const c of this.controllers) c.start();
    this.state = 'leading';
    this.opts.log.info({ controllers: this.controllers.map((c) => c.name), cached: this.informers.map((i) => `${i.type.kind}=${i.size()}`) }, 'Caches synced, controllers running');
  }

  /** Graceful stop; idempotent. */
  stop(reason: string, code = 0): Promise<void> {
    this.stopping ??= this.doStop(reason, code);
    return this.stopping;
  }

  private async doStop(reason: string, code: number): Promise<void> {
    const { log, shutdownTimeoutMs } = this.opts;
    this.state = 'stopping';
    log.info({ reason }, 'Shutting down: no new work, finishing reconciles in flight');
    this.abort.abort();
    const started = Date.now();
    const finished = await Promise.all(this.controllers.map((c) => c.stop(shutdownTimeoutMs)));
    if (finished.some((f) => !f)) log.warn({ timeoutMs: shutdownTimeoutMs }, 'Some reconciles did not finish before the shutdown timeout');
    await Promise.all(this.informers.map((inf) => inf.stop()));
    await this.opts.events.flush();
    // Lost leadership means someone else may hold the Lease now: never touch it then.
    if (code === 0) await this.elector?.release();
    this.opts.metrics.leader.set(0);
    this.state = 'stopped';
    log.info({ reason, tookMs: Date.now() - started }, 'Stopped');
    this.exit?.(code);
  }
}
