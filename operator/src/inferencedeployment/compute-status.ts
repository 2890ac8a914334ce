// The status of an InferenceDeployment from what the reconciler observed and decided (pure). kstatus
// conditions, as GitOps tools read them:
//
//   ModelResolved  True: spec.model names an artifact now; False: why not (FineTuneJob missing,
//                  running or Failed; a URI the agents cannot fetch)
//   Serving        True: the pool's agents have loaded the stable model; False: they refused it
//                  (checksum, version, manifest) or nothing is assigned; Unknown: no Prometheus answer
//   Reconciling    (only when True) a canary in flight, a rollback, the model awaited or being loaded
//   Stalled        (only when True) cannot proceed without a change elsewhere: the FineTuneJob Failed,
//                  the EdgePool does not exist, the artifact was refused, the candidate was rolled back
//   Ready          True when the stable model is served and nothing is in flight or stalled
//
// The fields the rollout owns (phase, stable, candidate) come from its decision; the monitoring and
// retraining fields (scenarios, lastRetrain, retrains) are kept as they were.
import type { InferenceDeploymentStatus } from '../../../api/generated/types.js';
import type { ConditionInput } from '../runtime/conditions.js';
import { mergeConditions } from '../runtime/conditions.js';
import type { FineTuneJob } from '../../../api/generated/types.js';
import type { ScenarioStatus } from './monitoring.js';
import type { Resolution } from './resolve.js';
import type { RetrainDecision } from './retrain.js';
import type { RolloutDecision } from './rollout.js';
import type { ServingState } from './serving.js';

export interface MonitoringResult {
  scenarios: ScenarioStatus[];
  summary: { status: 'True' | 'False' | 'Unknown'; reason: string; message: string };
}

export interface RetrainOutcome {
  choice: RetrainDecision;
  /** The last retrain's FineTuneJob (before one started now). */
  lastJob: FineTuneJob | undefined;
  /** Set when a retrain started now. */
  lastRetrain?: NonNullable<InferenceDeploymentStatus['lastRetrain']>;
  retrains?: number;
}

export interface StatusInput {
  previous: InferenceDeploymentStatus | undefined;
  generation: number;
  resolution: Resolution;
  /** The EdgePool named by spec.edgePoolRef exists. */
  poolExists: boolean;
  poolName: string;
  decision: RolloutDecision;
  /** What the agents say about the stable model; undefined when nothing is served or it was not asked. */
  stableServing: ServingState | undefined;
  /** This reconcile's scenario measurement (absent: none configured, or nothing served yet). */
  monitoring?: MonitoringResult;
  /** The retrain trigger's outcome (absent: retraining not enabled). */
  retrain?: RetrainOutcome;
  now: Date;
}

/** The Retraining condition: a retrain running or just started, the last one failed, or why none runs. */
function retrainingCondition(previous: InferenceDeploymentStatus | undefined, retrain: RetrainOutcome): ConditionInput {
  const { choice, lastJob } = retrain;
  if (choice.kind === 'start') return { type: 'Retraining', status: 'True', reason: 'Started', message: `FineTuneJob ${choice.name} started: ${choice.reason}` };
  const last = previous?.lastRetrain;
  const phase = lastJob?.status?.phase;
  if (last && lastJob && phase !== 'Succeeded' && phase !== 'Failed') {
    return { type: 'Retraining', status: 'True', reason: 'Running', message: `FineTuneJob ${last.fineTuneJob} is ${phase ?? 'Pending'}: ${last.reason}` };
  }
  if (last && phase === 'Failed') {
    const why = lastJob?.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? 'see the FineTuneJob';
    return { type: 'Retraining', status: 'False', reason: 'RetrainFailed', message: `FineTuneJob ${last.fineTuneJob} Failed: ${why}; ${choice.why}` };
  }
  return { type: 'Retraining', status: 'False', reason: 'Idle', message: choice.why };
}

