// The chart's Argo CD health scripts and their argocd-cm snippet, and the gitops-check program that
// runs them (gopher-lua, as Argo CD) beside kstatus. Real objects from the cluster are judged in
// test/e2e/gitops.e2e.test.ts; here every branch of each script on hand-made statuses.
import { describe, expect, it, jest } from '@jest/globals';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { gitopsVerdicts, healthScriptDir } from './gitops-check.js';

// The first call builds gitops-check (cached afterwards); on a loaded 2-core machine that takes a while.
jest.setTimeout(300_000);

const KINDS = ['FineTuneJob', 'EdgePool', 'InferenceDeployment'] as const;

type Cond = [type: string, status: 'True' | 'False' | 'Unknown', reason?: string];

function obj(kind: string, conditions: Cond[] | undefined, opts: { generation?: number; observed?: number } = {}): object {
  const generation = opts.generation ?? 1;
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind, metadata: { name: 'x', namespace: 'n', generation },
    ...(conditions ? {
      status: {
        observedGeneration: opts.observed ?? generation,
        conditions: conditions.map(([type, status, reason]) => ({ type, status, reason: reason ?? type, message: `${type} is ${status}`, lastTransitionTime: '2026-12-02T00:00:00Z', observedGeneration: generation })),
      },
    } : {}),
  };
}

describe('Argo CD health scripts', () => {
  it('argocd-cm.yaml carries each <kind>.lua verbatim under resource.customizations.health.whisperops.dev_<Kind>', () => {
    const cm = parseYaml(readFileSync(join(healthScriptDir, 'argocd-cm.yaml'), 'utf8')) as { kind: string; metadata: { name: string }; data: Record<string, string> };
    expect(cm).toMatchObject({ kind: 'ConfigMap', metadata: { name: 'argocd-cm' } });
    expect(Object.keys(cm.data).sort()).toEqual(KINDS.map((k) => `resource.customizations.health.whisperops.dev_${k}`).sort());
    for (const k of KINDS) expect(cm.data[`resource.customizations.health.whisperops.dev_${k}`]).toBe(readFileSync(join(healthScriptDir, `${k.toLowerCase()}.lua`), 'utf8'));
  });

  const common: [string, Cond[] | undefined, { generation?: number; observed?: number }, string, string][] = [
    // kstatus cannot tell an object nobody has judged yet from one without conditions: Current. The
    // script waits for the operator's first status (a fraction of a second after creation).
    ['no status yet', undefined, {}, 'Current', 'Progressing'],
    ['status of an older generation', [['Ready', 'True']], { generation: 2, observed: 1 }, 'InProgress', 'Progressing'],
    ['Reconciling', [['Ready', 'False'], ['Reconciling', 'True']], {}, 'InProgress', 'Progressing'],
    ['Stalled', [['Ready', 'False'], ['Stalled', 'True']], {}, 'Failed', 'Degraded'],
    ['Ready', [['Ready', 'True']], {}, 'Current', 'Healthy'],
    ['not Ready, converged', [['Ready', 'False']], {}, 'InProgress', 'Progressing'],
  ];
  it.each(KINDS)('%s: kstatus and the script agree on every state', (kind) => {
    const verdicts = gitopsVerdicts(common.map(([, conds, opts]) => obj(kind, conds, opts)));
    expect(verdicts.map((v) => [v.kstatus.status, v.argocd?.status])).toEqual(common.map(([, , , k, a]) => [k, a]));
    // The script's message names the condition that decided.
    expect(verdicts[3]?.argocd?.message).toBe('Stalled: Stalled is True');
  });

  it('FineTuneJob: Failed → Degraded, Suspended → Suspended, Succeeded (Ready) → Healthy', () => {
    const v = gitopsVerdicts([
      obj('FineTuneJob', [['Ready', 'False', 'BackoffLimitExceeded'], ['Failed', 'True', 'BackoffLimitExceeded'], ['Stalled', 'True', 'BackoffLimitExceeded']]),
      obj('FineTuneJob', [['Ready', 'False', 'Suspended'], ['Suspended', 'True']]),
      obj('FineTuneJob', [['Ready', 'True', 'Succeeded'], ['Succeeded', 'True'], ['Failed', 'False']]),
    ]);
    expect(v.map((x) => [x.kstatus.status, x.argocd?.status])).toEqual([['Failed', 'Degraded'], ['InProgress', 'Suspended'], ['Current', 'Healthy']]);
  });

  it('a script returning an unknown status reads as Unknown, as in Argo CD', () => {
    const dir = join(process.env.TMPDIR ?? '/tmp', `gitops-check-${String(process.pid)}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'edgepool.lua'), 'return { status = "Fine", message = "?" }\n');
    const [v] = gitopsVerdicts([obj('EdgePool', [['Ready', 'True']])], dir);
    expect(v?.argocd).toEqual({ status: 'Unknown', message: 'Lua returned an invalid health status' });
    rmSync(dir, { recursive: true, force: true });
  });

  it('scripts run without the string and os libraries, as argocd-cm scripts do', () => {
    const dir = join(process.env.TMPDIR ?? '/tmp', `gitops-check-str-${String(process.pid)}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'edgepool.lua'), 'return { status = string.upper("x") }\n');
    expect(() => gitopsVerdicts([obj('EdgePool', [['Ready', 'True']])], dir)).toThrow(/string/);
    rmSync(dir, { recursive: true, force: true });
  });
});
