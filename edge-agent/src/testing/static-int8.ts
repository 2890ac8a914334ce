// Test support: a static INT8 (QDQ, manifest quantization "int8-static") artifact of the embedded
// model, built by test/fixtures/static_int8_model.py with the trainer's QAT code (activation ranges
// calibrated on general training speech, no training) in the trainer's venv, cached under
// ${WHISPEROPS_CACHE:-~/.cache/whisperops}/fixtures/ by the hash of the code that builds it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { EMBEDDED_MODEL, REPO_ROOT } from './speech.js';

export interface StaticInt8Model {
  dir: string;
  version: string;
  sha256: string;
}

/** The artifact, built on the first call (about 20 s on 2 cores) and cached. */
export function ensureStaticInt8Model(): StaticInt8Model {
  const script = join(REPO_ROOT, 'test', 'fixtures', 'static_int8_model.py');
  const h = createHash('sha256');
  for (const f of [script, join(REPO_ROOT, 'trainer-image', 'whisperops_trainer', 'qat.py'), join(EMBEDDED_MODEL, 'model-manifest.json')]) h.update(readFileSync(f));
  const tag = h.digest('hex').slice(0, 12);
  const version = `tiny-whisper-synth-static-${tag}`;
  const cache = process.env.WHISPEROPS_CACHE ?? join(homedir(), '.cache', 'whisperops');
  const dir = join(cache, 'fixtures', version);
  if (!existsSync(join(dir, 'model-manifest.json'))) {
    const venv = execFileSync('bash', [join(REPO_ROOT, 'scripts', 'setup', 'python.sh'), '--print'], { encoding: 'utf8' }).trim();
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    execFileSync(join(venv, 'bin', 'python'), [script, '--base', EMBEDDED_MODEL, '--out', tmp, '--version', version], {
      env: { ...process.env, PYTHONPATH: join(REPO_ROOT, 'trainer-image'), TOKENIZERS_PARALLELISM: 'false', OMP_NUM_THREADS: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // a concurrent build won the rename
    }
  }
  const manifest = readFileSync(join(dir, 'model-manifest.json'));
  return { dir, version, sha256: createHash('sha256').update(manifest).digest('hex') };
}
