// What an EdgePool's status should say, decided from what was observed: the agent Deployment, its
// pods, the candidate nodes, the model set and (in builtin mode) this round's scale decision. The
// previous status only supplies what observation cannot: lastScaleTime/Reason and the scaler's
// history when no decision ran this round, and lastTransitionTime of unchanged conditions.
//
// Conditions (metav1.Condition, kstatus-compatible):
//   Ready          True when the Deployment has converged to the desired size and every agent is ready
//   Reconciling    (only when True) converging: Deployment being created, scaling, rolling out
//   Stalled        (only when True) cannot converge without a change elsewhere: no eligible device,
//                  a permanent problem found by the reconciler (kstatus reads it as Failed)
//   ModelsAssigned False (reason NoModelsAssigned) when the model set is empty. Not an error: the
//                  agents run but are not ready, since they have nothing to serve; the pool is
//                  converged (not Reconciling, not Stalled) and Ready says why it is False.
//   (Ready False, Stalled True, reason AgentsCannotStart) an agent's container cannot be created:
//                  most often a Secret the pool names (spec.tls, spec.auth, artifactCredentials) is
//                  missing or lacks a key. The operator does not read Secrets: it reports what the
//                  kubelet says in the pod's status (the pod's FailedMount Events say the same).
import type { V1Deployment, V1Node, V1Pod, V1Taint, V1Toleration } from '@kubernetes/client-node';
import type { EdgePoolStatus } from '../../../api/generated/types.js';
import type { ModelSet } from '../../../api/model-set.js';
import type { ConditionInput } from '../runtime/conditions.js';
import { mergeConditions, rfc3339 } from '../runtime/conditions.js';
import type { StoredEdgePool } from './desired.js';
import { agentUrl } from './desired.js';
import type { SkippedDeployment } from './model-set.js';
import { skippedSummary } from './model-set.js';
import { selectorString } from './names.js';
import type { Load, ScaleDecision } from './scale-decision.js';

export interface StatusInput {
  pool: StoredEdgePool;
  /** The live agent Deployment, if there is one. */
  deployment: V1Deployment | undefined;
  /** The pool's agent pods. */
  pods: readonly V1Pod[];
  /** Nodes that may belong to the pool (e.g. listed with its nodeSelector); eligibility is decided here. */
  nodes: readonly V1Node[];
  /** Agents wanted now: the decision's desiredReplicas in builtin mode, spec.replicas otherwise. */
  desiredReplicas: number;
  /** This round's built-in scale decision and the load it saw (builtin mode only). */
  decision?: ScaleDecision | undefined;
  load?: Load | undefined;
  /** The model set written to the pool's ConfigMap. */
  modelSet: Pick<ModelSet, 'models'>;
  /** InferenceDeployments on the pool left out of the model set, with why (ModelsAssigned says so). */
  skipped?: readonly SkippedDeployment[];
  /** A permanent problem found while converging (invalid spec, API refusal): Stalled with it. */
  problem?: { reason: string; message: string } | undefined;
  now: Date;
}

function tolerates(tolerations: readonly V1Toleration[], taint: V1Taint): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if ((t.operator ?? 'Equal') === 'Exists') return !t.key || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

/**
 * Devices an agent can run on now: labels match nodeSelector, Ready=True, not cordoned, and every
 * NoSchedule/NoExecute taint tolerated by the pool. The scaler's capacity is built on this count.
 */
