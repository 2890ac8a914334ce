// The canary step machine of an InferenceDeployment (pure: plain data and a clock in, the next
// status fields, Events and the pool's model-set entry out). Everything it needs to continue lives
// in the status it returns, so a restarted operator or a new leader resumes at the same step.
//
//   no stable yet                 → the resolved model becomes stable at once (first deployment, no canary)
//   resolved = stable             → steady (Healthy); a candidate (active or rolled back) is cancelled
//   resolved ≠ stable, ≠ candidate→ it becomes the candidate at step 0, the first step's weight (Progressing);
//                                   a different candidate in flight is withdrawn (new spec during a rollout)
//   step i                        → holds for steps[i].pauseSeconds AND until a Successful verdict measured
//                                   at step i (Inconclusive holds and says so); then step i+1, or after the
//                                   last step promotion: stable = candidate, candidate cleared, Healthy
//                                   (the spec is never written: GitOps owns it)
//   failureLimit Failed verdicts  → rollback: weight 0, candidate kept with its verdict and
//                                   rolledBackGeneration, RollingBack, then Degraded on the next round;
//                                   not retried until the spec changes (a newer generation)
//   abort (agents refused it)     → rollback at once, the refusal as the verdict message
//   model unresolved              → everything held as it is (the reconciler reports why)
import type { InferenceDeploymentSpec, InferenceDeploymentStatus } from '../../../api/generated/types.js';
import type { ModelDeployment } from '../../../api/model-set.js';
import type { AnalysisResult } from './analysis.js';
import { MAX_MESSAGE } from './analysis.js';
import { rfc3339 } from '../runtime/conditions.js';

export interface ResolvedModel {
  uri: string;
  version: string;
  sha256: string;
  /** Where it came from ("spec", "FineTuneJob/<name>"). */
  source?: string;
}

export type Stable = NonNullable<InferenceDeploymentStatus['stable']>;
export type Candidate = NonNullable<InferenceDeploymentStatus['candidate']>;
export type Phase = NonNullable<InferenceDeploymentStatus['phase']>;

/** The status fields the machine reads and writes. */
export interface RolloutState {
  phase?: Phase;
  stable?: Stable;
  candidate?: Candidate;
}

export type RolloutSettings = Pick<InferenceDeploymentSpec['rollout'], 'steps'> & {
  analysis: Pick<InferenceDeploymentSpec['rollout']['analysis'], 'failureLimit' | 'intervalSeconds'>;
};

export interface RolloutInput {
  /** spec.model resolved, or undefined while it cannot be (FineTuneJob not Succeeded, …). */
  resolved: ResolvedModel | undefined;
  rollout: RolloutSettings;
  /** metadata.generation of the spec the input was resolved from. */
  generation: number;
  status: RolloutState;
  /** The verdict of an analysis interval evaluated now (see analysisDue), if one was. */
  verdict?: AnalysisResult;
  /**
   * The agents refused the candidate for good (its artifact does not match its sha256, version or
   * manifest): rolled back at once, whatever failureLimit says — no interval can make it pass.
   */
  abort?: { message: string };
  now: Date;
}

export interface RolloutEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface RolloutDecision {
  /** The next phase, stable and candidate (write them to status; absent = cleared). */
  status: RolloutState;
  events: RolloutEvent[];
  /** This deployment's entry in the pool's model set (name added by the caller); absent while nothing is served. */
  modelSet?: Omit<ModelDeployment, 'name'>;
  /** What the rollout is doing or waiting for, with the numbers (for conditions). */
  message: string;
  /** A candidate is in flight (kstatus Reconciling). */
  progressing: boolean;
  /** When to look again: the end of the current pause or the next analysis, whichever is sooner. */
  requeueAfterMs?: number;
}

const sameModel = (a: { uri: string; version: string; sha256: string }, b: { uri: string; version: string; sha256: string }): boolean =>
  a.uri === b.uri && a.version === b.version && a.sha256 === b.sha256;

