// The Helm chart: lints against its values schema, renders secure defaults and the RBAC of
// charts/whisperops/files/operator-rbac.yaml, passes the real API server's validation, and
// installs for real: the operator Deployment runs as a real process on a process-backed node, takes
// its Lease with its own ServiceAccount token, reconciles a FineTuneJob, and stops on uninstall.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { applyCrds, CommandError, createTestNamespace, deleteTestNamespace, eventually, helm, kubectl, kubectlPath, podOutcome, testKubeconfigPath } from '../cluster/index.js';

// API server round trips and Helm runs on a shared 2-core machine: jest's 5 s default is too tight.
jest.setTimeout(120_000);

const chart = join(process.cwd(), 'charts', 'whisperops');
interface Doc { kind: string; metadata: { name: string; annotations?: Record<string, string> }; [k: string]: unknown }
const rbacFile = YAML.parse(readFileSync(join(chart, 'files', 'operator-rbac.yaml'), 'utf8')) as { namespacedRules: unknown[]; clusterScopedRules: unknown[]; leaderElectionRules: unknown[] };

async function render(...set: string[]): Promise<Doc[]> {
  const out = await helm(['template', 'wo', chart, '--namespace', 'whisperops-system', ...set.flatMap((s) => ['--set', s])]);
  return YAML.parseAllDocuments(out).map((d) => d.toJSON() as Doc | null).filter((d): d is Doc => d !== null);
}
const byKind = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind);

