// What a FineTuneJob's status should say, decided from what was observed: the Job, its pods and the
// previous status (for the facts a deleted Job can no longer tell: a terminal outcome, when it started).
import type { V1Job, V1JobCondition, V1Pod } from '@kubernetes/client-node';
import type { FineTuneJobStatus } from '../../../api/generated/types.js';
import type { ConditionInput } from '../runtime/conditions.js';
import { mergeConditions, rfc3339, truncateMessage } from '../runtime/conditions.js';
import type { StoredFineTuneJob } from './desired.js';
import { TRAINER_CONTAINER } from './desired.js';
import { COMPLETION_INDEX_ANNOTATION } from './names.js';
import type { TrainerResult } from './trainer-result.js';
import { failureText, parseTrainerResult } from './trainer-result.js';

export type Phase = NonNullable<FineTuneJobStatus['phase']>;

export interface StatusInput {
  ftj: StoredFineTuneJob;
  jobName: string;
  /** The live Job, if there is one. */
  job: V1Job | undefined;
  /** The pods of that Job. */
  pods: readonly V1Pod[];
  /** A permanent problem found while converging (invalid spec, Job lost): the run is Failed with it. */
  problem?: { reason: string; message: string } | undefined;
  now: Date;
}

export interface Outcome {
  phase: Phase;
  reason: string;
  message: string;
  result?: TrainerResult;
}

const EXIT_REASONS: Record<number, { reason: string; what: string }> = {
  2: { reason: 'InvalidInput', what: 'invalid input' },
  3: { reason: 'QualityGateFailed', what: 'quality gate failed' },
};

export function isTerminal(phase: Phase | undefined): boolean {
  return phase === 'Succeeded' || phase === 'Failed';
}