const ref = (m: { uri: string; version: string; sha256: string }): { uri: string; version: string; sha256: string } => ({ uri: m.uri, version: m.version, sha256: m.sha256 });

const served = (m: ResolvedModel): Stable => ({ ...ref(m), ...(m.source !== undefined ? { source: m.source } : {}) });

const timeMs = (t: string | undefined): number | undefined => {
  if (t === undefined) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
};

const truncate = (s: string): string => (s.length <= MAX_MESSAGE ? s : `${s.slice(0, MAX_MESSAGE - 1)}…`);

/** The step the candidate is at, clamped into the (possibly edited) steps. */
function stepIndex(candidate: Candidate, steps: RolloutSettings['steps']): number {
  return Math.min(Math.max(0, candidate.step ?? 0), steps.length - 1);
}

/** Whether an analysis interval is due for the candidate in `status` (one interval after the last one, or after its step began). */
export function analysisDue(status: RolloutState, intervalSeconds: number, now: Date): boolean {
  const c = status.candidate;
  if (!c || c.rolledBackGeneration !== undefined) return false;
  const since = timeMs(c.lastAnalysisTime) ?? timeMs(c.stepStartTime);
  return since === undefined || now.getTime() - since >= intervalSeconds * 1000;
}

/** A deployment's entry in its pool's model set from its status: stable, and the candidate while it has weight. */
export function modelEntry(stable: Stable | undefined, candidate: Candidate | undefined): Omit<ModelDeployment, 'name'> | undefined {
  if (!stable) return undefined;
  const active = candidate && candidate.rolledBackGeneration === undefined && (candidate.weight ?? 0) > 0;
  return { stable: ref(stable), ...(active ? { candidate: { ...ref(candidate), weight: candidate.weight ?? 0 } } : {}) };
}

function startCandidate(m: ResolvedModel, steps: RolloutSettings['steps'], now: Date): Candidate {
  const first = steps[0];
  return { ...served(m), weight: first?.weight ?? 0, step: 0, stepStartTime: rfc3339(now), failedAnalyses: 0 };
}

function decision(status: RolloutState, events: RolloutEvent[], message: string, requeueAfterMs?: number): RolloutDecision {
  const progressing = status.candidate !== undefined && status.candidate.rolledBackGeneration === undefined;
  const entry = modelEntry(status.stable, status.candidate);
  return {
    status, events, message, progressing,
    ...(entry ? { modelSet: entry } : {}),
    ...(requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(0, requeueAfterMs) } : {}),
  };
}

const stableOnly = (stable: Stable): RolloutState => ({ phase: 'Healthy', stable });

