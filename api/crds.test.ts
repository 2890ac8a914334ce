import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { CHART_CRDS_PATH, crdPath, renderChartCrds, renderCrdYaml, renderTypes, TYPES_PATH } from './gen-types.js';
import { KINDS } from './crds.js';
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
});
