// EdgePools as the API server returns them (schema defaults filled in), for this folder's unit tests.
import type { EdgePoolSpec } from '../../../api/generated/types.js';
import type { AgentSettings, StoredEdgePool } from './desired.js';

export const agentSettings: AgentSettings = { image: 'ghcr.io/whisperops/edge-agent:0.1.0', imagePullPolicy: 'IfNotPresent' };

export function defaultEdgePoolSpec(): EdgePoolSpec {
  return {
    nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier' },
    agent: { maxConcurrentStreams: 16, queueLength: 32, threads: 4, executionProviders: ['cpu'], port: 8080, maxUploadBytes: 26_214_400 },
    placement: { maxAgentsPerDevice: 1 },
    autoscaling: {
      mode: 'builtin', minReplicas: 1, maxReplicas: 10, targetStreamsPerReplica: 12, tolerance: 0.1,
      scaleUpStabilizationSeconds: 0, scaleDownStabilizationSeconds: 300,
    },
    replicas: 1,
  };
}

export function edgePool(spec: Partial<EdgePoolSpec> = {}, meta: Partial<StoredEdgePool['metadata']> = {}): StoredEdgePool {
  return {
    apiVersion: 'whisperops.dev/v1alpha1',
    kind: 'EdgePool',
    metadata: { name: 'jetson-east', namespace: 'edge', uid: '7a2c0b1e-0000-4000-8000-000000000002', generation: 1, resourceVersion: '200', ...meta },
    spec: { ...defaultEdgePoolSpec(), ...spec },
  };
}
