// Least privilege of the chart's namespaced install mode (rbac.scope=namespaced, watching two
// namespaces: the release's and a second one, issue 14), proven
// with the operator's real ServiceAccount: the chart's RBAC is rendered by helm and applied to the
// real API server, the API server's own authorizer is asked (impersonation, `kubectl auth can-i --as`)
// what the ServiceAccount may do — everything the operator needs in its namespace, nothing outside
// it: no kube-system ConfigMaps, no Secrets anywhere, no pods or Jobs in other namespaces — and the
// real operator, authenticated with a token of that ServiceAccount, reconciles a FineTuneJob in its
// namespace with no request forbidden, and leaves one in another namespace alone.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { KubernetesObject, V1Job } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { StoredFineTuneJob } from '../../operator/src/finetunejob/desired.js';
import { FINETUNEJOBS } from '../../operator/src/finetunejob/reconciler.js';
import { JOBS } from '../../operator/src/kube/client.js';
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { adminClient, deleteFineTuneJobs, REPO_ROOT, startOperator } from '../../operator/testing/operator-process.js';
import {
  applyCrds, CommandError, createTestNamespace, deleteTestNamespace, eventually, helmPath, kubectl, podOutcome, serviceAccountKubeconfigFile, testKubeconfigPath,
} from '../cluster/index.js';

jest.setTimeout(120_000);

const run = promisify(execFile);
const api = adminClient();
let ns = '';
let second = '';
let other = '';
let release = '';
let operator: OperatorProcess | undefined;
const result = JSON.stringify({ modelUri: 'file:///models/out', version: 'v2', sha256: 'd'.repeat(64), wer: { medical: 0.2 } });

const fullname = () => `${release}-whisperops`;
const as = () => `system:serviceaccount:${ns}:${fullname()}`;

async function canI(verb: string, resource: string, where: { namespace?: string; all?: boolean }): Promise<boolean> {
  const args = ['auth', 'can-i', verb, resource, '--as', as(), ...(where.all ? ['--all-namespaces'] : []), ...(where.namespace ? ['-n', where.namespace] : [])];
  try {
    return (await kubectl(args)).trim() === 'yes';
  } catch (err) {
    if (err instanceof CommandError && err.stdout.trim() === 'no') return false;
    throw err;
  }
}

function fineTuneJob(name: string, namespace: string): StoredFineTuneJob {
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name, namespace },
    spec: {
      baseModel: { uri: 'file:///models/tiny-whisper-synth', version: '1.0.0' },
      dataset: { uri: 'file:///data/medical/manifest.jsonl', scenario: 'medical' },
      output: { uri: `file:///models/${name}` },
      podMetadata: { annotations: { [podOutcome.outcome]: 'succeed', [podOutcome.runSeconds]: '1', [podOutcome.terminationMessage]: result } },
      resources: { nodeSelector: { type: 'kwok' } },
    },
  } as unknown as StoredFineTuneJob;
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('rbac-ns');
  second = await createTestNamespace('rbac-second');
  other = await createTestNamespace('rbac-other');
  release = `wo-${ns.slice(-8)}`;
  // The chart's RBAC (and ServiceAccount, config) as helm renders it; no operator pod (replicaCount=0): the test runs the operator itself.
  const { stdout } = await run(helmPath(), ['template', release, join(REPO_ROOT, 'charts', 'whisperops'), '--namespace', ns,
    '--set', 'rbac.scope=namespaced', '--set', `watchNamespaces={${ns},${second}}`, '--set', 'crds.install=false', '--set', 'replicaCount=0', '--kubeconfig', testKubeconfigPath()], { maxBuffer: 16 * 1024 * 1024 });
  // Every rendered object names its namespace (the release's, or each watched one for the Roles).
  await kubectl(['apply', '-f', '-'], { input: stdout });
});

afterAll(async () => {
  if (ns) await deleteFineTuneJobs(ns);
  if (second) await deleteFineTuneJobs(second);
  await operator?.kill('SIGKILL');
  await kubectl(['delete', 'clusterrole,clusterrolebinding', fullname(), '--ignore-not-found']).catch(() => undefined);
  await api.delete(FINETUNEJOBS, other, 'elsewhere').catch(() => undefined);
  for (const n of [ns, second, other]) if (n) await deleteTestNamespace(n);
  await api.close();
});

