// The manager runs the controllers of one operator process: it campaigns for the leader Lease (when
// enabled), starts the informers and the controllers once it leads, and shuts down gracefully:
// readiness fails, no new keys are taken, reconciles in flight finish, the Lease is released.
// Losing the Lease stops the process (like controller-runtime): a replica that might act on stale
// leadership must not keep running, and its reconciles in flight are cancelled at once — their
// client (see reconcileSignal) is bound to the leader's term, so no write leaves after the loss.
// Caches that do not sync within cacheSyncTimeoutMs (a list that is forbidden, an API server that
// never answers) stop the process too, and the Lease is given up so that a standby takes over.
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
  /** A leader whose informers have not synced after this long gives up (0: wait forever). */
  cacheSyncTimeoutMs?: number;
}

export type ManagerState = 'standby' | 'starting' | 'leading' | 'stopping' | 'stopped';

export class Manager {
  private readonly informers: Informer<KubernetesObject>[] = [];
  private readonly controllers: Controller[] = [];
  private readonly elector: LeaderElector | undefined;
  private readonly abort = new AbortController();
  /** Aborted when the process must stop acting at once (leadership lost, caches never synced). */
  private readonly term = new AbortController();
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
        onStoppedLeading: () => void this.stop('lost leadership', 1, { cancel: true }),
      });
    }
  }

  add(controller: Controller, informers: Informer<KubernetesObject>[]): void {
    this.controllers.push(controller);
    this.informers.push(...informers);
  }

  /** The signal reconcilers' clients are bound to (boundToSignal): aborted when leadership is lost. */
  get reconcileSignal(): AbortSignal {
    return this.term.signal;
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
        void this.stop('leader election failed', 1, { cancel: true });
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
    const timeoutMs = this.opts.cacheSyncTimeoutMs ?? 0;
    let timer: NodeJS.Timeout | undefined;
    const synced = await Promise.race([
      Promise.all(this.informers.map((inf) => inf.waitForSync())).then(() => true),
      ...(timeoutMs > 0 ? [new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); })] : []),
    ]);
    if (timer) clearTimeout(timer);
    // Stopped while syncing.
    if (this.state !== 'starting') return;
    if (!synced) {
      const unsynced = this.informers.filter((i) => !i.hasSynced()).map((i) => i.type.kind);
      this.opts.log.error({ unsynced, timeoutMs }, 'Caches did not sync in time (is a list forbidden?); giving up leadership');
      // Still the leader: hand the Lease over so that a standby (perhaps with working access) takes over now.
      void this.stop('caches did not sync', 1, { cancel: true, release: true });
      return;
    }
    for (const c of this.controllers) c.start();
    this.state = 'leading';
    this.opts.log.info({ controllers: this.controllers.map((c) => c.name), cached: this.informers.map((i) => `${i.type.kind}=${i.size()}`) }, 'Caches synced, controllers running');
  }

  /**
   * Stops; idempotent. Graceful by default (reconciles in flight finish); `cancel` aborts them at once
   * (their client calls reject); `release` hands the Lease over even with a non-zero exit code.
   */
  stop(reason: string, code = 0, how: { cancel?: boolean; release?: boolean } = {}): Promise<void> {
    this.stopping ??= this.doStop(reason, code, how);
    return this.stopping;
  }

  private async doStop(reason: string, code: number, how: { cancel?: boolean; release?: boolean }): Promise<void> {
    const { log, shutdownTimeoutMs } = this.opts;
    this.state = 'stopping';
    if (how.cancel) {
      this.term.abort(new Error(`reconciles cancelled: ${reason}`));
      log.warn({ reason }, 'Shutting down: reconciles in flight cancelled');
    } else {
      log.info({ reason }, 'Shutting down: no new work, finishing reconciles in flight');
    }
    this.abort.abort();
    const started = Date.now();
    const finished = await Promise.all(this.controllers.map((c) => c.stop(shutdownTimeoutMs)));
    if (finished.some((f) => !f)) log.warn({ timeoutMs: shutdownTimeoutMs }, 'Some reconciles did not finish before the shutdown timeout');
    await Promise.all(this.informers.map((inf) => inf.stop()));
    await this.opts.events.flush();
    // Lost leadership means someone else may hold the Lease now: never touch it then.
    if (code === 0 || how.release) await this.elector?.release();
    this.opts.metrics.leader.set(0);
    this.state = 'stopped';
    log.info({ reason, tookMs: Date.now() - started }, 'Stopped');
    this.exit?.(code);
  }
}
