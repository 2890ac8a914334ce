// GitOps end to end: how Flux/kpt (the real kstatus library) and Argo CD (the chart's health scripts,
// run by gopher-lua as Argo CD runs them) judge REAL objects the operator wrote, in every phase of
// every kind; the printer columns of those objects; and server-side apply of every example, twice, with
// a GitOps field manager while the operator reconciles them: no diff the second time, and no field
// owned by both the GitOps manager and the operator (no fighting).
//
// The operator runs as a real local process with its ServiceAccount's RBAC. Pods are played by kwok
// (trainer outcomes from pod annotations, agents on kwok Jetsons); images the process-backed nodes do
// not know keep the examples' pods from running real trainers and agents (nothing here needs them).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parseDocument } from 'yaml';
import { EDGEPOOLS, INFERENCE_DEPLOYMENTS } from '../../operator/src/edgepool/reconciler.js';
import { FINETUNEJOBS } from '../../operator/src/finetunejob/reconciler.js';
import type { ResourceType } from '../../operator/src/kube/client.js';
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, deleteFineTuneJobs, operatorServiceAccount, REPO_ROOT, startOperator } from '../../operator/testing/operator-process.js';
import type { ArgoHealth, GitopsVerdict, KStatus } from '../cluster/gitops-check.js';
import { gitopsCheckBinary, gitopsVerdicts } from '../cluster/gitops-check.js';
import { applyCrds, CommandError, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, kubectl, podOutcome } from '../cluster/index.js';

jest.setTimeout(120_000);

const api = adminClient();
const LEASE = 'whisperops-operator';
const GITOPS_MANAGER = 'argocd-controller';
const sha = '5e'.repeat(32);
const resultDoc = {
  modelUri: 'file:///models/finance-lora', version: 'finance-lora-1.1.0', sha256: sha, parentVersion: 'tiny-whisper-synth-1.0.0',
  wer: { finance: 0.12, general: 0.2 }, baseWer: { finance: 0.31, general: 0.19 },
  trainableParams: 294912, totalParams: 37_760_640, quantization: 'int8', durationSeconds: 812.5,
};
const tolerations = [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }];
const model = (version: string) => ({ uri: `file:///models/${version}/`, version, sha256: sha });

interface Stored { apiVersion?: string; kind?: string; metadata: { name?: string; namespace?: string; generation?: number; resourceVersion?: string; managedFields?: ManagedField[] }; status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] } }
interface ManagedField { manager: string; operation: string; subresource?: string; fieldsV1?: Record<string, unknown> }

let ns = '';
let operator: OperatorProcess | undefined;
let cleanupRbac: () => Promise<void> = () => Promise.resolve();

const cond = (o: Stored, type: string) => o.status?.conditions?.find((c) => c.type === type)?.status;
const get = (type: ResourceType, name: string) => api.get<Stored>(type, ns, name);

async function apply(obj: object): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

/** Waits until the operator has judged the current generation and `ok` holds. */
async function until(type: ResourceType, name: string, what: string, ok: (o: Stored) => boolean, timeoutMs = 60_000): Promise<Stored> {
  return eventually(`${type.kind} ${name}: ${what}`, async () => {
    const o = await get(type, name);
    return o.status?.observedGeneration === o.metadata.generation && ok(o) ? o : undefined;
  }, timeoutMs, 100);
}

/** The finance example in the test namespace, its trainer played by kwok as the annotations say. */
function ftj(name: string, annotations: Record<string, string>, gpuProducts = ['NVIDIA-A100-SXM4-80GB']): object {
  const doc = parseDocument(readFileSync(join(REPO_ROOT, 'examples', 'finetunejob-finance-lora.yaml'), 'utf8')).toJS() as { metadata: object; spec: { resources: object } };
  return {
    ...doc, metadata: { ...doc.metadata, name, namespace: ns },
    spec: { ...doc.spec, podMetadata: { annotations }, backoffLimit: 0, resources: { ...doc.spec.resources, gpusPerNode: 1, nodes: 1, gpuProducts, nodeSelector: { type: 'kwok' } } },
  };
}

function pool(name: string, device: string): object {
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name, namespace: ns },
    spec: { nodeSelector: { 'whisperops.dev/device': device, type: 'kwok' }, tolerations, autoscaling: { mode: 'off' }, replicas: 2 },
  };
}

