// Names and labels of an EdgePool's children. Readable names (`<pool>-agent`, `<pool>-models`):
// `kubectl get deploy` shows which pool an agent Deployment serves. A pool re-created under the same
// name finds the old children until the garbage collector removes them: the reconciler must compare
// the owner reference's uid before adopting.
import { createHash } from 'node:crypto';
import { COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL } from '../finetunejob/names.js';

export { COMPONENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL };
export const AGENT_COMPONENT = 'edge-agent';
export const EDGEPOOL_LABEL = 'whisperops.dev/edgepool';
export const NAME_LABEL = 'app.kubernetes.io/name';
export const AGENT_NAME = 'whisperops-edge-agent';

/** Longest child name: DNS-1123 subdomain limit minus room for ReplicaSet/pod suffixes (…-<10>-<5>). */
const MAX_CHILD_NAME = 63;

function childName(pool: string, suffix: string): string {
  const name = `${pool}-${suffix}`;
  if (name.length <= MAX_CHILD_NAME) return name;
  const hash = createHash('sha256').update(pool).digest('hex').slice(0, 8);
  const base = pool.slice(0, MAX_CHILD_NAME - suffix.length - hash.length - 2).replace(/[-.]+$/, '');
  return `${base}-${hash}-${suffix}`;
}

export const deploymentName = (pool: string): string => childName(pool, 'agent');
export const configMapName = (pool: string): string => childName(pool, 'models');

/**
 * The pool's identity as a label value and as the model set's `pool` (the `pool` label of every agent
 * metric): a DNS label of at most 63 characters. EdgePool names may be longer or hold dots; those are
 * mapped (dots to dashes, a hash suffix when shortened), so the Prometheus target label
 * `whisperops_dev_edgepool` and the agents' `pool` label always agree.
 */
export function poolId(pool: string): string {
  const clean = pool.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  if (clean.length <= 63 && clean === pool) return clean;
  if (clean.length <= 63) return clean.replace(/^-+|-+$/g, '') || 'pool';
  const hash = createHash('sha256').update(pool).digest('hex').slice(0, 8);
  return `${clean.slice(0, 54).replace(/-+$/, '')}-${hash}`;
}

/** Labels of the pool's agent pods; also the Deployment's selector (immutable: never add to it). */
export function selectorLabels(pool: string): Record<string, string> {
  return { [EDGEPOOL_LABEL]: poolId(pool), [COMPONENT_LABEL]: AGENT_COMPONENT, [MANAGED_BY_LABEL]: MANAGED_BY };
}

export function childLabels(pool: string): Record<string, string> {
  return { ...selectorLabels(pool), [NAME_LABEL]: AGENT_NAME };
}

/** status.selector: the scale subresource's label selector (what HPA/KEDA count pods with). */
export function selectorString(pool: string): string {
  return Object.entries(selectorLabels(pool)).map(([k, v]) => `${k}=${v}`).sort().join(',');
}

/** Selector of everything the operator creates for EdgePools (informers list only these). */
export const CHILD_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY},${COMPONENT_LABEL}=${AGENT_COMPONENT}`;