export function eligibleNodeNames(pool: StoredEdgePool, nodes: readonly V1Node[]): string[] {
  const selector = Object.entries(pool.spec.nodeSelector);
  const tolerations = pool.spec.tolerations ?? [];
  return nodes.filter((n) => {
    const labels = n.metadata?.labels ?? {};
    if (!selector.every(([k, v]) => labels[k] === v)) return false;
    if (n.spec?.unschedulable) return false;
    if (n.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True') return false;
    return (n.spec?.taints ?? []).every((t) => t.effect === 'PreferNoSchedule' || tolerates(tolerations, t));
  }).map((n) => n.metadata?.name ?? '').filter((name) => name !== '').sort();
}

function podReady(p: V1Pod): boolean {
  return !p.metadata?.deletionTimestamp && p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

function unschedulableMessage(pods: readonly V1Pod[]): string | undefined {
  for (const p of pods) {
    const c = p.status?.conditions?.find((x) => x.type === 'PodScheduled' && x.status === 'False' && x.reason === 'Unschedulable');
    if (c) return c.message ?? 'no device fits the agent';
  }
  return undefined;
}

/** The pods not being deleted, by name: the order in which a status names the first one with a problem. */
function livePodsByName(pods: readonly V1Pod[]): V1Pod[] {
  return pods.filter((p) => !p.metadata?.deletionTimestamp).sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/** Waiting reasons of a container the kubelet cannot create (as opposed to pulling or starting it). */
const CANNOT_START = new Set(['CreateContainerConfigError', 'CreateContainerError']);

/**
 * Why the pool's agents cannot start, when the kubelet says so: the first pod (by name) whose container
 * waits with CreateContainerConfigError/CreateContainerError, or in ContainerCreating with a message
 * (a volume that cannot be mounted), and what the pool names that may be the cause.
 */
export function agentStartProblem(pool: StoredEdgePool, pods: readonly V1Pod[]): string | undefined {
  for (const p of livePodsByName(pods)) {
    for (const c of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
      const w = c.state?.waiting;
      if (!w?.reason) continue;
      if (!CANNOT_START.has(w.reason) && !(w.reason === 'ContainerCreating' && w.message)) continue;
      const secrets = [
        pool.spec.tls ? `spec.tls.secretRef ${pool.spec.tls.secretRef.name} (a kubernetes.io/tls Secret with tls.crt and tls.key)` : undefined,
        pool.spec.auth ? `spec.auth.secretRef ${pool.spec.auth.secretRef.name} (with the keys auth names)` : undefined,
        pool.spec.artifactCredentials ? `spec.artifactCredentials.secretRef ${pool.spec.artifactCredentials.secretRef.name}` : undefined,
      ].filter((x): x is string => x !== undefined);
      const hint = secrets.length > 0 ? `; check that the Secrets the pool names exist in namespace ${pool.metadata.namespace}: ${secrets.join(', ')}. The kubelet mounts them; the operator does not read them` : '';
      return `agent pod ${p.metadata?.name ?? ''} cannot start: ${w.reason}${w.message ? `: ${w.message}` : ''}${hint}`.slice(0, 2048);
    }
  }
  return undefined;
}

/**
 * What a log tail says about an exit: its last error line (a plain line saying error/failed/fatal/panic,
 * or a JSON log line of level error or fatal), stack frames left out; else its last two lines. Lines
 * arrive in the order the process flushed them, so buffered JSON logs may follow the error.
 */
export function exitReason(log: string): string {
  const lines = log.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('at '));
  const isError = (l: string): boolean => {
    if (!l.startsWith('{')) return /\b(error|failed|fatal|panic)\b/i.test(l);
    try {
      const j = JSON.parse(l) as { level?: unknown };
      return typeof j.level === 'number' && j.level >= 50;
    } catch {
      return false;
    }
  };
  const errors = lines.filter(isError);
  return (errors.length > 0 ? errors[errors.length - 1] ?? '' : lines.slice(-2).join(' | ')).slice(0, 400);
}

/**
 * An agent that keeps exiting (e.g. a TLS pair that does not load, a bad option): the first pod (by
 * name) whose container is in CrashLoopBackOff, with its restarts and its last exit — the last lines of
 * the termination message, which is the log's tail (terminationMessagePolicy FallbackToLogsOnError). Progress, not a
 * stall: a crash loop can end by itself (a store that comes back), so the pool stays Reconciling.
 */
export function crashLoopMessage(pods: readonly V1Pod[]): string | undefined {
  for (const p of livePodsByName(pods)) {
    for (const c of p.status?.containerStatuses ?? []) {
      if (c.state?.waiting?.reason !== 'CrashLoopBackOff') continue;
      const last = c.lastState?.terminated;
      const why = exitReason(last?.message ?? '');
      const tail = why ? `: ${why}` : '';
      return `agent pod ${p.metadata?.name ?? ''} is crash-looping (${c.restartCount} restarts${last ? `, last exit code ${last.exitCode}` : ''}${tail})`;
    }
  }
  return undefined;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

interface State { ready: ConditionInput; reconciling?: ConditionInput; stalled?: ConditionInput }

function decideState(input: StatusInput, eligible: number, noModels: boolean): State {
  const { pool, deployment: dep, desiredReplicas: desired, pods, problem } = input;
  const notReady = (reason: string, message: string): ConditionInput => ({ type: 'Ready', status: 'False', reason, message });
  if (problem) {
    return { ready: notReady(problem.reason, problem.message), stalled: { type: 'Stalled', status: 'True', reason: problem.reason, message: problem.message } };
  }
  const wanted = pool.spec.autoscaling.mode === 'builtin' ? Math.max(pool.spec.autoscaling.minReplicas, desired) : pool.spec.replicas;
  if (eligible === 0 && wanted > 0) {
    const sel = Object.entries(pool.spec.nodeSelector).map(([k, v]) => `${k}=${v}`).join(',');
    const message = `no eligible device: no ready, schedulable node matches nodeSelector ${sel}${pool.spec.tolerations?.length ? ' with tolerated taints' : ''}, so no agent can run (add or uncordon devices, or fix nodeSelector/tolerations)`;
    return { ready: notReady('NoEligibleDevices', message), stalled: { type: 'Stalled', status: 'True', reason: 'NoEligibleDevices', message } };
  }
  const progressing = (reason: string, message: string): State => ({ ready: notReady(reason, message), reconciling: { type: 'Reconciling', status: 'True', reason, message } });
  if (!dep) return progressing('CreatingDeployment', 'the agent Deployment is being created');
  const s = dep.status ?? {};
  const name = dep.metadata?.name ?? '';
  const replicas = s.replicas ?? 0;
  const updated = s.updatedReplicas ?? 0;
  const ready = s.readyReplicas ?? 0;
  if ((dep.metadata?.generation ?? 0) > (s.observedGeneration ?? 0) || (dep.spec?.replicas ?? 0) !== desired) {
    return progressing('Updating', `Deployment ${name} is taking the new spec (${plural(desired, 'agent')} wanted)`);
  }
  const pending = unschedulableMessage(pods);
  // Before the rollout and readiness states: those would wait forever for agents that cannot start.
  const cannotStart = ready < desired ? agentStartProblem(pool, pods) : undefined;
  if (cannotStart) {
    return { ready: notReady('AgentsCannotStart', cannotStart), stalled: { type: 'Stalled', status: 'True', reason: 'AgentsCannotStart', message: cannotStart } };
  }
  if (updated < desired) {
    return progressing(replicas < desired ? 'ScalingUp' : 'RollingOut', `${updated}/${desired} agents up to date${pending ? `; waiting for a device: ${pending}` : ''}`);
  }
  if (replicas > desired) return progressing('ScalingDown', `${replicas} agents, ${desired} wanted: stopping ${replicas - desired}`);
  if (noModels) {
    return {
      ready: notReady('NoModelsAssigned', `${plural(desired, 'agent')} running, not ready because no model is assigned to the pool yet (no InferenceDeployment serves on it); they become ready once one is`),
    };
  }
  if (ready < desired) {
    const crashing = crashLoopMessage(pods);
    return progressing('WaitingForAgents', `${ready}/${desired} agents ready (loading and warming up models)${pending ? `; waiting for a device: ${pending}` : ''}${crashing ? `; ${crashing}` : ''}`);
  }
  const message = desired === 0 ? 'scaled to zero agents' : `${ready}/${desired} agents ready on ${plural(eligible, 'eligible device')}`;
  return { ready: { type: 'Ready', status: 'True', reason: 'Ready', message } };
}

export function computeStatus(input: StatusInput): EdgePoolStatus {
  const { pool, deployment: dep, decision, now } = input;
  const old = pool.status ?? {};
  const generation = pool.metadata.generation ?? 1;
  const eligibleNames = eligibleNodeNames(pool, input.nodes);
  const eligible = new Set(eligibleNames);
  const readyNodes = new Set(input.pods.filter(podReady).map((p) => p.spec?.nodeName ?? '').filter((n) => eligible.has(n)));
  const noModels = input.modelSet.models.length === 0;

  const state = decideState(input, eligibleNames.length, noModels);
  const skipped = skippedSummary(input.skipped ?? []);
  const models: ConditionInput = noModels
    ? {
      type: 'ModelsAssigned', status: 'False', reason: 'NoModelsAssigned',
      message: skipped
        ? `the pool's model set is empty: ${skipped}`
        : 'the pool\'s model set is empty: no InferenceDeployment serves on this pool yet (not an error)',
    }
    : {
      type: 'ModelsAssigned', status: 'True', reason: 'ModelsAssigned',
      message: `${plural(input.modelSet.models.length, 'model')} assigned: ${input.modelSet.models.map((m) => m.name).join(', ')}${skipped ? `; ${skipped}` : ''}`,
    };
  const wanted: ConditionInput[] = [state.ready, models];
  if (state.reconciling) wanted.push(state.reconciling);
  if (state.stalled) wanted.push(state.stalled);

  const status: EdgePoolStatus = {
    observedGeneration: generation,
    conditions: mergeConditions(old.conditions, wanted, generation, now),
    replicas: dep?.status?.replicas ?? 0,
    readyReplicas: dep?.status?.readyReplicas ?? 0,
    desiredReplicas: input.desiredReplicas,
    selector: selectorString(pool.metadata.name),
    eligibleNodes: eligibleNames.length,
    readyNodes: readyNodes.size,
  };
  // Where clients reach the ready agents (https:// with spec.tls); absent when none is ready.
  const endpoints = input.pods.filter(podReady).map((p) => p.status?.podIP ?? '').filter((ip) => ip !== '').map((ip) => agentUrl(pool, ip)).sort().slice(0, 64);
  if (endpoints.length > 0) status.endpoints = endpoints;

  const builtin = pool.spec.autoscaling.mode === 'builtin';
  let lastScaleTime = old.lastScaleTime;
  let lastScaleReason = old.lastScaleReason;
  if (builtin && decision?.changed) {
    lastScaleTime = rfc3339(now);
    lastScaleReason = decision.reason;
  } else if (!builtin && old.desiredReplicas !== undefined && old.desiredReplicas !== input.desiredReplicas) {
    lastScaleTime = rfc3339(now);
    lastScaleReason = `spec.replicas ${old.desiredReplicas} → ${input.desiredReplicas} (autoscaling.mode ${pool.spec.autoscaling.mode})`;
  }
  if (lastScaleTime !== undefined) status.lastScaleTime = lastScaleTime;
  if (lastScaleReason !== undefined) status.lastScaleReason = lastScaleReason.slice(0, 1024);
  if (builtin) {
    const history = decision?.history ?? old.recommendations;
    if (history) status.recommendations = history;
    if (input.load?.kind === 'known' && Number.isFinite(input.load.streams)) status.observedStreams = input.load.streams;
  }
  // What is assigned to the agents (the model set); which agents have loaded it is their readiness.
  if (!noModels) status.models = input.modelSet.models.map((m) => ({ deployment: m.name, version: m.stable.version, role: 'stable' as const }));
  return status;
}
