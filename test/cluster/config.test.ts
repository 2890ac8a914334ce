import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { binDir, buildScript, clusterDir, parseVersionsEnv, versionKey, versions } from './config.js';

describe('versions', () => {
  it('parses versions.env and keys the cache by every version', () => {
    const v = parseVersionsEnv(
      '# c\nKUBERNETES_VERSION=v1.36.3\n\nETCD_VERSION=v3.6.16\nKWOK_VERSION=v0.8.0\nHELM_VERSION=v3.22.0\n' +
        'PROMETHEUS_VERSION=v3.16.0\nVERSITYGW_VERSION=v1.8.0\n',
    );
    expect(versionKey(v)).toBe('kube-v1.36.3_etcd-v3.6.16_kwok-v0.8.0_helm-v3.22.0_prometheus-v3.16.0_versitygw-v1.8.0');
  });

  it('spells the key as build.sh does', () => {
    const script = readFileSync(buildScript, 'utf8');
    expect(script).toContain(
      'key="kube-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}' +
        '_prometheus-${PROMETHEUS_VERSION}_versitygw-${VERSITYGW_VERSION}"',
    );
  });

  it('refuses a versions file with a missing version', () => {
    expect(() => parseVersionsEnv('KUBERNETES_VERSION=v1.36.3\n')).toThrow(/ETCD_VERSION is missing/);
  });

  it('builds Kubernetes 1.36 and etcd 3.6', () => {
    expect(versions().kubernetes).toMatch(/^v1\.36\.\d+$/);
    expect(versions().etcd).toMatch(/^v3\.6\.\d+$/);
  });

  it('builds Prometheus 3.x and versitygw', () => {
    expect(versions().prometheus).toMatch(/^v3\.\d+\.\d+$/);
    expect(versions().versitygw).toMatch(/^v\d+\.\d+\.\d+$/);
  });

  it('refuses a versions file without the Prometheus version', () => {
    expect(() =>
      parseVersionsEnv('KUBERNETES_VERSION=a\nETCD_VERSION=b\nKWOK_VERSION=c\nHELM_VERSION=d\nVERSITYGW_VERSION=e\n'),
    ).toThrow(/PROMETHEUS_VERSION is missing/);
  });

  it('keeps binaries in the cache and state outside ~/.kube', () => {
    expect(binDir({ WHISPEROPS_CACHE: '/c' })).toBe(`/c/k8s/${versionKey(versions())}/bin`);
    expect(clusterDir({})).toBe('/tmp/whisperops-cluster');
    expect(clusterDir({ WHISPEROPS_CLUSTER_DIR: '/x' })).toBe('/x');
  });
});