function deployment(name: string, poolName: string, version: string): object {
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name, namespace: ns },
    spec: { edgePoolRef: { name: poolName }, model: model(version), rollout: { steps: [{ weight: 20, pauseSeconds: 600 }], analysis: { intervalSeconds: 10, minSamples: 10, maxWerIncrease: 0.05, failureLimit: 2 } } },
  };
}

/** Every field path a managedFields entry owns ("f:spec.f:replicas", "f:metadata.f:labels.f:app"). */
function ownedPaths(fields: Record<string, unknown> | undefined, prefix = ''): string[] {
  if (!fields) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    const path = prefix === '' ? k : `${prefix}.${k}`;
    const children = v && typeof v === 'object' ? ownedPaths(v as Record<string, unknown>, path) : [];
    if (children.length === 0 || k === '.') out.push(path);
    out.push(...children);
  }
  return out;
}

beforeAll(async () => {
  gitopsCheckBinary(); // built once (cached), before any timing below
  await applyCrds();
  ns = await createTestNamespace('gitops');
  let kubeconfig: string;
  ({ kubeconfig, cleanup: cleanupRbac } = await operatorServiceAccount(ns, LEASE));
  operator = startOperator({
    kubeconfig, namespace: ns, identity: 'gitops-e2e', leaseName: LEASE,
    // Agents the process-backed nodes do not run: the examples' pools stay cheap on a 2-core machine.
    extra: ['--edgepool-sync-period=2', '--agent-image=registry.local/whisperops/edge-agent:e2e'],
  });
  await operator.waitFor('Caches synced, controllers running', 60_000);
}, 300_000);

