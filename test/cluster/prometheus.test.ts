import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import {
  defaultScrapeIntervalSeconds,
  loopbackIpRegex,
  podRelabelConfigs,
  podsJobName,
  prometheusArgs,
  prometheusConfig,
  prometheusConfigYaml,
  prometheusRbac,
  prometheusUser,
  scrapeIntervalFromEnv,
  type PrometheusConfigInput,
  type RelabelConfig,
} from './prometheus.js';

const input: PrometheusConfigInput = {
  apiServer: 'https://127.0.0.1:6443',
  caFile: '/c/pki/ca.crt',
  certFile: '/c/pki/prometheus.crt',
  keyFile: '/c/pki/prometheus.key',
  scrapeIntervalSeconds: 2,
  listenAddress: '127.0.0.1:9090',
};

/** Prometheus anchors relabel regexes (^(?:…)$); RE2 and JavaScript agree on the syntax used here. */
const anchored = (regex: string): RegExp => new RegExp(`^(?:${regex})$`);

/**
 * A small model of Prometheus's relabelling (keep, drop, replace, labelmap) to run the real rules on
 * discovered label sets. Returns undefined when the target is dropped.
 */
function relabel(labels: Record<string, string>, rules: RelabelConfig[]): Record<string, string> | undefined {
  const out = { ...labels };
  for (const r of rules) {
    const re = anchored(r.regex ?? '(.*)');
    const value = (r.source_labels ?? []).map((l) => out[l] ?? '').join(r.separator ?? ';');
    switch (r.action ?? 'replace') {
      case 'keep':
        if (!re.test(value)) return undefined;
        break;
      case 'drop':
        if (re.test(value)) return undefined;
        break;
      case 'replace': {
        const m = re.exec(value);
        if (m !== null && r.target_label !== undefined) {
          const replaced = (r.replacement ?? '$1').replace(/\$(\d)/g, (_, i: string) => m[Number(i)] ?? '');
          if (replaced === '') delete out[r.target_label];
          else out[r.target_label] = replaced;
        }
        break;
      }
      case 'labelmap':
        for (const [k, v] of Object.entries(out)) {
          const m = re.exec(k);
          if (m !== null) out[(r.replacement ?? '$1').replace(/\$(\d)/g, (_, i: string) => m[Number(i)] ?? '')] = v;
        }
        break;
    }
  }
  return Object.fromEntries(Object.entries(out).filter(([k]) => !k.startsWith('__meta_')));
}

/** Labels kubernetes_sd (role pod) gives a container port of a pod. */
function discovered(ip: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    __address__: `${ip}:8080`,
    __metrics_path__: '/metrics',
    __scheme__: 'http',
    __meta_kubernetes_namespace: 'ns1',
    __meta_kubernetes_pod_name: 'agent-0',
    __meta_kubernetes_pod_node_name: 'process-node-0',
    __meta_kubernetes_pod_container_name: 'agent',
    __meta_kubernetes_pod_ip: ip,
    __meta_kubernetes_pod_phase: 'Running',
    __meta_kubernetes_pod_label_app: 'edge-agent',
    __meta_kubernetes_pod_annotation_prometheus_io_scrape: 'true',
    __meta_kubernetes_pod_annotationpresent_prometheus_io_scrape: 'true',
    ...extra,
  };
}

describe('the 127.0.0.0/8 rule', () => {
  it.each(['127.0.0.1', '127.0.1.5', '127.255.255.255', '127.0.0.0', '127.10.200.249'])('keeps %s', (ip) => {
    expect(anchored(loopbackIpRegex).test(ip)).toBe(true);
  });

  it.each([
    '10.244.0.1',
    '1127.0.0.1',
    '127.0.0.1.evil',
    '127.0.0.256',
    '127.0.0',
    '127.00.0.1',
    '128.0.0.1',
    '0.0.0.0',
    '',
    '::1',
    '127.0.0.1:80',
    ' 127.0.0.1',
  ])('does not keep %j', (ip) => {
    expect(anchored(loopbackIpRegex).test(ip)).toBe(false);
  });

  it('is a keep rule on __meta_kubernetes_pod_ip of the pods job', () => {
    const rules = podRelabelConfigs();
    expect(rules).toContainEqual({ source_labels: ['__meta_kubernetes_pod_ip'], regex: loopbackIpRegex, action: 'keep' });
    const job = (prometheusConfig(input).scrape_configs as Array<{ job_name: string; relabel_configs?: RelabelConfig[] }>).find(
      (j) => j.job_name === podsJobName,
    );
    expect(job?.relabel_configs).toEqual(rules);
  });

  it('scrapes pods annotated prometheus.io/scheme: https (EdgePool spec.tls) over TLS without verifying their per-pool CA', () => {
    const job = (prometheusConfig(input).scrape_configs as Array<{ job_name: string; tls_config?: Record<string, unknown> }>).find((j) => j.job_name === podsJobName);
    expect(job?.tls_config).toEqual({ insecure_skip_verify: true });
  });

  it('drops a kwok pod with an invented 10.244 IP even when annotated for scraping', () => {
    expect(relabel(discovered('10.244.0.1'), podRelabelConfigs())).toBeUndefined();
    expect(relabel(discovered('10.244.0.1', { __meta_kubernetes_pod_annotation_prometheus_io_port: '9100' }), podRelabelConfigs())).toBeUndefined();
  });
});

