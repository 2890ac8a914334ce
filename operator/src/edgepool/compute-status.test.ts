import { describe, expect, it } from '@jest/globals';
import type { V1Deployment, V1Node, V1Pod } from '@kubernetes/client-node';
import fc from 'fast-check';
import type { StatusInput } from './compute-status.js';
import { computeStatus, eligibleNodeNames, exitReason } from './compute-status.js';
import { desiredDeployment } from './desired.js';
import { agentSettings, edgePool } from './fixtures.js';
import { decideScale } from './scale-decision.js';

const now = new Date('2026-12-01T12:00:00Z');
const device = { 'whisperops.dev/device': 'jetson-agx-xavier' };
const stable = { version: '1.0.0', uri: 'file:///models/tiny', sha256: 'a'.repeat(64) };
const oneModel = { models: [{ name: 'general', stable }] };

function node(name: string, over: { labels?: Record<string, string>; ready?: boolean; cordoned?: boolean; taint?: string } = {}): V1Node {
  return {
    metadata: { name, labels: over.labels ?? device },
    spec: { ...(over.cordoned ? { unschedulable: true } : {}), ...(over.taint ? { taints: [{ key: over.taint, effect: 'NoSchedule' }] } : {}) },
    status: { conditions: [{ type: 'Ready', status: over.ready === false ? 'False' : 'True' }] },
  };
}
const nodes = [node('j1'), node('j2'), node('j3')];

function dep(replicas: number, s: { replicas?: number; updated?: number; ready?: number; observed?: number } = {}): V1Deployment {
  const d = desiredDeployment(edgePool(), agentSettings, replicas);
  return {
    ...d,
    metadata: { ...d.metadata, generation: 2 },
    status: { observedGeneration: s.observed ?? 2, replicas: s.replicas ?? replicas, updatedReplicas: s.updated ?? replicas, readyReplicas: s.ready ?? replicas, availableReplicas: s.ready ?? replicas },
  };
}
function pod(nodeName: string, ready = true, unschedulable?: string): V1Pod {
  return {
    metadata: { name: `agent-${nodeName}` },
    spec: { nodeName, containers: [] },
    status: {
      phase: unschedulable ? 'Pending' : 'Running',
      conditions: unschedulable
        ? [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: unschedulable }]
        : [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    },
  };
}

function input(over: Partial<StatusInput> = {}): StatusInput {
  return { pool: edgePool(), deployment: dep(2), pods: [pod('j1'), pod('j2')], nodes, desiredReplicas: 2, modelSet: oneModel, now, ...over };
}
const cond = (s: ReturnType<typeof computeStatus>, type: string) => s.conditions?.find((c) => c.type === type);

