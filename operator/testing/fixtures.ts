// FineTuneJobs as the API server returns them (schema defaults filled in), for unit tests.
import type { StoredFineTuneJob } from '../src/finetunejob/desired.js';
import type { TrainerSettings } from '../src/finetunejob/desired.js';
import type { FineTuneJobSpec } from '../../api/generated/types.js';

export const trainer: TrainerSettings = {
  image: 'ghcr.io/whisperops/trainer:0.1.0', imagePullPolicy: 'IfNotPresent', serviceAccountName: '', masterPort: 29500,
};

export function defaultSpec(): FineTuneJobSpec {
  return {
    baseModel: { uri: 'file:///models/tiny-whisper', version: '1.0.0' },
    dataset: { uri: 'file:///data/finance.jsonl', scenario: 'finance' },
    augmentation: {
      speedPerturbation: { min: 0.9, max: 1.1 },
      noise: { snrDb: { min: 5, max: 15 }, probability: 0.5 },
      specAugment: { maskTimeProb: 0.05, maskTimeLength: 10, maskFeatureProb: 0, maskFeatureLength: 10 },
    },
    method: { type: 'lora', lora: { rank: 16, alpha: 32, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] } },
    training: { epochs: 1, batchSize: 16, gradientAccumulationSteps: 1, precision: 'auto', seed: 42, baseInterpolation: 1 },
    resources: { gpusPerNode: 4, nodes: 1, gpuProducts: ['NVIDIA-A100-SXM4-80GB', 'NVIDIA-A100-SXM4-40GB'] },
    export: { onnx: true },
    output: { uri: 'file:///models/out/finance' },
    backoffLimit: 2,
    suspend: false,
  };
}

export function fineTuneJob(spec: Partial<FineTuneJobSpec> = {}, meta: Partial<StoredFineTuneJob['metadata']> = {}): StoredFineTuneJob {
  const base = defaultSpec();
  return {
    apiVersion: 'whisperops.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name: 'finance-lora', namespace: 'ml', uid: '6f1c1a4e-0000-4000-8000-000000000001', generation: 1, resourceVersion: '100', ...meta },
    spec: { ...base, ...spec, resources: { ...base.resources, ...(spec.resources ?? {}) } },
  };
}
