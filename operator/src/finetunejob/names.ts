// Names and labels of the children of a FineTuneJob. The Job name is derived from the
// FineTuneJob's uid, so an operator restart finds (and adopts) the Job it created before instead of
// creating a second one, and a FineTuneJob deleted and re-created under the same name never collides
// with the old Job that the garbage collector is still removing.
import { createHash } from 'node:crypto';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'whisperops';
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const TRAINER_COMPONENT = 'trainer';
export const FINETUNEJOB_LABEL = 'whisperops.dev/finetunejob';
export const FINALIZER = 'whisperops.dev/finetunejob-cleanup';
/** Label the Job controller puts on every pod of a Job. */
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';
export const COMPLETION_INDEX_ANNOTATION = 'batch.kubernetes.io/job-completion-index';

/** Longest Job name we produce: the indexed pods' hostname `<job>-<index>` must stay a 63-char DNS label. */
export const MAX_JOB_NAME = 52;
const HASH_LENGTH = 8;

export interface ObjectIdentity {
  namespace: string;
  name: string;
  uid: string;
}

/**
 * `<name>-<hash>`: a DNS-1035 label (a Service name and a pod subdomain can equal it), at most
 * MAX_JOB_NAME characters, deterministic in (namespace, name, uid).
 */
export function jobName(id: ObjectIdentity): string {
  const hash = createHash('sha256').update(`${id.namespace}/${id.name}/${id.uid}`).digest('hex').slice(0, HASH_LENGTH);
  let base = id.name.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  if (!/^[a-z]/.test(base)) base = `j${base}`;
  base = base.slice(0, MAX_JOB_NAME - HASH_LENGTH - 1).replace(/-+$/, '');
  return `${base}-${hash}`;
}

/** The ConfigMap holding the job spec for the trainer. */
export function configMapName(id: ObjectIdentity): string {
  return `${jobName(id)}-spec`;
}

/** The headless Service for torchrun rendezvous (multi-node runs only); pods use it as their subdomain. */
export function serviceName(id: ObjectIdentity): string {
  return jobName(id);
}

export function childLabels(ftjName: string): Record<string, string> {
  return {
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [COMPONENT_LABEL]: TRAINER_COMPONENT,
    // Label values are at most 63 characters; FineTuneJob names can be longer, the selector then
    // uses the truncated value and the owner reference disambiguates.
    [FINETUNEJOB_LABEL]: labelValue(ftjName),
  };
}

export function labelValue(value: string): string {
  return value.slice(0, 63).replace(/[^A-Za-z0-9]+$/, '');
}

/** Selector of everything the operator creates for FineTuneJobs (informers list only these). */
export const CHILD_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY},${COMPONENT_LABEL}=${TRAINER_COMPONENT}`;