export function computeStatus(input: StatusInput): InferenceDeploymentStatus {
  const { previous, resolution, decision, stableServing } = input;
  const next = decision.status;
  const stable = next.stable;
  const rolledBack = next.candidate?.rolledBackGeneration !== undefined;
  let phase = next.phase ?? 'Progressing';

  const resolved: ConditionInput = resolution.kind === 'resolved'
    ? { type: 'ModelResolved', status: 'True', reason: 'Resolved', message: resolution.message }
    : { type: 'ModelResolved', status: 'False', reason: resolution.reason, message: resolution.message };

  let serving: ConditionInput;
  if (!stable) serving = { type: 'Serving', status: 'False', reason: 'NothingAssigned', message: 'no model resolved yet: the pool serves nothing for this deployment' };
  else if (!stableServing || stableServing.kind === 'unknown') serving = { type: 'Serving', status: 'Unknown', reason: 'AgentsUnknown', message: stableServing?.message ?? `stable ${stable.version} assigned to the pool; whether its agents loaded it is not known (no Prometheus configured)` };
  else if (stableServing.kind === 'serving') serving = { type: 'Serving', status: 'True', reason: 'Loaded', message: stableServing.message };
  else if (stableServing.kind === 'rejected') serving = { type: 'Serving', status: 'False', reason: 'ArtifactRefused', message: stableServing.message };
  else serving = { type: 'Serving', status: 'False', reason: 'Loading', message: stableServing.message };

  let stalled: ConditionInput | undefined;
  let reconciling: ConditionInput | undefined;
  if (!input.poolExists) {
    stalled = { type: 'Stalled', status: 'True', reason: 'EdgePoolNotFound', message: `EdgePool ${input.poolName} does not exist in this namespace: nothing serves this deployment` };
  } else if (resolution.kind === 'unresolved' && resolution.permanent) {
    stalled = { type: 'Stalled', status: 'True', reason: resolution.reason, message: resolution.message };
  } else if (serving.reason === 'ArtifactRefused') {
    stalled = { type: 'Stalled', status: 'True', reason: 'ArtifactRefused', message: serving.message };
  } else if (rolledBack && phase === 'Degraded') {
    stalled = { type: 'Stalled', status: 'True', reason: 'RolledBack', message: decision.message };
  }
  if (!stalled) {
    if (phase === 'RollingBack') reconciling = { type: 'Reconciling', status: 'True', reason: 'RollingBack', message: decision.message };
    else if (decision.progressing) reconciling = { type: 'Reconciling', status: 'True', reason: 'RollingOut', message: decision.message };
    else if (resolution.kind === 'unresolved') reconciling = { type: 'Reconciling', status: 'True', reason: 'WaitingForModel', message: resolution.message };
    else if (serving.reason === 'Loading') reconciling = { type: 'Reconciling', status: 'True', reason: 'Loading', message: serving.message };
  }
  if (serving.reason === 'ArtifactRefused' && !decision.progressing) phase = 'Degraded';
  if (!stable && (stalled || resolution.kind === 'unresolved')) phase = stalled ? 'Degraded' : 'Progressing';

  const blocking = stalled ?? reconciling;
  const ready: ConditionInput = blocking
    ? { type: 'Ready', status: 'False', reason: blocking.reason, message: blocking.message }
    : serving.status === 'False'
      ? { type: 'Ready', status: 'False', reason: serving.reason, message: serving.message }
      : { type: 'Ready', status: 'True', reason: 'Serving', message: decision.message };

  const extra: ConditionInput[] = [];
  if (input.monitoring) extra.push({ type: 'ScenariosHealthy', ...input.monitoring.summary });
  let retraining: ConditionInput | undefined;
  if (input.retrain) {
    retraining = retrainingCondition(previous, input.retrain);
    extra.push(retraining);
  }
  // Quality: a retrain running (no canary in flight, nothing stalled) or a Degraded scenario shows in the phase.
  if (!stalled && !decision.progressing && phase !== 'RollingBack') {
    if (retraining?.status === 'True') phase = 'Retraining';
    else if (input.monitoring?.scenarios.some((x) => x.state === 'Degraded')) phase = 'Degraded';
  }

  const wanted = [ready, resolved, serving, ...(reconciling ? [reconciling] : []), ...(stalled ? [stalled] : []), ...extra];
  const status: InferenceDeploymentStatus = {
    observedGeneration: input.generation,
    conditions: mergeConditions(previous?.conditions, wanted, input.generation, input.now),
    phase,
    ...(stable ? { stable } : {}),
    ...(next.candidate ? { candidate: next.candidate } : {}),
  };
  const scenarios = input.monitoring?.scenarios ?? previous?.scenarios;
  if (scenarios) status.scenarios = scenarios;
  const lastRetrain = input.retrain?.lastRetrain ?? previous?.lastRetrain;
  if (lastRetrain) status.lastRetrain = lastRetrain;
  const retrains = input.retrain?.retrains ?? previous?.retrains;
  if (retrains !== undefined) status.retrains = retrains;
  return status;
}