describe('pods job relabelling', () => {
  it('keeps an annotated Running pod on 127.x and labels it', () => {
    expect(relabel(discovered('127.0.1.5'), podRelabelConfigs())).toEqual({
      __address__: '127.0.1.5:8080',
      __metrics_path__: '/metrics',
      __scheme__: 'http',
      app: 'edge-agent',
      namespace: 'ns1',
      pod: 'agent-0',
      node: 'process-node-0',
      container: 'agent',
    });
  });

  it('takes port, path and scheme from the annotations', () => {
    const t = relabel(
      discovered('127.0.1.5', {
        __meta_kubernetes_pod_annotation_prometheus_io_port: '9100',
        __meta_kubernetes_pod_annotation_prometheus_io_path: '/stats/prometheus',
        __meta_kubernetes_pod_annotation_prometheus_io_scheme: 'https',
      }),
      podRelabelConfigs(),
    );
    expect(t).toMatchObject({ __address__: '127.0.1.5:9100', __metrics_path__: '/stats/prometheus', __scheme__: 'https' });
  });

  it.each([
    ['not annotated', { __meta_kubernetes_pod_annotation_prometheus_io_scrape: '' }],
    ['annotated "false"', { __meta_kubernetes_pod_annotation_prometheus_io_scrape: 'false' }],
    ['Pending', { __meta_kubernetes_pod_phase: 'Pending' }],
    ['Succeeded', { __meta_kubernetes_pod_phase: 'Succeeded' }],
    ['without an IP yet', { __meta_kubernetes_pod_ip: '', __address__: '' }],
  ])('drops a pod %s', (_what, extra) => {
    expect(relabel(discovered('127.0.1.5', extra), podRelabelConfigs())).toBeUndefined();
  });
});

describe('prometheus.yml', () => {
  it('discovers pods through the API server with the Prometheus client certificate', () => {
    const doc = parse(prometheusConfigYaml(input)) as {
      global: Record<string, string>;
      scrape_configs: Array<{ job_name: string; kubernetes_sd_configs?: unknown[]; static_configs?: unknown[] }>;
    };
    expect(doc.global.scrape_interval).toBe('2s');
    expect(doc.global.evaluation_interval).toBe('2s');
    const pods = doc.scrape_configs.find((j) => j.job_name === 'kubernetes-pods');
    expect(pods?.kubernetes_sd_configs).toEqual([
      {
        role: 'pod',
        api_server: 'https://127.0.0.1:6443',
        tls_config: { ca_file: '/c/pki/ca.crt', cert_file: '/c/pki/prometheus.crt', key_file: '/c/pki/prometheus.key' },
      },
    ]);
    expect(doc.scrape_configs.find((j) => j.job_name === 'prometheus')?.static_configs).toEqual([{ targets: ['127.0.0.1:9090'] }]);
  });

  it('uses the configured scrape interval', () => {
    const doc = prometheusConfig({ ...input, scrapeIntervalSeconds: 15 }) as { global: Record<string, string> };
    expect(doc.global).toMatchObject({ scrape_interval: '15s', evaluation_interval: '15s', scrape_timeout: '14s' });
  });

  it('listens on 127.0.0.1 with lifecycle API and its own data dir', () => {
    expect(prometheusArgs({ configFile: '/c/p.yml', dataDir: '/c/data', listenAddress: '127.0.0.1:9090' })).toEqual(
      expect.arrayContaining(['--web.listen-address=127.0.0.1:9090', '--storage.tsdb.path=/c/data', '--web.enable-lifecycle', '--config.file=/c/p.yml']),
    );
  });
});

describe('scrape interval from the environment', () => {
  it.each([
    [undefined, defaultScrapeIntervalSeconds],
    ['', defaultScrapeIntervalSeconds],
    ['5', 5],
    ['15s', 15],
    [' 3s ', 3],
  ])('%j → %d s', (value, seconds) => {
    expect(scrapeIntervalFromEnv(value === undefined ? {} : { WHISPEROPS_PROMETHEUS_SCRAPE_INTERVAL: value })).toBe(seconds);
  });

  it.each(['0', '2m', '1.5', 'abc', '301', '-1'])('refuses %j', (value) => {
    expect(() => scrapeIntervalFromEnv({ WHISPEROPS_PROMETHEUS_SCRAPE_INTERVAL: value })).toThrow(/WHISPEROPS_PROMETHEUS_SCRAPE_INTERVAL/);
  });
});

describe('RBAC', () => {
  it('grants the Prometheus user list and watch on pods, nothing else', () => {
    const { role, binding } = prometheusRbac();
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] }]);
    expect(binding.subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: prometheusUser }]);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata?.name });
    expect(prometheusUser).toBe('whisperops-prometheus');
  });
});
