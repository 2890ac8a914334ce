// The closed loop's trigger and its FineTuneJob (pure). A retrain starts when ALL hold:
//
//   retraining.enabled; a monitored scenario is Degraded (monitoring.ts: Unknown never triggers);
//   a stable model is served; no candidate is in flight (a canary decides first); the last retrain's
//   FineTuneJob is not still running; the cooldown since the last retrain has passed
//
// and then exactly one FineTuneJob is created, named after the deployment and its retrain count
// (status.retrains + 1): the same name however many reconciles, restarts or fail-overs see the same
// status, so the API server's AlreadyExists deduplicates it. Its spec is retraining.template with
// baseModel = the current stable model, dataset.uri = the scenario's feedback samples in the pool's
// dataset store (<datasetStore.uri>/<scenario>/, every manifest under it) and output.uri =
// <template.output.uri>/<name>/.
//
// While status.lastRetrain.generation is the deployment's generation, the deployment follows its
// retrains instead of spec.model: the last retrain's result once it has Succeeded (it becomes the
// candidate of a normal rollout), else the stable model as it is. A spec change (a new generation)
// hands control back to spec.model.
import type { V1OwnerReference } from '@kubernetes/client-node';
import type { EdgePool, FineTuneJob, InferenceDeployment, InferenceDeploymentStatus } from '../../../api/generated/types.js';
import type { ResolvedModel } from './rollout.js';
import type { ScenarioStatus } from './monitoring.js';

export const DEPLOYMENT_LABEL = 'whisperops.dev/inferencedeployment';
export const SCENARIO_LABEL = 'whisperops.dev/scenario';
/** FineTuneJob names become Job names and label values: keep them within 63 characters. */
const MAX_NAME = 63;

export type RetrainDecision =
  | { kind: 'none'; why: string }
  | { kind: 'start'; name: string; scenario: string; reason: string };

export interface RetrainInput {
  name: string;
  spec: InferenceDeployment['spec'];
  status: InferenceDeploymentStatus;
  /** The next status.scenarios (this reconcile's measurement). */
  scenarios: readonly ScenarioStatus[];
  /** The FineTuneJob named by status.lastRetrain, from the cache (undefined when none or gone). */
  lastJob: FineTuneJob | undefined;
  now: Date;
}

const TERMINAL = new Set(['Succeeded', 'Failed']);

/** The FineTuneJob name of retrain number `n` of deployment `name` (≤ 63 characters, DNS label). */
export function retrainName(name: string, n: number): string {
  const suffix = `-retrain-${n}`;
  return `${name.slice(0, MAX_NAME - suffix.length).replace(/[-.]+$/, '')}${suffix}`;
}

/** Whether a retrain starts now, and which (see the rules at the top of this file). */
export function decideRetrain(input: RetrainInput): RetrainDecision {
  const { spec, status, now } = input;
  const retraining = spec.retraining;
  if (!retraining?.enabled || !retraining.template) return { kind: 'none', why: 'retraining is not enabled' };
  const degraded = input.scenarios.filter((s) => s.state === 'Degraded');
  const first = degraded[0];
  if (!first) return { kind: 'none', why: 'no scenario is Degraded' };
  if (!status.stable) return { kind: 'none', why: 'no stable model to retrain from' };
  const candidate = status.candidate;
  if (candidate && candidate.rolledBackGeneration === undefined) return { kind: 'none', why: `candidate ${candidate.version} is being rolled out` };
  const last = status.lastRetrain;
  if (last && input.lastJob && !TERMINAL.has(input.lastJob.status?.phase ?? 'Pending')) return { kind: 'none', why: `retrain ${last.fineTuneJob ?? ''} is still running` };
  if (last?.time) {
    const until = Date.parse(last.time) + retraining.cooldownSeconds * 1000;
    if (now.getTime() < until) return { kind: 'none', why: `cooldown of ${retraining.cooldownSeconds} s since retrain ${last.fineTuneJob ?? ''}: no retrain before ${new Date(until).toISOString().slice(0, 19)}Z` };
  }
  const spec0 = spec.monitoring?.scenarios?.find((s) => s.name === first.name);
  const reason = `scenario ${first.name} Degraded: WER ${first.wer ?? '?'} > maxWer ${spec0?.maxWer ?? '?'} over ${first.referenceWords ?? '?'} reference words of stable ${status.stable.version}`;
  return { kind: 'start', name: retrainName(input.name, (status.retrains ?? 0) + 1), scenario: first.name, reason };
}

/**
 * The model the deployment follows while its last retrain is of the current generation: the retrain's
 * result once Succeeded, else the stable model (held). Undefined when spec.model decides.
 */
export function followRetrain(status: InferenceDeploymentStatus, generation: number, lastJob: FineTuneJob | undefined): ResolvedModel | undefined {
  const last = status.lastRetrain;
  if (!last || last.generation !== generation) return undefined;
  const result = lastJob?.status?.phase === 'Succeeded' ? lastJob.status.result : undefined;
  if (result) return { uri: result.modelUri, version: result.version, sha256: result.sha256, source: `FineTuneJob/${last.fineTuneJob}` };
  return status.stable ? { ...status.stable } : undefined;
}

const withSlash = (uri: string) => (uri.endsWith('/') ? uri : `${uri}/`);

/** The FineTuneJob of a retrain (see the top of this file); the caller creates it. */
export function retrainJob(d: Pick<InferenceDeployment, 'metadata' | 'spec'>, stable: NonNullable<InferenceDeploymentStatus['stable']>, pool: EdgePool | undefined,
  decision: Extract<RetrainDecision, { kind: 'start' }>, owner: V1OwnerReference): FineTuneJob {
  const template = d.spec.retraining?.template;
  if (!template) throw new Error('retrainJob needs retraining.template');
  const store = pool?.spec.datasetStore?.uri;
  const { output, dataset, ...rest } = template;
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob',
    metadata: {
      name: decision.name, namespace: d.metadata.namespace,
      labels: { [DEPLOYMENT_LABEL]: d.metadata.name ?? '', [SCENARIO_LABEL]: decision.scenario },
      annotations: { 'whisperops.dev/retrain-reason': decision.reason },
      ownerReferences: [owner],
    },
    spec: {
      ...rest,
      baseModel: { uri: stable.uri, version: stable.version, sha256: stable.sha256 },
      dataset: { ...dataset, scenario: decision.scenario, ...(store ? { uri: `${withSlash(store)}${decision.scenario}/` } : {}) },
      output: { uri: `${withSlash(output.uri)}${decision.name}/` },
    } as FineTuneJob['spec'],
  };
}
