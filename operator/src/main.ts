// Entry point: read the configuration, build the ports (Kubernetes client, logger, metrics, events),
// wire the FineTuneJob, EdgePool and InferenceDeployment controllers into the manager, serve /healthz, /readyz and /metrics, and stop
// gracefully on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { ConfigError, loadConfig, parseBindAddress, usage } from './config.js';
import type { OperatorConfig } from './config.js';
import { createEdgePoolController } from './edgepool/controller.js';
import { createFineTuneJobController } from './finetunejob/controller.js';
import { createInferenceDeploymentController } from './inferencedeployment/controller.js';
import { loadAccess } from './kube/access.js';
import { HttpKubeClient } from './kube/http-client.js';
import { boundToSignal } from './kube/client.js';
import { createLogger } from './log.js';
import { ApiEventRecorder } from './runtime/events.js';
import { Manager } from './runtime/manager.js';
import { OperatorMetrics } from './runtime/metrics.js';
import { createApp } from './server.js';
import { OPERATOR_VERSION } from './version.js';

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  let config: OperatorConfig;
  try {
    config = loadConfig({ argv, env: process.env, readFile: (p) => readFileSync(p, 'utf8') });
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n\n${usage()}\n`);
    return 2;
  }
  const log = createLogger(config.log.level);
  const access = await loadAccess(config.kubeconfig, process.env);
  const client = new HttpKubeClient(access, { userAgent: `whisperops-operator/${OPERATOR_VERSION}` });
  const metrics = new OperatorMetrics();
  const le = config.leaderElection;
  const events = new ApiEventRecorder(client, 'whisperops.dev/operator', le.identity, log);
  const manager = new Manager({
    client, log, metrics, events,
    leaderElection: le.enabled
      ? {
        namespace: le.leaseNamespace, name: le.leaseName, identity: le.identity,
        leaseDurationMs: le.leaseDurationSeconds * 1000, renewDeadlineMs: le.renewDeadlineSeconds * 1000, retryPeriodMs: le.retryPeriodSeconds * 1000,
      }
      : undefined,
    shutdownTimeoutMs: config.shutdownTimeoutSeconds * 1000,
    cacheSyncTimeoutMs: config.cacheSyncTimeoutSeconds * 1000,
  });
  // Reconcilers write through a client bound to the leader's term: losing the Lease cancels their calls at once.
  const reconcileClient = boundToSignal(client, manager.reconcileSignal);
  // What every controller shares: the ports, the namespace, workers, queue limits and cache timings.
  const common = {
    client: reconcileClient, events, metrics, log,
    namespace: config.namespace,
    workers: config.workers,
    rateLimits: { baseDelayMs: config.queue.baseDelayMs, maxDelayMs: config.queue.maxDelaySeconds * 1000, qps: config.queue.qps, burst: config.queue.burst },
    resyncPeriodMs: config.resyncPeriodSeconds * 1000,
    watchTimeoutSeconds: config.watchTimeoutSeconds,
  };
  const prometheus = { url: config.prometheus.url, loopbackOnly: config.prometheus.loopbackOnly, timeoutMs: config.prometheus.timeoutSeconds * 1000 };
  const ftj = createFineTuneJobController({ ...common, trainer: config.trainer });
  manager.add(ftj.controller, ftj.informers);
  const edgePools = createEdgePoolController({ ...common, agent: config.agent, prometheus, syncPeriodMs: config.edgePool.syncPeriodSeconds * 1000 });
  manager.add(edgePools.controller, edgePools.informers);
  const inferenceDeployments = createInferenceDeploymentController({ ...common, prometheus, syncPeriodMs: config.edgePool.syncPeriodSeconds * 1000 });
  manager.add(inferenceDeployments.controller, inferenceDeployments.informers);

  const bind = parseBindAddress(config.http.bindAddress) ?? { host: '0.0.0.0', port: 8080 };
  const app = createApp({ healthy: () => manager.getState() !== 'stopped', ready: () => manager.ready(), registry: metrics.registry });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(bind.port, bind.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const address = server.address();
  log.info({
    version: OPERATOR_VERSION,
    http: typeof address === 'object' && address ? `${address.address}:${address.port}` : config.http.bindAddress,
    namespace: config.namespace || '(all)',
    workers: config.workers,
    leaderElection: le.enabled ? { lease: `${le.leaseNamespace}/${le.leaseName}`, identity: le.identity, leaseDurationSeconds: le.leaseDurationSeconds, renewDeadlineSeconds: le.renewDeadlineSeconds, retryPeriodSeconds: le.retryPeriodSeconds } : false,
    trainerImage: config.trainer.image,
    agentImage: config.agent.image,
    prometheus: config.prometheus.url || '(none)',
    edgePoolSyncPeriodSeconds: config.edgePool.syncPeriodSeconds,
  }, 'Operator starting');

  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'Signal received');
    void manager.stop(`signal ${signal}`, 0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const code = await manager.run();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await client.close();
  log.flush();
  return code;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`fatal: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
