// A small vocabulary for writing structural OpenAPI v3 schemas of CustomResourceDefinitions.
// Every helper requires a description, so that `kubectl explain` teaches the whole API, and every
// string, list and map is bounded, so that the API server can estimate the cost of CEL rules.

export interface Rule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema;
  items?: Schema;
  enum?: (string | number | boolean)[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
  'x-kubernetes-validations'?: Rule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-preserve-unknown-fields'?: true;
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
}

type Extra = Partial<Omit<Schema, 'description' | 'type'>>;

export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const SHA256 = '^[a-f0-9]{64}$';
/**
 * The URI schemes the artifact stores implement; a new store adds its scheme here. file:// URIs
 * name a path on the reading machine: `file:///p` or `file://localhost/p`, never another host
 * (`file://host/p` is refused by the API server, the agent and the trainer alike; the cases are in
 * test/fixtures/file-uris.json, which api/file-uri.test.ts and the trainer's pytest both read).
 */
export const ARTIFACT_URI = '^(file://(localhost)?/|(https?|s3)://).+$';

export function str(description: string, extra: Extra = {}): Schema {
  return { type: 'string', description, maxLength: 1024, ...extra };
}

export function enumOf(description: string, values: string[], def?: string): Schema {
  return { type: 'string', description, enum: values, ...(def === undefined ? {} : { default: def }) };
}

export function int(description: string, extra: Extra = {}): Schema {
  return { type: 'integer', description, ...extra };
}

export function num(description: string, extra: Extra = {}): Schema {
  return { type: 'number', description, ...extra };
}

export function bool(description: string, def?: boolean): Schema {
  return { type: 'boolean', description, ...(def === undefined ? {} : { default: def }) };
}

export function obj(
  description: string,
  properties: Record<string, Schema>,
  extra: Extra & { required?: string[]; rules?: Rule[] } = {},
): Schema {
  const { rules, required, ...rest } = extra;
  // The API server checks a default against the schema's rules without defaulting inside it, so an
  // empty default is spelled out with the defaults of the object's fields.
  if (isEmptyObject(rest.default)) rest.default = defaultsOf(properties);
  return {
    type: 'object',
    description,
    properties,
    ...(required && required.length > 0 ? { required } : {}),
    ...rest,
    ...(rules && rules.length > 0 ? { 'x-kubernetes-validations': rules } : {}),
  };
}

function isEmptyObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
}

function defaultsOf(properties: Record<string, Schema>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(properties).filter(([, p]) => p.default !== undefined).map(([n, p]) => [n, p.default]));
}

export function arr(description: string, items: Schema, maxItems: number, extra: Extra = {}): Schema {
  return { type: 'array', description, items, maxItems, ...extra };
}

export function map(description: string, values: Schema, maxProperties = 64): Schema {
  return { type: 'object', description, additionalProperties: values, maxProperties };
}

export function quantity(description: string): Schema {
  return {
    description,
    'x-kubernetes-int-or-string': true,
    pattern: '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$',
  };
}

export function range(description: string, min: number, max: number, def?: { min: number; max: number }): Schema {
  const bound = (what: string) => num(`${what} of the range.`, { minimum: min, maximum: max });
  return obj(description, { min: bound('Lower end'), max: bound('Upper end') }, {
    required: ['min', 'max'],
    rules: [{ rule: 'self.min <= self.max', message: 'min must be less than or equal to max' }],
    ...(def === undefined ? {} : { default: def }),
  });
}
