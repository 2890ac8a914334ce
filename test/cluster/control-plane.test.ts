import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { stagesDir } from './config.js';
import {
  apiserverArgs,
  controllerManagerArgs,
  etcdArgs,
  freePorts,
  kwokArgs,
  schedulerArgs,
  type Layout,
} from './control-plane.js';

const layout: Layout = {
  dir: '/state',
  bin: '/bin',
  pki: {
    dir: '/state/pki',
    caCert: '/state/pki/ca.crt',
    caKey: '/state/pki/ca.key',
    servingCert: '/state/pki/apiserver.crt',
    servingKey: '/state/pki/apiserver.key',
    serviceAccountKey: '/state/pki/sa.key',
    serviceAccountPub: '/state/pki/sa.pub',
    frontProxyCaCert: '/state/pki/front-proxy-ca.crt',
    frontProxyClientCert: '/state/pki/front-proxy-client.crt',
    frontProxyClientKey: '/state/pki/front-proxy-client.key',
    client: (f) => ({ cert: `/state/pki/${f}.crt`, key: `/state/pki/${f}.key` }),
  },
  ports: { etcdClient: 2001, etcdPeer: 2002, apiserver: 2003, controllerManager: 2004, scheduler: 2005, kwok: 2006 },
  kubeconfigs: { admin: '/a', 'controller-manager': '/k', scheduler: '/s', kwok: '/w' },
  stageFiles: ['/stages/a.yaml', '/stages/b.yaml'],
};

const flag = (args: string[], name: string): string | undefined =>
  args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

describe('component flags', () => {
  it('binds everything to 127.0.0.1', () => {
    const all = [etcdArgs(layout), apiserverArgs(layout), controllerManagerArgs(layout), schedulerArgs(layout), kwokArgs(layout)].flat();
    const addressFlags = all.filter((a) => /(-urls?|address|server-address|etcd-servers)=/.test(a) && !a.startsWith('--initial-cluster='));
    expect(addressFlags.length).toBeGreaterThanOrEqual(9);
    for (const a of addressFlags) expect(a).toMatch(/=(https?:\/\/)?127\.0\.0\.1(:\d+)?$/);
    expect(flag(etcdArgs(layout), 'initial-cluster')).toBe('whisperops=http://127.0.0.1:2002');
  });

  it('turns on TLS, client certificates, RBAC and service-account signing in the API server', () => {
    const a = apiserverArgs(layout);
    expect(flag(a, 'authorization-mode')).toBe('Node,RBAC');
    expect(flag(a, 'client-ca-file')).toBe('/state/pki/ca.crt');
    expect(flag(a, 'tls-cert-file')).toBe('/state/pki/apiserver.crt');
    expect(flag(a, 'service-account-key-file')).toBe('/state/pki/sa.pub');
    expect(flag(a, 'service-account-signing-key-file')).toBe('/state/pki/sa.key');
    expect(flag(a, 'service-account-issuer')).toMatch(/^https:\/\//);
    expect(flag(a, 'disable-admission-plugins')).toBeUndefined();
  });

  it('lets kwok manage only the annotated fake nodes, with all stage files', () => {
    const k = kwokArgs(layout);
    expect(flag(k, 'manage-nodes-with-annotation-selector')).toBe('kwok.x-k8s.io/node=fake');
    expect(k).not.toContain('--manage-all-nodes');
    expect(k.filter((a) => a.startsWith('--config='))).toEqual(['--config=/stages/a.yaml', '--config=/stages/b.yaml']);
  });

  it('runs controllers with their own ServiceAccounts and no leader election', () => {
    const c = controllerManagerArgs(layout);
    expect(flag(c, 'use-service-account-credentials')).toBe('true');
    expect(flag(c, 'service-account-private-key-file')).toBe('/state/pki/sa.key');
    expect(flag(c, 'leader-elect')).toBe('false');
    expect(flag(schedulerArgs(layout), 'leader-elect')).toBe('false');
  });
});

describe('freePorts', () => {
  it('returns distinct ports', async () => {
    const ports = await freePorts(6);
    expect(new Set(ports).size).toBe(6);
    for (const p of ports) expect(p).toBeGreaterThan(0);
  });
});

describe('kwok stages', () => {
  const files = readdirSync(stagesDir).filter((f) => f.endsWith('.yaml'));
  const stages = files.flatMap((f) => parseAllDocuments(readFileSync(join(stagesDir, f), 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: { selector: { matchExpressions: { key: string; values?: string[] }[] } } }));

  it('are Stage objects with unique names for nodes and pods', () => {
    expect(stages.every((s) => s.kind === 'Stage')).toBe(true);
    expect(new Set(stages.map((s) => s.metadata.name)).size).toBe(stages.length);
    expect(stages.map((s) => s.metadata.name)).toEqual(
      expect.arrayContaining(['node-initialize', 'pod-ready', 'whisperops-pod-succeed', 'whisperops-pod-fail', 'pod-delete']),
    );
  });

  it('select the succeed and fail outcomes by the test.whisperops.dev/outcome annotation', () => {
    const outcome = (name: string): string[] | undefined =>
      stages.find((s) => s.metadata.name === name)?.spec.selector.matchExpressions.find((e) => e.key.includes('test.whisperops.dev/outcome'))?.values;
    expect(outcome('whisperops-pod-succeed')).toEqual(['succeed']);
    expect(outcome('whisperops-pod-fail')).toEqual(['fail']);
  });
});
