// The operator's version: the npm package version, which the release stamps on the images too.
import { readFileSync } from 'node:fs';

function readVersion(): string {
  if (process.env.WHISPEROPS_VERSION) return process.env.WHISPEROPS_VERSION;
  // operator/src/version.ts from source, dist/operator/src/version.js when compiled.
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'whisperops' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

export const OPERATOR_VERSION = readVersion();
