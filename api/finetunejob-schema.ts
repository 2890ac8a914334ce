// FineTuneJob: one fine-tuning run of a Whisper-family model on GPU nodes, with export and compression.
import type { Rule, Schema } from './schema-dsl.js';
import { arr, bool, enumOf, int, map, num, obj, range, SHA256, str } from './schema-dsl.js';
import { conditions, localRef, nodeSelector, observedGeneration, podMetadata, tolerations } from './common-schemas.js';
import { quantity } from './schema-dsl.js';

export const DEFAULT_GPU_PRODUCTS = ['NVIDIA-A100-SXM4-80GB', 'NVIDIA-A100-SXM4-40GB'];
export const DEFAULT_VOICES = ['en-us', 'en-gb', 'en-gb-x-rp', 'en-gb-scotland', 'en-us-nyc', 'en-gb-x-gbclan'];

/**
 * A FineTuneJob URI: the artifact schemes every component reads (file, http(s), s3), plus
 * pvc://<claim>/<path> — a PersistentVolumeClaim of the job's namespace that the operator mounts into
 * the trainer pod (read-only, or read-write when it holds spec.output.uri). Only the trainer reads
 * pvc:// (the edge agents cannot reach a claim), so the shared ARTIFACT_URI does not take it;
 * api/finetunejob-schema.test.ts checks that this stays ARTIFACT_URI plus pvc://.
 */
