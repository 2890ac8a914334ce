import { describe, expect, it } from '@jest/globals';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import fc from 'fast-check';
import type { FineTuneJobStatus } from '../../../api/generated/types.js';
import { fineTuneJob, trainer } from '../../testing/fixtures.js';
import { computeStatus, decideOutcome } from './compute-status.js';
import { desiredJob } from './desired.js';

const now = new Date('2026-11-26T12:00:00Z');
const sha = 'c'.repeat(64);
const result = JSON.stringify({ modelUri: 'file:///out', version: '1.1.0', sha256: sha, wer: { finance: 0.1 } });

function job(status: V1Job['status'] = {}, suspend = false): V1Job {
  const j = desiredJob(fineTuneJob(), trainer);
  return { ...j, spec: j.spec ? { ...j.spec, suspend } : undefined, status };
}

function cond(type: string, reason?: string, message?: string) {
  return { type, status: 'True', ...(reason ? { reason } : {}), ...(message ? { message } : {}), lastTransitionTime: new Date('2026-11-26T11:59:00Z') };
}

function pod(phase: string, opts: { exitCode?: number; message?: string; index?: string; unschedulable?: string; finishedAt?: string } = {}): V1Pod {
  return {
    metadata: { name: `p-${phase}-${opts.index ?? 'x'}-${opts.exitCode ?? 0}`, ...(opts.index ? { annotations: { 'batch.kubernetes.io/job-completion-index': opts.index } } : {}) },
    status: {
      phase,
      ...(opts.unschedulable ? { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: opts.unschedulable }] } : {}),
      ...(opts.exitCode !== undefined || opts.message !== undefined
        ? { containerStatuses: [{ name: 'trainer', image: 'i', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: opts.exitCode ?? 0, message: opts.message, finishedAt: opts.finishedAt ? new Date(opts.finishedAt) : undefined } } }] }
        : {}),
    },
  };
}

