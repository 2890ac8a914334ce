import { describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeconfigDocument } from './kubeconfig.js';

const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('kubeconfigDocument', () => {
  it('writes a client-certificate kubeconfig that client-node loads', () => {
    const kc = new KubeConfig();
    kc.loadFromString(
      kubeconfigDocument({
        clusterName: 'c',
        server: 'https://127.0.0.1:6443',
        caData: ca,
        userName: 'admin',
        user: { clientCertificateData: 'CERT', clientKeyData: 'KEY' },
      }),
    );
    expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    expect(Buffer.from(kc.getCurrentCluster()?.caData ?? '', 'base64').toString()).toBe(ca);
    expect(Buffer.from(kc.getCurrentUser()?.certData ?? '', 'base64').toString()).toBe('CERT');
    expect(Buffer.from(kc.getCurrentUser()?.keyData ?? '', 'base64').toString()).toBe('KEY');
  });

  it('writes a token kubeconfig with a default namespace', () => {
    const kc = new KubeConfig();
    kc.loadFromString(
      kubeconfigDocument({ clusterName: 'c', server: 'https://127.0.0.1:1', caData: ca, userName: 'sa', user: { token: 't0k' }, namespace: 'ns1' }),
    );
    expect(kc.getCurrentUser()?.token).toBe('t0k');
    expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe('ns1');
  });

  it('refuses a user without credentials', () => {
    expect(() => kubeconfigDocument({ clusterName: 'c', server: 's', caData: ca, userName: 'u', user: {} })).toThrow(/certificate or a token/);
  });
});
