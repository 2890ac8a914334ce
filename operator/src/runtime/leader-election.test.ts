import { describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { LEASES } from '../kube/client.js';
import { MemoryKubeClient } from '../../testing/memory-client.js';
import type { Lease, LeaderElectionSettings } from './leader-election.js';
import { LeaderElector, microTime, validateLeaderElection } from './leader-election.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Lease durations are whole seconds in the Lease object.
const timing = { leaseDurationMs: 1000, renewDeadlineMs: 400, retryPeriodMs: 50 };

function candidate(api: MemoryKubeClient, identity: string, extra: Partial<LeaderElectionSettings> = {}) {
  const state = { leading: false, started: 0, stopped: 0, abort: new AbortController() };
  const elector = new LeaderElector(api, { namespace: 'sys', name: 'op', identity, ...timing, ...extra }, log, {
    onStartedLeading: () => {
      state.leading = true;
      state.started += 1;
    },
    onStoppedLeading: () => {
      state.leading = false;
      state.stopped += 1;
    },
  });
  const running = elector.run(state.abort.signal);
  return { elector, state, running };
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
  return Date.now() - start;
}

describe('LeaderElector', () => {
  it('lets exactly one of several candidates lead, and keeps it leading', async () => {
    const api = new MemoryKubeClient();
    const cs = ['a', 'b', 'c'].map((id) => candidate(api, id));
    await until('a leader', () => cs.some((c) => c.state.leading));
    await sleep(1000); // several lease durations of renewals
    expect(cs.filter((c) => c.state.leading)).toHaveLength(1);
    expect(cs.reduce((n, c) => n + c.state.started, 0)).toBe(1);
    const lease = await api.get<Lease>(LEASES, 'sys', 'op');
    const leaderIndex = cs.findIndex((c) => c.state.leading);
    expect(lease.spec?.holderIdentity).toBe(['a', 'b', 'c'][leaderIndex]);
    for (const c of cs) c.state.abort.abort();
    await Promise.all(cs.map((c) => c.running));
  });

  it('a standby takes over once the leader stops renewing (killed), within about one lease duration', async () => {
    const api = new MemoryKubeClient();
    const a = candidate(api, 'a');
    await until('a leads', () => a.state.leading);
    const b = candidate(api, 'b');
    await sleep(200);
    expect(b.state.leading).toBe(false);
    a.state.abort.abort(); // like SIGKILL: no release
    await a.running;
    const took = await until('b leads', () => b.state.leading);
    expect(took).toBeLessThan(timing.leaseDurationMs + 4 * timing.retryPeriodMs + 200);
    const lease = await api.get<Lease>(LEASES, 'sys', 'op');
    expect(lease.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    b.state.abort.abort();
    await b.running;
  });

  it('a released lease is taken over at once', async () => {
    const api = new MemoryKubeClient();
    const a = candidate(api, 'a');
    await until('a leads', () => a.state.leading);
    const b = candidate(api, 'b');
    await sleep(100);
    a.state.abort.abort();
    await a.running;
    await a.elector.release();
    const took = await until('b leads', () => b.state.leading);
    expect(took).toBeLessThan(timing.leaseDurationMs / 2);
    b.state.abort.abort();
    await b.running;
  });

  it('gives up leadership when it cannot renew before the deadline', async () => {
    const api = new MemoryKubeClient();
    const a = candidate(api, 'a');
    await until('a leads', () => a.state.leading);
    // Someone else grabs the lease behind a's back: a's conditional writes now fail.
    const lease = await api.get<Lease>(LEASES, 'sys', 'op');
    api.put(LEASES, { ...lease, spec: { ...lease.spec, holderIdentity: 'intruder', renewTime: microTime(Date.now()) } });
    const keepIntruderAlive = setInterval(() => {
      void api.get<Lease>(LEASES, 'sys', 'op').then((l) => api.put(LEASES, { ...l, spec: { ...l.spec, renewTime: microTime(Date.now()) } }));
    }, 50);
    await until('a stops leading', () => a.state.stopped === 1, 2000);
    clearInterval(keepIntruderAlive);
    expect(a.elector.isLeader()).toBe(false);
    a.state.abort.abort();
    await a.running;
  });

  it.each([
    [{ leaseDurationMs: 15000, renewDeadlineMs: 10000, retryPeriodMs: 2000 }, []],
    [{ leaseDurationMs: 10000, renewDeadlineMs: 10000, retryPeriodMs: 2000 }, ['leaseDuration must be greater than renewDeadline']],
    [{ leaseDurationMs: 15000, renewDeadlineMs: 2000, retryPeriodMs: 2000 }, ['renewDeadline must be greater than 1.2 × retryPeriod']],
  ])('validates %j', (s, problems) => {
    expect(validateLeaderElection(s)).toEqual(problems);
  });

  it('writes MicroTime with microseconds', () => {
    expect(microTime(Date.parse('2026-11-26T12:00:00.123Z'))).toBe('2026-11-26T12:00:00.123000Z');
  });
});
