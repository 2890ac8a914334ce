// The chart's Prometheus rules and Grafana dashboard against real data: every PromQL expression of the
// rendered PrometheusRule and dashboard ConfigMap is checked by promtool, then run against the e2e
// Prometheus while a REAL edge agent (on a process-backed Jetson, the embedded model from the S3 store)
// serves espeak-ng speech with feedback, and the chart's operator runs for real in its pod. The e2e
// Prometheus has no prometheus-operator: it scrapes both through prometheus.io annotations; the chart's
// PodMonitor, ServiceMonitor and PrometheusRule are installed against the prometheus-operator's real
// CRDs, and the monitors are shown to select that pod and Service. Each expression must return data for
// this test's namespace; an alert's threshold comparison is left off for that (its signal), and the full
// expression runs too. Two FineTuneJobs that fail (played by kwok), one after the other, make
// WhisperopsRetrainFailed fire for real.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { PODS } from '../../operator/src/kube/client.js';
import { adminClient, REPO_ROOT } from '../../operator/testing/operator-process.js';
import { applyCrds, binDir, createTestNamespace, deleteTestNamespace, edgeTaint, eventually, helm, kubectl, objectStore, podOutcome, prometheusUrl, promQuery } from '../cluster/index.js';
import type { PromQueryData } from '../cluster/index.js';
import { embeddedModelRef } from '../fixtures/models.js';
import { readyAgentUrls } from '../fixtures/loop.js';
import { financeSentences, sendFeedbackTraffic } from '../fixtures/traffic.js';

jest.setTimeout(240_000);

const api = adminClient();
const chart = join(REPO_ROOT, 'charts', 'whisperops');
const SECRET = 'models-s3';
const MONITORING_CRDS = ['podmonitors', 'servicemonitors', 'prometheusrules'];
const tolerations = [{ key: edgeTaint.key, operator: 'Equal', value: edgeTaint.value, effect: edgeTaint.effect }];
let ns = '';
let release = '';
let t0 = 0;

interface Rule { alert?: string; record?: string; expr: string }
interface Expression { name: string; expr: string; alert: boolean }

/** The chart rendered with the rules and the dashboard: every expression, by where it comes from. */
async function chartExpressions(): Promise<{ groups: { name: string; rules: Rule[] }[]; expressions: Expression[] }> {
  const out = await helm(['template', 'wo', chart, '--namespace', 'mon', '--set', 'prometheusRule.enabled=true', '--set', 'grafanaDashboard.enabled=true', '--set', 'podMonitor.enabled=true']);
  const docs = YAML.parseAllDocuments(out).map((d) => d.toJS() as { kind?: string; spec?: { groups: { name: string; rules: Rule[] }[] }; data?: Record<string, string> } | null)
    .filter((d) => d?.kind !== undefined).map((d) => d ?? {});
  const rule = docs.find((d) => d.kind === 'PrometheusRule');
  const dashboardCm = docs.find((d) => d.kind === 'ConfigMap' && d.data?.['whisperops.json'] !== undefined);
  expect(docs.find((d) => d.kind === 'PodMonitor')).toBeDefined();
  const groups = rule?.spec?.groups ?? [];
  const dashboard = JSON.parse(dashboardCm?.data?.['whisperops.json'] ?? '{}') as { panels: { title: string; targets?: { refId: string; expr: string }[] }[] };
  const expressions: Expression[] = [
    ...groups.flatMap((g) => g.rules.map((r) => ({ name: r.alert ?? r.record ?? '', expr: r.expr, alert: r.alert !== undefined }))),
    ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ name: `panel "${p.title}" ${t.refId}`, expr: t.expr, alert: false }))),
  ];
  return { groups, expressions };
}

