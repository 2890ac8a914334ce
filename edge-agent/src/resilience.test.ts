// The process-wide net, in a real Node process: without it an unhandled rejection ends the process
// (Node's default); with it the rejection is logged and counted and the process keeps running.
import { describe, expect, it, jest } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './testing/speech.js';

jest.setTimeout(60_000);

function run(guarded: boolean): { status: number | null; stdout: string } {
  const code = `
    import { pino } from 'pino';
    import { guardUnhandledRejections } from './edge-agent/src/resilience.ts';
    let n = 0;
    if (${guarded}) guardUnhandledRejections(pino({ level: 'silent' }), () => n++);
    void Promise.reject(new Error('injected'));
    setTimeout(() => { console.log('alive, counted ' + n); }, 300);
  `;
  const r = spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), ['--input-type=module', '--eval', code], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 50_000 });
  return { status: r.status, stdout: r.stdout };
}

describe('guardUnhandledRejections', () => {
  it('keeps the process alive and counts the rejection; without it the process dies', () => {
    const bare = run(false);
    expect(bare.status).not.toBe(0);
    expect(bare.stdout).not.toContain('alive');
    const guarded = run(true);
    expect(guarded.status).toBe(0);
    expect(guarded.stdout).toContain('alive, counted 1');
  });
});