export const FINETUNEJOB_URI = '^((file://(localhost)?/|(https?|s3)://).+|pvc://[a-z0-9]([-.a-z0-9]*[a-z0-9])?(/.*)?)$';
const SCHEMES = 's3://bucket/key (credentials: spec.artifactCredentials), pvc://claim/path (a PersistentVolumeClaim of this namespace, mounted read-only), https:// or file:// (a path inside the trainer container)';
const uri = (description: string) => str(description, { pattern: FINETUNEJOB_URI, maxLength: 2048 });
const scenarioName = (description: string) => str(description, { maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' });

const immutable = (what: string): Rule[] => [
  { rule: 'self == oldSelf', message: `${what} is immutable: create a new FineTuneJob to train with other settings` },
];

function modelRef(): Schema {
  return obj('The model to start from: a model artifact folder (HF layout + model-manifest.json).', {
    uri: uri(`URI of the model artifact folder (model-manifest.json and the files it lists): ${SCHEMES}. s3 and http(s) artifacts are downloaded and every file is checked against the manifest's sha256.`),
    version: str('Version of the base model, recorded as the parent of the result.', { maxLength: 128 }),
    sha256: str('sha256 of the artifact\'s model-manifest.json; when set, the trainer refuses an artifact that does not match.', { pattern: SHA256, maxLength: 64 }),
  }, { required: ['uri'] });
}

function dataset(): Schema {
  return obj('Training and evaluation data.', {
    uri: uri(`URI of a JSONL manifest of {"audio": path or URI, "text": transcript, "scenario": name} lines (other keys are ignored), or of a folder (ending in /): every *.jsonl manifest under it, recursively — how the edge agents write feedback samples; an empty folder adds no samples. Audio paths are relative to their manifest. ${SCHEMES}; http(s) folders cannot be listed.`),
    scenario: scenarioName('The scenario (domain) this job improves, e.g. medical; used to label synthesized data and to pick the headline WER.'),
    synthesize: obj('Text-to-speech augmentation (espeak-ng) that covers rare domain terms.', {
      corpusUri: uri(`URI of a text corpus, one sentence per line, to synthesize: ${SCHEMES}.`),
      scenario: scenarioName('Scenario label given to the synthesized samples.'),
      voices: arr('espeak-ng voices to speak with (variants +m1…+f5 are added at random).', str('An espeak-ng voice name.', { maxLength: 64 }), 32, { default: DEFAULT_VOICES }),
      wordsPerMinute: range('Speaking rate range in words per minute.', 80, 400, { min: 130, max: 200 }),
      pitch: range('Pitch range (espeak-ng 0–99).', 0, 99, { min: 25, max: 75 }),
      maxUtterances: int('At most this many sentences are synthesized.', { minimum: 1, maximum: 1_000_000, default: 2000 }),
    }, { required: ['corpusUri', 'scenario'] }),
    selection: obj('TF-IDF selection of the samples of the pool most similar to a reference domain text.', {
      referenceUri: uri('URI of the reference domain text (same schemes as dataset.synthesize.corpusUri).'),
      topK: int('Number of samples kept.', { minimum: 1, maximum: 10_000_000 }),
    }, { required: ['referenceUri', 'topK'] }),
    replay: obj('Replay of general data against catastrophic forgetting.', {
      uri: uri('URI of a general-speech JSONL manifest (or a folder of them, ending in /), or a text corpus to synthesize (same schemes as dataset.uri).'),
      fraction: num('Fraction of each training batch drawn from general data.', { minimum: 0, maximum: 0.9, default: 0.2 }),
    }, { required: ['uri'] }),
    evaluation: arr('Held-out sets, one per scenario; "general" is the regression check against forgetting.', obj('An evaluation set.', {
      scenario: scenarioName('Scenario the set measures.'),
      uri: uri('URI of a JSONL manifest or a folder of them (ending in /), or a text corpus to synthesize with voices not used for training (same schemes as dataset.uri).'),
    }, { required: ['scenario', 'uri'] }), 16, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['scenario'] }),
  }, {
    rules: [{ rule: 'has(self.uri) || has(self.synthesize)', message: 'dataset needs a manifest uri, synthesize, or both' }],
  });
}

function augmentation(): Schema {
  return obj('Data augmentation applied while training.', {
    speedPerturbation: range('Speed factor range; {min: 1, max: 1} turns it off.', 0.5, 2.0, { min: 0.9, max: 1.1 }),
    noise: obj('Background noise mixed in at a random signal-to-noise ratio.', {
      snrDb: range('Signal-to-noise ratio range in dB.', -10, 60, { min: 5, max: 15 }),
      probability: num('Probability that a sample gets noise; 0 turns it off.', { minimum: 0, maximum: 1, default: 0.5 }),
      sourceUri: uri('URI of a folder of noise recordings (.wav, .flac, .ogg, recursively): s3://, pvc:// or file:// (http(s) folders cannot be listed); white and pink noise are used when absent.'),
    }, { default: {} }),
    specAugment: obj('SpecAugment masks on the log-mel features.', {
      maskTimeProb: num('Probability of masking each time step (Whisper: mask_time_prob).', { minimum: 0, maximum: 1, default: 0.05 }),
      maskTimeLength: int('Length of each time mask in frames.', { minimum: 1, maximum: 1000, default: 10 }),
      maskFeatureProb: num('Probability of masking each feature bin (mask_feature_prob); 0 turns it off.', { minimum: 0, maximum: 1, default: 0 }),
      maskFeatureLength: int('Length of each feature mask in bins.', { minimum: 1, maximum: 128, default: 10 }),
    }, { default: {} }),
  }, { default: {}, 'x-kubernetes-validations': immutable('augmentation') });
}

function curriculum(): Schema {
  return obj('Curriculum: stages trained in order, each with its share of in-domain data.', {
    stages: arr('The stages, in order.', obj('A curriculum stage.', {
      name: str('Name of the stage, for logs.', { maxLength: 63 }),
      domainFraction: num('Fraction of in-domain samples in this stage (the rest is replay).', { minimum: 0, maximum: 1 }),
      epochs: num('Epochs of this stage.', { minimum: 0.01, maximum: 1000 }),
    }, { required: ['domainFraction', 'epochs'] }), 8, { minItems: 1 }),
  }, { required: ['stages'], 'x-kubernetes-validations': immutable('curriculum') });
}

function method(): Schema {
  return obj('What is trained.', {
    type: enumOf('lora: low-rank adapters (peft), merged into the model at export; freezeEncoder: the decoder only; full: every weight.', ['lora', 'freezeEncoder', 'full'], 'lora'),
    lora: obj('LoRA settings (type lora only).', {
      rank: int('Rank r of the adapters.', { minimum: 1, maximum: 256, default: 16 }),
      alpha: int('Scaling alpha (effective scale alpha/r).', { minimum: 1, maximum: 1024, default: 32 }),
      dropout: num('Dropout on the adapter input.', { minimum: 0, maximum: 0.9, default: 0.05 }),
      targetModules: arr('Module names that get adapters.', str('A module name, e.g. q_proj.', { maxLength: 128 }), 16, {
        minItems: 1, default: ['q_proj', 'v_proj'],
      }),
    }),
  }, {
    default: {},
    'x-kubernetes-validations': [
      ...immutable('method'),
      { rule: "!has(self.lora) || self.type == 'lora'", message: 'method.lora is only allowed with method.type lora', fieldPath: '.lora' },
    ],
  });
}

function training(): Schema {
  return obj('Optimisation settings.', {
    epochs: num('Epochs over the training set (ignored where curriculum stages set their own).', { minimum: 0.01, maximum: 1000, default: 1 }),
    maxSteps: int('Stop after this many optimizer steps, whatever the epochs say.', { minimum: 1, maximum: 100_000_000 }),
    learningRate: num('Peak learning rate; the default depends on the method (lora 1e-3, freezeEncoder 1e-4, full 1e-5).', { minimum: 0, maximum: 1, exclusiveMinimum: true }),
    batchSize: int('Samples per optimizer step per GPU (or per process on CPU).', { minimum: 1, maximum: 4096, default: 16 }),
    gradientAccumulationSteps: int('Micro-batches accumulated per optimizer step.', { minimum: 1, maximum: 1024, default: 1 }),
    precision: enumOf('Numeric precision; auto is bf16 on GPUs that support it and fp32 on CPU.', ['auto', 'bf16', 'fp16', 'fp32'], 'auto'),
    seed: int('Random seed, for reproducible runs.', { minimum: 0, maximum: 2_147_483_647, default: 42 }),
    baseInterpolation: num('Weight-space interpolation with the base model after training (WiSE-FT): the result is base + α·(fine-tuned − base); 1 keeps the fine-tuned weights, lower values trade domain gain for less forgetting.', { minimum: 0, maximum: 1, exclusiveMinimum: true, default: 1 }),
  }, { default: {}, 'x-kubernetes-validations': immutable('training') });
}

function resourcesSpec(): Schema {
  return obj('Where and on what the training pods run.', {
    gpusPerNode: int('GPUs per pod (one pod per node); 0 trains on CPU.', { minimum: 0, maximum: 16, default: 4 }),
    nodes: int('Number of nodes; above 1 the operator runs an indexed Job with a headless Service for torchrun rendezvous.', { minimum: 1, maximum: 64, default: 1 }),
    gpuProducts: arr('Accepted values of the node label nvidia.com/gpu.product.', str('A GPU product label value.', { maxLength: 63 }), 16, {
      minItems: 1, default: DEFAULT_GPU_PRODUCTS,
    }),
    cpu: quantity('CPU request and limit per pod.'),
    memory: quantity('Memory request and limit per pod.'),
    nodeSelector: nodeSelector('Extra node labels the pods require.'),
    tolerations: tolerations(),
    priorityClassName: str('PriorityClass of the training pods.', { maxLength: 253 }),
  }, { default: {}, 'x-kubernetes-validations': immutable('resources') });
}

function exportSpec(): Schema {
  return obj('Export and compression of the trained model.', {
    onnx: bool('Export to ONNX (encoder_model.onnx and decoder_model_merged.onnx, the optimum / transformers.js layout).', true),
    quantization: enumOf('Compression of the ONNX model: int8 (dynamic quantization, *_quantized.onnx), fp16 or none. Default int8 when onnx is on.', ['int8', 'fp16', 'none']),
    maxWerIncrease: num('Quality gate: the export fails if the compressed model\'s WER exceeds the fp32 model\'s by more than this (absolute, 0.02 = 2 points). Default 0.02.', { minimum: 0, maximum: 1 }),
  }, {
    default: {},
    'x-kubernetes-validations': [
      ...immutable('export'),
      { rule: "self.onnx || !has(self.quantization) || self.quantization == 'none'", message: 'export.quantization requires export.onnx: true', fieldPath: '.quantization' },
      { rule: 'self.onnx || !has(self.maxWerIncrease)', message: 'export.maxWerIncrease (the quantization quality gate) requires export.onnx: true', fieldPath: '.maxWerIncrease' },
    ],
  });
}

function compression(): Schema {
  const layers = (what: string) => int(`${what} layers of the student; each is initialised from a teacher layer, spread evenly from first to last (e.g. 2 of 4: layers 0 and 3). Default: the teacher's count.`, { minimum: 1, maximum: 64 });
  return obj('Model compression beyond post-training quantization (export.quantization): a distilled student, structured attention-head pruning, quantization-aware training, a speaker-role head. Each is measured (parameters before and after, WER) in status.result.compression and gated like INT8: a compressed model whose WER exceeds the uncompressed model\'s by more than export.maxWerIncrease in any scenario is not published.', {
    distillation: obj('Knowledge distillation: a smaller student, initialised from the teacher\'s layers, trained on loss = klWeight · T² · KL(teacher ‖ student) on logits softened at temperature T + ceWeight · cross-entropy on the labels (+ hiddenWeight · the hidden-state term). The student is the published model (ONNX fp32/INT8 + manifest, served by the agent unchanged). With headPruning and no layer or width change, the student is the head-pruned model and distillation is its recovery fine-tune.', {
      teacherUri: uri(`URI of the teacher model artifact (same layout as baseModel.uri): ${SCHEMES}. Default: the base model. The student is always initialised from the base model.`),
      encoderLayers: layers('Encoder'),
      decoderLayers: layers('Decoder'),
      ffnDim: int('Feed-forward width of the student (encoder and decoder); the neurons kept are the teacher\'s with the largest weight norms. Default: the teacher\'s width.', { minimum: 8, maximum: 65536 }),
      temperature: num('Softmax temperature T of the soft targets.', { minimum: 0.5, maximum: 20, default: 2 }),
      klWeight: num('Weight of the KL term (soft targets).', { minimum: 0, maximum: 1, default: 0.5 }),
      ceWeight: num('Weight of the cross-entropy term (labels).', { minimum: 0, maximum: 1, default: 0.5 }),
      hiddenWeight: num('Weight of an intermediate-layer term added to the loss: each student layer\'s output (encoder and decoder) against the teacher\'s hidden state that the next student layer\'s teacher layer takes as input (so a student layer learns the work of the teacher layers it replaces; the last against the teacher\'s final output), as squared error over the teacher\'s energy (encoder: every frame; decoder: label positions), averaged over the layers. Needs a teacher of the student\'s width (d_model). 0: logits only.', { minimum: 0, maximum: 10, default: 0 }),
    }, {
      rules: [
        { rule: 'self.klWeight + self.ceWeight > 0.0', message: 'compression.distillation needs klWeight or ceWeight above 0' },
      ],
    }),
    headPruning: obj('Structured attention-head pruning of encoder self-attention, decoder self-attention and cross-attention: head importance measured on training data (|gradient × head mask|, or greedy ablation by the loss), the least important fraction of all heads removed from the projection matrices (smaller q/k/v/out matrices, not masks), then the normal training pass as recovery fine-tune. The per-layer layout is recorded in config.json (whisperops_attention_heads); the edge agent sizes each decoder layer\'s key/value cache from it.', {
      fraction: num('Fraction of all attention heads (every layer of the three kinds together) removed; every attention block keeps at least one head.', { minimum: 0, maximum: 0.9, exclusiveMinimum: true, default: 0.4 }),
      importanceSamples: int('Training utterances the importance is measured on.', { minimum: 1, maximum: 100_000, default: 64 }),
      selection: enumOf('How the heads to remove are chosen on those utterances. gradient: one backward pass, |gradient × head mask| per head normalised per layer, the lowest removed together (cheap). ablation: greedy elimination — each round masks every remaining head alone, measures the loss without it and removes the 4 whose absence raises the loss least, until the fraction is reached (about (heads − removed/2) × removed / 4 loss evaluations of the utterances; it sees what earlier removals did, which the one-pass estimate cannot).', ['gradient', 'ablation'], 'gradient'),
      kindWeights: obj('Weight of each kind of attention in the choice: a head\'s score (normalised importance, or its loss rise under ablation) is multiplied by its kind\'s weight, so a larger weight keeps that kind\'s heads unless they matter clearly less. Removing a decoder self-attention head saves almost no time (a decoder step costs per-node overhead, not FLOPs); an encoder head saves its share of 500 × 500 attention scores and 500-frame projections per window, a cross-attention head its 500-frame key/value projection.', {
        encoder: num('Encoder self-attention.', { minimum: 0.01, maximum: 100, default: 1 }),
        decoder: num('Decoder self-attention.', { minimum: 0.01, maximum: 100, default: 2 }),
        cross: num('Decoder cross-attention.', { minimum: 0.01, maximum: 100, default: 1 }),
      }),
    }),
    quantizationAware: obj('Quantization-aware training: fake quantization during fine-tuning, exported as a static INT8 ONNX model (QDQ, fixed scales) instead of post-training dynamic INT8.', {
      calibrationSamples: int('Training utterances used to calibrate the activation ranges before training.', { minimum: 1, maximum: 100_000, default: 32 }),
    }),
    speakerRole: obj('Speaker-role head: a classifier on the mean-pooled encoder output, trained jointly with ASR and exported beside the ASR graphs.', {
      roles: arr('The roles, e.g. clinician, patient.', scenarioName('A role name.'), 16, { minItems: 2, 'x-kubernetes-list-type': 'set' }),
      voices: arr('Role of each synthesized voice (dataset.synthesize); manifest samples carry their own "role" key.', obj('A voice and its role.', {
        voice: str('An espeak-ng voice name.', { maxLength: 64 }),
        role: scenarioName('One of roles.'),
      }, { required: ['voice', 'role'] }), 64, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['voice'] }),
      lossWeight: num('Weight of the role cross-entropy beside the ASR loss.', { minimum: 0, maximum: 10, exclusiveMinimum: true, default: 0.3 }),
    }, {
      required: ['roles'],
      rules: [{ rule: '!has(self.voices) || self.voices.all(v, v.role in self.roles)', message: 'compression.speakerRole.voices: every role must be one of roles', fieldPath: '.voices' }],
    }),
  }, {
    'x-kubernetes-validations': [
      ...immutable('compression'),
      {
        rule: '!has(self.distillation) || has(self.distillation.encoderLayers) || has(self.distillation.decoderLayers) || has(self.distillation.ffnDim) || has(self.headPruning)',
        message: 'compression.distillation needs a smaller student: encoderLayers, decoderLayers, ffnDim or headPruning',
      },
    ],
  });
}