/** An alert's signal: its expression without the final threshold comparison. */
function signal(expr: string): string {
  const m = /^([\s\S]*\S)\s*(>|<|>=|<=|==|!=)\s*[0-9.e+-]+\s*$/.exec(expr);
  if (!m?.[1]) throw new Error(`alert expression does not end in a threshold comparison: ${expr}`);
  return m[1];
}

const series = (d: PromQueryData): { metric: Record<string, string> }[] => (d.resultType === 'vector' || d.resultType === 'matrix' ? d.result : []);

/** The finance example, failing with exit 2 in a pod kwok plays. */
function failingFtj(name: string): object {
  const doc = YAML.parse(readFileSync(join(REPO_ROOT, 'examples', 'finetunejob-finance-lora.yaml'), 'utf8')) as { metadata: object; spec: { resources: object } };
  const annotations = { [podOutcome.outcome]: 'fail', [podOutcome.exitCode]: '2', [podOutcome.terminationMessage]: 'dataset.uri: does not exist' };
  return {
    ...doc, metadata: { ...doc.metadata, name, namespace: ns },
    spec: { ...doc.spec, podMetadata: { annotations }, backoffLimit: 0, resources: { ...doc.spec.resources, gpusPerNode: 1, nodes: 1, nodeSelector: { type: 'kwok' } } },
  };
}

beforeAll(async () => {
  await applyCrds();
  ns = await createTestNamespace('mon');
  release = `mon-${ns.slice(-8)}`;
  const store = await objectStore();
  const source = JSON.parse(await kubectl(['get', 'secret', '-n', store.secret.namespace, store.secret.name, '-o', 'json'])) as V1Secret;
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: SECRET, namespace: ns }, data: source.data }) });
  // The prometheus-operator's own CRDs (from its Go module), so the chart's monitors and rule are
  // created for real and checked against their schemas by the API server.
  const crdDir = spawnSync('bash', [join(REPO_ROOT, 'test', 'cluster', 'build', 'prometheus-operator-crds.sh')], { encoding: 'utf8' }).stdout.trim().split('\n').pop() ?? '';
  const crdFiles = MONITORING_CRDS.map((c) => join(crdDir, `monitoring.coreos.com_${c}.yaml`));
  await kubectl(['apply', '--server-side', '--force-conflicts', ...crdFiles.flatMap((f) => ['-f', f])]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...MONITORING_CRDS.map((c) => `crd/${c}.monitoring.coreos.com`)]);
  // The chart's operator in its pod on the process-backed system node, scraped by the e2e Prometheus.
  await helm(['install', release, chart, '--namespace', ns, '--set', 'crds.install=false', '--set', 'replicaCount=1', '--set', 'nodeSelector.type=process',
    '--set', `prometheus.url=${await prometheusUrl()}`, '--set', 'prometheus.loopbackOnly=true', '--set', 'edgePool.syncPeriodSeconds=2', '--set', 'grafanaDashboard.enabled=true',
    '--set', 'podMonitor.enabled=true', '--set', 'serviceMonitor.enabled=true', '--set', 'prometheusRule.enabled=true',
    '--set-string', 'podAnnotations.prometheus\\.io/scrape=true', '--set-string', 'podAnnotations.prometheus\\.io/port=8080']);
  // The pool's agent, the deployment and a first failing run right away: they start while the operator does.
  t0 = Date.now();
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'jetsons', namespace: ns },
      spec: { nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'process' }, tolerations, autoscaling: { mode: 'off' }, replicas: 1, artifactCredentials: { secretRef: { name: SECRET } } },
    }),
  });
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name: 'asr', namespace: ns },
      // A watched scenario puts `finance` on the model set's allow-list, so the agents create its feedback
      // series at 0 when the set arrives (maxWer 1: never degraded, nothing retrains).
      spec: { edgePoolRef: { name: 'jetsons' }, model: { ...embeddedModelRef(), uri: (await objectStore()).embeddedModelUri }, monitoring: { scenarios: [{ name: 'finance', maxWer: 1 }] } },
    }),
  });
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(failingFtj('retrain-1')) });
  await eventually('the chart operator pod Ready', async () => {
    const pods = (await api.list<V1Pod>(PODS, { namespace: ns, labelSelector: `app.kubernetes.io/instance=${release}` })).items;
    return pods.some((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ? true : undefined;
  }, 90_000, 500);
}, 300_000);

