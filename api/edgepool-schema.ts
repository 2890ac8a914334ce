// EdgePool: a fleet of edge devices and the inference agents on them.
import type { Schema } from './schema-dsl.js';
import { ARTIFACT_URI, arr, enumOf, int, num, obj, str } from './schema-dsl.js';
import { conditions, localRef, nodeSelector, observedGeneration, podMetadata, resources, tolerations } from './common-schemas.js';

export function edgePoolSpec(): Schema {
  return obj('Desired state: which devices form the pool, and how the agents on them run and scale.', {
    nodeSelector: nodeSelector('Labels that select the pool\'s devices (nodes), e.g. whisperops.dev/device: jetson-agx-xavier.'),
    tolerations: tolerations(),
    agent: obj('The edge agent (inference server) run on each device.', {
      image: str('Edge agent image; defaults to the operator\'s configured agent image.', { maxLength: 512 }),
      resources: resources('CPU and memory of each agent.'),
      maxConcurrentStreams: int('Transcriptions one agent runs at once; more are queued, then refused with 429.', { minimum: 1, maximum: 1024, default: 16 }),
      queueLength: int('Requests one agent queues beyond its concurrent streams.', { minimum: 0, maximum: 4096, default: 32 }),
      threads: int('Inference threads per agent (ONNX Runtime intra-op threads per worker × workers).', { minimum: 1, maximum: 256, default: 4 }),
      executionProviders: arr('ONNX Runtime execution providers in order of preference; cpu is always the fallback.', enumOf('An execution provider.', ['cpu', 'cuda', 'tensorrt']), 3, {
        default: ['cpu'], 'x-kubernetes-list-type': 'set',
      }),
      port: int('HTTP port of the agent.', { minimum: 1024, maximum: 65535, default: 8080 }),
      maxUploadBytes: int('Largest accepted audio upload.', { minimum: 1024, maximum: 1_073_741_824, default: 26_214_400 }),
      podMetadata: podMetadata(),
    }, { default: {} }),
    placement: obj('How agents are placed on devices.', {
      maxAgentsPerDevice: int('Agents one device may run (1 = at most one agent per device).', { minimum: 1, maximum: 16, default: 1 }),
    }, { default: {} }),
    autoscaling: obj('Scaling of the number of agents with the number of concurrent streams.', {
      mode: enumOf('builtin: the operator scales from Prometheus metrics (its decision lives in status); external: spec.replicas is driven through the scale subresource (HPA, KEDA, kubectl scale); off: spec.replicas as written.', ['builtin', 'external', 'off'], 'builtin'),
      minReplicas: int('Fewest agents.', { minimum: 0, maximum: 10_000, default: 1 }),
      maxReplicas: int('Most agents.', { minimum: 1, maximum: 10_000, default: 10 }),
      targetStreamsPerReplica: num('Concurrent streams per agent the scaler aims at.', { minimum: 0.1, maximum: 1024, default: 12 }),
      tolerance: num('Relative change in load ignored (HPA tolerance).', { minimum: 0, maximum: 1, default: 0.1 }),
      scaleUpStabilizationSeconds: int('Scale up to the lowest recommendation of this window.', { minimum: 0, maximum: 3600, default: 0 }),
      scaleDownStabilizationSeconds: int('Scale down to the highest recommendation of this window.', { minimum: 0, maximum: 3600, default: 300 }),
      prometheus: obj('Where the built-in scaler reads load.', {
        url: str('Prometheus base URL; defaults to the operator\'s configured Prometheus.', { maxLength: 2048, pattern: '^https?://.+$' }),
      }),
    }, {
      default: {},
      rules: [{ rule: 'self.minReplicas <= self.maxReplicas', message: 'autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas' }],
    }),
    replicas: int('Number of agents when autoscaling.mode is external or off: the target of the scale subresource.', { minimum: 0, maximum: 10_000, default: 1 }),
    datasetStore: obj('Where feedback turns recent request audio into labelled training samples (off when absent). Each agent keeps request audio for retentionSeconds; a feedback call (POST /v1/feedback with the reference transcript) makes it a sample, uploaded in the background (never delaying a transcription) as <uri>/<scenario>/<yyyy-mm-dd>/<agent pod>-<requestId>.wav and listed in <uri>/<scenario>/<yyyy-mm-dd>/manifest-<agent pod>-<start time>-<seq>.jsonl, one JSON line per sample in the trainer\'s manifest format ({"audio": "<relative path>.wav", "text": "<reference>", "scenario": "<name>"} plus modelVersion, deployment, pool, agent, time, requestId, hypothesis). A FineTuneJob dataset URI of <uri> (ending in /) reads every manifest under it. The agents write with the credentials of spec.artifactCredentials (the same Secret serves model artifacts and datasets). Samples dropped (byte bound, store errors, retention) are counted in whisperops_agent_dataset_samples_total; the agents never delete from the store: expire old samples with the bucket\'s lifecycle rules.', {
      uri: str('s3://bucket/prefix/ the agents write samples and manifests under. Only s3:// is written: another scheme is accepted here but reported in the DatasetStoreSupported condition and not given to the agents.', { pattern: ARTIFACT_URI, maxLength: 2048 }),
      retentionSeconds: int('Request audio older than this is not written: not kept waiting for feedback, not uploaded after waiting in an agent\'s queue.', { minimum: 1, maximum: 604_800, default: 600 }),
      maxBytes: int('Most bytes of request audio each agent holds in memory for the store: kept waiting for feedback plus samples waiting for upload. Beyond it the oldest kept audio is dropped, and a sample that does not fit the upload queue is dropped and counted.', { minimum: 1024, maximum: 68_719_476_736, default: 268_435_456, format: 'int64' }),
    }, { required: ['uri'] }),
    artifactCredentials: obj('Credentials the agents use for object stores: to read s3:// model artifacts and write the s3:// datasetStore.', {
      secretRef: localRef('A Secret in the pool\'s namespace holding standard AWS environment keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL for an S3-compatible store), given to every agent as environment variables. The kubelet reads it; the operator does not.'),
    }, { required: ['secretRef'] }),
    auth: obj('Bearer-token authentication of the agents\' API (off when absent: any client that reaches an agent may transcribe and post feedback, which becomes WER counters and training samples). The Secret is mounted into every agent as files; the agents re-read them when the kubelet updates the volume, so a rotation (list the old and the new token, one a line, then only the new) needs no restart. /healthz, /readyz and /metrics stay open. A feedback call must also name a request id the agent issued within its retention.', {
      secretRef: localRef('A Secret in the pool\'s namespace holding the tokens, one a line (blank lines and # comments ignored). The kubelet reads it; the operator does not.'),
      transcriptionKey: str('Key of the Secret holding the tokens for POST /v1/audio/transcriptions and GET /v1/models; unset: those routes are open.', { maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$' }),
      feedbackKey: str('Key of the Secret holding the tokens for POST /v1/feedback; unset: feedback is open.', { maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$' }),
    }, {
      required: ['secretRef'],
      rules: [{ rule: 'has(self.transcriptionKey) || has(self.feedbackKey)', message: 'auth needs transcriptionKey, feedbackKey or both' }],
    }),
    tls: obj('TLS on the agents\' API (HTTPS and WSS; off when absent). The Secret is mounted into every agent as files, which the agents re-read when the kubelet updates the volume, so a renewed certificate (cert-manager, kubectl) needs no restart. With TLS on, the agents\' plain HTTP listens on the pod\'s loopback only: clients, the kubelet\'s probes (scheme HTTPS) and Prometheus (annotation prometheus.io/scheme: https) use the TLS port. The OpenAI SDK\'s Realtime client connects only with wss://.', {
      secretRef: localRef('A kubernetes.io/tls Secret in the pool\'s namespace: tls.crt (PEM certificate, chain allowed) and tls.key (PEM private key). The kubelet reads it; the operator does not.'),
      port: int('HTTPS/WSS port of the agent.', { minimum: 1024, maximum: 65535, default: 8443 }),
    }, { required: ['secretRef'] }),
  }, {
    required: ['nodeSelector'],
    rules: [{
      rule: 'self.autoscaling.targetStreamsPerReplica <= double(self.agent.maxConcurrentStreams)',
      message: 'autoscaling.targetStreamsPerReplica must not exceed agent.maxConcurrentStreams',
      fieldPath: '.autoscaling.targetStreamsPerReplica',
    }, {
      rule: '!has(self.tls) || self.tls.port != self.agent.port',
      message: 'tls.port must differ from agent.port',
      fieldPath: '.tls.port',
    }],
  });
}

export function edgePoolStatus(): Schema {
  return obj('Observed state of the pool.', {
    observedGeneration: observedGeneration(),
    conditions: conditions(),
    replicas: int('Agents that exist (the scale subresource\'s status replicas).', { minimum: 0 }),
    readyReplicas: int('Agents that are ready.', { minimum: 0 }),
    desiredReplicas: int('Agents wanted now: the built-in scaler\'s decision, or spec.replicas.', { minimum: 0 }),
    selector: str('Label selector of the agent pods, for the scale subresource (HPA).', { maxLength: 1024 }),
    eligibleNodes: int('Devices that match nodeSelector and are ready.', { minimum: 0 }),
    readyNodes: int('Eligible devices running a ready agent.', { minimum: 0 }),
    lastScaleTime: str('When the built-in scaler last changed the size.', { format: 'date-time', maxLength: 64 }),
    lastScaleReason: str('Why the size last changed.', { maxLength: 1024 }),
    observedStreams: num('Concurrent streams (in flight + queued) across the agents at the built-in scaler\'s last decision; absent when the load was unknown.', { minimum: 0 }),
    recommendations: arr(
      'The built-in scaler\'s recent recommendations, kept in status so that the stabilization windows survive an operator restart or a new leader. Only those that can still matter are kept: within the longer window, and not outweighed by a newer one.',
      obj('One recommendation.', {
        time: str('When it was made.', { format: 'date-time', maxLength: 64 }),
        replicas: int('Agents the load called for then (after the tolerance band and maxReplicas, before stabilization, minReplicas and device capacity).', { minimum: 0, maximum: 10_000 }),
      }, { required: ['time', 'replicas'] }),
      128,
      { 'x-kubernetes-list-type': 'atomic' },
    ),
    endpoints: arr('Where clients reach the ready agents: each one\'s base URL (https:// with spec.tls, whose WebSocket routes are wss://; else http://), sorted, at most 64.', str('Base URL of one ready agent, e.g. https://10.0.0.7:8443.', { maxLength: 512 }), 64, { 'x-kubernetes-list-type': 'atomic' }),
    models: arr('Models the agents report.', obj('A model version served in the pool.', {
      deployment: str('InferenceDeployment name.', { maxLength: 253 }),
      version: str('Model version.', { maxLength: 128 }),
      role: enumOf('stable or candidate.', ['stable', 'candidate']),
      agents: int('Agents that loaded it.', { minimum: 0 }),
    }, { required: ['deployment', 'version'] }), 64),
  });
}
