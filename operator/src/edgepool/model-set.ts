// The pool's model set, built from the InferenceDeployments that name the pool (pure). Each one
// contributes an entry: name = the InferenceDeployment's name (the OpenAI `model` parameter), stable =
// its status.stable, candidate = its status.candidate with its weight while a canary is in flight.
// The InferenceDeployment controller decides those (resolution of spec.model, rollout steps,
// promotion, rollback) and keeps them in status, so this side only reads: one writer per object. A
// deployment with nothing resolved yet is left out and reported (never silently dropped).
// Deterministic: entries sorted by name, scenarios sorted and unique — the same deployments always
// give the same bytes, so the ConfigMap is not rewritten when nothing changed.
import type { InferenceDeployment } from '../../../api/generated/types.js';
import type { ModelDeployment, ModelSet } from '../../../api/model-set.js';
import { modelEntry } from '../inferencedeployment/rollout.js';

/** The model-set format's limits (api/model-set.ts schema). */
export const MAX_MODELS = 32;
export const MAX_SCENARIOS = 64;
/** Longest skipped summary in a condition message. */
const MAX_SUMMARY = 2048;

/** An InferenceDeployment as the pool's model set reads it. */
export type DeploymentLike = Pick<InferenceDeployment, 'spec' | 'status'> & {
  metadata?: { name?: string; namespace?: string; deletionTimestamp?: Date | string };
};

export interface SkippedDeployment {
  name: string;
  reason: string;
}

export interface PoolModels {
  /** What goes into the ConfigMap (the operator adds pool, apiVersion and kind). */
  set: Pick<ModelSet, 'models'> & Pick<Partial<ModelSet>, 'scenarios'>;
  /** Deployments on the pool that are not in the set, sorted by name, each with why. */
  skipped: SkippedDeployment[];
}

/** The InferenceDeployments of `deployments` that serve on pool `namespace/pool` (not being deleted). */
export function deploymentsOnPool(namespace: string, pool: string, deployments: readonly DeploymentLike[]): DeploymentLike[] {
  return deployments.filter((d) => d.metadata?.namespace === namespace && d.spec.edgePoolRef.name === pool && !d.metadata.deletionTimestamp);
}

function entryOf(d: DeploymentLike): ModelDeployment | string {
  const entry = modelEntry(d.status?.stable, d.status?.candidate);
  if (!entry) return 'no model resolved yet (see its ModelResolved condition)';
  return { name: d.metadata?.name ?? '', ...entry };
}

/** The deployment's entry as the pool serves it (for change detection), or undefined. */
export function servedEntry(d: DeploymentLike): Omit<ModelDeployment, 'name'> | undefined {
  return modelEntry(d.status?.stable, d.status?.candidate);
}

/** The model set of a pool from the deployments that serve on it (see deploymentsOnPool). */
export function buildModelSet(deployments: readonly DeploymentLike[]): PoolModels {
  const sorted = [...deployments].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  const models: ModelDeployment[] = [];
  const skipped: SkippedDeployment[] = [];
  const scenarios = new Set<string>();
  for (const d of sorted) {
    const name = d.metadata?.name ?? '';
    const entry = entryOf(d);
    if (typeof entry === 'string') {
      skipped.push({ name, reason: entry });
      continue;
    }
    if (models.length >= MAX_MODELS) {
      skipped.push({ name, reason: `the pool serves at most ${MAX_MODELS} deployments` });
      continue;
    }
    models.push(entry);
    for (const s of d.spec.monitoring?.scenarios ?? []) scenarios.add(s.name);
  }
  const scenarioList = [...scenarios].sort().slice(0, MAX_SCENARIOS);
  return { set: { models, ...(scenarioList.length > 0 ? { scenarios: scenarioList } : {}) }, skipped };
}

/** One line for a condition message: how many deployments were left out and why (empty when none). */
export function skippedSummary(skipped: readonly SkippedDeployment[]): string {
  if (skipped.length === 0) return '';
  const n = skipped.length;
  const line = `${n} InferenceDeployment${n === 1 ? '' : 's'} not served: ${skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}`;
  return line.length <= MAX_SUMMARY ? line : `${line.slice(0, MAX_SUMMARY - 1)}…`;
}
