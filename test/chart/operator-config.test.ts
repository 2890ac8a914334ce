// The chart's operator configuration, read as the operator reads it: `helm template` renders the chart
// (the cached helm of scripts/setup/cluster.sh), and the operator's own loader (operator/src/config.ts)
// gets the Deployment's args and env and the ConfigMap's operator.yaml at the path the pod mounts it
// on. Every chart value that feeds the operator arrives, and a chart install never hands the operator
// a configuration it refuses.
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { loadConfig, parseBindAddress } from '../../operator/src/config.js';
import type { OperatorConfig } from '../../operator/src/config.js';
import { helmPath } from '../cluster/index.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHART = join(REPO, 'charts', 'whisperops');
const run = promisify(execFile);

interface Obj { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: unknown }
interface Container {
  name: string; image: string; args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec { containers: Container[]; volumes?: { name: string; configMap?: { name: string } }[] }

async function render(set: string[] = []): Promise<Obj[]> {
  const { stdout } = await run(helmPath(), ['template', 'wo', CHART, '--namespace', 'whisperops-system', ...set.flatMap((s) => ['--set', s])], { maxBuffer: 1 << 24 });
  return parseAllDocuments(stdout).map((d) => d.toJS() as Obj | null).filter((o): o is Obj => o !== null && typeof o === 'object');
}

/** Loads the rendered operator's configuration the way the operator's process would. */
function operatorConfig(objects: Obj[]): { config: OperatorConfig; container: Container } {
  const deployment = objects.find((o) => o.kind === 'Deployment');
  const pod = (deployment?.spec as { template: { spec: PodSpec } } | undefined)?.template.spec;
  const container = pod?.containers.find((c) => c.name === 'operator');
  if (!pod || !container) throw new Error('no operator container rendered');
  // The pod's env: literal values, and the downward API's fields as the kubelet would fill them.
  const fields: Record<string, string> = { 'metadata.name': 'wo-whisperops-7d9f-abcde', 'metadata.namespace': 'whisperops-system' };
  const env: NodeJS.ProcessEnv = {};
  for (const e of container.env ?? []) env[e.name] = e.value ?? fields[e.valueFrom?.fieldRef?.fieldPath ?? ''] ?? '';
  // Files the pod sees: each ConfigMap volume's keys under its mount path.
  const files = new Map<string, string>();
  for (const m of container.volumeMounts ?? []) {
    const cmName = pod.volumes?.find((v) => v.name === m.name)?.configMap?.name;
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === cmName);
    for (const [key, value] of Object.entries(cm?.data ?? {})) files.set(posix.join(m.mountPath, key), value);
  }
  const config = loadConfig({
    argv: container.args ?? [],
    env,
    readFile: (path) => {
      const text = files.get(path);
      if (text === undefined) throw new Error(`${path} is not in the pod`);
      return text;
    },
  });
  return { config, container };
}

