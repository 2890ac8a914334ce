import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { CHART_CRDS_PATH, crdPath, renderChartCrds, renderCrdYaml, renderTypes, toKubeYaml, TYPES_PATH } from './gen-types.js';
import { crdFor, KINDS } from './crds.js';
import type { Schema } from './schema-dsl.js';

type Walk = (path: string, s: Schema) => void;
function walk(path: string, s: Schema, visit: Walk): void {
  visit(path, s);
  for (const [name, p] of Object.entries(s.properties ?? {})) walk(`${path}.${name}`, p, visit);
  if (s.items) walk(`${path}[]`, s.items, visit);
  if (s.additionalProperties) walk(`${path}{}`, s.additionalProperties, visit);
}

describe('CRDs and generated types', () => {
  it.each(KINDS.map((k) => [k.plural]))('crds/whisperops.dev_%s.yaml is up to date with api/*-schema.ts', (plural) => {
    expect(readFileSync(crdPath(plural), 'utf8')).toBe(renderCrdYaml(plural));
  });

  it('the Helm chart carries the same CRDs', () => {
    expect(readFileSync(CHART_CRDS_PATH, 'utf8')).toBe(renderChartCrds());
  });

  it('api/generated/types.ts is generated from the CRD files on disk', async () => {
    const yamls = KINDS.map((k) => readFileSync(crdPath(k.plural), 'utf8'));
    expect(readFileSync(TYPES_PATH, 'utf8')).toBe(await renderTypes(yamls));
  });

  it.each(KINDS.map((k) => [k.kind, k] as const))('%s: every field has a description, every string, list and map is bounded', (_kind, def) => {
    const problems: string[] = [];
    for (const part of ['spec', 'status'] as const) {
      walk(part, def[part], (path, s) => {
        if (!s.description && !path.endsWith('{}') && !path.endsWith('[]')) problems.push(`${path}: no description`);
        if (s.type === 'string' && s.maxLength === undefined && s.enum === undefined) problems.push(`${path}: unbounded string`);
        if (s.type === 'array' && s.maxItems === undefined) problems.push(`${path}: unbounded list`);
        if (s.type === 'object' && s.additionalProperties && s.maxProperties === undefined) problems.push(`${path}: unbounded map`);
      });
    }
    expect(problems).toEqual([]);
  });

  it.each(KINDS.map((k) => [k.kind, k.plural, k.shortNames] as const))('%s is namespaced, in category whisperops, short names %s', (kind, plural, shortNames) => {
    const crd = YAML.parse(readFileSync(crdPath(plural), 'utf8')) as {
      spec: { scope: string; names: { kind: string; shortNames: string[]; categories: string[] }; versions: { subresources: { status?: object } }[] };
    };
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names.kind).toBe(kind);
    expect(crd.spec.names.shortNames).toEqual(shortNames);
    expect(['ftj', 'ep', 'infd']).toContain(shortNames[0]);
    expect(crd.spec.names.categories).toEqual(['whisperops']);
    expect(crd.spec.versions[0]?.subresources.status).toEqual({});
  });

  describe('read as YAML 1.1 (what kubectl, Helm and the API server parse)', () => {
    type Parsed = { enum?: unknown[]; properties?: Record<string, Parsed>; items?: Parsed; additionalProperties?: Parsed };
    /** Every enum of `schema`, with the enum found at the same place in the parsed CRD. */
    function enums(path: string, schema: Schema, parsed: Parsed | undefined, out: [string, unknown[], unknown][]): void {
      if (schema.enum) out.push([path, schema.enum, parsed?.enum]);
      for (const [name, p] of Object.entries(schema.properties ?? {})) enums(`${path}.${name}`, p, parsed?.properties?.[name], out);
      if (schema.items) enums(`${path}[]`, schema.items, parsed?.items, out);
      if (schema.additionalProperties) enums(`${path}{}`, schema.additionalProperties, parsed?.additionalProperties, out);
    }
    const rootOf = (crd: unknown): Parsed | undefined =>
      (crd as { spec?: { versions?: { schema?: { openAPIV3Schema?: Parsed } }[] } }).spec?.versions?.[0]?.schema?.openAPIV3Schema;

    it.each(KINDS.map((k) => [k.plural, k] as const))('crds/whisperops.dev_%s.yaml: every enum value comes back as the schema\'s string', (plural, def) => {
      const crd: unknown = YAML.parse(readFileSync(crdPath(plural), 'utf8'), { version: '1.1' });
      const found: [string, unknown[], unknown][] = [];
      for (const part of ['spec', 'status'] as const) enums(part, def[part], rootOf(crd)?.properties?.[part], found);
      expect(found.length).toBeGreaterThan(0);
      for (const [path, want, got] of found) expect({ path, enum: got }).toEqual({ path, enum: want });
      // And nothing else changes meaning either: the whole file reads back as the object it was made from.
      expect(crd).toEqual(JSON.parse(JSON.stringify(crdFor(def))));
    });

    it('the chart\'s CRD template reads back the same (template lines left out)', () => {
      const text = readFileSync(CHART_CRDS_PATH, 'utf8').split('\n').filter((l) => !l.includes('{{')).join('\n');
      const docs = YAML.parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS() as { metadata: { name: string }; spec: unknown } | null).filter((d) => d !== null);
      expect(docs.map((d) => d.metadata.name)).toEqual(KINDS.map((k) => `${k.plural}.whisperops.dev`));
      for (const [i, def] of KINDS.entries()) expect(docs[i]?.spec).toEqual(JSON.parse(JSON.stringify(crdFor(def).spec)));
    });

    it('EdgePool autoscaling.mode "off" is quoted (it was written as a YAML 1.1 boolean)', () => {
      expect(readFileSync(crdPath('edgepools'), 'utf8')).toContain('- "off"\n');
    });

    const ambiguous = ['y', 'Y', 'n', 'N', 'yes', 'Yes', 'YES', 'yEs', 'no', 'No', 'NO', 'nO', 'on', 'On', 'ON', 'oN', 'off', 'Off', 'OFF', 'oFf',
      'true', 'True', 'TRUE', 'tRUE', 'false', 'False', 'FALSE', 'fALSE', 'null', 'Null', 'NULL', 'nULL', '~', '', '0o17', '017', '1:20', '2001-12-14', '0x1F', '.inf', '1_000'];
    it.each(ambiguous.map((w) => [w]))('toKubeYaml keeps %j a string for YAML 1.1 and 1.2 readers (as value, enum item and key)', (word) => {
      const value = { enum: [word], default: word, properties: { [word]: { type: 'string' } } };
      const text = toKubeYaml(value);
      expect(YAML.parse(text, { version: '1.1' })).toEqual(value);
      expect(YAML.parse(text, { version: '1.2' })).toEqual(value);
      if (/^[a-z~]+$/i.test(word)) expect(text).toContain(`- "${word}"`);
    });

    it('toKubeYaml leaves ordinary words plain', () => {
      expect(toKubeYaml({ enum: ['builtin', 'external', 'onnx', 'offset', 'yesterday'] })).toBe('enum:\n  - builtin\n  - external\n  - onnx\n  - offset\n  - yesterday\n');
    });
  });
});
