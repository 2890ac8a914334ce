// Kubeconfig documents for the harness's users. JSON is valid YAML, so no YAML writer is needed.

export interface KubeconfigUser {
  /** client certificate + key (PEM) or a bearer token */
  clientCertificateData?: string;
  clientKeyData?: string;
  token?: string;
}

export interface KubeconfigSpec {
  clusterName: string;
  server: string;
  caData: string;
  userName: string;
  user: KubeconfigUser;
  namespace?: string;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** A self-contained kubeconfig (certificates inlined) with one cluster, user and context. */
export function kubeconfigDocument(spec: KubeconfigSpec): string {
  const user: Record<string, string> = {};
  if (spec.user.clientCertificateData !== undefined) user['client-certificate-data'] = b64(spec.user.clientCertificateData);
  if (spec.user.clientKeyData !== undefined) user['client-key-data'] = b64(spec.user.clientKeyData);
  if (spec.user.token !== undefined) user.token = spec.user.token;
  if (Object.keys(user).length === 0) throw new Error('kubeconfig user needs a client certificate or a token');
  const contextName = `${spec.userName}@${spec.clusterName}`;
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    preferences: {},
    clusters: [{ name: spec.clusterName, cluster: { server: spec.server, 'certificate-authority-data': b64(spec.caData) } }],
    users: [{ name: spec.userName, user }],
    contexts: [
      {
        name: contextName,
        context: { cluster: spec.clusterName, user: spec.userName, ...(spec.namespace ? { namespace: spec.namespace } : {}) },
      },
    ],
    'current-context': contextName,
  };
  return JSON.stringify(doc, null, 2) + '\n';
}