describe('the chart-rendered operator configuration, loaded by the operator\'s loader', () => {
  it('defaults: the values.yaml settings arrive, the metrics port is the one the container exposes', async () => {
    const { config, container } = operatorConfig(await render());
    expect(container.args).toEqual(['--config=/etc/whisperops/operator.yaml']);
    expect(config.workers).toBe(4);
    expect(config.leaderElection).toMatchObject({
      enabled: true, leaseName: 'whisperops-operator', leaseNamespace: 'whisperops-system',
      leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2,
    });
    expect(config.leaderElection.identity).toMatch(/^wo-whisperops-7d9f-abcde_[0-9a-f]{8}$/);
    expect(config.trainer.image).toBe('ghcr.io/whisperops/trainer:0.1.0');
    expect(config.agent.image).toBe('ghcr.io/whisperops/edge-agent:0.1.0');
    expect(config.prometheus).toMatchObject({ url: '', loopbackOnly: false, timeoutSeconds: 5 });
    expect(config.edgePool.syncPeriodSeconds).toBe(15);
    expect(config.log.level).toBe('info');
    expect(config.kubeconfig).toBe('');
    expect(parseBindAddress(config.http.bindAddress)).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(container.ports?.find((p) => p.name === 'http-metrics')?.containerPort).toBe(8080);
  }, 60_000);

  it('every operator setting of values.yaml is wired: changed values change the loaded config', async () => {
    const { config, container } = operatorConfig(await render([
      'workers=7',
      'leaderElection.enabled=false',
      'leaderElection.leaseDurationSeconds=40',
      'leaderElection.renewDeadlineSeconds=30',
      'leaderElection.retryPeriodSeconds=5',
      'metrics.port=9191',
      'trainer.image=registry.example/trainer:9',
      'agent.image=registry.example/agent:9',
      'prometheus.url=http://127.0.0.1:9090',
      'prometheus.loopbackOnly=true',
      'prometheus.timeoutSeconds=11',
      'edgePool.syncPeriodSeconds=45',
      'logLevel=debug',
    ]));
    expect(config.workers).toBe(7);
    expect(config.leaderElection).toMatchObject({ enabled: false, leaseDurationSeconds: 40, renewDeadlineSeconds: 30, retryPeriodSeconds: 5 });
    expect(parseBindAddress(config.http.bindAddress)?.port).toBe(9191);
    expect(container.ports?.find((p) => p.name === 'http-metrics')?.containerPort).toBe(9191);
    expect(config.trainer.image).toBe('registry.example/trainer:9');
    expect(config.agent.image).toBe('registry.example/agent:9');
    expect(config.prometheus).toMatchObject({ url: 'http://127.0.0.1:9090', loopbackOnly: true, timeoutSeconds: 11 });
    expect(config.edgePool.syncPeriodSeconds).toBe(45);
    expect(config.log.level).toBe('debug');
  }, 60_000);

  it('rbac.scope: cluster watches every namespace with one ClusterRole; namespaced watches watchNamespaces (default the release namespace) with a Role in each', async () => {
    const cluster = await render();
    expect(operatorConfig(cluster).config.namespace).toBe('');
    expect(cluster.filter((o) => o.kind === 'Role').map((o) => o.metadata.name)).toEqual(['wo-whisperops-leader-election']);
    const own = await render(['rbac.scope=namespaced']);
    expect(operatorConfig(own).config.namespace).toBe('whisperops-system');
    const other = await render(['rbac.scope=namespaced', 'watchNamespaces={speech,clinic}']);
    expect(operatorConfig(other).config.namespace).toBe('speech,clinic');
    expect(operatorConfig(other).config.leaderElection.leaseNamespace).toBe('whisperops-system');
    const roles = other.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding').map((o) => `${o.kind} ${o.metadata.name} ${(o.metadata as { namespace?: string }).namespace ?? ''}`);
    expect(roles.sort()).toEqual([
      'Role wo-whisperops clinic', 'Role wo-whisperops speech', 'Role wo-whisperops-leader-election whisperops-system',
      'RoleBinding wo-whisperops clinic', 'RoleBinding wo-whisperops speech', 'RoleBinding wo-whisperops-leader-election whisperops-system',
    ]);
    const clusterRole = other.find((o) => o.kind === 'ClusterRole') as unknown as { rules: { resources: string[] }[] };
    expect(clusterRole.rules.flatMap((r) => r.resources)).toEqual(['nodes']);
    await expect(render(['rbac.scope=everywhere'])).rejects.toThrow(/scope/);
  }, 60_000);

  it('never renders a configuration the loader refuses: values.schema.json and templates/validate.yaml refuse those first', async () => {
    const cases = [
      [], ['workers=0'], ['workers=2.5'], ['logLevel=loud'], ['logLevel=warn'],
      ['leaderElection.renewDeadlineSeconds=15'], ['leaderElection.renewDeadlineSeconds=14'],
      ['leaderElection.retryPeriodSeconds=9'], ['leaderElection.retryPeriodSeconds=8'],
      ['leaderElection.enabled=false', 'leaderElection.renewDeadlineSeconds=20'],
      ['edgePool.syncPeriodSeconds=0'], ['prometheus.timeoutSeconds=0'],
      ['prometheus.url=notaurl'], ['prometheus.url=http://prom.monitoring:9090'],
      ['prometheus.url=http://prom.monitoring:9090', 'prometheus.loopbackOnly=true'],
      ['prometheus.url=http://127.0.0.300:9090', 'prometheus.loopbackOnly=true'],
      ...['http://127.0.0.1:9090', 'http://127.9.8.7', 'http://localhost:9090', 'http://[::1]:9090'].map((u) => [`prometheus.url=${u}`, 'prometheus.loopbackOnly=true']),
    ];
    const verdicts = [];
    for (const set of cases) {
      const chart = await render(set).then((objects) => objects, (err: unknown) => err instanceof Error ? err : new Error(String(err)));
      let loader = 'accepted';
      if (!(chart instanceof Error)) {
        try {
          operatorConfig(chart);
        } catch (err) {
          loader = err instanceof Error ? err.message : String(err);
        }
      }
      // A refused chart renders no config to load; an accepted one must load.
      verdicts.push({ set, chart: chart instanceof Error ? 'refused' : 'accepted', loader: chart instanceof Error ? 'n/a' : loader });
    }
    expect(verdicts.filter((v) => v.chart === 'accepted' && v.loader !== 'accepted')).toEqual([]);
    // And the refusals are the ones expected (each the loader would refuse too).
    expect(verdicts.filter((v) => v.chart === 'refused').map((v) => v.set.join(' '))).toEqual([
      'workers=0', 'workers=2.5', 'logLevel=loud',
      'leaderElection.renewDeadlineSeconds=15', 'leaderElection.retryPeriodSeconds=9',
      'edgePool.syncPeriodSeconds=0', 'prometheus.timeoutSeconds=0', 'prometheus.url=notaurl',
      'prometheus.url=http://prom.monitoring:9090 prometheus.loopbackOnly=true',
      'prometheus.url=http://127.0.0.300:9090 prometheus.loopbackOnly=true',
    ]);
    expect(() => operatorConfig([])).toThrow(/no operator container/);
  }, 180_000);
});
