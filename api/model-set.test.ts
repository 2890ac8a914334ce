import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { modelSetProblems, modelSetSchema, parseModelSet, validateModelSet, ModelSetError } from './model-set.js';

const sha = 'a'.repeat(64);
const good = {
  pool: 'jetson-east',
  models: [
    {
      name: 'whisper-general',
      stable: { version: '1.0.0', uri: 'file:///models/tiny', sha256: sha },
      candidate: { version: '1.1.0', uri: 'https://store.local/m/1.1.0/', sha256: 'b'.repeat(64), weight: 20 },
    },
  ],
};

describe('model set', () => {
  it('api/model-set.schema.json is the generated schema', () => {
    const onDisk: unknown = JSON.parse(readFileSync(new URL('./model-set.schema.json', import.meta.url), 'utf8'));
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(modelSetSchema)));
  });

  it('accepts a valid set in JSON and YAML', () => {
    expect(validateModelSet(good)).toEqual(good);
    const yaml = `pool: p1\nmodels:\n  - name: m\n    stable: {version: v1, uri: "file:///x", sha256: "${sha}"}\n`;
    expect(parseModelSet(yaml).models[0]?.stable.version).toBe('v1');
    expect(parseModelSet(JSON.stringify(good)).pool).toBe('jetson-east');
  });

  it.each([
    ['missing pool', { models: [] }, '(root): must have required property \'pool\''],
    ['bad sha', { pool: 'p', models: [{ name: 'm', stable: { version: 'v', uri: 'file:///x', sha256: 'XYZ' } }] }, '/models/0/stable/sha256'],
    ['bad scheme', { pool: 'p', models: [{ name: 'm', stable: { version: 'v', uri: 'ftp://x/y', sha256: sha } }] }, '/models/0/stable/uri'],
    ['weight > 100', { pool: 'p', models: [{ ...good.models[0], candidate: { ...good.models[0]?.candidate, weight: 101 } }] }, '/models/0/candidate/weight'],
    ['candidate without weight', { pool: 'p', models: [{ name: 'm', stable: good.models[0]?.stable, candidate: good.models[0]?.stable }] }, "/models/0/candidate: must have required property 'weight'"],
    ['unknown field', { ...good, extra: 1 }, 'additional properties (extra)'],
    ['duplicate names', { pool: 'p', models: [good.models[0], good.models[0]] }, 'duplicate deployment name'],
    ['unknown default model', { ...good, defaultModel: 'nope' }, '/defaultModel'],
  ])('rejects %s', (_name, value, problem) => {
    const problems = modelSetProblems(value);
    expect(problems.join('\n')).toContain(problem);
    expect(() => validateModelSet(value)).toThrow(ModelSetError);
  });

  it('reports syntax errors as ModelSetError', () => {
    expect(() => parseModelSet('{ "pool": ')).toThrow(ModelSetError);
  });
});
