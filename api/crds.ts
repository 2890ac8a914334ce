// The three CustomResourceDefinitions, assembled from the schema modules. `npm run gen:types`
// writes them to crds/*.yaml (the files kubectl, Helm and the API server read) and generates the
// TypeScript types in api/generated/ from those files; api/crds.test.ts fails when either is stale.
import type { Schema } from './schema-dsl.js';
import { obj, str } from './schema-dsl.js';
import { fineTuneJobSpec, fineTuneJobStatus } from './finetunejob-schema.js';
import { edgePoolSpec, edgePoolStatus } from './edgepool-schema.js';
import { inferenceDeploymentSpec, inferenceDeploymentStatus } from './inferencedeployment-schema.js';

export const GROUP = 'whisperops.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
}

interface KindDef {
  kind: string;
  plural: string;
  /** Short names; the first is the documented one. */
  shortNames: string[];
  description: string;
  spec: Schema;
  status: Schema;
  columns: PrinterColumn[];
  scale?: boolean;
}

const ready: PrinterColumn = {
  name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'Ready condition',
};
// Why Ready is what it is (the Reconciling or Stalled reason while converging or stuck): `-o wide`.
const reason: PrinterColumn = {
  name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', description: 'Reason of the Ready condition', priority: 1,
};
const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age' };

export const KINDS: KindDef[] = [
  {
    kind: 'FineTuneJob', plural: 'finetunejobs', shortNames: ['ftj'],
    description: 'FineTuneJob fine-tunes a Whisper-family model on GPU nodes (LoRA, augmentation, curriculum), evaluates it per scenario, exports it to ONNX and compresses it.',
    spec: fineTuneJobSpec(), status: fineTuneJobStatus(),
    columns: [
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Phase of the run' },
      ready,
      reason,
      { name: 'Method', type: 'string', jsonPath: '.spec.method.type', description: 'What is trained' },
      { name: 'Version', type: 'string', jsonPath: '.status.result.version', description: 'Version of the trained model' },
      { name: 'WER', type: 'string', jsonPath: '.status.result.werSummary', description: 'WER per scenario of the trained model' },
      { name: 'Attempts', type: 'integer', jsonPath: '.status.attempts', description: 'Trainer pods started', priority: 1 },
      { name: 'Job', type: 'string', jsonPath: '.status.jobName', description: 'batch/v1 Job', priority: 1 },
      age,
    ],
  },
  {
    kind: 'EdgePool', plural: 'edgepools',
    // `ep` is also core Endpoints' short name, and kubectl resolves it to Endpoints first: `epool` always works.
    shortNames: ['ep', 'epool'],
    description: 'EdgePool runs the whisperops edge agent on a fleet of edge devices (nodes) and scales the agents with the number of concurrent streams.',
    spec: edgePoolSpec(), status: edgePoolStatus(), scale: true,
    columns: [
      { name: 'Mode', type: 'string', jsonPath: '.spec.autoscaling.mode', description: 'Autoscaling mode' },
      { name: 'Desired', type: 'integer', jsonPath: '.status.desiredReplicas', description: 'Agents wanted' },
      { name: 'Agents', type: 'integer', jsonPath: '.status.readyReplicas', description: 'Ready agents' },
      { name: 'Devices', type: 'integer', jsonPath: '.status.eligibleNodes', description: 'Eligible devices' },
      ready,
      reason,
      { name: 'Scaled', type: 'string', jsonPath: '.status.lastScaleReason', description: 'Last scaling reason', priority: 1 },
      age,
    ],
  },
  {
    kind: 'InferenceDeployment', plural: 'inferencedeployments', shortNames: ['infd'],
    description: 'InferenceDeployment serves a model on an EdgePool, canaries new versions with analysis of WER and latency, watches live WER per scenario and retrains when it degrades.',
    spec: inferenceDeploymentSpec(), status: inferenceDeploymentStatus(),
    columns: [
      { name: 'Pool', type: 'string', jsonPath: '.spec.edgePoolRef.name', description: 'EdgePool' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Phase' },
      { name: 'Stable', type: 'string', jsonPath: '.status.stable.version', description: 'Stable model version' },
      { name: 'Candidate', type: 'string', jsonPath: '.status.candidate.version', description: 'Candidate model version' },
      { name: 'Weight', type: 'integer', jsonPath: '.status.candidate.weight', description: 'Candidate traffic percent' },
      { name: 'Step', type: 'integer', jsonPath: '.status.candidate.step', description: 'Canary step index of the candidate (0 = the first step)' },
      { name: 'Verdict', type: 'string', jsonPath: '.status.candidate.lastVerdict', description: 'Last analysis verdict of the candidate' },
      ready,
      reason,
      { name: 'Retrains', type: 'integer', jsonPath: '.status.retrains', description: 'Automatic retrains', priority: 1 },
      age,
    ],
  },
];

export function crdFor(def: KindDef): Record<string, unknown> {
  const root = obj(def.description, {
    apiVersion: str('APIVersion of this object: whisperops.dev/v1alpha1.', { maxLength: 64 }),
    kind: str(`Kind of this object: ${def.kind}.`, { maxLength: 64 }),
    // The API server owns metadata's schema and forbids describing it here.
    metadata: { type: 'object' } as Schema,
    spec: def.spec,
    status: def.status,
  }, { required: ['spec'] });
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${def.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'whisperops', 'app.kubernetes.io/part-of': 'whisperops' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: def.kind, listKind: `${def.kind}List`, plural: def.plural, singular: def.kind.toLowerCase(),
        shortNames: def.shortNames, categories: ['whisperops'],
      },
      scope: 'Namespaced',
      versions: [{
        name: VERSION, served: true, storage: true,
        schema: { openAPIV3Schema: root },
        subresources: {
          status: {},
          ...(def.scale ? { scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' } } : {}),
        },
        additionalPrinterColumns: def.columns,
      }],
    },
  };
}
