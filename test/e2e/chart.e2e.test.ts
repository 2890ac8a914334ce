// The Helm chart: lints against its values schema, renders secure defaults and the RBAC of
// charts/whisperops/files/operator-rbac.yaml, passes the real API server's validation, and
// installs and uninstalls for real.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { applyCrds, CommandError, createTestNamespace, deleteTestNamespace, eventually, helm, kubectl } from '../cluster/index.js';

// API server round trips and Helm runs on a shared 2-core machine: jest's 5 s default is too tight.
jest.setTimeout(120_000);

const chart = join(process.cwd(), 'charts', 'whisperops');
interface Doc { kind: string; metadata: { name: string; annotations?: Record<string, string> }; [k: string]: unknown }
const rbacFile = YAML.parse(readFileSync(join(chart, 'files', 'operator-rbac.yaml'), 'utf8')) as { clusterRules: unknown[]; leaderElectionRules: unknown[] };

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
  if (ns) await deleteTestNamespace(ns);
});

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
    expect((byKind(docs, 'ClusterRole')[0] as unknown as { rules: unknown[] }).rules).toEqual(rbacFile.clusterRules);
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
  it('installs into the real cluster, runs the operator pod on a node, and uninstalls', async () => {
    const release = `wo-${ns.slice(-8)}`;
    await helm(['install', release, chart, '--namespace', ns, '--set', 'crds.install=false', '--set', 'replicaCount=1']);
    const sa = await kubectl(['get', 'serviceaccount', '-n', ns, `${release}-whisperops`, '-o', 'name']);
    expect(sa.trim()).toBe(`serviceaccount/${release}-whisperops`);
    // The operator may read FineTuneJobs cluster-wide and may not read Secrets: the ClusterRole is what it needs, no more.
    const as = `system:serviceaccount:${ns}:${release}-whisperops`;
    expect((await kubectl(['auth', 'can-i', 'watch', 'finetunejobs.whisperops.dev', '--all-namespaces', '--as', as])).trim()).toBe('yes');
    const secrets = await kubectl(['auth', 'can-i', 'get', 'secrets', '--all-namespaces', '--as', as]).catch((err: unknown) => (err instanceof CommandError ? err.stdout : ''));
    expect(secrets.trim()).toBe('no');
    const ready = await eventually('an available operator Deployment', async () => {
      const d = JSON.parse(await kubectl(['get', 'deployment', '-n', ns, `${release}-whisperops`, '-o', 'json'])) as { status?: { availableReplicas?: number } };
      return d.status?.availableReplicas === 1 ? true : undefined;
    }, 90_000);
    expect(ready).toBe(true);
    await helm(['uninstall', release, '--namespace', ns, '--wait']);
    const left = await kubectl(['get', 'deployment,serviceaccount,role', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'name']);
    expect(left.trim()).toBe('');
    const crds = await kubectl(['get', 'crd', 'finetunejobs.whisperops.dev', '-o', 'name']);
    expect(crds.trim()).toBe('customresourcedefinition.apiextensions.k8s.io/finetunejobs.whisperops.dev');
  });
});