/** The next step of the rollout (see the rules at the top of this file). */
export function stepRollout(input: RolloutInput): RolloutDecision {
  const { resolved, status, now } = input;
  const steps = input.rollout.steps;
  const { stable, candidate } = status;

  if (!resolved) {
    const held = candidate ? `; candidate ${candidate.version} held at ${candidate.weight ?? 0}%` : '';
    return decision({ ...status }, [], `model not resolved: ${stable ? `serving stable ${stable.version}` : 'nothing served yet'}${held}`);
  }

  if (!stable) {
    const next = stableOnly(served(resolved));
    return decision(next, [{ type: 'Normal', reason: 'Deployed', message: `Serving ${resolved.version} (${resolved.uri}) as stable: first deployment, no canary` }], `serving stable ${resolved.version}`);
  }

  if (sameModel(resolved, stable)) {
    if (!candidate) return decision({ ...status, phase: 'Healthy', stable }, [], `serving stable ${stable.version}`);
    const what = candidate.rolledBackGeneration !== undefined
      ? `rolled-back candidate ${candidate.version} cleared`
      : `candidate ${candidate.version} cancelled at step ${stepIndex(candidate, steps) + 1}/${steps.length} (weight ${candidate.weight ?? 0}%)`;
    return decision(stableOnly(stable), [{ type: 'Normal', reason: 'CandidateCancelled', message: `Spec names stable ${stable.version} again: ${what}` }], `serving stable ${stable.version}`);
  }

  if (!candidate || !sameModel(resolved, candidate) || (candidate.rolledBackGeneration !== undefined && input.generation > candidate.rolledBackGeneration)) {
    const next = startCandidate(resolved, steps, now);
    const why = !candidate
      ? (resolved.source && resolved.source !== 'spec' ? `new model from ${resolved.source}` : 'new model in spec')
      : sameModel(resolved, candidate)
        ? `spec changed (generation ${input.generation}) after the rollback of ${candidate.version}: retrying`
        : `spec changed from candidate ${candidate.version}${candidate.rolledBackGeneration === undefined ? ` (at step ${stepIndex(candidate, steps) + 1}/${steps.length}, weight ${candidate.weight ?? 0}%)` : ' (rolled back)'}: rollout restarted`;
    const first = steps[0];
    const pause = first?.pauseSeconds ?? 0;
    return decision({ phase: 'Progressing', stable, candidate: next }, [{
      type: 'Normal', reason: 'RolloutStarted',
      message: `Canary ${resolved.version} started beside stable ${stable.version} (${why}): step 1/${steps.length} at ${next.weight ?? 0}% for at least ${pause} s`,
    }], `candidate ${resolved.version} at step 1/${steps.length}, weight ${next.weight ?? 0}%`,
    Math.min(pause * 1000, input.rollout.analysis.intervalSeconds * 1000));
  }

  if (candidate.rolledBackGeneration !== undefined) {
    const msg = `candidate ${candidate.version} rolled back (${candidate.lastVerdictMessage ?? 'no verdict'}); stable ${stable.version} serves all traffic until the spec changes`;
    if (status.phase === 'RollingBack') {
      return decision({ phase: 'Degraded', stable, candidate }, [{ type: 'Warning', reason: 'RolledBack', message: `Rollback of ${candidate.version} complete: stable ${stable.version} serves 100%` }], msg);
    }
    return decision({ phase: 'Degraded', stable, candidate }, [], msg);
  }

  return progress(input, stable, candidate);
}

