// npm run cluster:up [-- --edge-nodes N | --scale] / npm run cluster:down / tsx test/cluster/cli.ts status
//
//   up      builds missing binaries (scripts in test/cluster/build), starts the control plane and the
//           fake nodes, or reuses a healthy cluster that is already running. --json prints the
//           cluster's state as one JSON line on stdout (used by the jest global setup).
//           --edge-nodes more than the running cluster has adds the missing Jetson nodes.
//   down    stops the cluster and removes its state dir. --if-owner jest: only when the jest global
//           setup started it (a cluster started by `cluster:up` survives the e2e run). A cluster
//           that other live test runs registered for (--user-pid) keeps running unless --force.
//   status  prints the state of the running cluster.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { parseArgs } from './cli-args.js';
import { binDir, buildScript, clusterDir } from './config.js';
import { addEdgeNodes, isHealthy, log, readState, startCluster, stopCluster, type ClusterState } from './control-plane.js';
import { liveUsers, lockPathFor, registerUser, releaseUser, withLock } from './session.js';

function ensureBinaries(): void {
  const bin = binDir();
  if (['kube-apiserver', 'kwok', 'helm', 'prometheus', 'versitygw'].every((b) => existsSync(join(bin, b)))) return;
  log(`binaries missing in ${bin}: building them (first build takes tens of minutes)`);
  const t0 = Date.now();
  const res = spawnSync('bash', [buildScript], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (res.status !== 0) throw new Error(`${buildScript} failed with status ${String(res.status)}`);
  log(`binaries built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

function print(state: ClusterState, reused: boolean, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify({ reused, ...state }) + '\n');
    return;
  }
  process.stdout.write(
    [
      `cluster ${reused ? 'already running' : `started in ${state.startSeconds.toFixed(1)} s`} (owner ${state.owner})`,
      `  API server:       ${state.server}`,
      `  admin kubeconfig: ${state.adminKubeconfig}`,
      `  nodes:            2 A100 + ${state.edgeNodes} Jetson (kwok, type=kwok)`,
      ...(state.addons?.processNodes !== undefined
        ? [
            `  process nodes:    ${state.addons.processNodes.nodes.join(', ')} (type=process: pods of the images in ${state.addons.processNodes.imagesFile} run as processes)`,
            `  pod addresses:    ${state.addons.processNodes.podNetwork}: reach a pod at its IP, e.g. ` +
              `curl http://$(kubectl get pod NAME -o jsonpath='{.status.podIP}'):PORT/ (no Services: loopback IPs have no endpoints)`,
          ]
        : []),
      `  logs:             ${join(state.dir, 'logs')}`,
      `  kubectl:          KUBECONFIG=${state.adminKubeconfig} ${join(state.binDir, 'kubectl')} get nodes`,
      ...(state.addons?.prometheus !== undefined
        ? [`  Prometheus:       ${state.addons.prometheus.url} (scrape interval ${state.addons.prometheus.scrapeIntervalSeconds} s)`]
        : []),
      ...(state.addons?.objectStore !== undefined
        ? [
            `  S3 endpoint:      ${state.addons.objectStore.endpoint} (path-style, region ${state.addons.objectStore.region}; ` +
              `credentials in Secret ${state.addons.objectStore.secret.namespace}/${state.addons.objectStore.secret.name} ` +
              `and ${state.addons.objectStore.credentialsFile})`,
            `  embedded model:   ${state.addons.objectStore.embeddedModelUri}`,
          ]
        : []),
      '',
    ].join('\n'),
  );
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  switch (args.command) {
    case 'up': {
      const dir = clusterDir();
      await withLock(lockPathFor(dir), async () => {
        let state = await readState();
        let reused = state !== undefined && (await isHealthy(state));
        if (state !== undefined && reused) {
          if (args.edgeNodes > state.edgeNodes) state = await addEdgeNodes(state, args.edgeNodes);
        } else {
          ensureBinaries();
          state = await startCluster({ edgeNodes: args.edgeNodes, owner: args.owner });
          reused = false;
        }
        if (args.userPid !== undefined) await registerUser(dir, args.userPid);
        print(state, reused, args.json);
      });
      return;
    }
    case 'down': {
      const dir = clusterDir();
      await withLock(lockPathFor(dir), async () => {
        const existing = await readState();
        const users = args.userPid !== undefined ? await releaseUser(dir, args.userPid) : await liveUsers(dir);
        if (args.ifOwner !== undefined && existing !== undefined && existing.owner !== args.ifOwner) {
          log(`leaving the cluster running: it was started by ${existing.owner}, not ${args.ifOwner}`);
          return;
        }
        if (users.length > 0 && !args.force) {
          log(`leaving the cluster running: test runs with pids ${users.join(', ')} still use it (--force stops it anyway)`);
          return;
        }
        const stopped = await stopCluster(dir);
        log(stopped ? `cluster stopped; removed ${dir}` : 'no cluster was running');
      });
      return;
    }
    case 'status': {
      const existing = await readState();
      if (existing === undefined) {
        process.stdout.write('no cluster\n');
        process.exitCode = 1;
        return;
      }
      const healthy = await isHealthy(existing);
      print(existing, true, args.json);
      if (!healthy) {
        process.stdout.write('cluster is NOT healthy (a process died or the API server is not ready)\n');
        process.exitCode = 1;
      }
      return;
    }
    default:
      process.stdout.write('usage: cli.ts up [--edge-nodes N | --scale] [--owner cli|jest] [--user-pid PID] [--json]\n' +
          '       cli.ts down [--if-owner cli|jest] [--user-pid PID] [--force]\n' +
          '       cli.ts status [--json]\n');
      process.exitCode = args.command === 'help' ? 0 : 2;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[cluster] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  if (err instanceof Error && err.cause !== undefined) process.stderr.write(`[cluster] cause: ${inspect(err.cause)}\n`);
  process.exit(1);
});
