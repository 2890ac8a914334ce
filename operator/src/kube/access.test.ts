import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { inClusterAccess, kubeconfigAccess, loadAccess } from './access.js';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'access-'));
  writeFileSync(join(dir, 'ca.crt'), 'CA PEM');
  writeFileSync(join(dir, 'client.crt'), 'CERT PEM');
  writeFileSync(join(dir, 'client.key'), 'KEY PEM');
  writeFileSync(join(dir, 'token'), 'file-token\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://127.0.0.1:6443', 'certificate-authority': 'ca.crt' }): string {
  const path = join(dir, `kc-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(path, stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'b',
    clusters: [{ name: 'other', cluster: { server: 'https://wrong' } }, { name: 'c', cluster }],
    contexts: [{ name: 'a', context: { cluster: 'other', user: 'u' } }, { name: 'b', context: { cluster: 'c', user: 'u' } }],
    users: [{ name: 'u', user }],
  }));
  return path;
}

describe('kubeconfigAccess', () => {
  it('uses the current context, files relative to the kubeconfig, and a bearer token', async () => {
    const a = kubeconfigAccess(kubeconfig({ token: 'abc' }));
    expect(a?.server.href).toBe('https://127.0.0.1:6443/');
    expect(a?.ca?.toString()).toBe('CA PEM');
    expect(await a?.headers()).toEqual({ Authorization: 'Bearer abc' });
  });

  it.each([
    ['client certificate files', { 'client-certificate': 'client.crt', 'client-key': 'client.key' }, {}],
    ['inline client certificate', { 'client-certificate-data': Buffer.from('CERT PEM').toString('base64'), 'client-key-data': Buffer.from('KEY PEM').toString('base64') }, {}],
  ])('%s', async (_what, user, headers) => {
    const a = kubeconfigAccess(kubeconfig(user));
    expect(a?.cert?.toString()).toBe('CERT PEM');
    expect(a?.key?.toString()).toBe('KEY PEM');
    expect(await a?.headers()).toEqual(headers);
  });

  it('re-reads a token file, and supports basic auth and TLS options', async () => {
    expect(await kubeconfigAccess(kubeconfig({ tokenFile: 'token' }))?.headers()).toEqual({ Authorization: 'Bearer file-token' });
    expect(await kubeconfigAccess(kubeconfig({ username: 'u', password: 'p' }))?.headers()).toEqual({ Authorization: `Basic ${Buffer.from('u:p').toString('base64')}` });
    const a = kubeconfigAccess(kubeconfig({}, { server: 'https://x:1', 'insecure-skip-tls-verify': true, 'tls-server-name': 'kubernetes' }));
    expect(a).toMatchObject({ insecureSkipTLSVerify: true, tlsServerName: 'kubernetes' });
  });

  it('leaves exec plugins and auth providers to client-node', async () => {
    const path = kubeconfig({
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1', command: 'sh', interactiveMode: 'Never',
        args: ['-c', 'echo \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec"}}\''],
      },
    });
    expect(kubeconfigAccess(path)).toBeUndefined();
    const a = await loadAccess(path, {});
    expect(await a.headers()).toEqual({ Authorization: 'Bearer from-exec' });
  });

  it('says which context is missing', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, stringify({ 'current-context': 'nope', contexts: [], clusters: [], users: [] }));
    expect(() => kubeconfigAccess(path)).toThrow('context "nope" not found');
  });
});

describe('inClusterAccess', () => {
  it('reads the ServiceAccount token and CA', async () => {
    const a = inClusterAccess({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, dir);
    expect(a.server.href).toBe('https://10.96.0.1/');
    expect(a.ca?.toString()).toBe('CA PEM');
    expect(await a.headers()).toEqual({ Authorization: 'Bearer file-token' });
  });

  it('is chosen when no kubeconfig is given inside a pod', async () => {
    await expect(loadAccess('', { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' })).rejects.toThrow(/ca\.crt/);
  });
});
