// Prometheus of the local cluster: pod discovery with its own least-privilege identity, the
// 127.0.0.0/8 rule that keeps kwok's invented pod IPs out of its scrape targets, and the query API.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { join } from 'node:path';
import {
  binDir,
  CommandError,
  createTestNamespace,
  deleteTestNamespace,
  edgeTaint,
  eventually,
  kubectl,
  loadAdminKubeConfig,
  loopbackFetch,
  prometheusInfo,
  promQuery,
  PromQueryError,
  runTool,
  testKubeconfigPath,
} from '../cluster/index.js';

jest.setTimeout(120_000);

const core = loadAdminKubeConfig().makeApiClient(CoreV1Api);
let ns = '';

beforeAll(async () => {
  ns = await createTestNamespace('prometheus');
});

afterAll(async () => {
  if (ns) await deleteTestNamespace(ns);
});

interface Target {
  discoveredLabels: Record<string, string>;
  labels?: Record<string, string>;
  scrapePool: string;
  scrapeUrl?: string;
  health?: string;
}

async function targets(): Promise<{ activeTargets: Target[]; droppedTargets: Target[] }> {
  const res = await loopbackFetch(`${(await prometheusInfo()).url}/api/v1/targets?state=any`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { status: string; data: { activeTargets: Target[]; droppedTargets: Target[] } };
  expect(body.status).toBe('success');
  return body.data;
}

/** `kubectl auth can-i` as the Prometheus user: "yes" exits 0, "no" exits 1. */
async function canI(verb: string, resource: string): Promise<string> {
  try {
    return (await kubectl(['auth', 'can-i', verb, resource, '--all-namespaces', '--as', 'whisperops-prometheus'])).trim();
  } catch (err) {
    if (err instanceof CommandError) return err.stdout.trim();
    throw err;
  }
}

describe('Prometheus identity', () => {
  it('may list and watch pods, and nothing else', async () => {
    expect(await canI('list', 'pods')).toBe('yes');
    expect(await canI('watch', 'pods')).toBe('yes');
    expect(await canI('get', 'secrets')).toBe('no');
    expect(await canI('list', 'secrets')).toBe('no');
    expect(await canI('get', 'pods')).toBe('no');
    expect(await canI('list', 'nodes')).toBe('no');
  });
});

describe('pod discovery', () => {
  it('drops an annotated kwok pod with an invented 10.244 IP and never scrapes it', async () => {
    const { scrapeIntervalSeconds, podsJob } = await prometheusInfo();
    const name = 'fake-agent';
    const pod: V1Pod = {
      metadata: {
        name,
        namespace: ns,
        labels: { app: 'edge-agent' },
        annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080', 'prometheus.io/path': '/metrics' },
      },
      spec: {
        nodeSelector: { type: 'kwok', 'whisperops.dev/device': 'jetson-agx-xavier' },
        tolerations: [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }],
        containers: [{ name: 'agent', image: 'registry.invalid/whisperops/edge-agent:test', ports: [{ containerPort: 8080, name: 'metrics' }] }],
      },
    };
    await core.createNamespacedPod({ namespace: ns, body: pod });
    const podIp = await eventually(
      'the kwok pod Running with an IP',
      async () => {
        const p = await core.readNamespacedPod({ name, namespace: ns });
        return p.status?.phase === 'Running' && p.status.podIP ? p.status.podIP : undefined;
      },
      30_000,
    );
    expect(podIp).toMatch(/^10\.244\./);

    const isOurs = (t: Target): boolean =>
      t.discoveredLabels.__meta_kubernetes_namespace === ns && t.discoveredLabels.__meta_kubernetes_pod_name === name;
    // Discovered (Prometheus saw it, with its IP and Running phase) and dropped by relabelling.
    const dropped = await eventually(
      'the kwok pod among the dropped targets, Running with its IP',
      async () =>
        (await targets()).droppedTargets.find(
          (t) => isOurs(t) && t.discoveredLabels.__meta_kubernetes_pod_ip === podIp && t.discoveredLabels.__meta_kubernetes_pod_phase === 'Running',
        ),
      30_000,
      500,
    );
    expect(dropped.scrapePool).toBe(podsJob);
    expect(dropped.discoveredLabels.__meta_kubernetes_pod_annotation_prometheus_io_scrape).toBe('true');

    // Over several scrape intervals it never becomes active, and nothing active points off the host.
    const until = Date.now() + 4 * scrapeIntervalSeconds * 1000 + 2000;
    let polls = 0;
    while (Date.now() < until) {
      const { activeTargets } = await targets();
      expect(activeTargets.filter(isOurs)).toEqual([]);
      for (const t of activeTargets) {
        // Other suites' process-node pods (own 127.x addresses) may still be targets: the rule is loopback only.
        expect(new URL(t.scrapeUrl ?? 'http://invalid').hostname).toMatch(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/);
      }
      polls += 1;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(polls).toBeGreaterThan(3);
    // And no series was ever scraped from it.
    expect((await promQuery(`up{namespace="${ns}"}`)).result).toEqual([]);
  });
});

describe('query API', () => {
  it('answers `up` for its own job with 1', async () => {
    const sample = await eventually(
      'up{job="prometheus"}',
      async () => {
        const data = await promQuery('up{job="prometheus"}');
        return data.resultType === 'vector' && data.result.length === 1 ? data.result[0] : undefined;
      },
      30_000,
      500,
    );
    expect(sample.metric).toMatchObject({ __name__: 'up', job: 'prometheus', instance: expect.stringMatching(/^127\.0\.0\.1:\d+$/) as unknown });
    expect(sample.value[1]).toBe('1');
  });

  it('gives an empty vector as []', async () => {
    expect(await promQuery('up{job="no-such-job"}')).toEqual({ resultType: 'vector', result: [] });
  });

  it('throws on a bad query with the API error type', async () => {
    await expect(promQuery('sum(')).rejects.toMatchObject({ name: 'PromQueryError', status: 400, errorType: 'bad_data' });
    await expect(promQuery('sum(')).rejects.toBeInstanceOf(PromQueryError);
  });

  it('runs Prometheus 3 with a configuration promtool accepts', async () => {
    const { configFile } = await prometheusInfo();
    const out = await runTool(join(binDir(), 'promtool'), ['check', 'config', configFile], testKubeconfigPath());
    expect(out).toContain('SUCCESS');
    const res = await loopbackFetch(`${(await prometheusInfo()).url}/api/v1/status/buildinfo`);
    const body = (await res.json()) as { data: { version: string } };
    expect(body.data.version).toMatch(/^3\.\d+\.\d+$/);
  });
});
