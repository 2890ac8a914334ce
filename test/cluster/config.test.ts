import { describe, expect, it } from '@jest/globals';
import { binDir, clusterDir, parseVersionsEnv, versionKey, versions } from './config.js';

describe('versions', () => {
  it('parses versions.env and keys the cache by every version', () => {
    const v = parseVersionsEnv('# c\nKUBERNETES_VERSION=v1.36.3\n\nETCD_VERSION=v3.6.16\nKWOK_VERSION=v0.8.0\nHELM_VERSION=v3.22.0\n');
    expect(versionKey(v)).toBe('kube-v1.36.3_etcd-v3.6.16_kwok-v0.8.0_helm-v3.22.0');
  });

  it('refuses a versions file with a missing version', () => {
    expect(() => parseVersionsEnv('KUBERNETES_VERSION=v1.36.3\n')).toThrow(/ETCD_VERSION is missing/);
  });

  it('builds Kubernetes 1.36 and etcd 3.6', () => {
    expect(versions().kubernetes).toMatch(/^v1\.36\.\d+$/);
    expect(versions().etcd).toMatch(/^v3\.6\.\d+$/);
  });

  it('keeps binaries in the cache and state outside ~/.kube', () => {
    expect(binDir({ WHISPEROPS_CACHE: '/c' })).toBe(`/c/k8s/${versionKey(versions())}/bin`);
    expect(clusterDir({})).toBe('/tmp/whisperops-cluster');
    expect(clusterDir({ WHISPEROPS_CLUSTER_DIR: '/x' })).toBe('/x');
  });
});