let ns = '';
beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('chart');
});
afterAll(async () => {
  if (!ns) return;
  // A failed install test may leave its release and a FineTuneJob whose finalizer no operator will remove.
  await helm(['uninstall', `wo-${ns.slice(-8)}`, '--namespace', ns]).catch(() => undefined);
  await kubectl(['patch', 'finetunejob', 'chart-ftj', '-n', ns, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']).catch(() => undefined);
  await deleteTestNamespace(ns);
});

interface LogLine { msg: string; signal?: string; leaderElection?: { identity?: string }; [k: string]: unknown }

async function operatorPods(release: string): Promise<V1Pod[]> {
  const out = await kubectl(['get', 'pods', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'json']);
  return (JSON.parse(out) as { items: V1Pod[] }).items;
}

const trainerResult = {
  modelUri: 'file:///models/finance-lora', version: 'finance-lora-1.1.0', sha256: '7c'.repeat(32), parentVersion: 'tiny-whisper-synth-1.0.0',
  wer: { finance: 0.12, general: 0.2 }, baseWer: { finance: 0.31, general: 0.19 },
  trainableParams: 294912, totalParams: 37_760_640, quantization: 'int8', durationSeconds: 812.5,
};

/** The finance example, its trainer pod played by kwok (type=kwok nodes; the annotations say how it ends). */
function kwokPlayedFineTuneJob(name: string, namespace: string): Record<string, unknown> {
  const doc = YAML.parse(readFileSync(join(process.cwd(), 'examples', 'finetunejob-finance-lora.yaml'), 'utf8')) as { spec: { resources: Record<string, unknown> } & Record<string, unknown> };
  const { priorityClassName: _unused, ...resources } = doc.spec.resources;
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob',
    metadata: { name, namespace },
    spec: {
      ...doc.spec,
      podMetadata: { annotations: { [podOutcome.outcome]: 'succeed', [podOutcome.runSeconds]: '1', [podOutcome.terminationMessage]: JSON.stringify(trainerResult) } },
      resources: { ...resources, nodeSelector: { type: 'kwok' } },
    },
  };
}

describe('helm lint and template', () => {
  it('lints clean, and the values schema refuses bad values', async () => {
    expect(await helm(['lint', chart])).toContain('0 chart(s) failed');
    await expect(helm(['lint', chart, '--set', 'replicaCount=-1'])).rejects.toThrow(/replicaCount/);
    await expect(helm(['lint', chart, '--set', 'logLevel=loud'])).rejects.toThrow(/logLevel/);
  });

  it('renders a non-root, read-only, capability-free operator with resources', async () => {
    const [deployment] = byKind(await render(), 'Deployment') as unknown as {
      spec: { replicas: number; template: { spec: { securityContext: Record<string, unknown>; containers: { securityContext: Record<string, unknown>; resources: Record<string, unknown>; args: string[] }[] } } };
    }[];
    expect(deployment?.spec.replicas).toBe(2);
    const pod = deployment?.spec.template.spec;
    expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod?.containers[0]?.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod?.containers[0]?.resources).toMatchObject({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
    expect(pod?.containers[0]?.args).toEqual(['--config=/etc/whisperops/operator.yaml']);
  });

  it('renders exactly the RBAC rules of files/operator-rbac.yaml', async () => {
    const docs = await render();
    expect((byKind(docs, 'ClusterRole')[0] as unknown as { rules: unknown[] }).rules).toEqual([...rbacFile.namespacedRules, ...rbacFile.clusterScopedRules]);
    const role = byKind(docs, 'Role')[0] as unknown as { metadata: { namespace: string }; rules: unknown[] };
    expect(role.metadata.namespace).toBe('whisperops-system');
    expect(role.rules).toEqual(rbacFile.leaderElectionRules);
  });

  it('installs the CRDs behind crds.install and keeps them on uninstall behind crds.keep', async () => {
    const crds = byKind(await render(), 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(['edgepools.whisperops.dev', 'finetunejobs.whisperops.dev', 'inferencedeployments.whisperops.dev']);
    expect(crds.every((c) => c.metadata.annotations?.['helm.sh/resource-policy'] === 'keep')).toBe(true);
    expect(byKind(await render('crds.keep=false'), 'CustomResourceDefinition').some((c) => c.metadata.annotations?.['helm.sh/resource-policy'])).toBe(false);
    expect(byKind(await render('crds.install=false'), 'CustomResourceDefinition')).toEqual([]);
  });

  it('renders a ServiceMonitor only when asked', async () => {
    expect(byKind(await render(), 'ServiceMonitor')).toEqual([]);
    expect(byKind(await render('serviceMonitor.enabled=true'), 'ServiceMonitor')).toHaveLength(1);
  });

  it('passes the API server\'s validation (server-side dry run)', async () => {
    const out = await helm(['template', 'wo', chart, '--namespace', ns, '--set', 'crds.install=false']);
    const applied = await kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: out });
    expect(applied).toMatch(/deployment.apps\/wo-whisperops created \(server dry run\)/);
    expect(applied).toMatch(/clusterrole.rbac.authorization.k8s.io\/wo-whisperops created \(server dry run\)/);
  });
});

describe('helm install', () => {
  it('installs into the real cluster, runs the operator for real on a process node, reconciles a FineTuneJob, and uninstalls', async () => {
    const release = `wo-${ns.slice(-8)}`;
    const fullname = `${release}-whisperops`;
    const as = `system:serviceaccount:${ns}:${fullname}`;
    // The chart's pod, unchanged but for where it runs: a process-backed node runs the operator image
    // (operator/src/main.ts through tsx) as a sandboxed process; kwok would only pretend.
    await helm(['install', release, chart, '--namespace', ns, '--set', 'crds.install=false', '--set', 'replicaCount=1',
      '--set', 'nodeSelector.type=process', '--set', 'workers=3', '--set', 'leaderElection.leaseDurationSeconds=20']);
    const sa = await kubectl(['get', 'serviceaccount', '-n', ns, fullname, '-o', 'name']);
    expect(sa.trim()).toBe(`serviceaccount/${fullname}`);
    // The operator may read FineTuneJobs cluster-wide and may not read Secrets: the ClusterRole is what it needs, no more.
    expect((await kubectl(['auth', 'can-i', 'watch', 'finetunejobs.whisperops.dev', '--all-namespaces', '--as', as])).trim()).toBe('yes');
    const secrets = await kubectl(['auth', 'can-i', 'get', 'secrets', '--all-namespaces', '--as', as]).catch((err: unknown) => (err instanceof CommandError ? err.stdout : ''));
    expect(secrets.trim()).toBe('no');

    // Ready through the chart's own readiness probe (/readyz on the metrics port), on a process node.
    const pod = await eventually('a Ready operator pod', async () => {
      const pods = await operatorPods(release);
      const p = pods[0];
      return pods.length === 1 && p?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
    }, 120_000, 500);
    const podName = pod.metadata?.name ?? '';
    const nodeName = pod.spec?.nodeName ?? '';
    const node = JSON.parse(await kubectl(['get', 'node', nodeName, '-o', 'json'])) as { metadata: { labels: Record<string, string> } };
    expect(node.metadata.labels.type).toBe('process');
    const podIP = pod.status?.podIP ?? '';
    expect(podIP).toMatch(/^127\.\d+\.\d+\.\d+$/);
    expect(pod.spec?.serviceAccountName).toBe(fullname);
    expect(pod.spec?.containers[0]?.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'http-metrics' });
    const status = pod.status?.containerStatuses?.[0];
    expect(status).toMatchObject({ ready: true, image: 'ghcr.io/whisperops/operator:0.1.0' });
    const [, containerNode, pidText] = /^process:\/\/([^/]+)\/(\d+)$/.exec(status?.containerID ?? '') ?? [];
    expect(containerNode).toBe(nodeName);
    const pid = Number(pidText);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining(['operator/src/main.ts', '--config=/etc/whisperops/operator.yaml']));
    // The probe's endpoint, reached the way the node reaches it: on the pod's own loopback address.
    const readyz = await fetch(`http://${podIP}:8080/readyz`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
    expect(readyz.status).toBe(200);
    await readyz.arrayBuffer();

    // It read the chart's ConfigMap (operator.yaml): its values are in the start-up line (the node's
    // bind shim turns the configured 0.0.0.0:8080 into the pod's own address).
    const starting = await eventually('the "Operator starting" log line', async () => {
      const lines = (await kubectl(['logs', '-n', ns, podName])).split('\n').filter((l) => l.startsWith('{'));
      return lines.map((l) => JSON.parse(l) as LogLine).find((r) => r.msg === 'Operator starting');
    }, 30_000);
    expect(starting).toMatchObject({
      workers: 3, http: `${podIP}:8080`, trainerImage: 'ghcr.io/whisperops/trainer:0.1.0',
      leaderElection: { lease: `${ns}/whisperops-operator`, leaseDurationSeconds: 20, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 },
    });
    expect(starting.leaderElection?.identity).toMatch(new RegExp(`^${podName}_[0-9a-f]{8}$`));

    // With its projected ServiceAccount token it holds the Lease its Role allows (and no other credentials are in the pod).
    const lease = await eventually('the operator holding its Lease', async () => {
      const l = JSON.parse(await kubectl(['get', 'lease', 'whisperops-operator', '-n', ns, '-o', 'json'])) as { spec: { holderIdentity?: string; leaseDurationSeconds?: number } };
      return l.spec.holderIdentity?.startsWith(`${podName}_`) ? l : undefined;
    }, 60_000);
    expect(lease.spec).toMatchObject({ holderIdentity: starting.leaderElection?.identity, leaseDurationSeconds: 20 });
    expect(pod.spec?.volumes?.some((v) => v.projected?.sources?.some((s) => s.serviceAccountToken !== undefined))).toBe(true);
    expect(pod.spec?.containers[0]?.env?.some((e) => e.name === 'KUBECONFIG')).toBe(false);

    // It reconciles: a FineTuneJob whose trainer pod kwok plays reaches Succeeded with the result from the termination message.
    await kubectl(['apply', '-f', '-'], { input: JSON.stringify(kwokPlayedFineTuneJob('chart-ftj', ns)) });
    const done = await eventually('FineTuneJob chart-ftj Succeeded', async () => {
      const f = JSON.parse(await kubectl(['get', 'finetunejob', 'chart-ftj', '-n', ns, '-o', 'json'])) as { status?: { phase?: string; result?: unknown; jobName?: string } };
      return f.status?.phase === 'Succeeded' ? f : undefined;
    }, 90_000, 500);
    expect(done.status?.result).toEqual({ ...trainerResult, werSummary: 'finance=0.12 general=0.2' });
    expect(done.status?.jobName).toBeTruthy();
    // It was this pod that reconciled: its events name the pod's leader identity as reporting instance.
    const reported = await eventually('the operator\'s events on the FineTuneJob', async () => {
      const events = JSON.parse(await kubectl(['get', 'events.events.k8s.io', '-n', ns, '-o', 'json'])) as { items: { reason: string; reportingController?: string; reportingInstance?: string; regarding: { name: string } }[] };
      const mine = events.items.filter((e) => e.regarding.name === 'chart-ftj');
      return mine.some((e) => e.reason === 'Succeeded') ? mine : undefined;
    }, 20_000);
    expect(reported.map((e) => e.reason)).toEqual(expect.arrayContaining(['CreatedJob', 'Succeeded']));
    expect(new Set(reported.map((e) => `${e.reportingController ?? ''} ${e.reportingInstance ?? ''}`))).toEqual(new Set([`whisperops.dev/operator ${starting.leaderElection?.identity ?? ''}`]));
    // Deleted while the operator runs, so that it removes its finalizer.
    await kubectl(['delete', 'finetunejob', 'chart-ftj', '-n', ns, '--wait=true', '--timeout=60s']);

    // Uninstall: the pod is deleted, the node sends SIGTERM, the operator stops gracefully and its process is gone.
    const follow = spawn(kubectlPath(), ['logs', '-f', '-n', ns, podName], { env: { ...process.env, KUBECONFIG: testKubeconfigPath() }, stdio: ['ignore', 'pipe', 'ignore'] });
    let followed = '';
    follow.stdout.on('data', (chunk: Buffer) => {
      followed += chunk.toString('utf8');
    });
    const followEnded = new Promise<void>((resolve) => follow.once('close', () => resolve()));
    await helm(['uninstall', release, '--namespace', ns, '--wait']);
    await eventually('the operator pod gone', async () => ((await operatorPods(release)).length === 0 ? true : undefined), 90_000, 500);
    await eventually('the operator process gone', () => Promise.resolve(existsSync(`/proc/${pid}`) ? undefined : true), 30_000);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([followEnded, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
    clearTimeout(timer);
    follow.kill();
    const signal = followed.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine).find((r) => r.msg === 'Signal received');
    expect(signal).toMatchObject({ signal: 'SIGTERM' });

    const left = await kubectl(['get', 'deployment,serviceaccount,role', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name']);
    expect(left.trim()).toBe('');
    const crds = await kubectl(['get', 'crd', 'finetunejobs.whisperops.dev', '-o', 'name']);
    expect(crds.trim()).toBe('customresourcedefinition.apiextensions.k8s.io/finetunejobs.whisperops.dev');
  });
});
