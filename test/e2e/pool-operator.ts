// The operator as the agent-pool e2e suites run it: its own ServiceAccount (operator-rbac.yaml) in the
// test namespace, the e2e Prometheus (loopback only), EdgePools synced every 2 s, the agent image the
// process-backed nodes run. stop() deletes the namespace's EdgePools first (their agents end while the
// operator still runs), then stops the operator and removes its RBAC.
import type { OperatorProcess } from '../../operator/testing/operator-process.js';
import { operatorServiceAccount, startOperator } from '../../operator/testing/operator-process.js';
import { kubectl, prometheusUrl } from '../cluster/index.js';

export interface PoolOperator {
  operator: OperatorProcess;
  stop: () => Promise<void>;
}

export async function startPoolOperator(ns: string, identity: string, leaseName: string): Promise<PoolOperator> {
  const { kubeconfig, cleanup } = await operatorServiceAccount(ns, leaseName);
  const operator = startOperator({
    kubeconfig, namespace: ns, identity, leaseName,
    extra: [`--prometheus-url=${await prometheusUrl()}`, '--prometheus-loopback-only', '--edgepool-sync-period=2', '--agent-image=ghcr.io/whisperops/edge-agent:0.1.0'],
  });
  await operator.waitFor('Caches synced, controllers running', 60_000);
  return {
    operator,
    stop: async () => {
      await kubectl(['delete', 'edgepools', '--all', '-n', ns, '--wait=false']).catch(() => undefined);
      await operator.kill('SIGTERM');
      await cleanup();
    },
  };
}
