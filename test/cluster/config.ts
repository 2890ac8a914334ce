// Where the harness finds its binaries and keeps its state, and which versions it runs.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const clusterSourceDir = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(clusterSourceDir, '..', '..');
export const stagesDir = join(clusterSourceDir, 'stages');
export const buildScript = join(clusterSourceDir, 'build', 'build.sh');

export interface ComponentVersions {
  kubernetes: string;
  etcd: string;
  kwok: string;
  helm: string;
  /** Prometheus 3.x release (v3.MM.P; the Go module version is v0.3MM.P) */
  prometheus: string;
  /** versitygw, the S3 gateway */
  versitygw: string;
}

/** Parses `KEY=value` lines of versions.env (comments and blank lines ignored). */
export function parseVersionsEnv(text: string): ComponentVersions {
  const values = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`versions.env: cannot parse line "${line}"`);
    values.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const get = (key: string): string => {
    const value = values.get(key);
    if (value === undefined || value === '') throw new Error(`versions.env: ${key} is missing`);
    return value;
  };
  return {
    kubernetes: get('KUBERNETES_VERSION'),
    etcd: get('ETCD_VERSION'),
    kwok: get('KWOK_VERSION'),
    helm: get('HELM_VERSION'),
    prometheus: get('PROMETHEUS_VERSION'),
    versitygw: get('VERSITYGW_VERSION'),
  };
}

export function versions(): ComponentVersions {
  return parseVersionsEnv(readFileSync(join(clusterSourceDir, 'versions.env'), 'utf8'));
}

/** The cache key of a set of binaries; build.sh uses the same spelling. */
export function versionKey(v: ComponentVersions): string {
  return `kube-${v.kubernetes}_etcd-${v.etcd}_kwok-${v.kwok}_helm-${v.helm}_prometheus-${v.prometheus}_versitygw-${v.versitygw}`;
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.WHISPEROPS_CACHE ?? join(homedir(), '.cache', 'whisperops');
}

/** Directory holding kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, helm, prometheus, promtool, versitygw. */
export function binDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), 'k8s', versionKey(versions()), 'bin');
}

/** State of the running cluster (certificates, kubeconfigs, etcd data, logs). Never inside ~/.kube. */
export function clusterDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WHISPEROPS_CLUSTER_DIR ?? '/tmp/whisperops-cluster';
}

export function stateFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(clusterDir(env), 'state.json');
}

export function adminKubeconfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(clusterDir(env), 'admin.kubeconfig');
}

export const defaultEdgeNodes = 20;
export const scaleEdgeNodes = 5000;
