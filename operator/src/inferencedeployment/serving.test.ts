import { describe, expect, it } from '@jest/globals';
import type { QueryResult } from '../prometheus/client.js';
import { loadedQuery, refusedQuery, servingState } from './serving.js';

const vec = (...series: [Record<string, string>, number][]): QueryResult => ({ kind: 'vector', samples: series.map(([labels, value]) => ({ labels, value, timestamp: 0 })), warnings: [] });
const empty: QueryResult = { kind: 'unknown', reason: 'empty', message: 'no series matched' };
const down: QueryResult = { kind: 'unknown', reason: 'network', message: 'connect ECONNREFUSED 127.0.0.1:9090' };

describe('serving queries', () => {
  it('are scoped to the pool\'s agents and the deployment', () => {
    const scope = { namespace: 'edge', pool: 'jetsons', deployment: 'clinical' };
    expect(loadedQuery(scope)).toBe('count by (model_version, role) (whisperops_agent_model_info{namespace="edge",whisperops_dev_edgepool="jetsons",deployment="clinical"})');
    expect(refusedQuery(scope)).toBe('count by (model_version, result) (whisperops_agent_model_loads_total{namespace="edge",whisperops_dev_edgepool="jetsons",deployment="clinical",result!="success"} > 0)');
  });
});

describe('servingState', () => {
  it.each<[string, QueryResult, QueryResult, string, RegExp]>([
    ['loaded by two agents', vec([{ model_version: '2', role: 'candidate' }, 2], [{ model_version: '1', role: 'stable' }, 2]), empty, 'serving', /^candidate 2 loaded by the pool's agents$/],
    ['loaded in another role only: not serving in this one', vec([{ model_version: '2', role: 'stable' }, 2]), empty, 'pending', /not loaded by any agent yet$/],
    ['nobody loaded it, refused for a checksum: rejected with the numbers', vec([{ model_version: '1', role: 'stable' }, 2]),
      vec([{ model_version: '2', result: 'manifest_checksum_mismatch' }, 2]), 'rejected', /refused candidate 2 \(2 agents manifest_checksum_mismatch\); they keep serving/],
    ['a download error only: transient, retried', empty, vec([{ model_version: '2', result: 'download_error' }, 1]), 'pending', /\(1 agent download_error; retried by the agents\)/],
    ['refused by one, loaded by another: serving (the refusal is that agent\'s)', vec([{ model_version: '2', role: 'candidate' }, 1]),
      vec([{ model_version: '2', result: 'file_checksum_mismatch' }, 1]), 'serving', /loaded/],
    ['another version\'s refusal does not count', empty, vec([{ model_version: '3', result: 'manifest_checksum_mismatch' }, 2]), 'pending', /not loaded by any agent yet$/],
    ['Prometheus down: unknown, never "not served"', down, down, 'unknown', /unknown: Prometheus network: connect ECONNREFUSED/],
    ['refusals unknown: pending, and says so', empty, down, 'pending', /refusals unknown: Prometheus network/],
  ])('%s', (_what, loaded, refused, kind, message) => {
    const s = servingState('2', 'candidate', loaded, refused);
    expect(s.kind).toBe(kind);
    expect(s.message).toMatch(message);
  });
});
