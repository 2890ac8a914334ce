// How to reach and authenticate to the API server: in-cluster (ServiceAccount token file, re-read as
// it rotates) or a kubeconfig file with a token, token file, client certificate or basic auth.
// Loading @kubernetes/client-node costs ~70 MiB of resident memory (its generated clients load at
// once), more than the rest of the operator: it is imported only for what this loader does not do
// itself (exec credential plugins, auth providers such as OIDC).
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface ClusterAccess {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTLSVerify: boolean;
  tlsServerName?: string;
  /** Authorization and other headers for the next request (tokens can rotate). */
  headers(): Promise<Record<string, string>>;
}

/** The part of client-node's KubeConfig this module uses (so tests can hand one in). */
export interface KubeConfigLike {
  getCurrentCluster(): { server: string; skipTLSVerify?: boolean; tlsServerName?: string } | null;
  applyToHTTPSOptions(opts: { ca?: unknown; cert?: unknown; key?: unknown; headers?: unknown; auth?: unknown }): Promise<void>;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_TTL_MS = 60_000;

function tokenFromFile(path: string): () => Promise<Record<string, string>> {
  let cached: { at: number; token: string } | undefined;
  return () => {
    const now = Date.now();
    if (!cached || now - cached.at > TOKEN_TTL_MS) cached = { at: now, token: readFileSync(path, 'utf8').trim() };
    return Promise.resolve({ Authorization: `Bearer ${cached.token}` });
  };
}

export function inClusterAccess(env: NodeJS.ProcessEnv, dir = SA_DIR): ClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const h = host.includes(':') ? `[${host}]` : host;
  return { server: new URL(`https://${h}:${port}`), ca: readFileSync(join(dir, 'ca.crt')), insecureSkipTLSVerify: false, headers: tokenFromFile(join(dir, 'token')) };
}

interface Named<T> { name: string; [k: string]: unknown; cluster?: T; user?: T; context?: T }
type Dict = Record<string, unknown>;

function str(d: Dict | undefined, key: string): string | undefined {
  const v = d?.[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Reads a kubeconfig. Returns undefined when its user needs exec plugins or an auth provider. */
export function kubeconfigAccess(path: string): ClusterAccess | undefined {
  const doc = parseYaml(readFileSync(path, 'utf8')) as Dict;
  const base = dirname(path);
  const file = (p: string) => readFileSync(isAbsolute(p) ? p : join(base, p));
  const pick = <T>(list: unknown, name: string | undefined, what: string): T => {
    const items = Array.isArray(list) ? (list as Named<T>[]) : [];
    const found = items.find((i) => i.name === name) ?? (name === undefined ? items[0] : undefined);
    if (!found) throw new Error(`kubeconfig ${path}: ${what} "${name ?? ''}" not found`);
    return (found[what as 'cluster'] ?? {}) as T;
  };
  const currentContext = str(doc, 'current-context');
  const context = pick<Dict>(doc.contexts, currentContext, 'context');
  const cluster = pick<Dict>(doc.clusters, str(context, 'cluster'), 'cluster');
  const user = pick<Dict>(doc.users, str(context, 'user'), 'user');
  if (user.exec || user['auth-provider']) return undefined;
  const server = str(cluster, 'server');
  if (!server) throw new Error(`kubeconfig ${path}: the cluster has no server`);
  const data = (key: string): Buffer | undefined => {
    const inline = str(cluster, `${key}-data`) ?? str(user, `${key}-data`);
    if (inline) return Buffer.from(inline, 'base64');
    const f = str(cluster, key) ?? str(user, key);
    return f ? file(f) : undefined;
  };
  const token = str(user, 'token');
  const tokenFile = str(user, 'tokenFile');
  const username = str(user, 'username');
  let headers: () => Promise<Record<string, string>> = () => Promise.resolve({});
  if (token) headers = () => Promise.resolve({ Authorization: `Bearer ${token}` });
  else if (tokenFile) headers = tokenFromFile(isAbsolute(tokenFile) ? tokenFile : join(base, tokenFile));
  else if (username) {
    const basic = Buffer.from(`${username}:${str(user, 'password') ?? ''}`).toString('base64');
    headers = () => Promise.resolve({ Authorization: `Basic ${basic}` });
  }
  const access: ClusterAccess = { server: new URL(server), insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true, headers };
  const ca = data('certificate-authority');
  const cert = data('client-certificate');
  const key = data('client-key');
  if (ca) access.ca = ca;
  if (cert) access.cert = cert;
  if (key) access.key = key;
  const serverName = str(cluster, 'tls-server-name');
  if (serverName) access.tlsServerName = serverName;
  return access;
}

/** Access through a client-node KubeConfig (exec plugins, auth providers, tests that hold one). */
export async function kubeConfigObjectAccess(kc: KubeConfigLike): Promise<ClusterAccess> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const tls: { ca?: unknown; cert?: unknown; key?: unknown } = {};
  await kc.applyToHTTPSOptions(tls);
  const buf = (v: unknown) => (typeof v === 'string' || Buffer.isBuffer(v) ? Buffer.from(v) : undefined);
  const access: ClusterAccess = {
    server: new URL(cluster.server),
    insecureSkipTLSVerify: cluster.skipTLSVerify === true,
    headers: async () => {
      const opts: { headers?: unknown; auth?: unknown } = {};
      await kc.applyToHTTPSOptions(opts);
      const out: Record<string, string> = {};
      if (opts.headers && typeof opts.headers === 'object' && !Array.isArray(opts.headers)) {
        for (const [k, v] of Object.entries(opts.headers as Record<string, unknown>)) if (typeof v === 'string') out[k] = v;
      }
      if (typeof opts.auth === 'string') out.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
      return out;
    },
  };
  const ca = buf(tls.ca);
  const cert = buf(tls.cert);
  const key = buf(tls.key);
  if (ca) access.ca = ca;
  if (cert) access.cert = cert;
  if (key) access.key = key;
  if (cluster.tlsServerName) access.tlsServerName = cluster.tlsServerName;
  return access;
}

/**
 * --kubeconfig, else in-cluster, else $KUBECONFIG / ~/.kube/config (the order kubectl and
 * client-go use for controllers).
 */
export async function loadAccess(kubeconfig: string, env: NodeJS.ProcessEnv): Promise<ClusterAccess> {
  let path = kubeconfig;
  if (!path) {
    if (env.KUBERNETES_SERVICE_HOST) return inClusterAccess(env);
    path = env.KUBECONFIG?.split(':')[0] || join(env.HOME ?? '', '.kube', 'config');
  }
  const own = kubeconfigAccess(path);
  if (own) return own;
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kubeConfigObjectAccess(kc);
}
