// The InferenceDeployment reconciler: one straight list of steps (STYLE.md). Get the deployment from
// the cache → (deleting: nothing to do; its pool drops it from the model set) → resolve spec.model
// (the FineTuneJob from the cache when it names one) → ask Prometheus what the pool's agents serve
// (the stable until they have loaded it; the candidate while a canary is in flight: a refused
// artifact aborts the canary) → when an analysis interval is due, measure candidate and stable over
// the same window and evaluate (pure) → step the rollout (pure; its state lives in status, so a
// restarted operator or a new leader resumes at the same step) → compute the status → at most one
// status patch → Events → requeue at the end of the pause or the next analysis, whichever is first.
//
// The pool's model set (the ConfigMap the agents hot-swap) is written by the EdgePool controller
// from this status (stable, candidate, weight): one writer per object.
import type { Logger } from 'pino';
import type { EdgePool, FineTuneJob, InferenceDeployment, InferenceDeploymentStatus } from '../../../api/generated/types.js';
import type { KubeClient } from '../kube/client.js';
import { isAlreadyExists, objectKey } from '../kube/client.js';
import { rfc3339 } from '../runtime/conditions.js';
import type { OwnerObject } from '../runtime/owned.js';
import { controllerReference } from '../runtime/owned.js';
import type { PrometheusPort, QueryResult } from '../prometheus/client.js';
import { urlProblem } from '../prometheus/client.js';
import type { EventRecorder } from '../runtime/events.js';
import type { Informer } from '../runtime/informer.js';
import type { ReconcileResult, Reconciler } from '../runtime/reconcile.js';
import { DONE, errorMessage } from '../runtime/reconcile.js';
import { StatusWriter } from '../runtime/status-writer.js';
import type { AnalysisResult, VersionMeasurements } from './analysis.js';
import { analysisQueries, evaluateAnalysis, measuredFor } from './analysis.js';
import { computeStatus } from './compute-status.js';
import type { MonitoringResult, RetrainOutcome } from './compute-status.js';
import type { ScenarioStatus } from './monitoring.js';
import { measureScenarios, monitoringQueries, scenariosSummary, scenarioStates } from './monitoring.js';
import type { Resolution } from './resolve.js';
import { resolveModel } from './resolve.js';
import { decideRetrain, followRetrain, retrainJob } from './retrain.js';
import type { Candidate, RolloutDecision } from './rollout.js';
import { analysisDue, stepRollout } from './rollout.js';
import type { Role, ServingState } from './serving.js';
import { loadedQuery, refusedQuery, servingState } from './serving.js';
import { EDGEPOOLS, INFERENCE_DEPLOYMENTS } from '../edgepool/reconciler.js';
import { FINETUNEJOBS } from '../finetunejob/reconciler.js';

export const CONTROLLER_NAME = 'inferencedeployment';
export { EDGEPOOLS, FINETUNEJOBS, INFERENCE_DEPLOYMENTS };

export interface InferenceDeploymentCaches {
  inferenceDeployments: Informer<InferenceDeployment>;
  fineTuneJobs: Informer<FineTuneJob>;
  edgePools: Informer<EdgePool>;
}

export interface InferenceDeploymentReconcilerDeps {
  client: KubeClient;
  caches: InferenceDeploymentCaches;
  events: EventRecorder;
  prometheus: {
    /** The operator's Prometheus ('' = none: rollouts hold as Inconclusive and say so). */
    url: string;
    loopbackOnly: boolean;
    connect: (url: string) => PrometheusPort;
  };
  /** How often a stable model not yet confirmed loaded by the agents is looked at again. */
  syncPeriodMs: number;
  log: Logger;
  now?: () => Date;
}

/** Queries issued, for the benchmark and the operator's own metrics. */
export interface QueryCounter {
  queries: number;
}

export class InferenceDeploymentReconciler implements Reconciler {
  private readonly now: () => Date;
  private readonly statusWriter: StatusWriter<InferenceDeploymentStatus, InferenceDeployment>;
  private port: PrometheusPort | undefined;
  readonly counter: QueryCounter = { queries: 0 };

