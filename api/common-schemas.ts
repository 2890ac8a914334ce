// Schema pieces shared by the three kinds: Kubernetes core shapes (condition, toleration, resources)
// written out in full, since a CRD cannot reference another schema.
import type { Schema } from './schema-dsl.js';
import { arr, DNS_LABEL, enumOf, int, map, obj, quantity, str } from './schema-dsl.js';

export function conditions(): Schema {
  const condition = obj(
    'A metav1.Condition: one aspect of the current state of the object.',
    {
      type: str('Type of the condition in CamelCase, e.g. Ready.', {
        maxLength: 316,
        pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
      }),
      status: enumOf('Status of the condition.', ['True', 'False', 'Unknown']),
      observedGeneration: int('The .metadata.generation the condition was set from.', { minimum: 0, format: 'int64' }),
      lastTransitionTime: str('When the condition last changed from one status to another.', {
        format: 'date-time',
        maxLength: 64,
      }),
      reason: str('Programmatic identifier of the reason for the last transition, in CamelCase.', {
        minLength: 1,
        pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
      }),
      message: str('Human-readable message with details about the transition.', { maxLength: 32768 }),
    },
    { required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'] },
  );
  return arr('Latest observations of the object\'s state; "Ready" is the summary that GitOps health checks read.', condition, 16, {
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  });
}

export function observedGeneration(): Schema {
  return int('The .metadata.generation that the status was computed from.', { minimum: 0, format: 'int64' });
}

export function tolerations(): Schema {
  return arr(
    'Tolerations for the pods, as in a PodSpec.',
    obj('A core/v1 Toleration.', {
      key: str('Taint key the toleration applies to; empty matches all keys (with operator Exists).', { maxLength: 316 }),
      operator: enumOf('Relationship between key and value.', ['Exists', 'Equal']),
      value: str('Taint value the toleration matches (operator Equal).', { maxLength: 63 }),
      effect: enumOf('Taint effect to match; empty matches all effects.', ['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
      tolerationSeconds: int('For NoExecute: how long the pod stays bound after the taint appears.', { format: 'int64' }),
    }),
    32,
  );
}

export function resources(description: string): Schema {
  const list = (what: string) => map(`${what} per resource name (cpu, memory, …), as Kubernetes quantities.`, quantity('A quantity.'), 16);
  return obj(description, { requests: list('Requests'), limits: list('Limits') });
}

export function nodeSelector(description: string): Schema {
  return map(description, str('Label value.', { maxLength: 63 }), 32);
}

export function localRef(description: string): Schema {
  return obj(description, { name: str('Name of the object in the same namespace.', { maxLength: 253, pattern: DNS_LABEL }) }, {
    required: ['name'],
  });
}

export function podMetadata(): Schema {
  return obj('Labels and annotations added to the pods the operator creates (e.g. for sidecar injection or cost attribution).', {
    labels: map('Labels added to the pods.', str('Label value.', { maxLength: 63 }), 32),
    annotations: map('Annotations added to the pods.', str('Annotation value.', { maxLength: 8192 }), 32),
  });
}