describe('rbac.scope=namespaced: the operator ServiceAccount may do what it needs in its namespace, nothing else', () => {
  it('the API server allows what the operator needs in its namespaces', async () => {
    const allowed: [string, string, { namespace?: string; all?: boolean }][] = [
      ['watch', 'finetunejobs.whisperops.dev', { namespace: ns }],
      ['patch', 'finetunejobs.whisperops.dev/status', { namespace: ns }],
      ['create', 'jobs.batch', { namespace: ns }],
      ['delete', 'jobs.batch', { namespace: ns }],
      ['create', 'configmaps', { namespace: ns }],
      ['list', 'pods', { namespace: ns }],
      ['patch', 'deployments.apps', { namespace: ns }],
      ['watch', 'edgepools.whisperops.dev', { namespace: ns }],
      ['watch', 'inferencedeployments.whisperops.dev', { namespace: ns }],
      ['create', 'events.events.k8s.io', { namespace: ns }],
      ['list', 'nodes', {}],
      ['update', 'leases.coordination.k8s.io/whisperops-operator', { namespace: ns }],
      ['watch', 'finetunejobs.whisperops.dev', { namespace: second }],
      ['create', 'jobs.batch', { namespace: second }],
      ['patch', 'configmaps', { namespace: second }],
    ];
    const answers = await Promise.all(allowed.map(([v, r, w]) => canI(v, r, w)));
    expect(allowed.filter((_, i) => !answers[i]).map(([v, r]) => `${v} ${r}`)).toEqual([]);
  });

  it('the API server forbids everything outside it: kube-system ConfigMaps, Secrets, pods and Jobs elsewhere, cluster-wide lists', async () => {
    const forbidden: [string, string, { namespace?: string; all?: boolean }][] = [
      ['get', 'configmaps', { namespace: 'kube-system' }],
      ['list', 'configmaps', { all: true }],
      ['get', 'secrets', { namespace: ns }],
      ['list', 'secrets', { namespace: 'kube-system' }],
      ['list', 'pods', { namespace: 'kube-system' }],
      ['list', 'pods', { namespace: other }],
      ['create', 'jobs.batch', { namespace: other }],
      ['delete', 'configmaps', { namespace: other }],
      ['create', 'services', { namespace: 'default' }],
      ['list', 'finetunejobs.whisperops.dev', { all: true }],
      ['watch', 'finetunejobs.whisperops.dev', { namespace: other }],
      ['patch', 'deployments.apps', { namespace: 'kube-system' }],
      ['delete', 'nodes', {}],
      ['delete', 'pods', { namespace: ns }],
      ['update', 'finetunejobs.whisperops.dev', { namespace: ns }],
      ['update', 'leases.coordination.k8s.io/someone-else', { namespace: ns }],
      ['create', 'serviceaccounts/token', { namespace: ns }],
      // Narrowed: the operator reads these from its informers' caches only, never one by one.
      ['get', 'finetunejobs.whisperops.dev', { namespace: ns }],
      ['get', 'pods', { namespace: ns }],
      ['get', 'edgepools.whisperops.dev', { namespace: ns }],
    ];
    const answers = await Promise.all(forbidden.map(([v, r, w]) => canI(v, r, w)));
    expect(forbidden.filter((_, i) => answers[i]).map(([v, r, w]) => `${v} ${r} ${w.namespace ?? (w.all ? '(all)' : '(cluster)')}`)).toEqual([]);
  });

  it('the real operator, as that ServiceAccount, reconciles FineTuneJobs in both its namespaces, no request forbidden, and leaves other namespaces alone', async () => {
    const kubeconfig = await serviceAccountKubeconfigFile(ns, fullname());
    operator = startOperator({
      kubeconfig, namespace: `${ns},${second}`, identity: 'namespaced', leaseName: 'whisperops-operator',
      extra: ['--cache-sync-timeout=30', `--leader-election-namespace=${ns}`],
    });
    await operator.waitFor('Caches synced, controllers running', 60_000);
    await api.create(FINETUNEJOBS, other, fineTuneJob('elsewhere', other));
    await api.create(FINETUNEJOBS, ns, fineTuneJob('here', ns));
    await api.create(FINETUNEJOBS, second, fineTuneJob('there', second));
    for (const [n, name] of [[ns, 'here'], [second, 'there']] as const) {
      await eventually(`FineTuneJob ${name} Succeeded`, async () => ((await api.get<StoredFineTuneJob>(FINETUNEJOBS, n, name)).status?.phase === 'Succeeded' ? true : undefined), 60_000);
      expect((await api.list<V1Job>(JOBS, { namespace: n })).items).toHaveLength(1);
    }
    expect((await api.list<V1Job>(JOBS, { namespace: other })).items).toHaveLength(0);
    expect((await api.get<KubernetesObject & { status?: unknown }>(FINETUNEJOBS, other, 'elsewhere')).status).toBeUndefined();
    const forbiddenLines = operator.lines.filter((l) => JSON.stringify(l).includes('forbidden'));
    expect(forbiddenLines).toEqual([]);
    expect(operator.running()).toBe(true);
  });
});