describe('decideOutcome', () => {
  it.each([
    ['no Job yet', undefined, [], 'Pending', 'CreatingJob', ''],
    ['suspended Job', job({}, true), [], 'Suspended', 'Suspended', 'suspended'],
    ['a pod running', job({ active: 1 }), [pod('Running')], 'Running', 'Running', '1/1 trainer pod running'],
    ['running after a failure', job({ active: 1, failed: 1 }), [pod('Failed', { exitCode: 1 }), pod('Running')], 'Running', 'Running', '1 failed attempt so far'],
    ['no GPU node fits', job({ active: 1 }), [pod('Pending', { unschedulable: '0/22 nodes are available: 2 Insufficient nvidia.com/gpu.' })], 'Pending', 'Unschedulable', 'Insufficient nvidia.com/gpu'],
    ['pod created, not running', job({ active: 1 }), [pod('Pending')], 'Pending', 'Starting', 'waiting for the trainer pod'],
    ['pod done, Job not judged yet', job({ active: 0 }), [pod('Succeeded', { message: result })], 'Running', 'Running', 'waiting for Job'],
    ['retry pod waiting', job({ active: 1, failed: 1 }), [pod('Failed', { exitCode: 1 }), pod('Pending')], 'Pending', 'Starting', '1 failed attempt so far'],
    ['complete with a result', job({ succeeded: 1, conditions: [cond('Complete')] }), [pod('Succeeded', { message: result })], 'Succeeded', 'Succeeded', 'model 1.1.0 written to file:///out'],
    ['complete, no result', job({ succeeded: 1, conditions: [cond('Complete')] }), [pod('Succeeded', { message: '' })], 'Failed', 'ResultMissing', 'wrote no result'],
    ['complete, garbage result', job({ succeeded: 1, conditions: [cond('Complete')] }), [pod('Succeeded', { message: '{"version": 1}' })], 'Failed', 'ResultInvalid', 'modelUri is missing'],
    ['complete, pod gone', job({ succeeded: 1, conditions: [cond('Complete')] }), [], 'Failed', 'ResultMissing', 'pod is gone'],
    ['invalid input (exit 2)', job({ failed: 1, conditions: [cond('Failed', 'PodFailurePolicy', 'Container trainer for pod x failed with exit code 2')] }),
      [pod('Failed', { exitCode: 2, message: 'dataset.uri: no such file' })], 'Failed', 'InvalidInput', 'trainer exited with code 2 (invalid input): dataset.uri: no such file'],
    ['preflight failed (exit 2, the trainer\'s failure document)', job({ failed: 1, conditions: [cond('Failed', 'PodFailurePolicy')] }),
      [pod('Failed', { exitCode: 2, message: '{"error":{"reason":"PreflightFailed","message":"preflight: spec.output.uri s3://m/x/: not writable: access denied: SignatureDoesNotMatch (HTTP 403)"}}' })],
      'Failed', 'InvalidInput', 'trainer exited with code 2 (invalid input): PreflightFailed: preflight: spec.output.uri s3://m/x/: not writable: access denied'],
    ['quality gate (exit 3)', job({ failed: 1, conditions: [cond('Failed', 'PodFailurePolicy')] }),
      [pod('Failed', { exitCode: 3, message: 'int8 WER +0.05 > 0.02' })], 'Failed', 'QualityGateFailed', 'quality gate failed'],
    ['retries used up', job({ failed: 3, conditions: [cond('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit')] }),
      [pod('Failed', { exitCode: 1, message: 'CUDA error: out of memory', finishedAt: '2026-11-26T11:58:00Z' }), pod('Failed', { exitCode: 137, message: 'killed', finishedAt: '2026-11-26T11:50:00Z' })],
      'Failed', 'BackoffLimitExceeded', 'trainer exited with code 1: CUDA error: out of memory: Job'],
    ['deadline', job({ failed: 1, conditions: [cond('Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline')] }), [], 'Failed', 'DeadlineExceeded', 'longer than specified deadline'],
  ])('%s → %s (%s)', (_what, j, pods, phase, reason, fragment) => {
    const o = decideOutcome({ job: j, pods });
    expect(o.phase).toBe(phase);
    expect(o.reason).toBe(reason);
    expect(o.message).toContain(fragment);
  });

  it('reads the result of rank 0 in an indexed Job', () => {
    const j = job({ succeeded: 2, conditions: [cond('Complete')] });
    const o = decideOutcome({ job: j, pods: [pod('Succeeded', { index: '1', message: '' }), pod('Succeeded', { index: '0', message: result })] });
    expect(o.phase).toBe('Succeeded');
  });

  it('a problem found while converging fails the run', () => {
    expect(decideOutcome({ job: job({ active: 1 }), pods: [], problem: { reason: 'InvalidSpec', message: 'bad label' } })).toEqual({ phase: 'Failed', reason: 'InvalidSpec', message: 'bad label' });
  });
});