function progress(input: RolloutInput, stable: Stable, current: Candidate): RolloutDecision {
  const { now, verdict } = input;
  const steps = input.rollout.steps;
  const { failureLimit, intervalSeconds } = input.rollout.analysis;
  const events: RolloutEvent[] = [];
  const idx = stepIndex(current, steps);
  const step = steps[idx];
  const weight = step?.weight ?? current.weight ?? 0;
  const label = `step ${idx + 1}/${steps.length} (weight ${weight}%)`;
  let candidate: Candidate = { ...current, step: idx, weight, stepStartTime: current.stepStartTime ?? rfc3339(now), failedAnalyses: current.failedAnalyses ?? 0 };

  if (input.abort) {
    const message = truncate(input.abort.message);
    const rolledBack: Candidate = {
      ...candidate, weight: 0, rolledBackGeneration: input.generation, lastVerdict: 'Failed', lastVerdictMessage: message,
      lastVerdictStep: idx, lastAnalysisTime: rfc3339(now),
    };
    events.push({ type: 'Warning', reason: 'RollingBack', message: `Rolling back ${candidate.version} at ${label}: ${message}; stable ${stable.version} serves 100%` });
    return decision({ phase: 'RollingBack', stable, candidate: rolledBack }, events, `rolling back ${candidate.version}: ${message}`);
  }

  if (verdict) {
    const failed = (candidate.failedAnalyses ?? 0) + (verdict.verdict === 'Failed' ? 1 : 0);
    candidate = {
      ...candidate, failedAnalyses: failed, lastVerdict: verdict.verdict, lastVerdictMessage: truncate(verdict.message),
      lastVerdictStep: idx, lastAnalysisTime: rfc3339(now),
    };
    if (verdict.verdict === 'Failed') {
      events.push({ type: 'Warning', reason: 'AnalysisFailed', message: `Candidate ${candidate.version} at ${label}: analysis Failed (${failed} of failureLimit ${failureLimit}): ${verdict.message}` });
      if (failed >= failureLimit) {
        const rolledBack: Candidate = { ...candidate, weight: 0, rolledBackGeneration: input.generation };
        events.push({ type: 'Warning', reason: 'RollingBack', message: `Rolling back ${candidate.version} after ${failed} failed analyses at ${label}: weight 0, stable ${stable.version} serves 100%; last verdict: ${verdict.message}` });
        return decision({ phase: 'RollingBack', stable, candidate: rolledBack }, events, `rolling back ${candidate.version}: ${verdict.message}`);
      }
    } else if (verdict.verdict === 'Inconclusive') {
      events.push({ type: 'Normal', reason: 'AnalysisInconclusive', message: `Candidate ${candidate.version} holding at ${label}: analysis Inconclusive: ${verdict.message}` });
    } else {
      events.push({ type: 'Normal', reason: 'AnalysisSuccessful', message: `Candidate ${candidate.version} at ${label}: analysis Successful: ${verdict.message}` });
    }
  }

  const startMs = timeMs(candidate.stepStartTime) ?? now.getTime();
  const pauseMs = (step?.pauseSeconds ?? 0) * 1000;
  const pauseLeftMs = startMs + pauseMs - now.getTime();
  const passed = candidate.lastVerdict === 'Successful' && candidate.lastVerdictStep === idx;
  const sinceAnalysis = timeMs(candidate.lastAnalysisTime) ?? startMs;
  const nextAnalysisMs = sinceAnalysis + intervalSeconds * 1000 - now.getTime();

  if (pauseLeftMs <= 0 && passed) {
    const held = `held ${Math.round((now.getTime() - startMs) / 1000)} s, last analysis Successful`;
    if (idx >= steps.length - 1) {
      const promoted: Stable = { ...ref(candidate), ...(candidate.source !== undefined ? { source: candidate.source } : {}) };
      events.push({ type: 'Normal', reason: 'Promoted', message: `Promoted ${candidate.version} to stable (was ${stable.version}) after ${steps.length} step${steps.length === 1 ? '' : 's'}; ${held}: ${candidate.lastVerdictMessage ?? ''}` });
      return decision(stableOnly(promoted), events, `serving stable ${candidate.version}`);
    }
    const nextStep = steps[idx + 1];
    const nextWeight = nextStep?.weight ?? weight;
    const advanced: Candidate = { ...candidate, step: idx + 1, weight: nextWeight, stepStartTime: rfc3339(now) };
    events.push({ type: 'Normal', reason: 'StepAdvanced', message: `Candidate ${candidate.version} step ${idx + 2}/${steps.length}: weight ${weight}% → ${nextWeight}% (${held})` });
    const nextPause = (nextStep?.pauseSeconds ?? 0) * 1000;
    return decision({ phase: 'Progressing', stable, candidate: advanced }, events,
      `candidate ${candidate.version} at step ${idx + 2}/${steps.length}, weight ${nextWeight}%`, Math.min(nextPause, Math.max(0, nextAnalysisMs)));
  }

  const waits: string[] = [];
  if (pauseLeftMs > 0) waits.push(`pause: ${Math.ceil(pauseLeftMs / 1000)} s of ${step?.pauseSeconds ?? 0} s left`);
  if (!passed) {
    waits.push(candidate.lastVerdictStep === idx && candidate.lastVerdict !== undefined
      ? `waiting for a Successful analysis (last ${candidate.lastVerdict}: ${candidate.lastVerdictMessage ?? ''})`
      : 'waiting for the first analysis at this step');
  }
  const requeue = Math.min(pauseLeftMs > 0 ? pauseLeftMs : Number.POSITIVE_INFINITY, Math.max(0, nextAnalysisMs));
  return decision({ phase: 'Progressing', stable, candidate }, events, `candidate ${candidate.version} holding at ${label}: ${waits.join('; ')}`, requeue);
}