/** CEL rules that tie compression to method and export (on a spec or a retraining template). */
const COMPRESSION_RULES: Rule[] = [
  {
    rule: "!has(self.compression) || !has(self.compression.distillation) || !has(self.method) || self.method.type != 'lora'",
    message: 'compression.distillation trains the whole student: method.type must be full or freezeEncoder, not lora',
  },
  {
    rule: '!has(self.compression) || !has(self.compression.distillation) || !has(self.training) || self.training.baseInterpolation == 1.0',
    message: 'compression.distillation changes the architecture: training.baseInterpolation (WiSE-FT with the base) must be 1',
  },
  {
    rule: '!has(self.compression) || !has(self.compression.headPruning) || !has(self.training) || self.training.baseInterpolation == 1.0',
    message: 'compression.headPruning changes the architecture: training.baseInterpolation (WiSE-FT with the base) must be 1',
  },
  {
    rule: "!has(self.compression) || !has(self.compression.quantizationAware) || !has(self.export) || (self.export.onnx && (!has(self.export.quantization) || self.export.quantization == 'int8'))",
    message: 'compression.quantizationAware exports static INT8: it requires export.onnx: true and export.quantization int8',
  },
  {
    rule: "!has(self.compression) || !has(self.compression.quantizationAware) || !has(self.method) || self.method.type != 'lora'",
    message: 'compression.quantizationAware fake-quantizes the model\'s own weights: method.type must be full or freezeEncoder, not lora',
  },
];

