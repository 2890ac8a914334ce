// Test support: real speech from espeak-ng (installed by scripts/setup/debian.sh), written to a temp dir.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../models/artifact.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const EMBEDDED_MODEL = join(REPO_ROOT, 'models', 'tiny-whisper-synth');
export const TRAINING_VOICES = ['en-us', 'en-gb', 'en-gb-x-rp', 'en-us-nyc', 'en-gb-scotland', 'en-gb-x-gbclan'];

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `whisperops-${prefix}-`));
}

/** espeak-ng WAV (22,050 Hz, 16-bit mono) of `text`. */
export function speak(text: string, voice = 'en-us', wpm = 160, pitch = 50): Uint8Array {
  return execFileSync('espeak-ng', ['-v', voice, '-s', String(wpm), '-p', String(pitch), '--stdout', text], { maxBuffer: 64 * 1024 * 1024 });
}

/** Runs sox to convert a WAV; `args` are the output format options (e.g. ['-c', '2', '-r', '44100']). */
export function soxConvert(wav: Uint8Array, args: string[]): Uint8Array {
  const dir = tempDir('sox');
  const inPath = join(dir, 'in.wav');
  const outPath = join(dir, 'out.wav');
  writeFileSync(inPath, wav);
  execFileSync('sox', [inPath, ...args, outPath]);
  return readFileSync(outPath);
}

export function testSentences(): string[] {
  return readFileSync(new URL('../testdata/general-sentences.txt', import.meta.url), 'utf8').trim().split('\n');
}

/**
 * A copy of the embedded model artifact under a new version (files symlinked, a new manifest), so a
 * model set can switch versions. `corrupt` names a file replaced by garbage (its manifest entry kept).
 */
export function derivedArtifact(version: string, opts: { corrupt?: string } = {}): { dir: string; uri: string; sha256: string; version: string } {
  const dir = tempDir(`artifact-${version}`);
  const manifest = JSON.parse(readFileSync(join(EMBEDDED_MODEL, 'model-manifest.json'), 'utf8')) as { version: string; parentVersion: string | null; files: Record<string, unknown> };
  const link = (rel: string): void => {
    const src = join(EMBEDDED_MODEL, rel);
    const dst = join(dir, rel);
    mkdirSync(join(dst, '..'), { recursive: true });
    if (rel === opts.corrupt) writeFileSync(dst, Buffer.concat([readFileSync(src).subarray(0, 1000), Buffer.from('corrupt')]));
    else symlinkSync(src, dst);
  };
  for (const rel of Object.keys(manifest.files)) link(rel);
  manifest.parentVersion = manifest.version;
  manifest.version = version;
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  writeFileSync(join(dir, 'model-manifest.json'), bytes);
  return { dir, uri: `file://${dir}`, sha256: sha256(bytes), version };
}

export function embeddedRef(): { uri: string; sha256: string; version: string } {
  const bytes = readFileSync(join(EMBEDDED_MODEL, 'model-manifest.json'));
  const m = JSON.parse(bytes.toString('utf8')) as { version: string };
  return { uri: `file://${EMBEDDED_MODEL}`, sha256: sha256(bytes), version: m.version };
}

/** Writes `content` the way a ConfigMap volume does: a timestamped folder and an atomic `..data` symlink swap. */
export function writeConfigMap(dir: string, key: string, content: string): string {
  const stamp = `..${Date.now()}_${Math.random().toString(36).slice(2)}`;
  mkdirSync(join(dir, stamp));
  writeFileSync(join(dir, stamp, key), content);
  const tmp = join(dir, '..data_tmp');
  symlinkSync(stamp, tmp);
  execFileSync('mv', ['-T', tmp, join(dir, '..data')]);
  const file = join(dir, key);
  try {
    statSync(file);
  } catch {
    symlinkSync(join('..data', key), file);
  }
  void readdirSync(dir);
  return file;
}