  constructor(private readonly deps: InferenceDeploymentReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.statusWriter = new StatusWriter(deps.client, INFERENCE_DEPLOYMENTS);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const cached = this.deps.caches.inferenceDeployments.get(key);
    if (!cached) {
      this.statusWriter.forget(key);
      return DONE;
    }
    const d = this.statusWriter.latest(key, cached);
    const { namespace, name } = d.metadata;
    if (d.metadata.deletionTimestamp) return DONE;
    this.deps.log.debug({ namespace, name, resourceVersion: d.metadata.resourceVersion }, 'Reconciling InferenceDeployment');
    const now = this.now();
    const generation = d.metadata.generation ?? 1;
    const spec = d.spec;
    const pool = this.deps.caches.edgePools.get(objectKey(namespace, spec.edgePoolRef.name));
    const previous = d.status ?? {};
    // The model to serve: spec.model, or — while the spec is at the generation of the last automatic
    // retrain — that retrain's result once it has Succeeded (the stable model until then).
    const lastJobName = previous.lastRetrain?.fineTuneJob;
    const lastJob = lastJobName ? this.deps.caches.fineTuneJobs.get(objectKey(namespace, lastJobName)) : undefined;
    const following = followRetrain(previous, generation, lastJob);
    const ref = spec.model.fineTuneJobRef;
    const fineTuneJob = ref ? this.deps.caches.fineTuneJobs.get(objectKey(namespace, ref.name)) : undefined;
    const resolution: Resolution = following
      ? { kind: 'resolved', model: following, message: following.source === `FineTuneJob/${lastJobName ?? ''}` ? `following automatic retrain ${lastJobName ?? ''}: its result ${following.version}` : `following automatic retrain ${lastJobName ?? ''} (${lastJob?.status?.phase ?? 'gone'}): stable ${following.version} held until it succeeds or the spec changes` }
      : resolveModel(spec.model, fineTuneJob, pool?.spec.artifactCredentials?.secretRef?.name);
    const resolved = resolution.kind === 'resolved' ? resolution.model : undefined;
    const rolloutState = { ...(previous.phase ? { phase: previous.phase } : {}), ...(previous.stable ? { stable: previous.stable } : {}), ...(previous.candidate ? { candidate: previous.candidate } : {}) };

    // What the agents serve: the candidate while it is in flight (a refusal aborts it), and the stable.
    const scope = { namespace: namespace ?? '', pool: spec.edgePoolRef.name, deployment: name ?? '' };
    const active = activeCandidate(previous.candidate);
    const candidateIsSpec = active !== undefined && resolved !== undefined && sameModel(active, resolved);
    let abort: { message: string } | undefined;
    let stableServing: ServingState | undefined;
    const needStable = previous.stable !== undefined && !stableConfirmed(previous, previous.stable.version);
    if (pool && (candidateIsSpec || needStable)) {
      const [loaded, refused] = await this.queries([loadedQuery(scope), refusedQuery(scope)]);
      if (candidateIsSpec && loaded && refused) {
        const s = servingState(active.version, 'candidate', loaded, refused);
        if (s.kind === 'rejected') abort = { message: s.message };
      }
      if (previous.stable && loaded && refused) stableServing = servingState(previous.stable.version, 'stable', loaded, refused);
    }
    if (previous.stable && !stableServing && !needStable) stableServing = { kind: 'serving', agents: 0, message: conditionMessage(previous, 'Serving') ?? `stable ${previous.stable.version} loaded by the pool's agents` };

    // One analysis interval, when one is due.
    let verdict: AnalysisResult | undefined;
    const analysis = spec.rollout.analysis;
    if (pool && candidateIsSpec && !abort && previous.stable && analysisDue(rolloutState, analysis.intervalSeconds, now)) {
      verdict = await this.analyse(scope, active.version, previous.stable.version, analysis);
    }

    const decision = stepRollout({ resolved, rollout: spec.rollout, generation, status: rolloutState, verdict, ...(abort ? { abort } : {}), now });

    // Live quality per scenario of the stable model, and the closed loop's trigger.
    const monitoring = pool && previous.stable ? await this.monitor(scope, previous.stable.version, spec, previous) : undefined;
    const retrain = monitoring && pool ? await this.retrain(d, pool, decision, monitoring.scenarios, lastJob, now) : undefined;
    // A newly assigned stable is not known to be served: its agents have to load it first.
    if (decision.status.stable && decision.status.stable.version !== previous.stable?.version) stableServing = undefined;
    const status = computeStatus({
      previous: d.status, generation, resolution, poolExists: pool !== undefined, poolName: spec.edgePoolRef.name, decision,
      stableServing: stableServing ?? (decision.status.stable && this.prometheusUrl() ? { kind: 'pending', message: `stable ${decision.status.stable.version} assigned to the pool: waiting for its agents to load it` } : undefined),
      ...(monitoring ? { monitoring } : {}),
      ...(retrain ? { retrain } : {}),
      now,
    });
    await this.statusWriter.write(d, status);
    this.announce(d, decision);
    this.transitions(d, previous, status);
    return this.requeue(decision, status, (spec.monitoring?.scenarios?.length ?? 0) > 0);
  }