/** Properties shared by a FineTuneJob's spec and an InferenceDeployment's retraining template. */
function trainingProperties(): Record<string, Schema> {
  return {
    dataset: { ...dataset(), 'x-kubernetes-validations': [...(dataset()['x-kubernetes-validations'] ?? []), ...immutable('dataset')] },
    augmentation: augmentation(),
    curriculum: curriculum(),
    method: method(),
    training: training(),
    resources: resourcesSpec(),
    export: exportSpec(),
    compression: compression(),
    output: obj('Where the model artifact is written.', {
      uri: uri('URI of the folder the artifact is written to: s3://bucket/prefix/ (every file uploaded, model-manifest.json last), pvc://claim/path (the claim is mounted read-write; written to a temporary folder, then renamed) or file:// (a path inside the trainer container). http(s) is read-only. Before training, the trainer writes and deletes a probe object here; if it cannot, the run fails at once (exit 2, not retried).'),
    }, { required: ['uri'], 'x-kubernetes-validations': immutable('output') }),
    artifactCredentials: obj('Credentials the trainer uses for object stores: to read s3:// base models and data and to write an s3:// output.', {
      secretRef: localRef('A Secret in the job\'s namespace holding standard AWS environment keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL for an S3-compatible store, addressed path-style), given to the trainer container as environment variables (envFrom). The kubelet reads it; the operator does not. Without it the trainer uses the pod\'s own AWS identity (web identity, instance role), if any.'),
    }, { required: ['secretRef'], 'x-kubernetes-validations': immutable('artifactCredentials') }),
    image: str('Trainer image; defaults to the operator\'s configured trainer image.', { maxLength: 512, 'x-kubernetes-validations': immutable('image') }),
    backoffLimit: int('Retries of a failed trainer before the job is Failed (invalid input is never retried).', { minimum: 0, maximum: 20, default: 2 }),
    activeDeadlineSeconds: int('Time limit of the whole job, retries included.', { minimum: 1, format: 'int64' }),
    ttlSecondsAfterFinished: int('Delete the finished Job (not this FineTuneJob) after this many seconds.', { minimum: 0, maximum: 31_536_000 }),
    podMetadata: { ...podMetadata(), 'x-kubernetes-validations': immutable('podMetadata') },
  };
}

