// How GitOps tools judge whisperops objects, with their own code: the gitops-check program
// (test/cluster/modules/gitops-check) runs sigs.k8s.io/cli-utils' kstatus (what Flux and kpt read)
// and the chart's Argo CD health scripts (charts/whisperops/health/<kind>.lua) in gopher-lua, the
// Lua interpreter Argo CD embeds, set up as Argo CD sets it up for a health script from argocd-cm.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { clusterSourceDir, repoRoot } from './config.js';

/** kstatus's statuses. */
export type KStatus = 'InProgress' | 'Failed' | 'Current' | 'Terminating' | 'NotFound' | 'Unknown';
/** Argo CD's health codes. */
export type ArgoHealth = 'Healthy' | 'Progressing' | 'Degraded' | 'Suspended' | 'Missing' | 'Unknown';

export interface GitopsVerdict {
  kind: string;
  name: string;
  kstatus: { status: KStatus; message: string };
  argocd?: { status: ArgoHealth; message: string };
  error?: string;
}

/** The chart's Argo CD health scripts, one `<kind>.lua` per kind. */
export const healthScriptDir = join(repoRoot, 'charts', 'whisperops', 'health');

let cachedBinary: string | undefined;

/** Builds (or finds cached) gitops-check; returns the binary's path. */
export function gitopsCheckBinary(): string {
  if (cachedBinary) return cachedBinary;
  const script = join(clusterSourceDir, 'build', 'build-gitops-check.sh');
  const res = spawnSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (res.status !== 0) throw new Error(`${script} failed with status ${String(res.status)}`);
  const binary = join(res.stdout.trim().split('\n').pop() ?? '', 'gitops-check');
  if (!existsSync(binary)) throw new Error(`${script} printed no bin dir with gitops-check`);
  cachedBinary = binary;
  return binary;
}

/** kstatus and the Argo CD health script of each object, in order. */
export function gitopsVerdicts(objects: readonly object[], luaDir = healthScriptDir): GitopsVerdict[] {
  const res = spawnSync(gitopsCheckBinary(), ['-lua-dir', luaDir], { input: JSON.stringify(objects), encoding: 'utf8', maxBuffer: 64 << 20 });
  if (res.status !== 0) throw new Error(`gitops-check failed (${String(res.status)}): ${res.stderr}`);
  const verdicts = JSON.parse(res.stdout) as GitopsVerdict[];
  const broken = verdicts.filter((v) => v.error !== undefined);
  if (broken.length > 0) throw new Error(`gitops-check: ${broken.map((v) => `${v.kind}/${v.name}: ${v.error ?? ''}`).join('; ')}`);
  return verdicts;
}
