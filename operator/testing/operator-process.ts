// End-to-end helpers: run the operator as a real local process (`node --import tsx operator/src/main.ts`)
// as its own ServiceAccount, bound to exactly the rules of charts/whisperops/files/operator-rbac.yaml,
// and read its structured log.
import type { KubernetesObject } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadAdminKubeConfig, serviceAccountKubeconfigFile } from '../../test/cluster/index.js';
import { HttpKubeClient } from '../src/kube/http-client.js';
import type { ResourceType } from '../src/kube/client.js';
import { isAlreadyExists } from '../src/kube/client.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const OPERATOR_SA = 'whisperops-operator';

export interface PolicyRule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }
export interface OperatorRbac {
  namespacedRules: PolicyRule[];
  clusterScopedRules: PolicyRule[];
  leaderElectionRules: PolicyRule[];
  /** The ClusterRole of rbac.scope=cluster: namespacedRules + clusterScopedRules. */
  clusterRules: PolicyRule[];
}

export function operatorRbac(): OperatorRbac {
  const file = parseYaml(readFileSync(join(REPO_ROOT, 'charts', 'whisperops', 'files', 'operator-rbac.yaml'), 'utf8')) as Omit<OperatorRbac, 'clusterRules'>;
  return { ...file, clusterRules: [...file.namespacedRules, ...file.clusterScopedRules] };
}

const rbacType = (plural: string, namespaced: boolean): ResourceType => ({ group: 'rbac.authorization.k8s.io', version: 'v1', plural, kind: '', namespaced });
const SERVICE_ACCOUNTS: ResourceType = { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true };

export function adminClient(): HttpKubeClient {
  return HttpKubeClient.fromKubeConfig(loadAdminKubeConfig());
}

async function createOrIgnore(client: HttpKubeClient, type: ResourceType, ns: string | undefined, body: KubernetesObject): Promise<void> {
  try {
    await client.create(type, ns, body);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  }
}

/**
 * The operator's ServiceAccount in `ns`, bound to the ClusterRole and the leader-election Role built
 * from operator-rbac.yaml; returns a kubeconfig file that authenticates as it. `cleanup` removes the
 * cluster-scoped objects.
 */
export async function operatorServiceAccount(ns: string, leaseName: string): Promise<{ kubeconfig: string; cleanup: () => Promise<void> }> {
  const admin = adminClient();
  const rbac = operatorRbac();
  const name = `whisperops-operator-e2e-${ns}`;
  const subject = [{ kind: 'ServiceAccount', name: OPERATOR_SA, namespace: ns }];
  // The file's lease rule names the default Lease; the tests use their own Lease name per namespace.
  const leaseRules = rbac.leaderElectionRules.map((r) => (r.resourceNames ? { ...r, resourceNames: [leaseName] } : r));
  await createOrIgnore(admin, SERVICE_ACCOUNTS, ns, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: OPERATOR_SA, namespace: ns } });
  await createOrIgnore(admin, rbacType('clusterroles', false), undefined, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules: rbac.clusterRules } as KubernetesObject);
  await createOrIgnore(admin, rbacType('clusterrolebindings', false), undefined, {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name }, subjects: subject,
  } as KubernetesObject);
  await createOrIgnore(admin, rbacType('roles', true), ns, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'whisperops-leader-election', namespace: ns }, rules: leaseRules } as KubernetesObject);
  await createOrIgnore(admin, rbacType('rolebindings', true), ns, {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'whisperops-leader-election', namespace: ns },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'whisperops-leader-election' }, subjects: subject,
  } as KubernetesObject);
  const kubeconfig = await serviceAccountKubeconfigFile(ns, OPERATOR_SA);
  return {
    kubeconfig,
    cleanup: async () => {
      for (const plural of ['clusterrolebindings', 'clusterroles']) {
        await admin.delete(rbacType(plural, false), undefined, name).catch(() => undefined);
      }
      await admin.close();
    },
  };
}

/**
 * Deletes every FineTuneJob of `ns` while an operator still runs to finalize them (do this before
 * deleting the namespace: the namespace's own deletion would also delete the operator's Lease there).
 * After `timeoutMs` the finalizers left are removed by hand, so a namespace never hangs.
 */