describe('computeStatus', () => {
  it.each<[string, Partial<StatusInput>, string, string, string | undefined, string]>([
    ['converged', {}, 'True', 'Ready', undefined, '2/2 agents ready on 3 eligible devices'],
    ['no Deployment yet', { deployment: undefined }, 'False', 'CreatingDeployment', 'Reconciling', 'being created'],
    ['Deployment not caught up with its spec', { deployment: dep(2, { observed: 1 }) }, 'False', 'Updating', 'Reconciling', 'taking the new spec'],
    ['Deployment at another size than decided', { desiredReplicas: 3 }, 'False', 'Updating', 'Reconciling', '3 agents wanted'],
    ['scaling up', { deployment: dep(3, { replicas: 2, updated: 2, ready: 2 }), desiredReplicas: 3 }, 'False', 'ScalingUp', 'Reconciling', '2/3 agents up to date'],
    ['scaling up, no device free', { deployment: dep(3, { replicas: 3, updated: 2, ready: 2 }), desiredReplicas: 3, pods: [pod('j1'), pod('j2'), pod('', false, '0/3 nodes are available: 3 node(s) didn\'t match pod anti-affinity rules.')] },
      'False', 'RollingOut', 'Reconciling', 'waiting for a device: 0/3 nodes are available'],
    ['scaling down', { deployment: dep(1, { replicas: 2, updated: 1, ready: 2 }), desiredReplicas: 1 }, 'False', 'ScalingDown', 'Reconciling', 'stopping 1'],
    ['agents loading models', { deployment: dep(2, { ready: 1 }) }, 'False', 'WaitingForAgents', 'Reconciling', '1/2 agents ready'],
    ['no models assigned: converged, not an error', { deployment: dep(2, { ready: 0 }), pods: [pod('j1', false), pod('j2', false)], modelSet: { models: [] } },
      'False', 'NoModelsAssigned', undefined, 'not ready because no model is assigned'],
    ['no eligible device', { nodes: [node('j1', { ready: false }), node('j2', { cordoned: true }), node('x', { labels: { other: 'x' } })], pods: [] },
      'False', 'NoEligibleDevices', 'Stalled', 'no eligible device: no ready, schedulable node matches nodeSelector whisperops.dev/device=jetson-agx-xavier'],
    ['a permanent problem', { problem: { reason: 'InvalidModelSet', message: '/models/0/stable/sha256: must match pattern' } }, 'False', 'InvalidModelSet', 'Stalled', 'sha256'],
    ['scaled to zero', { deployment: dep(0), pods: [], desiredReplicas: 0, pool: edgePool({ autoscaling: { ...edgePool().spec.autoscaling, minReplicas: 0 } }) }, 'True', 'Ready', undefined, 'scaled to zero'],
  ])('%s → Ready=%s (%s)', (_what, over, ready, reason, extra, message) => {
    const s = computeStatus(input(over));
    expect(cond(s, 'Ready')).toMatchObject({ status: ready, reason, observedGeneration: 1 });
    expect(cond(s, 'Ready')?.message).toContain(message);
    for (const type of ['Reconciling', 'Stalled']) {
      if (type === extra) expect(cond(s, type)).toMatchObject({ status: 'True', reason });
      else expect(cond(s, type)).toBeUndefined();
    }
  });

  it('an agent that cannot start (a missing TLS Secret) → Ready False and Stalled, AgentsCannotStart, with the kubelet\'s message and the Secrets the pool names', () => {
    const pool = edgePool({ tls: { secretRef: { name: 'agent-cert' }, port: 8443 } });
    const waiting = (reason: string, message?: string): V1Pod => {
      const p = pod('j2', false);
      return { ...p, status: { ...p.status, phase: 'Pending', containerStatuses: [{ name: 'agent', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, ...(message ? { message } : {}) } } }] } };
    };
    const s = computeStatus(input({ pool, deployment: dep(2, { ready: 1 }), pods: [pod('j1'), waiting('CreateContainerConfigError', 'secret "agent-cert" not found')] }));
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'AgentsCannotStart' });
    expect(cond(s, 'Stalled')).toMatchObject({ status: 'True', reason: 'AgentsCannotStart' });
    expect(cond(s, 'Reconciling')).toBeUndefined();
    expect(cond(s, 'Ready')?.message).toBe('agent pod agent-j2 cannot start: CreateContainerConfigError: secret "agent-cert" not found; check that the Secrets the pool names exist in namespace edge: '
      + 'spec.tls.secretRef agent-cert (a kubernetes.io/tls Secret with tls.crt and tls.key). The kubelet mounts them; the operator does not read them');
    // A kubelet's mount failure while creating, too; plain ContainerCreating (pulling) is progress, not a problem.
    expect(cond(computeStatus(input({ pool, deployment: dep(2, { ready: 1 }), pods: [pod('j1'), waiting('ContainerCreating', 'MountVolume.SetUp failed for volume "tls"')] })), 'Ready')?.reason).toBe('AgentsCannotStart');
    expect(cond(computeStatus(input({ pool, deployment: dep(2, { ready: 1 }), pods: [pod('j1'), waiting('ContainerCreating')] })), 'Ready')?.reason).toBe('WaitingForAgents');
    // Every agent ready: nothing to report, whatever a leftover pod says.
    expect(cond(computeStatus(input({ pool, pods: [pod('j1'), pod('j3'), waiting('CreateContainerConfigError', 'x')] })), 'Ready')?.status).toBe('True');
  });

  it('a crash-looping agent (e.g. a TLS pair that does not load) is named in WaitingForAgents with its restarts and its last log lines', () => {
    const p = pod('j2', false);
    const crashing: V1Pod = {
      ...p,
      status: {
        ...p.status,
        containerStatuses: [{
          name: 'agent', image: 'x', imageID: '', ready: false, restartCount: 3,
          state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s restarting failed container' } },
          lastState: { terminated: { exitCode: 1, reason: 'Error', message: 'edge-agent failed to start: Error: error:05800074:x509 certificate routines::key values mismatch\n    at node:internal/tls/secure-context:92:16\n    at startTlsListener (tls-listener.js:29:18)\n{"level":30,"failures":0,"msg":"Applied model set"}\n' } },
        }],
      },
    };
    const s = computeStatus(input({ deployment: dep(2, { ready: 1 }), pods: [pod('j1'), crashing] }));
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'WaitingForAgents' });
    expect(cond(s, 'Ready')?.message).toBe('1/2 agents ready (loading and warming up models); agent pod agent-j2 is crash-looping (3 restarts, last exit code 1: edge-agent failed to start: Error: error:05800074:x509 certificate routines::key values mismatch)');
    expect(cond(s, 'Reconciling')).toMatchObject({ status: 'True', reason: 'WaitingForAgents' });
    expect(cond(s, 'Stalled')).toBeUndefined();
  });

  it.each<[string, string, string]>([
    ['the last plain error line, stack frames and later buffered JSON logs left out', 'a\nedge-agent failed to start: Error: boom\n    at x (y.js:1:1)\n{"level":30,"msg":"ok","failures":0}\n', 'edge-agent failed to start: Error: boom'],
    ['a JSON log line of level error', '{"level":30,"msg":"start"}\n{"level":50,"msg":"cannot read the model set"}\n{"level":30,"msg":"bye"}', '{"level":50,"msg":"cannot read the model set"}'],
    ['no error line: the last two lines', 'one\ntwo\nthree\n', 'two | three'],
    ['nothing', '', ''],
  ])('exitReason: %s', (_what, log, reason) => {
    expect(exitReason(log)).toBe(reason);
  });

  it('status.endpoints: the ready agents\' base URLs, https:// with spec.tls, sorted; absent when none is ready', () => {
    const at = (p: V1Pod, ip: string): V1Pod => ({ ...p, status: { ...p.status, podIP: ip } });
    const pods = [at(pod('j2'), '127.1.0.9'), at(pod('j1'), '127.1.0.3'), at(pod('j3', false), '127.1.0.7')];
    expect(computeStatus(input({ pods })).endpoints).toEqual(['http://127.1.0.3:8080', 'http://127.1.0.9:8080']);
    expect(computeStatus(input({ pods, pool: edgePool({ tls: { secretRef: { name: 'c' }, port: 8443 } }) })).endpoints).toEqual(['https://127.1.0.3:8443', 'https://127.1.0.9:8443']);
    expect(computeStatus(input({ pods: [at(pod('j1', false), '127.1.0.3')] })).endpoints).toBeUndefined();
  });

  it('ModelsAssigned says whether the model set has models', () => {
    expect(cond(computeStatus(input()), 'ModelsAssigned')).toMatchObject({ status: 'True', reason: 'ModelsAssigned', message: '1 model assigned: general' });
    expect(cond(computeStatus(input({ modelSet: { models: [] } })), 'ModelsAssigned')).toMatchObject({ status: 'False', reason: 'NoModelsAssigned' });
  });

  it.each<[string, Partial<StatusInput>, string, string]>([
    ['all left out', { modelSet: { models: [] }, skipped: [{ name: 'ft', reason: 'why' }] }, 'False', 'the pool\'s model set is empty: 1 InferenceDeployment not served: ft (why)'],
    ['some left out', { skipped: [{ name: 'ft', reason: 'why' }] }, 'True', '1 model assigned: general; 1 InferenceDeployment not served: ft (why)'],
  ])('ModelsAssigned counts the InferenceDeployments left out and says why: %s', (_what, over, status, message) => {
    expect(cond(computeStatus(input(over)), 'ModelsAssigned')).toMatchObject({ status, message });
  });

  it('status.models lists the assigned models (deployment, version, stable); absent when none', () => {
    expect(computeStatus(input()).models).toEqual([{ deployment: 'general', version: '1.0.0', role: 'stable' }]);
    expect(computeStatus(input({ modelSet: { models: [] } })).models).toBeUndefined();
  });

  it('fills the counts, the selector for the scale subresource and ready devices', () => {
    const s = computeStatus(input({ pods: [pod('j1'), pod('j2', false), pod('elsewhere')] }));
    expect(s).toMatchObject({
      observedGeneration: 1, replicas: 2, readyReplicas: 2, desiredReplicas: 2, eligibleNodes: 3, readyNodes: 1,
      selector: 'app.kubernetes.io/component=edge-agent,app.kubernetes.io/managed-by=whisperops,whisperops.dev/edgepool=jetson-east',
    });
  });

  it('builtin: records a scaling decision with its reason, history and load', () => {
    const decision = decideScale({ currentReplicas: 2, autoscaling: edgePool().spec.autoscaling, eligibleNodes: 3, maxAgentsPerDevice: 1, load: { kind: 'known', streams: 30 }, history: [], now });
    const s = computeStatus(input({ decision, load: { kind: 'known', streams: 30 }, desiredReplicas: decision.desiredReplicas, deployment: dep(3) }));
    expect(s.lastScaleTime).toBe('2026-12-01T12:00:00Z');
    expect(s.lastScaleReason).toContain('scaling up 2 → 3');
    expect(s.recommendations).toEqual(decision.history);
    expect(s.observedStreams).toBe(30);
  });

  it('carries lastScale* and the history when no decision ran; unknown load leaves observedStreams out', () => {
    const pool = edgePool({}, { generation: 1 });
    pool.status = { lastScaleTime: '2026-12-01T11:00:00Z', lastScaleReason: 'scaling up 1 → 2', recommendations: [{ time: '2026-12-01T11:59:00Z', replicas: 2 }], observedStreams: 20 };
    const s = computeStatus(input({ pool, load: { kind: 'unknown', reason: 'empty' } }));
    expect(s).toMatchObject({ lastScaleTime: '2026-12-01T11:00:00Z', lastScaleReason: 'scaling up 1 → 2', recommendations: [{ time: '2026-12-01T11:59:00Z', replicas: 2 }] });
    expect(s.observedStreams).toBeUndefined();
  });

  it('external/off: a new spec.replicas is the scale event; no scaler history', () => {
    const pool = edgePool({ autoscaling: { ...edgePool().spec.autoscaling, mode: 'off' }, replicas: 3 });
    pool.status = { desiredReplicas: 2, recommendations: [{ time: '2026-12-01T11:59:00Z', replicas: 2 }] };
    const s = computeStatus(input({ pool, desiredReplicas: 3, deployment: dep(3) }));
    expect(s.lastScaleReason).toBe('spec.replicas 2 → 3 (autoscaling.mode off)');
    expect(s.recommendations).toBeUndefined();
  });

  it('keeps lastTransitionTime of a condition whose status did not change', () => {
    const first = computeStatus(input());
    const pool = edgePool();
    pool.status = first;
    const later = computeStatus(input({ pool, now: new Date(now.getTime() + 60_000) }));
    expect(cond(later, 'Ready')?.lastTransitionTime).toBe('2026-12-01T12:00:00Z');
  });

  it('conditions are consistent whatever is observed', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 }),
      fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 3 }),
      (desired, replicas, updated, ready, hasDep, models, readyNodes) => {
        const s = computeStatus(input({
          desiredReplicas: desired,
          deployment: hasDep ? dep(desired, { replicas, updated, ready }) : undefined,
          modelSet: models ? oneModel : { models: [] },
          nodes: nodes.map((n, i) => (i < readyNodes ? n : node(n.metadata?.name ?? '', { ready: false }))),
        }));
        const r = cond(s, 'Ready');
        expect(r).toBeDefined();
        expect(cond(s, 'Reconciling') !== undefined && cond(s, 'Stalled') !== undefined).toBe(false);
        if (r?.status === 'True') {
          expect(cond(s, 'Reconciling')).toBeUndefined();
          expect(cond(s, 'Stalled')).toBeUndefined();
          expect(models || desired === 0).toBe(true);
          expect(s.readyReplicas).toBeGreaterThanOrEqual(desired);
        }
        expect(s.eligibleNodes).toBe(readyNodes);
      },
    ));
  });
});

describe('eligibleNodeNames', () => {
  it.each<[string, V1Node, boolean]>([
    ['matching and ready', node('a'), true],
    ['not ready', node('a', { ready: false }), false],
    ['cordoned', node('a', { cordoned: true }), false],
    ['other labels', node('a', { labels: { 'whisperops.dev/device': 'orin' } }), false],
    ['untolerated taint', node('a', { taint: 'dedicated' }), false],
  ])('%s → %s', (_what, n, ok) => {
    expect(eligibleNodeNames(edgePool(), [n])).toEqual(ok ? ['a'] : []);
  });

  it('a tolerated taint keeps the node', () => {
    expect(eligibleNodeNames(edgePool({ tolerations: [{ key: 'dedicated', operator: 'Exists' }] }), [node('a', { taint: 'dedicated' })])).toEqual(['a']);
  });
});