export function fineTuneJobSpec(): Schema {
  return obj('Desired state: one fine-tuning run.', {
    baseModel: { ...modelRef(), 'x-kubernetes-validations': immutable('baseModel') },
    ...trainingProperties(),
    suspend: bool('Suspend the run: its Job is suspended (pods deleted) until this is false again.', false),
  }, {
    required: ['baseModel', 'dataset', 'output'],
    rules: [
      {
        rule: 'has(self.curriculum) == has(oldSelf.curriculum) && has(self.image) == has(oldSelf.image) && has(self.podMetadata) == has(oldSelf.podMetadata)',
        message: 'curriculum, image and podMetadata cannot be added or removed after creation',
      },
      {
        rule: 'has(self.artifactCredentials) == has(oldSelf.artifactCredentials)',
        message: 'artifactCredentials cannot be added or removed after creation',
      },
      {
        rule: 'has(self.compression) == has(oldSelf.compression)',
        message: 'compression cannot be added or removed after creation',
      },
      ...COMPRESSION_RULES,
    ],
  });
}

/** A FineTuneJob spec without baseModel: the operator fills in the current stable model when it retrains. */
export function fineTuneJobTemplate(): Schema {
  return obj('FineTuneJob spec used for automatic retraining; baseModel is the deployment\'s current stable model and output.uri gets a per-run suffix.', {
    ...trainingProperties(),
    output: obj('Where retrained artifacts are written: a folder per run under this URI.', {
      uri: uri('Base URI; each run writes to <uri>/<FineTuneJob name>.'),
    }, { required: ['uri'] }),
  }, { required: ['dataset', 'output'], rules: COMPRESSION_RULES });
}