function jobCondition(job: V1Job | undefined, type: string): V1JobCondition | undefined {
  return job?.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

export function jobFinished(job: V1Job | undefined): boolean {
  return jobCondition(job, 'Complete') !== undefined || jobCondition(job, 'Failed') !== undefined;
}

function trainerTermination(pod: V1Pod) {
  return pod.status?.containerStatuses?.find((c) => c.name === TRAINER_CONTAINER)?.state?.terminated;
}

function finishedAt(pod: V1Pod): number {
  const t = trainerTermination(pod)?.finishedAt;
  return t ? new Date(t).getTime() : 0;
}

/** The pod whose termination message carries the result: rank 0 of an indexed Job, else the succeeded pod. */
export function resultPod(pods: readonly V1Pod[]): V1Pod | undefined {
  const succeeded = pods.filter((p) => p.status?.phase === 'Succeeded');
  const rank0 = succeeded.filter((p) => {
    const index = p.metadata?.annotations?.[COMPLETION_INDEX_ANNOTATION];
    return index === undefined || index === '0';
  });
  return [...rank0].sort((a, b) => finishedAt(b) - finishedAt(a))[0];
}

/** The most recent failed trainer pod, to say why the run failed. */
export function lastFailedPod(pods: readonly V1Pod[]): V1Pod | undefined {
  return pods.filter((p) => p.status?.phase === 'Failed').sort((a, b) => finishedAt(b) - finishedAt(a))[0];
}

function failureOutcome(job: V1Job, failed: V1JobCondition, pods: readonly V1Pod[]): Outcome {
  const pod = lastFailedPod(pods);
  const term = pod ? trainerTermination(pod) : undefined;
  let reason = failed.reason ?? 'JobFailed';
  const parts: string[] = [];
  if (term) {
    const code = term.exitCode;
    const known = EXIT_REASONS[code];
    if (known && reason === 'PodFailurePolicy') reason = known.reason;
    parts.push(`trainer exited with code ${code}${known ? ` (${known.what})` : ''}`);
    const msg = (term.message ?? '').trim();
    if (msg !== '') parts.push(truncateMessage(failureText(msg), 1024));
  }
  if (failed.message) parts.push(`Job ${job.metadata?.name ?? ''}: ${failed.message}`);
  return { phase: 'Failed', reason, message: parts.join(': ') || `Job ${job.metadata?.name ?? ''} failed` };
}

function unschedulable(pods: readonly V1Pod[]): string | undefined {
  for (const pod of pods) {
    const cond = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable');
    if (cond) return cond.message ?? 'no node fits the pod';
  }
  return undefined;
}

/** Phase, reason and message of a run whose outcome is not fixed yet (or just became fixed). */
export function decideOutcome(input: Pick<StatusInput, 'job' | 'pods' | 'problem'>): Outcome {
  const { job, pods, problem } = input;
  if (problem) return { phase: 'Failed', reason: problem.reason, message: problem.message };
  if (!job) return { phase: 'Pending', reason: 'CreatingJob', message: 'the trainer Job is being created' };
  const name = job.metadata?.name ?? '';
  if (jobCondition(job, 'Complete')) {
    const pod = resultPod(pods);
    if (!pod) return { phase: 'Failed', reason: 'ResultMissing', message: `Job ${name} completed but its succeeded trainer pod is gone, so its result cannot be read` };
    const verdict = parseTrainerResult(trainerTermination(pod)?.message);
    if (!verdict.ok) return { phase: 'Failed', reason: verdict.reason, message: `pod ${pod.metadata?.name ?? ''}: ${verdict.message}` };
    return {
      phase: 'Succeeded',
      reason: 'Succeeded',
      message: `model ${verdict.result.version} written to ${verdict.result.modelUri}`,
      result: verdict.result,
    };
  }
  const failed = jobCondition(job, 'Failed');
  if (failed) return failureOutcome(job, failed, pods);
  if (job.spec?.suspend === true) {
    return { phase: 'Suspended', reason: 'Suspended', message: `Job ${name} is suspended (spec.suspend is true)` };
  }
  const running = pods.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp).length;
  const nodes = job.spec?.parallelism ?? 1;
  const failedSoFar = job.status?.failed ?? 0;
  const retry = failedSoFar > 0 ? `; ${failedSoFar} failed attempt${failedSoFar === 1 ? '' : 's'} so far` : '';
  if (running > 0) {
    return { phase: 'Running', reason: 'Running', message: `${running}/${nodes} trainer pod${nodes === 1 ? '' : 's'} running${retry}` };
  }
  const why = unschedulable(pods);
  if (why) return { phase: 'Pending', reason: 'Unschedulable', message: `trainer pod cannot be scheduled: ${why}${retry}` };
  const waiting = pods.some((p) => (p.status?.phase ?? 'Pending') === 'Pending' && !p.metadata?.deletionTimestamp);
  const finished = pods.some((p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed');
  if (finished && !waiting) {
    // The trainer exited and the Job controller has not judged the attempt yet: still running, not back to Pending.
    return { phase: 'Running', reason: 'Running', message: `trainer pod finished, waiting for Job ${name} to record the outcome${retry}` };
  }
  return { phase: 'Pending', reason: 'Starting', message: `waiting for the trainer pod${nodes === 1 ? '' : 's'} of Job ${name} to start${retry}` };
}

function conditionsFor(outcome: Outcome): ConditionInput[] {
  const is = (phase: Phase) => (outcome.phase === phase ? 'True' : 'False');
  const { reason, message } = outcome;
  const wanted: ConditionInput[] = [
    { type: 'Ready', status: is('Succeeded'), reason, message },
    { type: 'Succeeded', status: is('Succeeded'), reason: outcome.phase === 'Succeeded' ? reason : outcome.phase, message },
    { type: 'Failed', status: is('Failed'), reason: outcome.phase === 'Failed' ? reason : outcome.phase, message },
    { type: 'Suspended', status: is('Suspended'), reason: outcome.phase === 'Suspended' ? reason : outcome.phase, message },
  ];
  // kstatus / GitOps: Reconciling=True while the run is converging (Pending, Running), so a running
  // job never reads as Current; Stalled=True (kstatus: Failed) when it failed. Both are abnormal-true
  // conditions, present only when true.
  if (outcome.phase === 'Pending' || outcome.phase === 'Running') wanted.push({ type: 'Reconciling', status: 'True', reason, message });
  if (outcome.phase === 'Failed') wanted.push({ type: 'Stalled', status: 'True', reason, message });
  return wanted;
}

function previousOutcome(ftj: StoredFineTuneJob): Outcome | undefined {
  const status = ftj.status;
  if (!status || !isTerminal(status.phase) || status.phase === undefined) return undefined;
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  const failed = status.conditions?.find((c) => c.type === 'Failed');
  const source = status.phase === 'Failed' ? failed ?? ready : ready;
  return {
    phase: status.phase,
    reason: source?.reason ?? status.phase,
    message: source?.message ?? '',
    ...(status.result ? { result: status.result } : {}),
  };
}

/**
 * The whole new status. A terminal outcome (Succeeded, Failed) is final: the Job may be deleted by
 * its TTL afterwards, and the spec that produced it cannot change (CEL), so it is kept as it was.
 */
export function computeStatus(input: StatusInput): FineTuneJobStatus {
  const { ftj, job, now } = input;
  const old = ftj.status ?? {};
  const generation = ftj.metadata.generation ?? 1;
  const outcome = previousOutcome(ftj) ?? decideOutcome(input);
  const jobStatus = job?.status;
  const status: FineTuneJobStatus = {
    observedGeneration: generation,
    phase: outcome.phase,
    conditions: mergeConditions(old.conditions, conditionsFor(outcome), generation, now),
    jobName: input.jobName,
  };
  if (jobStatus) {
    status.attempts = (jobStatus.active ?? 0) + (jobStatus.succeeded ?? 0) + (jobStatus.failed ?? 0);
    status.failedAttempts = jobStatus.failed ?? 0;
  } else {
    status.attempts = old.attempts ?? 0;
    status.failedAttempts = old.failedAttempts ?? 0;
  }
  // A resumed Job restarts its startTime; the run started when the first one did.
  const started = old.startTime ?? (jobStatus?.startTime ? rfc3339(new Date(jobStatus.startTime)) : undefined);
  if (started) status.startTime = started;
  if (isTerminal(outcome.phase)) {
    const finished = old.completionTime
      ?? (jobStatus?.completionTime ? rfc3339(new Date(jobStatus.completionTime)) : undefined)
      ?? finishedTransition(job)
      ?? rfc3339(now);
    status.completionTime = finished;
  }
  if (outcome.result) status.result = outcome.result;
  return status;
}

function finishedTransition(job: V1Job | undefined): string | undefined {
  const cond = jobCondition(job, 'Failed') ?? jobCondition(job, 'Complete');
  return cond?.lastTransitionTime ? rfc3339(new Date(cond.lastTransitionTime)) : undefined;
}
