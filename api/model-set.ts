// The model set of an EdgePool: which models its agents serve. The operator writes it into a
// ConfigMap (key `model-set.yaml` or `model-set.json`), the agent reads and hot-reloads it.
// Defined once here — the TypeScript types, the JSON schema (api/model-set.schema.json is generated
// from `modelSetSchema`, and a unit test keeps the two equal) and the validator that both use.
// Regenerate the JSON after a change: npx tsx -e "import {modelSetSchema as s} from './api/model-set.ts'; import {writeFileSync as w} from 'node:fs'; w('api/model-set.schema.json', JSON.stringify(s, null, 2) + '\\n')"
import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';

export const MODEL_SET_API_VERSION = 'whisperops.dev/v1alpha1';
export const MODEL_SET_KIND = 'ModelSet';

/** One immutable model artifact: a folder holding `model-manifest.json` and the files it lists. */
export interface ModelRef {
  /** The artifact's version, as in its manifest; it is the `model_version` label of every metric. */
  version: string;
  /** Where the artifact folder lives: `file:///abs/path`, `http(s)://host/path/` or `s3://bucket/key/`. */
  uri: string;
  /** sha256 (lower-case hex) of the artifact's `model-manifest.json`; the manifest lists the sha256 of every other file. */
  sha256: string;
}

export interface CandidateRef extends ModelRef {
  /** Percentage (0..100) of this deployment's requests routed to the candidate; the rest go to stable. */
  weight: number;
}

/** One InferenceDeployment served on the pool. `name` is the OpenAI `model` request parameter. */
export interface ModelDeployment {
  name: string;
  stable: ModelRef;
  candidate?: CandidateRef;
}

export interface ModelSet {
  apiVersion?: typeof MODEL_SET_API_VERSION;
  kind?: typeof MODEL_SET_KIND;
  /** The EdgePool's name; the `pool` label of every metric. */
  pool: string;
  /** Served when a request names no model; defaults to the first deployment. */
  defaultModel?: string;
  /** Allowed `scenario` values of feedback (bounded label values); others are counted as `other`. */
  scenarios?: string[];
  models: ModelDeployment[];
}

const NAME = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';
const VERSION = '^[A-Za-z0-9][A-Za-z0-9._+-]*$';
const SHA256 = '^[a-f0-9]{64}$';
/** ARTIFACT_URI of api/schema-dsl.ts (the CRDs' pattern): file:///p or file://localhost/p, http(s)://, s3://. */
const URI = '^(file://(localhost)?/|(https?|s3)://).+$';
const SCENARIO = '^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$';

const modelRefProperties = {
  version: {
    type: 'string',
    description: "The artifact's version (model-manifest.json `version`); the model_version metric label.",
    minLength: 1,
    maxLength: 128,
    pattern: VERSION,
  },
  uri: {
    type: 'string',
    description: 'Location of the artifact folder: file:///absolute/path, http(s)://host/path/ or s3://bucket/key/.',
    minLength: 8,
    maxLength: 2048,
    pattern: URI,
  },
  sha256: {
    type: 'string',
    description: "sha256 (lower-case hex) of the artifact's model-manifest.json.",
    pattern: SHA256,
  },
} as const;

/** JSON schema (draft-07) of the model-set file; api/model-set.schema.json is this object, pretty-printed. */
export const modelSetSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://whisperops.dev/schemas/model-set.json',
  title: 'ModelSet',
  description: 'The models an EdgePool serves: one entry per InferenceDeployment, each a stable model and an optional weighted candidate.',
  type: 'object',
  additionalProperties: false,
  required: ['pool', 'models'],
  properties: {
    apiVersion: { type: 'string', const: MODEL_SET_API_VERSION, description: 'Format version.' },
    kind: { type: 'string', const: MODEL_SET_KIND, description: 'Always ModelSet.' },
    pool: {
      type: 'string',
      description: "The EdgePool's name; the pool metric label.",
      minLength: 1,
      maxLength: 63,
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
    },
    defaultModel: {
      type: 'string',
      description: 'Deployment served when a request names no model; defaults to the first.',
      minLength: 1,
      maxLength: 253,
      pattern: NAME,
    },
    scenarios: {
      type: 'array',
      description: 'Allowed feedback scenario values (metric label values); any other is counted as "other".',
      maxItems: 64,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, maxLength: 63, pattern: SCENARIO },
    },
    models: {
      type: 'array',
      description: 'The deployments served by the pool; names are unique.',
      minItems: 0,
      maxItems: 32,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'stable'],
        properties: {
          name: {
            type: 'string',
            description: "The InferenceDeployment's name: the OpenAI `model` parameter and the deployment metric label.",
            minLength: 1,
            maxLength: 253,
            pattern: NAME,
          },
          stable: {
            type: 'object',
            description: 'The model that takes the traffic the candidate does not.',
            additionalProperties: false,
            required: ['version', 'uri', 'sha256'],
            properties: modelRefProperties,
          },
          candidate: {
            type: 'object',
            description: 'A model under canary analysis, taking `weight` percent of the requests.',
            additionalProperties: false,
            required: ['version', 'uri', 'sha256', 'weight'],
            properties: {
              ...modelRefProperties,
              weight: {
                type: 'integer',
                description: "Percentage (0..100) of the deployment's requests routed to the candidate.",
                minimum: 0,
                maximum: 100,
              },
            },
          },
        },
      },
    },
  },
} as const;

export class ModelSetError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ModelSetError';
  }
}

const ajv = new Ajv({ allErrors: true, strict: true });
const validateSchema = ajv.compile(modelSetSchema);

function describeError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '(root)' : e.instancePath;
  const extra = e.keyword === 'additionalProperties' ? ` (${String(e.params.additionalProperty)})` : '';
  return `${where}: ${e.message ?? e.keyword}${extra}`;
}

/** Every problem with `value` as a model set (schema + cross-field rules); empty when valid. */
export function modelSetProblems(value: unknown): string[] {
  if (!validateSchema(value)) {
    return (validateSchema.errors ?? []).map(describeError);
  }
  const set = value as ModelSet;
  const problems: string[] = [];
  const seen = new Set<string>();
  set.models.forEach((m, i) => {
    if (seen.has(m.name)) problems.push(`/models/${i}/name: duplicate deployment name "${m.name}"`);
    seen.add(m.name);
    if (m.candidate && m.candidate.version === m.stable.version && m.candidate.sha256 !== m.stable.sha256) {
      problems.push(`/models/${i}/candidate: version "${m.candidate.version}" equals stable's but sha256 differs`);
    }
  });
  if (set.defaultModel !== undefined && !seen.has(set.defaultModel)) {
    problems.push(`/defaultModel: "${set.defaultModel}" is not one of the models`);
  }
  return problems;
}

export function isModelSet(value: unknown): value is ModelSet {
  return modelSetProblems(value).length === 0;
}

/** Validates a decoded value; throws ModelSetError listing every problem. */
export function validateModelSet(value: unknown): ModelSet {
  const problems = modelSetProblems(value);
  if (problems.length > 0) throw new ModelSetError(`invalid model set: ${problems.join('; ')}`, problems);
  return value as ModelSet;
}

/** Parses a model-set file (JSON or YAML; JSON is YAML) and validates it. */
export function parseModelSet(text: string): ModelSet {
  let value: unknown;
  try {
    value = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new ModelSetError(`model set is not valid JSON/YAML: ${(err as Error).message}`, ['(syntax)'], { cause: err });
  }
  return validateModelSet(value);
}
