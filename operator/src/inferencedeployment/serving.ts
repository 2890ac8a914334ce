// Whether the pool's agents actually serve a model version, read from what they export (pure: PromQL
// builders and the interpretation of the answers). The agents verify every artifact (manifest sha256,
// version, every file's sha256) and refuse a bad one while they keep serving what they served before;
// each refusal is counted by reason (whisperops_agent_model_loads_total{result}) and each model they
// serve is a whisperops_agent_model_info series. So:
//
//   loaded     agents with a model_info series of the version in the role
//   refused    agents whose load counter of the version has a non-success result, by reason
//   rejected   no agent serves it and at least one refused it for a reason no retry can change
//              (checksum, version, manifest, missing file, unsupported URI, too large) → the
//              rollout aborts (or, for a first deployment, the deployment says nothing is served)
//   otherwise  loading, partly refused or transient (download_error): held and reported
import type { QueryResult } from '../prometheus/client.js';
import type { QueryScope } from './analysis.js';
import { promString } from './analysis.js';
import { EDGEPOOL_LABEL, poolId } from '../edgepool/names.js';

/** Refusal reasons that no retry can change: the artifact itself is wrong for what the model set names. */
export const PERMANENT_REFUSALS: ReadonlySet<string> = new Set([
  'manifest_checksum_mismatch', 'version_mismatch', 'file_checksum_mismatch', 'invalid_manifest', 'missing_file', 'unsupported_uri', 'file_too_large',
]);

export type Role = 'stable' | 'candidate';

export type ServingScope = Omit<QueryScope, 'modelVersions' | 'windowSeconds'>;

function selector(scope: ServingScope): string {
  const poolLabel = EDGEPOOL_LABEL.replace(/[./]/g, '_');
  return `namespace=${promString(scope.namespace)},${poolLabel}=${promString(poolId(scope.pool))},deployment=${promString(scope.deployment)}`;
}

/** Agents serving each (model_version, role) of the deployment. */
export function loadedQuery(scope: ServingScope): string {
  return `count by (model_version, role) (whisperops_agent_model_info{${selector(scope)}})`;
}

/** Agents that refused each model_version of the deployment, by reason. */
export function refusedQuery(scope: ServingScope): string {
  return `count by (model_version, result) (whisperops_agent_model_loads_total{${selector(scope)},result!="success"} > 0)`;
}

export type ServingState =
  | { kind: 'unknown'; message: string }
  | { kind: 'serving'; agents: number; message: string }
  | { kind: 'rejected'; message: string }
  | { kind: 'pending'; message: string };

/** The series of an answer; an empty answer is no series (count() of nothing), not an unknown. */
function seriesOf(r: QueryResult): { labels: Record<string, string>; value: number }[] | undefined {
  if (r.kind === 'vector') return r.samples;
  if (r.kind === 'unknown' && r.reason === 'empty') return [];
  return undefined;
}

const describe = (r: QueryResult): string => (r.kind === 'unknown' ? `${r.reason}: ${r.message}` : `unexpected ${r.kind} result`);

/** What the two queries say about `version` in `role`. */
export function servingState(version: string, role: Role, loaded: QueryResult, refused: QueryResult): ServingState {
  const loadedSeries = seriesOf(loaded);
  if (!loadedSeries) return { kind: 'unknown', message: `whether the pool's agents loaded ${role} ${version} is unknown: Prometheus ${describe(loaded)}` };
  const agents = loadedSeries.filter((s) => s.labels.model_version === version && s.labels.role === role).reduce((n, s) => n + s.value, 0);
  const refusedSeries = seriesOf(refused);
  const refusals = (refusedSeries ?? []).filter((s) => s.labels.model_version === version).map((s) => ({ reason: s.labels.result ?? 'unknown', agents: s.value }))
    .sort((a, b) => a.reason.localeCompare(b.reason));
  const refusedText = refusals.map((r) => `${r.agents} agent${r.agents === 1 ? '' : 's'} ${r.reason}`).join(', ');
  if (agents > 0) return { kind: 'serving', agents, message: `${role} ${version} loaded by the pool's agents` };
  if (refusals.some((r) => PERMANENT_REFUSALS.has(r.reason))) {
    return { kind: 'rejected', message: `the pool's agents refused ${role} ${version} (${refusedText}); they keep serving what they served before (the agents' logs have the details)` };
  }
  if (!refusedSeries) return { kind: 'pending', message: `${role} ${version} not loaded by any agent yet (refusals unknown: Prometheus ${describe(refused)})` };
  return { kind: 'pending', message: `${role} ${version} not loaded by any agent yet${refusals.length > 0 ? ` (${refusedText}; retried by the agents)` : ''}` };
}