describe('computeStatus', () => {
  it('fills the whole status of a succeeded run', () => {
    const ftj = fineTuneJob({}, { generation: 2 });
    const s = computeStatus({
      ftj, jobName: 'j', now, pods: [pod('Succeeded', { message: result })],
      job: job({ succeeded: 1, failed: 1, startTime: new Date('2026-11-26T11:00:00.123Z'), completionTime: new Date('2026-11-26T11:30:00Z'), conditions: [cond('Complete')] }),
    });
    expect(s).toMatchObject({
      observedGeneration: 2, phase: 'Succeeded', jobName: 'j', attempts: 2, failedAttempts: 1,
      startTime: '2026-11-26T11:00:00Z', completionTime: '2026-11-26T11:30:00Z',
      result: { modelUri: 'file:///out', version: '1.1.0', sha256: sha, wer: { finance: 0.1 }, werSummary: 'finance=0.1' },
    });
    expect(s.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'Succeeded'], ['Succeeded', 'True', 'Succeeded'], ['Failed', 'False', 'Succeeded'], ['Suspended', 'False', 'Succeeded'],
    ]);
  });

  it('keeps a terminal outcome when the Job is deleted afterwards (TTL)', () => {
    const first = computeStatus({ ftj: fineTuneJob(), jobName: 'j', now, pods: [pod('Succeeded', { message: result })], job: job({ succeeded: 1, conditions: [cond('Complete')] }) });
    const later = computeStatus({ ftj: { ...fineTuneJob(), status: first }, jobName: 'j', now: new Date(now.getTime() + 3600_000), pods: [], job: undefined });
    expect(later).toEqual(first);
  });

  it('keeps the first start time across suspend/resume and lastTransitionTime while a condition holds', () => {
    const t0 = computeStatus({ ftj: fineTuneJob(), jobName: 'j', now, pods: [pod('Running')], job: job({ active: 1, startTime: new Date('2026-11-26T11:00:00Z') }) });
    const ftj = { ...fineTuneJob(), status: t0 };
    const t1 = computeStatus({ ftj, jobName: 'j', now: new Date(now.getTime() + 60_000), pods: [pod('Running')], job: job({ active: 1, startTime: new Date('2026-11-26T11:45:00Z') }) });
    expect(t1.startTime).toBe('2026-11-26T11:00:00Z');
    expect(t1.conditions).toEqual(t0.conditions);
  });

  const jobs = fc.constantFrom<[V1Job | undefined, V1Pod[]]>(
    [undefined, []],
    [job({}, true), []],
    [job({ active: 1 }), [pod('Running')]],
    [job({ active: 1 }), [pod('Pending')]],
    [job({ succeeded: 1, conditions: [cond('Complete')] }), [pod('Succeeded', { message: result })]],
    [job({ succeeded: 1, conditions: [cond('Complete')] }), [pod('Succeeded', { message: 'oops' })]],
    [job({ failed: 3, conditions: [cond('Failed', 'BackoffLimitExceeded')] }), [pod('Failed', { exitCode: 1 })]],
  );

  it('Ready is True exactly when Succeeded, every condition carries the generation, at most one outcome holds', () => {
    fc.assert(fc.property(jobs, fc.integer({ min: 1, max: 1000 }), ([j, pods], generation) => {
      const s = computeStatus({ ftj: fineTuneJob({}, { generation }), jobName: 'j', job: j, pods, now });
      const status = (type: string) => s.conditions?.find((c) => c.type === type)?.status;
      expect(status('Ready') === 'True').toBe(s.phase === 'Succeeded');
      expect(status('Failed') === 'True').toBe(s.phase === 'Failed');
      expect(status('Stalled') === 'True').toBe(s.phase === 'Failed');
      // kstatus: converging while Pending or Running (never Current), and Reconciling/Stalled only when True.
      expect(status('Reconciling') === 'True').toBe(s.phase === 'Pending' || s.phase === 'Running');
      expect(s.conditions?.filter((c) => c.type === 'Reconciling' || c.type === 'Stalled').every((c) => c.status === 'True')).toBe(true);
      expect(s.conditions?.every((c) => c.observedGeneration === generation)).toBe(true);
      expect(s.observedGeneration).toBe(generation);
      expect(['Succeeded', 'Failed', 'Suspended'].filter((t) => status(t) === 'True').length).toBeLessThanOrEqual(1);
      expect(s.completionTime !== undefined).toBe(s.phase === 'Succeeded' || s.phase === 'Failed');
    }));
  });

  it('once Succeeded or Failed, stays so whatever is observed next', () => {
    fc.assert(fc.property(jobs, jobs, ([j1, p1], [j2, p2]) => {
      const first = computeStatus({ ftj: fineTuneJob(), jobName: 'j', job: j1, pods: p1, now });
      const second: FineTuneJobStatus = computeStatus({ ftj: { ...fineTuneJob(), status: first }, jobName: 'j', job: j2, pods: p2, now });
      if (first.phase === 'Succeeded' || first.phase === 'Failed') {
        expect(second.phase).toBe(first.phase);
        expect(second.result).toEqual(first.result);
      }
    }));
  });
});
