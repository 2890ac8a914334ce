import { describe, expect, it } from '@jest/globals';
import { ConfigError, defaultConfig, envName, loadConfig, parseBindAddress, usage } from './config.js';

function load(argv: string[] = [], env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}) {
  return loadConfig({
    argv, env,
    readFile: (p) => {
      const text = files[p];
      if (text === undefined) throw new Error(`ENOENT: ${p}`);
      return text;
    },
  });
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = load([], { POD_NAMESPACE: 'whisperops', POD_NAME: 'op-0' });
    expect(c.leaderElection).toMatchObject({
      enabled: true, leaseName: 'whisperops-operator', leaseNamespace: 'whisperops',
      leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2,
    });
    expect(c.leaderElection.identity).toMatch(/^op-0_[0-9a-f]{8}$/);
    expect(c.queue).toEqual({ baseDelayMs: 5, maxDelaySeconds: 1000, qps: 10, burst: 100 });
    expect(c.trainer.image).toMatch(/^ghcr\.io\/whisperops\/trainer:\d+\.\d+\.\d+/);
  });

  it('layers file < environment < flags', () => {
    const file = 'workers: 2\nleaderElection:\n  leaseDurationSeconds: 4\n  renewDeadlineSeconds: 3\n  retryPeriodSeconds: 0.5\ntrainer:\n  image: from-file\n';
    const c = load(
      ['--config', '/etc/op.yaml', '--trainer-image=from-flag', '--leader-elect=false', '--http-bind-address', '127.0.0.1:0'],
      { WHISPEROPS_WORKERS: '3', WHISPEROPS_TRAINER_IMAGE: 'from-env', WHISPEROPS_NAMESPACE: 'ml' },
      { '/etc/op.yaml': file },
    );
    expect(c.workers).toBe(3);
    expect(c.trainer.image).toBe('from-flag');
    expect(c.namespace).toBe('ml');
    expect(c.leaderElection).toMatchObject({ enabled: false, leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 0.5 });
    expect(c.http.bindAddress).toBe('127.0.0.1:0');
  });

  it('has EdgePool defaults: the agent image of this version, a 15 s sync period, no Prometheus, the host guard off', () => {
    const c = load();
    expect(c.agent.image).toMatch(/^ghcr\.io\/whisperops\/edge-agent:\d+\.\d+\.\d+/);
    expect(c.edgePool.syncPeriodSeconds).toBe(15);
    expect(c.prometheus).toEqual({ url: '', loopbackOnly: false, timeoutSeconds: 5 });
  });

  it('reads prometheus.url from the file, environment and flags, and loopbackOnly as a boolean', () => {
    const file = 'prometheus:\n  url: http://prometheus.monitoring.svc:9090\n';
    expect(load(['--config=/c.yaml'], {}, { '/c.yaml': file }).prometheus.url).toBe('http://prometheus.monitoring.svc:9090');
    expect(load([], { WHISPEROPS_PROMETHEUS_URL: 'http://127.0.0.1:9090' }).prometheus.url).toBe('http://127.0.0.1:9090');
    const c = load(['--prometheus-url=http://127.0.0.1:9091', '--prometheus-loopback-only', '--edgepool-sync-period=2']);
    expect(c.prometheus).toMatchObject({ url: 'http://127.0.0.1:9091', loopbackOnly: true });
    expect(c.edgePool.syncPeriodSeconds).toBe(2);
  });

  it('reads the file named by WHISPEROPS_CONFIG', () => {
    expect(load([], { WHISPEROPS_CONFIG: '/c.yaml' }, { '/c.yaml': 'namespace: team-a' }).namespace).toBe('team-a');
  });

  it.each([
    [['--workers=0'], {}, {}, 'workers must be a positive integer, got 0'],
    [['--workers=many'], {}, {}, '--workers: "many" is not a number'],
    [['--bogus=1'], {}, {}, 'unknown flag --bogus'],
    [['stray'], {}, {}, 'unexpected argument "stray"'],
    [[], { WHISPEROPS_LEADER_ELECT: 'maybe' }, {}, 'WHISPEROPS_LEADER_ELECT: "maybe" is not a boolean'],
    [['--leader-election-lease-duration=10'], {}, {}, 'leaderElection: leaseDuration must be greater than renewDeadline'],
    [['--leader-election-lease-duration=2.5'], {}, {}, 'whole number of seconds'],
    [['--trainer-image-pull-policy=Sometimes'], {}, {}, 'trainer.imagePullPolicy must be Always, IfNotPresent or Never'],
    [['--http-bind-address=8080'], {}, {}, 'http.bindAddress must be host:port'],
    [['--trainer-tmp-size-limit=lots'], {}, {}, 'trainer.tmpSizeLimit must be a quantity such as 16Gi (got "lots")'],
    [['--cache-sync-timeout=-1'], {}, {}, 'cacheSyncTimeoutSeconds must be ≥ 0'],
    [['--prometheus-url=http://prom.example:9090', '--prometheus-loopback-only'], {}, {}, 'prometheus.url: host prom.example is outside 127.0.0.0/8'],
    [['--prometheus-url=ftp://127.0.0.1'], {}, {}, 'prometheus.url: ftp: is not http: or https:'],
    [['--edgepool-sync-period=0'], {}, {}, 'edgePool.syncPeriodSeconds must be ≥ 1'],
    [['--agent-image-pull-policy=Sometimes'], {}, {}, 'agent.imagePullPolicy must be Always, IfNotPresent or Never'],
    [['--config=/c.yaml'], {}, { '/c.yaml': 'workerz: 3' }, 'config file: unknown setting "workerz"'],
    [['--config=/c.yaml'], {}, { '/c.yaml': 'queue: 3' }, 'config file: "queue" must be a mapping'],
    [['--config=/c.yaml'], {}, { '/c.yaml': 'workers: "3"' }, 'config file: "workers" must be a number'],
    [['--config=/missing.yaml'], {}, {}, 'ENOENT'],
  ])('refuses %j %j', (argv, env, files, fragment) => {
    expect(problems(() => load(argv, env, files)).join('\n')).toContain(fragment);
  });

  it('watches several namespaces (comma-separated); without POD_NAMESPACE the Lease lives in the first', () => {
    const c = load(['--namespace=speech,clinic']);
    expect(c.namespace).toBe('speech,clinic');
    expect(c.leaderElection.leaseNamespace).toBe('speech');
    expect(load(['--namespace=speech,clinic'], { POD_NAMESPACE: 'whisperops' }).leaderElection.leaseNamespace).toBe('whisperops');
  });

  it('reports every problem at once', () => {
    expect(problems(() => load(['--workers=0', '--queue-qps=0'])).length).toBe(2);
  });

  it('documents every flag with its environment variable', () => {
    const text = usage();
    expect(text).toContain('--leader-election-lease-duration=VALUE');
    expect(text).toContain(envName('leader-election-lease-duration'));
    expect(envName('queue-qps')).toBe('WHISPEROPS_QUEUE_QPS');
  });

  it('defaults are valid', () => {
    expect(() => load()).not.toThrow();
    expect(defaultConfig().http.bindAddress).toBe('0.0.0.0:8080');
  });
});

describe('parseBindAddress', () => {
  it.each([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    [':9090', { host: '0.0.0.0', port: 9090 }],
    ['[::1]:0', { host: '::1', port: 0 }],
    ['localhost', undefined],
    ['a:70000', undefined],
  ])('%s', (text, expected) => {
    expect(parseBindAddress(text)).toEqual(expected);
  });
});