afterAll(async () => {
  if (release) await helm(['uninstall', release, '--namespace', ns, '--wait']).catch(() => undefined);
  if (ns) await deleteTestNamespace(ns);
  await api.close();
});

describe('Prometheus rules and Grafana dashboard of the chart', () => {
  it('every expression passes promtool (the alerts as they are, each dashboard query as a recording rule)', async () => {
    const { groups, expressions } = await chartExpressions();
    expect(groups.flatMap((g) => g.rules.map((r) => r.alert)).sort()).toEqual(['WhisperopsAgentsNotReady', 'WhisperopsP99OverTarget', 'WhisperopsRetrainFailed', 'WhisperopsScenarioWerDegraded', 'WhisperopsTooManyRequests']);
    const panels = expressions.filter((e) => !e.alert);
    const file = { groups: [...groups, { name: 'dashboard', rules: panels.map((e, i) => ({ record: `whisperops_dashboard:query_${String(i)}`, expr: e.expr })) }] };
    const dir = mkdtempSync(join(tmpdir(), 'wo-rules-'));
    try {
      writeFileSync(join(dir, 'rules.yaml'), YAML.stringify(file));
      const res = spawnSync(join(binDir(), 'promtool'), ['check', 'rules', join(dir, 'rules.yaml')], { encoding: 'utf8' });
      expect({ status: res.status, out: res.stdout + res.stderr }).toEqual({ status: 0, out: expect.stringContaining(`SUCCESS: ${String(expressions.length)} rules found`) as unknown });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('installs its PodMonitor, ServiceMonitor and PrometheusRule against the prometheus-operator CRDs; the monitors select the agent pod and the operator\'s metrics Service', async () => {
    const get = async <T>(what: string): Promise<T> => JSON.parse(await kubectl(['get', what, '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'json'])) as T;
    interface Monitor { spec: { selector: { matchLabels: Record<string, string> }; namespaceSelector?: { any?: boolean }; endpoints?: { port: string }[]; podMetricsEndpoints?: { port: string }[] } }
    const [podMonitor] = (await get<{ items: Monitor[] }>('podmonitors')).items;
    const [serviceMonitor] = (await get<{ items: Monitor[] }>('servicemonitors')).items;
    const rules = (await get<{ items: { spec: { groups: { rules: { alert: string }[] }[] } }[] }>('prometheusrules')).items;
    expect(rules.flatMap((r) => r.spec.groups.flatMap((g) => g.rules.map((x) => x.alert)))).toHaveLength(5);
    const selector = (m: Monitor | undefined) => Object.entries(m?.spec.selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    expect(podMonitor?.spec.namespaceSelector).toEqual({ any: true });
    const agents = await eventually('the agent pod', async () => {
      const pods = JSON.parse(await kubectl(['get', 'pods', '-n', ns, '-l', selector(podMonitor), '-o', 'json'])) as { items: V1Pod[] };
      return pods.items.length > 0 ? pods.items : undefined;
    }, 60_000, 500);
    expect(agents.every((p) => p.metadata?.labels?.['whisperops.dev/edgepool'] === 'jetsons')).toBe(true);
    expect(agents[0]?.spec?.containers[0]?.ports?.map((x) => x.name)).toContain(podMonitor?.spec.podMetricsEndpoints?.[0]?.port);
    const services = JSON.parse(await kubectl(['get', 'services', '-n', ns, '-l', selector(serviceMonitor), '-o', 'json'])) as { items: { spec: { ports: { name: string }[] } }[] };
    expect(services.items).toHaveLength(1);
    expect(services.items[0]?.spec.ports.map((x) => x.name)).toContain(serviceMonitor?.spec.endpoints?.[0]?.port);
  });

  it('every expression returns data from real agents serving traffic and the chart operator; WhisperopsRetrainFailed fires', async () => {
    const { expressions } = await chartExpressions();
    const urls = await eventually('a ready agent', async () => {
      const u = await readyAgentUrls(api, ns, 'jetsons', 8080);
      return u.length === 1 ? u : undefined;
    }, 180_000, 500).catch(async (err: unknown) => {
      console.log(await kubectl(['get', 'pods,epool,infd', '-n', ns, '-o', 'wide']), await kubectl(['get', 'infd,epool', '-n', ns, '-o', 'jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{"\\n"}{end}']));
      throw err;
    });
    const agentsMs = Date.now() - t0; // from the pool's creation
    // Two rounds of finance speech with feedback, a few scrapes apart, so every rate has two samples.
    const sentences = financeSentences(26);
    // The finance feedback series exist at 0 before any feedback (the agent creates them from the model
    // set's allow-list) and are scraped so: increase() never counts a series' first sample, so a series
    // born with its first feedback would lose it (and the WER rule needs > 100 reference words).
    const zero = await eventually('the finance feedback series scraped at 0 before any feedback', async () => {
      const d = await promQuery(`whisperops_agent_reference_words_total{namespace="${ns}",scenario="finance"}`);
      return d.resultType === 'vector' && d.result.length > 0 ? d.result : undefined;
    }, 60_000, 1000);
    expect(zero.map((x) => x.value[1])).toEqual(zero.map(() => '0'));
    const warmup = { requests: 0, failures: 0, feedbackPosted: 0 };
    const first = await sendFeedbackTraffic({ agentUrls: urls, model: 'asr', sentences: sentences.slice(0, 14), scenario: 'finance', concurrency: 2, deadlineMs: 60_000 });
    // The second failure after Prometheus saw the first: the counter goes 1 → 2 between scrapes.
    await eventually('the first failed run scraped', async () => (series(await promQuery(`whisperops_operator_runs_finished_total{namespace="${ns}",phase="Failed"}`)).length > 0 ? true : undefined), 60_000, 1000);
    await kubectl(['apply', '-f', '-'], { input: JSON.stringify(failingFtj('retrain-2')) });
    const second = await sendFeedbackTraffic({ agentUrls: urls, model: 'asr', sentences: sentences.slice(14, 26), scenario: 'finance', concurrency: 2, deadlineMs: 60_000 });
    expect(warmup.failures + first.failures + second.failures).toBe(0);
    expect(warmup.feedbackPosted + first.feedbackPosted + second.feedbackPosted).toBe(26);

    const results: { name: string; query: string; series: number; ours: number }[] = [];
    for (const e of expressions) {
      const query = e.alert && e.name !== 'WhisperopsRetrainFailed' ? signal(e.expr) : e.expr;
      const got = await eventually(`data for ${e.name}: ${query}`, async () => {
        const s = series(await promQuery(query));
        // Ours: series of this test's namespace, or (aggregated without namespace) any series.
        const ours = s.filter((x) => x.metric.namespace === undefined || x.metric.namespace === ns).length;
        return ours > 0 ? { series: s.length, ours } : undefined;
      }, 60_000, 1000);
      results.push({ name: e.name, query, ...got });
      if (e.alert) await promQuery(e.expr); // the full alert expression runs too (empty unless it fires)
    }
    console.log(`monitoring: agent ready ${String(agentsMs)} ms after the pool's creation, ${String(warmup.requests + first.requests + second.requests)} requests; ${String(results.length)} expressions with data:\n${results.map((r) => `  ${r.name}: ${String(r.ours)} series`).join('\n')}`);
    expect(results).toHaveLength(expressions.length);
  });
});