  /** status.scenarios from Prometheus (Unknown when it cannot answer), and their summary. */
  private async monitor(scope: { namespace: string; pool: string; deployment: string }, stableVersion: string, spec: InferenceDeployment['spec'], previous: InferenceDeploymentStatus): Promise<MonitoringResult | undefined> {
    const specs = spec.monitoring?.scenarios ?? [];
    if (specs.length === 0) return undefined;
    const queries = monitoringQueries({ ...scope, modelVersion: stableVersion }, specs);
    const answers = await this.queries(queries.flatMap((q) => [q.wordErrors, q.referenceWords]));
    const pairs = queries.map((_q, i) => [answers[2 * i], answers[2 * i + 1]] as const);
    const scenarios = scenarioStates(specs, measureScenarios(queries, pairs), previous.scenarios);
    return { scenarios, summary: scenariosSummary(specs, scenarios) };
  }

  /** The retrain trigger: creates the FineTuneJob when it fires (AlreadyExists: another reconcile or replica did). */
  private async retrain(d: InferenceDeployment, pool: EdgePool, decision: RolloutDecision, scenarios: ScenarioStatus[], lastJob: FineTuneJob | undefined, now: Date): Promise<RetrainOutcome | undefined> {
    const previous = d.status ?? {};
    if (!d.spec.retraining?.enabled) return undefined;
    const status = { ...previous, ...decision.status };
    const choice = decideRetrain({ name: d.metadata.name ?? '', spec: d.spec, status, scenarios, lastJob, now });
    if (choice.kind === 'none') return { choice, lastJob };
    const stable = status.stable;
    if (!stable) return { choice: { kind: 'none', why: 'no stable model' }, lastJob };
    const job = retrainJob(d, stable, pool, choice, controllerReference(d as OwnerObject));
    try {
      await this.deps.client.create(FINETUNEJOBS, d.metadata.namespace, job);
      this.deps.log.info({ kind: 'FineTuneJob', namespace: d.metadata.namespace, name: choice.name, inferenceDeployment: d.metadata.name, reason: choice.reason }, 'Created FineTuneJob (automatic retrain)');
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    this.deps.events.normal(d, 'RetrainStarted', 'Retrain', `Started FineTuneJob ${choice.name} from stable ${stable.version}: ${choice.reason}`);
    return {
      choice, lastJob: undefined,
      lastRetrain: { fineTuneJob: choice.name, reason: choice.reason, time: rfc3339(now), scenario: choice.scenario, generation: d.metadata.generation ?? 1 },
      retrains: (previous.retrains ?? 0) + 1,
    };
  }

  private requeue(decision: RolloutDecision, status: InferenceDeploymentStatus, monitoring: boolean): ReconcileResult {
    const waits: number[] = [];
    // Scenarios are watched every sync period.
    if (monitoring && status.stable && this.prometheusUrl()) waits.push(this.deps.syncPeriodMs);
    if (decision.requeueAfterMs !== undefined) waits.push(Math.max(decision.requeueAfterMs, 500));
    // The rollback's second round (RollingBack → Degraded), and a stable not confirmed loaded yet.
    if (status.phase === 'RollingBack') waits.push(1000);
    const servingCondition = status.conditions?.find((c) => c.type === 'Serving');
    if (status.stable && this.prometheusUrl() && servingCondition?.status !== 'True' && servingCondition?.reason !== 'ArtifactRefused') waits.push(this.deps.syncPeriodMs);
    return waits.length > 0 ? { requeueAfterMs: Math.min(...waits) } : DONE;
  }

  private prometheusUrl(): string | undefined {
    const url = this.deps.prometheus.url;
    if (!url || urlProblem(url, { loopbackOnly: this.deps.prometheus.loopbackOnly })) return undefined;
    return url;
  }

  /** Runs `promql` queries in parallel; undefined for each when no Prometheus is configured or it is refused. */
  private async queries(promql: string[]): Promise<(QueryResult | undefined)[]> {
    const url = this.prometheusUrl();
    if (!url) return promql.map(() => undefined);
    try {
      this.port ??= this.deps.prometheus.connect(url);
    } catch (err) {
      const unknown: QueryResult = { kind: 'unknown', reason: 'network', message: `Prometheus URL ${url}: ${errorMessage(err)}` };
      return promql.map(() => unknown);
    }
    const port = this.port;
    this.counter.queries += promql.length;
    return Promise.all(promql.map((q) => port.query(q)));
  }

  private async analyse(scope: { namespace: string; pool: string; deployment: string }, candidate: string, stable: string, analysis: InferenceDeployment['spec']['rollout']['analysis']): Promise<AnalysisResult> {
    // Three queries answer both versions (one series each), over the same window: the interval.
    const q = analysisQueries({ ...scope, modelVersions: [candidate, stable], windowSeconds: analysis.intervalSeconds });
    const keys = ['wordErrors', 'referenceWords', 'p99LatencySeconds'] as const;
    const results = await this.queries(keys.map((k) => q[k]));
    const measured = (version: string): VersionMeasurements => {
      const out = {} as VersionMeasurements;
      keys.forEach((k, i) => {
        const r = results[i];
        out[k] = r ? measuredFor(r, version) : { kind: 'unknown', reason: 'no Prometheus configured (operator prometheus.url)' };
      });
      return out;
    };
    return evaluateAnalysis({
      candidate: { ...measured(candidate), version: candidate },
      stable: { ...measured(stable), version: stable },
      thresholds: { maxWerIncrease: analysis.maxWerIncrease, maxP99LatencySeconds: analysis.maxP99LatencySeconds, minSamples: analysis.minSamples },
    });
  }

  /** Events for condition transitions the rollout does not announce: scenario quality and retrain failures. */
  private transitions(d: InferenceDeployment, before: InferenceDeploymentStatus, after: InferenceDeploymentStatus): void {
    const was = (type: string) => before.conditions?.find((c) => c.type === type);
    const now = (type: string) => after.conditions?.find((c) => c.type === type);
    const scenarios = now('ScenariosHealthy');
    if (scenarios?.status === 'False' && was('ScenariosHealthy')?.status !== 'False') this.deps.events.warning(d, 'ScenarioDegraded', 'Monitor', scenarios.message);
    if (scenarios?.status === 'True' && was('ScenariosHealthy')?.status === 'False') this.deps.events.normal(d, 'ScenarioRecovered', 'Monitor', scenarios.message);
    const retraining = now('Retraining');
    if (retraining?.reason === 'RetrainFailed' && was('Retraining')?.reason !== 'RetrainFailed') this.deps.events.warning(d, 'RetrainFailed', 'Retrain', retraining.message);
  }

  private announce(d: InferenceDeployment, decision: RolloutDecision): void {
    for (const e of decision.events) {
      if (e.type === 'Warning') this.deps.events.warning(d, e.reason, 'Rollout', e.message);
      else this.deps.events.normal(d, e.reason, 'Rollout', e.message);
      this.deps.log.info({ kind: 'InferenceDeployment', namespace: d.metadata.namespace, name: d.metadata.name, reason: e.reason }, e.message);
    }
  }
}

const sameModel = (a: { uri: string; version: string; sha256: string }, b: { uri: string; version: string; sha256: string }): boolean =>
  a.uri === b.uri && a.version === b.version && a.sha256 === b.sha256;

function activeCandidate(c: Candidate | undefined): Candidate | undefined {
  return c && c.rolledBackGeneration === undefined ? c : undefined;
}

function conditionMessage(status: InferenceDeploymentStatus, type: string): string | undefined {
  return status.conditions?.find((c) => c.type === type)?.message;
}

/** The Serving condition already says the agents loaded this stable version (no need to ask again). */
function stableConfirmed(status: InferenceDeploymentStatus, version: string): boolean {
  const c = status.conditions?.find((x) => x.type === 'Serving');
  return c?.status === 'True' && c.message.startsWith(`stable ${version} `);
}

export type { Role };