export async function deleteFineTuneJobs(ns: string, timeoutMs = 60_000): Promise<number> {
  const api = adminClient();
  const ftjs: ResourceType = { group: 'whisperops.dev', version: 'v1alpha1', plural: 'finetunejobs', kind: 'FineTuneJob', namespaced: true };
  try {
    const list = async () => (await api.list<KubernetesObject>(ftjs, { namespace: ns, limit: 5000 })).items;
    for (const f of await list()) await api.delete(ftjs, ns, f.metadata?.name ?? '').catch(() => undefined);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = await list();
      if (left.length === 0) return 0;
      if (Date.now() > deadline) {
        for (const f of left) await api.patch(ftjs, ns, f.metadata?.name ?? '', { metadata: { finalizers: null } }).catch(() => undefined);
        return left.length;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await api.close();
  }
}

export interface LogLine { level: string; msg: string; [k: string]: unknown }

/** One operator process and its parsed log. */
export class OperatorProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  /** `compiled`: run dist/operator/src/main.js (what the image runs; `npm run build` first) instead of the TypeScript source. */
  constructor(readonly name: string, args: string[], opts: { compiled?: boolean } = {}) {
    const entry = opts.compiled
      ? [join(REPO_ROOT, 'dist', 'operator', 'src', 'main.js')]
      : ['--import', 'tsx', join(REPO_ROOT, 'operator', 'src', 'main.ts')];
    this.child = spawn(process.execPath, [...entry, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.stderr.push(line);
        }
        nl = buffered.indexOf('\n');
      }
    });
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  running(): boolean {
    return this.exitCode === undefined;
  }

  has(msg: string, match: (l: LogLine) => boolean = () => true): boolean {
    return this.lines.some((l) => l.msg === msg && match(l));
  }

  count(msg: string, match: (l: LogLine) => boolean = () => true): number {
    return this.lines.filter((l) => l.msg === msg && match(l)).length;
  }

  /** Waits for a log line; fails early (with the log) if the process exits. */
  async waitFor(msg: string, timeoutMs = 30_000, match: (l: LogLine) => boolean = () => true): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find((l) => l.msg === msg && match(l));
      if (line) return line;
      if (!this.running()) throw new Error(`${this.name} exited (${String(this.exitCode)}) before logging "${msg}":\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not log "${msg}" within ${timeoutMs} ms:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The base URL of its HTTP endpoints (from the "Operator starting" line). */
  async baseUrl(): Promise<string> {
    const line = await this.waitFor('Operator starting');
    return `http://${String(line.http)}`;
  }

  tail(n = 30): string {
    return [...this.lines.slice(-n).map((l) => JSON.stringify(l)), ...this.stderr.slice(-5)].join('\n');
  }

  kill(signal: NodeJS.Signals): Promise<number | null> {
    if (this.running()) this.child.kill(signal);
    return this.exited;
  }
}

export interface OperatorArgs {
  kubeconfig: string;
  namespace: string;
  identity: string;
  leaseName: string;
  /** Default 15 s; fail-over tests pass a short one (the renew deadline is one second less). */
  leaseDurationSeconds?: number;
  extra?: string[];
  compiled?: boolean;
}

export function startOperator(a: OperatorArgs): OperatorProcess {
  return new OperatorProcess(a.identity, [
    `--kubeconfig=${a.kubeconfig}`,
    `--namespace=${a.namespace}`,
    `--leader-election-namespace=${a.namespace}`,
    `--leader-election-lease-name=${a.leaseName}`,
    `--leader-election-id=${a.identity}`,
    `--leader-election-lease-duration=${a.leaseDurationSeconds ?? 15}`,
    `--leader-election-renew-deadline=${Math.max(1, (a.leaseDurationSeconds ?? 15) - 1)}`,
    '--leader-election-retry-period=0.5',
    '--http-bind-address=127.0.0.1:0',
    '--trainer-image=registry.local/whisperops/trainer:e2e',
    '--shutdown-timeout=10',
    '--log-level=debug',
    ...(a.extra ?? []),
  ], { compiled: a.compiled ?? false });
}
