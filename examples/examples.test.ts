// Offline checks of the examples against the CRDs' structural schemas (types, enums, ranges,
// required fields, patterns). CEL rules and the server's exact messages are proven against the
// real API server in test/e2e/crds.e2e.test.ts.
import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { crdPath } from '../api/gen-types.js';
import { KINDS } from '../api/crds.js';

const here = join(process.cwd(), 'examples');
const yamlFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

/** Structural CRD schema → JSON schema that ajv understands (no x-kubernetes-* keywords). */
function toAjv(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toAjv);
  if (!s || typeof s !== 'object') return s;
  const out: Record<string, unknown> = {};
  const src = s as Record<string, unknown>;
  for (const [k, v] of Object.entries(src)) {
    if (k.startsWith('x-kubernetes-') || k === 'default' || k === 'description' || k === 'format') continue;
    out[k] = k === 'enum' || k === 'required' ? v : toAjv(v);
  }
  if (src['x-kubernetes-int-or-string']) out.type = ['integer', 'string'];
  if (src.properties && src.additionalProperties === undefined) out.additionalProperties = false;
  if (out.exclusiveMinimum === true) { out.exclusiveMinimum = out.minimum; delete out.minimum; }
  return out;
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map(KINDS.map((k) => {
  const crd = YAML.parse(readFileSync(crdPath(k.plural), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: { properties: Record<string, unknown> } } }[] };
  };
  const root = crd.spec.versions[0]?.schema.openAPIV3Schema;
  return [k.kind, ajv.compile({ type: 'object', properties: { spec: toAjv(root?.properties.spec) }, required: ['spec'] })];
}));

describe('examples', () => {
  it.each(yamlFiles(here).filter((f) => f !== 'namespace.yaml'))('%s matches its CRD schema', (file) => {
    const obj = YAML.parse(readFileSync(join(here, file), 'utf8')) as { kind: string; spec: unknown };
    const validate = validators.get(obj.kind);
    expect(validate).toBeDefined();
    const ok = validate?.({ spec: obj.spec });
    expect(validate?.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('points at the embedded model by its real manifest digest', () => {
    const obj = YAML.parse(readFileSync(join(here, 'inferencedeployment-clinical-asr.yaml'), 'utf8')) as { spec: { model: { uri: string; sha256: string; version: string } } };
    const modelDir = join(process.cwd(), 'models', 'tiny-whisper-synth');
    const manifest = readFileSync(join(modelDir, 'model-manifest.json'));
    expect(obj.spec.model.sha256).toBe(createHash('sha256').update(manifest).digest('hex'));
    expect(obj.spec.model.version).toBe((JSON.parse(manifest.toString('utf8')) as { version: string }).version);
  });

  it.each(yamlFiles(join(here, 'invalid')))('invalid/%s names the error it must produce and a known kind', (file) => {
    const text = readFileSync(join(here, 'invalid', file), 'utf8');
    expect(text).toMatch(/^# expect: .{8,}\n/);
    const obj = YAML.parse(text) as { kind: string; metadata: { name: string } };
    expect(validators.has(obj.kind)).toBe(true);
    expect(obj.metadata.name).toMatch(/^invalid-/);
  });
});