export function fineTuneJobStatus(): Schema {
  const wer = (what: string) => map(what, num('Word error rate, 0 = perfect.', { minimum: 0 }), 32);
  return obj('Observed state, rebuilt from the Job and its pods at every reconcile.', {
    observedGeneration: observedGeneration(),
    phase: enumOf('Pending, Running, Succeeded, Failed or Suspended.', ['Pending', 'Running', 'Succeeded', 'Failed', 'Suspended']),
    conditions: conditions(),
    jobName: str('Name of the batch/v1 Job that runs the trainer.', { maxLength: 253 }),
    attempts: int('Trainer pods started so far.', { minimum: 0 }),
    failedAttempts: int('Trainer pods that failed.', { minimum: 0 }),
    startTime: str('When the Job started.', { format: 'date-time', maxLength: 64 }),
    completionTime: str('When the run succeeded or failed.', { format: 'date-time', maxLength: 64 }),
    result: obj('What the trainer reported (its termination message).', {
      modelUri: str('URI of the model artifact.', { maxLength: 2048 }),
      version: str('Version of the new model.', { maxLength: 128 }),
      parentVersion: str('Version of the base model.', { maxLength: 128 }),
      sha256: str('sha256 of the artifact\'s model-manifest.json.', { pattern: SHA256, maxLength: 64 }),
      wer: wer('WER of the new model per scenario.'),
      baseWer: wer('WER of the base model per scenario, on the same sets.'),
      werSummary: str('WER per scenario as text, for printer columns.', { maxLength: 512 }),
      trainableParams: int('Parameters trained.', { minimum: 0, format: 'int64' }),
      totalParams: int('Parameters of the model.', { minimum: 0, format: 'int64' }),
      quantization: enumOf('Compression of the exported model: int8 (post-training dynamic INT8), int8-static (quantization-aware training, static INT8 QDQ with fixed scales), fp16 or none.', ['int8', 'int8-static', 'fp16', 'none']),
      durationSeconds: num('Training wall time.', { minimum: 0 }),
      compression: obj('What spec.compression did, measured.', {
        techniques: arr('The techniques applied, in order.', enumOf('A technique.', ['distillation', 'headPruning', 'quantizationAware', 'speakerRole']), 4),
        paramsBefore: int('Parameters of the uncompressed model (the base, or the teacher).', { minimum: 0, format: 'int64' }),
        paramsAfter: int('Parameters of the published model.', { minimum: 0, format: 'int64' }),
        headsBefore: int('Attention heads before pruning.', { minimum: 0 }),
        headsAfter: int('Attention heads after pruning.', { minimum: 0 }),
        referenceWer: wer('WER of the uncompressed reference model per scenario (the teacher for distillation), on the same sets.'),
        roleAccuracy: num('Speaker-role accuracy on the held-out set.', { minimum: 0, maximum: 1 }),
        werInt8Static: wer('quantizationAware: WER of the published static INT8 model per scenario (ONNX, greedy).'),
        werInt8Dynamic: wer('quantizationAware: WER of post-training dynamic INT8 of the same fp32 model per scenario, for comparison (not published).'),
      }),
    }, { required: ['modelUri', 'version', 'sha256'] }),
  });
}
