// The model-set watcher survives a failing onChange: the next check runs, and the content whose
// onChange failed is offered again (not skipped as "unchanged").
import { describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigWatcher } from './config-watcher.js';
import { tempDir } from './testing/speech.js';

describe('ConfigWatcher', () => {
  it('a rejecting onChange goes to onError; later checks still run and retry that content', async () => {
    const file = join(tempDir('watch'), 'model-set.yaml');
    writeFileSync(file, 'a');
    const seen: string[] = [];
    const errors: string[] = [];
    let failures = 1;
    const w = new ConfigWatcher(
      file,
      (text) => {
        seen.push(text);
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a non-Error rejection is part of the fault
        if (failures-- > 0) return Promise.reject('injected');
        return Promise.resolve();
      },
      (err) => errors.push(err.message),
      60_000,
    );
    await expect(w.check()).resolves.toBeUndefined();
    expect(errors).toEqual(['injected']);
    await w.check(); // same content: offered again, since its apply failed
    writeFileSync(file, 'b');
    await w.check();
    await w.check(); // unchanged and applied: not offered again
    expect(seen).toEqual(['a', 'a', 'b']);
    // A throwing (not rejecting) onChange, and an unreadable file, are handled the same way.
    const w2 = new ConfigWatcher(join(tempDir('watch'), 'missing.yaml'), () => { throw new Error('never'); }, (err) => errors.push(err.message), 60_000);
    await expect(w2.check()).resolves.toBeUndefined();
    expect(errors[1]).toMatch(/ENOENT/);
    w.stop();
    w2.stop();
  });
});
