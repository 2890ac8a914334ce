// One meaning of file:// URIs across the project (issue 14): the API server's patterns (every kind's
// artifact URI, the FineTuneJob's URIs), the edge agent (the model set it validates, the path its
// file artifact store reads) and the trainer (trainer-image/tests/test_file_uris.py) all read the
// cases of test/fixtures/file-uris.json: `file:///p` and `file://localhost/p` are the local path p,
// `file://host/p` and other host forms are refused.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { FileArtifactStore } from '../edge-agent/src/models/artifact.js';
import { FINETUNEJOB_URI } from './finetunejob-schema.js';
import { modelSetProblems } from './model-set.js';
import { ARTIFACT_URI } from './schema-dsl.js';

interface Case { uri: string; path: string | null }
const { cases } = JSON.parse(readFileSync(new URL('../test/fixtures/file-uris.json', import.meta.url), 'utf8')) as { cases: Case[] };
const crdPatterns = (() => {
  const crds = ['edgepools', 'finetunejobs', 'inferencedeployments'].map((k) => readFileSync(new URL(`../crds/whisperops.dev_${k}.yaml`, import.meta.url), 'utf8')).join('\n');
  return new Set([...crds.matchAll(/pattern: (?:'|")?(\^\(\(?file[^\n]*?)(?:'|")?\n/g)].map((m) => (m[1] ?? '').replace(/''/g, "'")));
})();

describe('file:// URIs mean the same to the API server, the agent and the trainer', () => {
  it('the fixture has accepted and refused cases, and the generated CRDs carry exactly the two patterns tested here', () => {
    expect(cases.filter((c) => c.path === null).length).toBeGreaterThanOrEqual(3);
    expect(cases.filter((c) => c.path !== null).length).toBeGreaterThanOrEqual(3);
    expect([...crdPatterns].sort()).toEqual([ARTIFACT_URI, FINETUNEJOB_URI].sort());
  });

  it.each(cases)('$uri → $path', ({ uri, path }) => {
    const accepted = path !== null;
    // The API server (the CRDs' patterns).
    expect(new RegExp(ARTIFACT_URI).test(uri)).toBe(accepted);
    expect(new RegExp(FINETUNEJOB_URI).test(uri)).toBe(accepted);
    // The agent: the model set it validates, and where its file store reads an accepted one.
    const modelSet = { pool: 'p', models: [{ name: 'm', stable: { version: '1.0.0', uri, sha256: 'a'.repeat(64) } }] };
    const problems = modelSetProblems(modelSet);
    if (accepted) {
      expect(problems).toEqual([]);
      expect(new FileArtifactStore().localDir(new URL(uri))).toBe(path);
    } else {
      expect(problems.join('\n')).toContain('/models/0/stable/uri');
    }
  });
});
