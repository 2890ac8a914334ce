// The API server itself enforces the whisperops API: every valid example is accepted, every file in
// examples/invalid/ is rejected with the message it names, defaults and immutability hold, and the
// CRDs teach `kubectl explain`, print their columns and serve the scale subresource.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { applyCrds, CommandError, createTestNamespace, deleteTestNamespace, kubectl } from '../cluster/index.js';

// API server round trips and Helm runs on a shared 2-core machine: jest's 5 s default is too tight.
jest.setTimeout(120_000);

const examples = join(process.cwd(), 'examples');
const yamlFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'namespace.yaml').sort();

let ns = '';

/** The example, moved into the test namespace. */
function inNamespace(path: string): { text: string; obj: { kind: string; metadata: { name: string } } } {
  const obj = YAML.parse(readFileSync(path, 'utf8')) as { kind: string; metadata: { name: string; namespace?: string } };
  obj.metadata.namespace = ns;
  return { text: YAML.stringify(obj), obj };
}

async function rejection(args: string[], input: string): Promise<string> {
  try {
    await kubectl(args, { input });
  } catch (err) {
    if (err instanceof CommandError) return err.stderr;
    throw err;
  }
  throw new Error(`kubectl ${args.join(' ')} was accepted`);
}

const getJson = async <T>(resource: string): Promise<T> => JSON.parse(await kubectl(['get', '-n', ns, resource, '-o', 'json'])) as T;

beforeAll(async () => {
  const crds = await applyCrds();
  expect(crds.sort()).toEqual(['edgepools.whisperops.dev', 'finetunejobs.whisperops.dev', 'inferencedeployments.whisperops.dev']);
  ns = await createTestNamespace('crds');
});

afterAll(async () => {
  if (ns) await deleteTestNamespace(ns);
});

describe('valid examples', () => {
  it.each(yamlFiles(examples))('%s is accepted and stored', async (file) => {
    const { text, obj } = inNamespace(join(examples, file));
    await kubectl(['create', '-f', '-'], { input: text });
    const stored = await getJson<{ metadata: { name: string } }>(`${obj.kind.toLowerCase()}/${obj.metadata.name}`);
    expect(stored.metadata.name).toBe(obj.metadata.name);
  });
});

describe('invalid examples', () => {
  it.each(yamlFiles(join(examples, 'invalid')))('invalid/%s is rejected with the message it names', async (file) => {
    const { text } = inNamespace(join(examples, 'invalid', file));
    const expected = /^# expect: (.+)$/m.exec(readFileSync(join(examples, 'invalid', file), 'utf8'))?.[1];
    expect(expected).toBeDefined();
    const stderr = await rejection(['create', '--dry-run=server', '-f', '-'], text);
    expect(stderr).toContain(expected);
  });
});

describe('defaults', () => {
  it('fills the documented defaults of a minimal FineTuneJob', async () => {
    const minimal = {
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name: 'minimal', namespace: ns },
      spec: { baseModel: { uri: 'file:///models/base' }, dataset: { uri: 'file:///data/m.jsonl' }, output: { uri: 'file:///models/out' }, method: { lora: {} } },
    };
    await kubectl(['create', '-f', '-'], { input: JSON.stringify(minimal) });
    const { spec } = await getJson<{ spec: Record<string, Record<string, unknown>> }>('ftj/minimal');
    expect(spec.method).toEqual({ type: 'lora', lora: { rank: 16, alpha: 32, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] } });
    expect(spec.resources).toEqual({ gpusPerNode: 4, nodes: 1, gpuProducts: ['NVIDIA-A100-SXM4-80GB', 'NVIDIA-A100-SXM4-40GB'] });
    expect(spec.augmentation).toMatchObject({ speedPerturbation: { min: 0.9, max: 1.1 }, noise: { snrDb: { min: 5, max: 15 } } });
    expect(spec.export).toEqual({ onnx: true });
    expect(spec.training).toMatchObject({ batchSize: 16, precision: 'auto', seed: 42 });
    expect(spec.suspend).toBe(false);
  });

  it('fills the documented defaults of a minimal EdgePool and InferenceDeployment', async () => {
    const ep = { apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: 'minimal', namespace: ns }, spec: { nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier' } } };
    const infd = {
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name: 'minimal', namespace: ns },
      spec: { edgePoolRef: { name: 'minimal' }, model: { fineTuneJobRef: { name: 'minimal' } } },
    };
    await kubectl(['create', '-f', '-'], { input: `${JSON.stringify(ep)}\n${JSON.stringify(infd)}` });
    const pool = await getJson<{ spec: Record<string, Record<string, unknown>> }>('epool/minimal');
    expect(pool.spec.agent).toMatchObject({ maxConcurrentStreams: 16, queueLength: 32, port: 8080, executionProviders: ['cpu'] });
    expect(pool.spec.autoscaling).toMatchObject({ mode: 'builtin', minReplicas: 1, maxReplicas: 10, scaleDownStabilizationSeconds: 300, scaleUpStabilizationSeconds: 0 });
    expect(pool.spec.placement).toEqual({ maxAgentsPerDevice: 1 });
    expect(pool.spec.replicas).toBe(1);
    const dep = await getJson<{ spec: Record<string, Record<string, unknown>> }>('infd/minimal');
    expect(dep.spec.rollout).toEqual({
      steps: [{ weight: 10, pauseSeconds: 60 }, { weight: 50, pauseSeconds: 60 }],
      analysis: { intervalSeconds: 60, maxWerIncrease: 0.02, maxP99LatencySeconds: 5, minSamples: 200, failureLimit: 2 },
    });
  });
});