afterAll(async () => {
  if (ns) await deleteFineTuneJobs(ns);
  await operator?.kill('SIGTERM');
  await cleanupRbac();
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('GitOps health and server-side apply (real operator, real kstatus, Argo CD scripts in gopher-lua)', () => {
  const judged: { what: string; obj: Stored; kstatus: KStatus; argocd: ArgoHealth }[] = [];
  const expectJudged = (what: string, obj: Stored, kstatus: KStatus, argocd: ArgoHealth) => { judged.push({ what, obj, kstatus, argocd }); };

  it('FineTuneJob pending / running / succeeded / suspended / failed, EdgePool converging / ready / stalled, InferenceDeployment rolling / stable / stalled', async () => {
    const t0 = Date.now();
    // Converging for as long as it takes: a model to serve, and one agent more than there are kwok
    // Jetsons (one agent per device), so one always waits for a device.
    const devices = (await kubectl(['get', 'nodes', '-l', 'whisperops.dev/device=jetson-agx-xavier,type=kwok', '-o', 'name'])).trim().split('\n').filter(Boolean).length;
    await Promise.all([
      apply({ ...pool('growing', 'jetson-agx-xavier'), spec: { ...(pool('growing', 'jetson-agx-xavier') as { spec: object }).spec, replicas: devices + 1 } }),
      apply(deployment('growing-asr', 'growing', 'v1')),
      apply(pool('jetsons', 'jetson-agx-xavier')),
      apply(ftj('pending', {}, ['NVIDIA-H999-NONE'])),
      apply(ftj('running', { [podOutcome.outcome]: 'succeed', [podOutcome.runSeconds]: '600', [podOutcome.terminationMessage]: JSON.stringify(resultDoc) })),
      apply(ftj('succeeded', { [podOutcome.outcome]: 'succeed', [podOutcome.runSeconds]: '1', [podOutcome.terminationMessage]: JSON.stringify(resultDoc) })),
      apply({ ...ftj('suspended', {}), spec: { ...(ftj('suspended', {}) as { spec: object }).spec, suspend: true } }),
      apply(ftj('failed', { [podOutcome.outcome]: 'fail', [podOutcome.exitCode]: '2', [podOutcome.terminationMessage]: 'dataset.uri: file:///data/finance/manifest.jsonl does not exist' })),
      apply(pool('nowhere', 'no-such-device')),
      apply(deployment('asr', 'jetsons', 'v1')),
      apply(deployment('orphan', 'no-such-pool', 'v1')),
    ]);
    const converging = await until(EDGEPOOLS, 'growing', 'Reconciling, waiting for a device', (o) => cond(o, 'Reconciling') === 'True' && (o.status as { readyReplicas?: number } | undefined)?.readyReplicas === devices);
    expect(converging.status?.conditions?.find((c) => c.type === 'Reconciling')).toMatchObject({ reason: 'WaitingForAgents' });
    expectJudged('EdgePool converging', converging, 'InProgress', 'Progressing');
    const phase = (p: string) => (o: Stored) => (o.status as { phase?: string } | undefined)?.phase === p;
    expectJudged('FineTuneJob pending', await until(FINETUNEJOBS, 'pending', 'Pending, Unschedulable', (o) => phase('Pending')(o) && cond(o, 'Reconciling') === 'True'), 'InProgress', 'Progressing');
    expectJudged('FineTuneJob running', await until(FINETUNEJOBS, 'running', 'Running', phase('Running')), 'InProgress', 'Progressing');
    expectJudged('FineTuneJob succeeded', await until(FINETUNEJOBS, 'succeeded', 'Succeeded', phase('Succeeded')), 'Current', 'Healthy');
    expectJudged('FineTuneJob suspended', await until(FINETUNEJOBS, 'suspended', 'Suspended', phase('Suspended')), 'InProgress', 'Suspended');
    expectJudged('FineTuneJob failed', await until(FINETUNEJOBS, 'failed', 'Failed', phase('Failed')), 'Failed', 'Degraded');
    expectJudged('EdgePool stalled', await until(EDGEPOOLS, 'nowhere', 'Stalled', (o) => cond(o, 'Stalled') === 'True'), 'Failed', 'Degraded');
    expectJudged('InferenceDeployment stalled', await until(INFERENCE_DEPLOYMENTS, 'orphan', 'Stalled', (o) => cond(o, 'Stalled') === 'True'), 'Failed', 'Degraded');
    expectJudged('InferenceDeployment stable', await until(INFERENCE_DEPLOYMENTS, 'asr', 'Ready', (o) => cond(o, 'Ready') === 'True'), 'Current', 'Healthy');
    expectJudged('EdgePool ready', await until(EDGEPOOLS, 'jetsons', 'Ready', (o) => cond(o, 'Ready') === 'True'), 'Current', 'Healthy');
    // A new version: the canary holds at its first step (600 s pause) — converging, not done.
    await apply(deployment('asr', 'jetsons', 'v2'));
    expectJudged('InferenceDeployment rolling', await until(INFERENCE_DEPLOYMENTS, 'asr', 'rolling out v2', (o) => cond(o, 'Reconciling') === 'True'), 'InProgress', 'Progressing');
    const judgedMs = Date.now() - t0;

    const verdicts: GitopsVerdict[] = gitopsVerdicts(judged.map((j) => j.obj));
    const got = judged.map((j, i) => ({ what: j.what, kstatus: verdicts[i]?.kstatus.status, argocd: verdicts[i]?.argocd?.status }));
    expect(got).toEqual(judged.map((j) => ({ what: j.what, kstatus: j.kstatus, argocd: j.argocd })));
    // Every message says why, from the operator's own condition.
    for (const v of verdicts) expect(v.argocd?.message).toMatch(/^[A-Za-z]+: ./);
    console.log(`gitops: ${String(judged.length)} real objects judged; phases reached in ${String(judgedMs)} ms:\n${verdicts.map((v, i) => `  ${judged[i]?.what ?? ''}: kstatus ${v.kstatus.status}, Argo CD ${v.argocd?.status ?? ''} (${v.argocd?.message.slice(0, 100) ?? ''})`).join('\n')}`);
  });

  it('an object whose newest generation the operator has not judged yet is InProgress / Progressing', () => {
    const stable = judged.find((j) => j.what === 'InferenceDeployment stable')?.obj;
    expect(stable).toBeDefined();
    const newer = { ...stable, metadata: { ...stable?.metadata, generation: (stable?.metadata.generation ?? 1) + 1 } };
    const [v] = gitopsVerdicts([newer]);
    expect([v?.kstatus.status, v?.argocd?.status]).toEqual(['InProgress', 'Progressing']);
  });

  it('kubectl get prints every column of the judged objects (a value in each where the phase has one)', async () => {
    const wide = async (resource: string, name: string) => {
      // Columns are cut at the header's positions: an empty cell prints as blanks.
      const [header = '', row = ''] = (await kubectl(['get', resource, name, '-n', ns, '-o', 'wide'])).split('\n');
      const starts = [...header.matchAll(/\S+/g)].map((m) => m.index);
      return Object.fromEntries(starts.map((start, i) => [header.slice(start, starts[i + 1]).trim(), row.slice(start, starts[i + 1]).trim()]));
    };
    const succeeded = await wide('ftj', 'succeeded');
    expect(succeeded).toMatchObject({ NAME: 'succeeded', PHASE: 'Succeeded', READY: 'True', METHOD: 'lora', VERSION: resultDoc.version, WER: 'finance=0.12 general=0.2', ATTEMPTS: '1', REASON: 'Succeeded' });
    expect(succeeded.JOB).toMatch(/^succeeded/);
    const ready = await wide('epool', 'jetsons');
    expect(ready).toMatchObject({ NAME: 'jetsons', MODE: 'off', DESIRED: '2', AGENTS: '2', READY: 'True', REASON: 'Ready' });
    expect(Number(ready.DEVICES)).toBeGreaterThanOrEqual(2);
    const rolling = await wide('infd', 'asr');
    expect(rolling).toMatchObject({ NAME: 'asr', POOL: 'jetsons', STABLE: 'v1', CANDIDATE: 'v2', WEIGHT: '20', STEP: '0', READY: 'False', REASON: 'RollingOut' });
    expect(rolling.PHASE).not.toBe('');
    // Wide output says why an object is not Ready: the Stalled reason of a stuck one.
    expect(await wide('epool', 'nowhere')).toMatchObject({ READY: 'False', REASON: 'NoEligibleDevices' });
    expect(await wide('ftj', 'failed')).toMatchObject({ PHASE: 'Failed', READY: 'False', REASON: 'InvalidInput' });
  });

  it('every example applied twice server-side by a GitOps field manager while the operator reconciles it: no diff, no field owned by both', async () => {
    const dir = join(REPO_ROOT, 'examples');
    const docs = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()
      .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => ({ file: f, obj: d.toJS() as Stored })))
      .filter((d) => d.obj.kind !== 'Namespace') // namespace.yaml: the examples' namespace; here the test's own
      .map((d) => ({ ...d, obj: { ...d.obj, metadata: { ...d.obj.metadata, namespace: ns } } }));
    expect([...new Set(docs.map((d) => d.obj.kind))].sort()).toEqual(['EdgePool', 'FineTuneJob', 'InferenceDeployment']);
    const ssa = (input: string) => kubectl(['apply', '--server-side', `--field-manager=${GITOPS_MANAGER}`, '-f', '-'], { input });
    const all = docs.map((d) => JSON.stringify(d.obj)).join('\n');
    await ssa(all);
    const typeOf = (kind: string): ResourceType => (kind === 'EdgePool' ? EDGEPOOLS : kind === 'FineTuneJob' ? FINETUNEJOBS : INFERENCE_DEPLOYMENTS);
    // The operator judges each and writes its status (its own field manager).
    const first = await Promise.all(docs.map((d) => until(typeOf(d.obj.kind ?? ''), d.obj.metadata?.name ?? '', 'status written', (o) => (o.status?.conditions?.length ?? 0) > 0)));
    // Second apply: nothing to change (resourceVersion unchanged), and kubectl diff sees none.
    await ssa(all);
    const second = await Promise.all(docs.map((d) => get(typeOf(d.obj.kind ?? ''), d.obj.metadata?.name ?? '')));
    expect(second.map((o) => [o.metadata.name, o.metadata.generation])).toEqual(first.map((o) => [o.metadata.name, o.metadata.generation]));
    const diff = await kubectl(['diff', '--server-side', `--field-manager=${GITOPS_MANAGER}`, '-f', '-'], { input: all }).then(() => '', (err: unknown) => (err instanceof CommandError ? err.stdout || err.stderr : String(err)));
    expect(diff).toBe('');
    for (const o of second) {
      const entries = o.metadata.managedFields ?? [];
      const gitops = entries.filter((e) => e.manager === GITOPS_MANAGER);
      const others = entries.filter((e) => e.manager !== GITOPS_MANAGER);
      expect(gitops.map((e) => e.operation)).toEqual(['Apply']);
      // The operator did write (its status), under a manager of its own.
      expect(others.some((e) => e.manager.startsWith('whisperops-operator') && e.subresource === 'status')).toBe(true);
      const mine = new Set(gitops.flatMap((e) => ownedPaths(e.fieldsV1)));
      const shared = others.flatMap((e) => ownedPaths(e.fieldsV1).filter((p) => mine.has(p)).map((p) => `${e.manager}: ${p}`));
      expect({ object: `${o.kind ?? ''}/${o.metadata.name ?? ''}`, shared }).toEqual({ object: `${o.kind ?? ''}/${o.metadata.name ?? ''}`, shared: [] });
    }
  });
});