describe('updates', () => {
  it('keeps a FineTuneJob\'s training inputs immutable but lets suspend change', async () => {
    await kubectl(['patch', '-n', ns, 'ftj/finance-lora', '--type=merge', '-p', '{"spec":{"suspend":true,"ttlSecondsAfterFinished":60}}']);
    expect((await getJson<{ spec: { suspend: boolean } }>('ftj/finance-lora')).spec.suspend).toBe(true);
    const base = await rejection(['patch', '-n', ns, 'ftj/finance-lora', '--type=merge', '-p', '{"spec":{"baseModel":{"uri":"file:///models/other"}}}'], '');
    expect(base).toContain('baseModel is immutable');
    const method = await rejection(['patch', '-n', ns, 'ftj/finance-lora', '--type=merge', '-p', '{"spec":{"method":{"lora":{"rank":8}}}}'], '');
    expect(method).toContain('method is immutable');
    const added = await rejection(['patch', '-n', ns, 'ftj/medical-decoder', '--type=merge', '-p', '{"spec":{"curriculum":{"stages":[{"domainFraction":0.5,"epochs":1}]}}}'], '');
    expect(added).toContain('curriculum, image and podMetadata cannot be added or removed after creation');
  });

  it('serves the scale subresource of an EdgePool', async () => {
    await kubectl(['scale', '-n', ns, 'epool/jetson-clinics', '--replicas=5']);
    expect((await getJson<{ spec: { replicas: number } }>('epool/jetson-clinics')).spec.replicas).toBe(5);
    const scale = JSON.parse(await kubectl(['get', '--raw', `/apis/whisperops.dev/v1alpha1/namespaces/${ns}/edgepools/jetson-clinics/scale`])) as { kind: string; spec: { replicas: number } };
    expect(scale).toMatchObject({ kind: 'Scale', spec: { replicas: 5 } });
  });

  it('keeps status out of reach of a spec update (status subresource)', async () => {
    await kubectl(['patch', '-n', ns, 'ftj/minimal', '--type=merge', '-p', '{"status":{"phase":"Succeeded"}}']);
    expect((await getJson<{ status?: { phase?: string } }>('ftj/minimal')).status?.phase).toBeUndefined();
    await kubectl(['patch', '-n', ns, 'ftj/minimal', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Running"}}']);
    expect((await getJson<{ status?: { phase?: string } }>('ftj/minimal')).status?.phase).toBe('Running');
  });
});

describe('discoverability', () => {
  it('teaches kubectl explain', async () => {
    expect(await kubectl(['explain', 'ftj.spec.method.lora.rank'])).toContain('Rank r of the adapters');
    expect(await kubectl(['explain', 'epool.spec.autoscaling.mode'])).toContain('scale subresource');
    expect(await kubectl(['explain', 'infd.spec.rollout.steps'])).toContain('Canary steps');
  });

  it('answers to the short names, where ep loses to core Endpoints as kubectl resolves it', async () => {
    expect(await kubectl(['get', 'ftj,infd,epool', '-n', ns, '-o', 'name'])).toMatch(/edgepool\.whisperops\.dev\/jetson-clinics/);
    const ep = await kubectl(['api-resources', '--api-group=whisperops.dev', '-o', 'wide']);
    expect(ep).toMatch(/^edgepools\s+ep,epool\s/m);
  });

  it('lists all kinds under the whisperops category with their printer columns', async () => {
    const out = await kubectl(['get', 'whisperops', '-n', ns]);
    expect(out).toMatch(/finetunejob\.whisperops\.dev\/finance-lora/);
    expect(out).toMatch(/edgepool\.whisperops\.dev\/jetson-clinics/);
    expect(out).toMatch(/inferencedeployment\.whisperops\.dev\/clinical-asr/);
    expect((await kubectl(['get', 'ftj', '-n', ns])).split('\n')[0]).toMatch(/^NAME\s+PHASE\s+READY\s+METHOD\s+VERSION\s+WER\s+AGE/);
    expect((await kubectl(['get', 'epool', '-n', ns])).split('\n')[0]).toMatch(/^NAME\s+MODE\s+DESIRED\s+AGENTS\s+DEVICES\s+READY\s+AGE/);
    expect((await kubectl(['get', 'infd', '-n', ns])).split('\n')[0]).toMatch(/^NAME\s+POOL\s+PHASE\s+STABLE\s+CANDIDATE\s+WEIGHT\s+STEP\s+VERDICT\s+READY\s+AGE/);
  });
});

describe('enums', () => {
  interface Node { type?: string; enum?: unknown[]; properties?: Record<string, Node>; items?: Node }
  /** Every enum of a schema, with the path to it ('[]' = an array's items). */
  function enums(node: Node, path: string[] = []): { path: string[]; values: unknown[] }[] {
    const found = node.enum ? [{ path, values: node.enum }] : [];
    for (const [k, child] of Object.entries(node.properties ?? {})) found.push(...enums(child, [...path, k]));
    if (node.items) found.push(...enums(node.items, [...path, '[]']));
    return found;
  }
  /** `base` with `value` at `path`; undefined when the path runs through an array the base does not have. */
  function withValue(base: unknown, path: string[], value: unknown): unknown {
    const [head, ...rest] = path;
    if (head === undefined) return value;
    if (head === '[]') {
      if (rest.length === 0) return [value];
      // No element to change: a one-element array with just the enum (no enum'd list item here has required fields).
      if (!Array.isArray(base) || base.length === 0) return [withValue({}, rest, value)];
      const first = withValue(base[0], rest, value);
      return first === undefined ? undefined : [first, ...(base as unknown[]).slice(1)];
    }
    const obj = (typeof base === 'object' && base !== null ? base : {}) as Record<string, unknown>;
    const child = withValue(obj[head], rest, value);
    return child === undefined ? undefined : { ...obj, [head]: child };
  }

  it('accepts every enum value of every CRD (YAML 1.1 words such as off stay strings)', async () => {
    const crdDir = join(process.cwd(), 'crds');
    const bases = new Map<string, Record<string, unknown>>();
    for (const f of yamlFiles(examples)) {
      const doc = YAML.parse(readFileSync(join(examples, f), 'utf8')) as { kind?: string } & Record<string, unknown>;
      if (doc.kind && !bases.has(doc.kind)) bases.set(doc.kind, doc);
    }
    const tried: string[] = [];
    const skipped: string[] = [];
    for (const f of readdirSync(crdDir).filter((x) => x.endsWith('.yaml'))) {
      const crd = YAML.parse(readFileSync(join(crdDir, f), 'utf8')) as {
        spec: { names: { kind: string }; versions: { schema: { openAPIV3Schema: Node } }[] };
      };
      const kind = crd.spec.names.kind;
      const base = bases.get(kind);
      expect(base).toBeDefined();
      const version = crd.spec.versions[0];
      if (!base || !version) continue;
      const specSchema = version.schema.openAPIV3Schema.properties?.spec ?? {};
      for (const { path, values } of enums(specSchema, [])) {
        for (const value of values) {
          const spec = withValue(base.spec, path, value);
          const where = `${kind} spec.${path.join('.')}=${JSON.stringify(value)}`;
          if (spec === undefined) {
            skipped.push(where);
            continue;
          }
          const obj = { ...base, metadata: { name: `enum-${tried.length}`, namespace: ns }, spec };
          // The enum itself must accept the value ("Unsupported value" is the API server's enum refusal);
          // a cross-field rule (e.g. method.lora only with method.type lora) may still refuse the mix.
          const refusal = await rejection(['create', '--dry-run=server', '-o', 'name', '-f', '-'], JSON.stringify(obj)).catch(() => '');
          expect(`${where}: ${refusal}`).not.toMatch(/Unsupported value|supported values/);
          tried.push(where);
        }
      }
    }
    expect(tried).toContain('EdgePool spec.autoscaling.mode="off"');
    expect(tried.length).toBeGreaterThan(10);
    expect(skipped).toEqual([]);
  });
});
