import { describe, expect, it } from '@jest/globals';
import type { V1Job } from '@kubernetes/client-node';
import fc from 'fast-check';
import { defaultSpec, fineTuneJob, trainer } from '../../testing/fixtures.js';
import {
  claimMounts, desiredConfigMap, desiredJob, desiredService, GPU_PRODUCT_LABEL, GPU_RESOURCE, JOB_FILE_KEY, JOB_FILE_PATH, jobDrift, PVC_ROOT, specUris,
} from './desired.js';
import { FINETUNEJOB_LABEL, jobName, MANAGED_BY_LABEL } from './names.js';

function env(job: V1Job): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const e of job.spec?.template.spec?.containers[0]?.env ?? []) out[e.name] = e.value ?? e.valueFrom?.fieldRef?.fieldPath;
  return out;
}

describe('desiredJob', () => {
  const ftj = fineTuneJob();
  const job = desiredJob(ftj, trainer);
  const pod = job.spec?.template.spec;
  const container = pod?.containers[0];

  it('is owned by the FineTuneJob (controller) and labelled', () => {
    expect(job.metadata?.ownerReferences).toEqual([{
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', name: 'finance-lora', uid: ftj.metadata.uid, controller: true, blockOwnerDeletion: true,
    }]);
    expect(job.metadata?.labels).toMatchObject({ [MANAGED_BY_LABEL]: 'whisperops', [FINETUNEJOB_LABEL]: 'finance-lora' });
    expect(job.metadata?.name).toBe(jobName({ namespace: 'ml', name: 'finance-lora', uid: ftj.metadata.uid }));
  });

  it('asks for gpusPerNode GPUs on the configured A100 products', () => {
    expect(container?.resources?.requests?.[GPU_RESOURCE]).toBe('4');
    expect(container?.resources?.limits?.[GPU_RESOURCE]).toBe('4');
    expect(pod?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: GPU_PRODUCT_LABEL, operator: 'In', values: ['NVIDIA-A100-SXM4-80GB', 'NVIDIA-A100-SXM4-40GB'] }] },
    ]);
    expect(pod?.tolerations).toEqual([{ key: GPU_RESOURCE, operator: 'Exists', effect: 'NoSchedule' }]);
  });

  it('runs the trainer non-root with a read-only root file system', () => {
    expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container?.securityContext).toEqual({
      allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000,
    });
    expect(container?.volumeMounts?.map((m) => m.mountPath)).toEqual(['/etc/whisperops/job', '/tmp', '/dev/shm']);
    // Scratch space is bounded: a runaway run is evicted instead of filling the node's disk or memory.
    expect(pod?.volumes?.find((v) => v.name === 'tmp')?.emptyDir).toEqual({ sizeLimit: '100Gi' });
    expect(pod?.volumes?.find((v) => v.name === 'dshm')?.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '16Gi' });
    expect(pod?.volumes?.every((v) => !v.emptyDir || v.emptyDir.sizeLimit)).toBe(true);
    expect(pod?.automountServiceAccountToken).toBe(false);
    expect(pod?.restartPolicy).toBe('Never');
    expect(container?.terminationMessagePolicy).toBe('FallbackToLogsOnError');
  });

  it('fails the Job at once on exit codes 2 and 3, and does not count disruptions', () => {
    expect(job.spec?.podFailurePolicy?.rules).toEqual([
      { action: 'FailJob', onExitCodes: { containerName: 'trainer', operator: 'In', values: [2, 3] } },
      { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
    ]);
  });

  it('hands the trainer its job file, output URI and a single-node torchrun environment', () => {
    expect(env(job)).toMatchObject({
      WHISPEROPS_JOB_FILE: JOB_FILE_PATH, WHISPEROPS_OUTPUT_URI: 'file:///models/out/finance',
      NPROC_PER_NODE: '4', NNODES: '1', NODE_RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500',
    });
    expect(job.spec?.completionMode).toBeUndefined();
    expect(pod?.volumes?.[0]?.configMap?.name).toBe(`${job.metadata?.name ?? ''}-spec`);
  });

  it.each([
    ['backoffLimit', { backoffLimit: 5 }, (j: V1Job) => j.spec?.backoffLimit, 5],
    ['activeDeadlineSeconds', { activeDeadlineSeconds: 3600 }, (j: V1Job) => j.spec?.activeDeadlineSeconds, 3600],
    ['ttlSecondsAfterFinished', { ttlSecondsAfterFinished: 600 }, (j: V1Job) => j.spec?.ttlSecondsAfterFinished, 600],
    ['suspend', { suspend: true }, (j: V1Job) => j.spec?.suspend, true],
    ['image', { image: 'registry.local/trainer:dev' }, (j: V1Job) => j.spec?.template.spec?.containers[0]?.image, 'registry.local/trainer:dev'],
    ['default image', {}, (j: V1Job) => j.spec?.template.spec?.containers[0]?.image, trainer.image],
    ['priority class', { resources: { ...defaultSpec().resources, priorityClassName: 'training' } }, (j: V1Job) => j.spec?.template.spec?.priorityClassName, 'training'],
    ['cpu/memory', { resources: { ...defaultSpec().resources, cpu: '16', memory: '64Gi' } }, (j: V1Job) => j.spec?.template.spec?.containers[0]?.resources?.limits, { [GPU_RESOURCE]: '4', cpu: '16', memory: '64Gi' }],
    ['no GPUs: no GPU affinity', { resources: { ...defaultSpec().resources, gpusPerNode: 0 } }, (j: V1Job) => j.spec?.template.spec?.affinity, undefined],
    ['no GPUs: one process', { resources: { ...defaultSpec().resources, gpusPerNode: 0 } }, (j: V1Job) => env(j).NPROC_PER_NODE, '1'],
    ['own GPU toleration kept, not doubled',
      { resources: { ...defaultSpec().resources, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Equal' as const, value: 'a100', effect: 'NoSchedule' as const }] } },
      (j: V1Job) => j.spec?.template.spec?.tolerations, [{ key: 'nvidia.com/gpu', operator: 'Equal', value: 'a100', effect: 'NoSchedule' }]],
    ['pod labels: ours win', { podMetadata: { labels: { team: 'asr', [FINETUNEJOB_LABEL]: 'other' }, annotations: { 'test.whisperops.dev/outcome': 'fail' } } },
      (j: V1Job) => j.spec?.template.metadata, {
        labels: { team: 'asr', [FINETUNEJOB_LABEL]: 'finance-lora', [MANAGED_BY_LABEL]: 'whisperops', 'app.kubernetes.io/component': 'trainer' },
        annotations: { 'test.whisperops.dev/outcome': 'fail' },
      }],
  ])('passes %s through', (_what, spec, read, expected) => {
    expect(read(desiredJob(fineTuneJob(spec), trainer))).toEqual(expected);
  });

  it('gives the trainer the artifactCredentials Secret as its environment, and nothing without one', () => {
    expect(container?.envFrom).toBeUndefined();
    const c = desiredJob(fineTuneJob({ artifactCredentials: { secretRef: { name: 'whisperops-s3' } } }), trainer).spec?.template.spec?.containers[0];
    // No prefix: the keys are the AWS SDKs' own variable names; the kubelet reads the Secret.
    expect(c?.envFrom).toEqual([{ secretRef: { name: 'whisperops-s3' } }]);
    expect(c?.env?.some((e) => e.name.startsWith('AWS_'))).toBe(false);
  });

  it('mounts each claim of a pvc:// URI once: read-only for inputs, read-write for the output', () => {
    const spec = {
      baseModel: { uri: 'pvc://models/tiny-whisper-synth/1.0.0' },
      dataset: {
        ...defaultSpec().dataset,
        uri: 'pvc://datasets/feedback/',
        replay: { uri: 'pvc://datasets/general.jsonl', fraction: 0.2 },
        evaluation: [{ scenario: 'finance', uri: 's3://b/eval.jsonl' }, { scenario: 'general', uri: 'pvc://eval.sets/general.jsonl' }],
      },
      output: { uri: 'pvc://models/runs/finance' },
    };
    const j = desiredJob(fineTuneJob(spec), trainer);
    const podSpec = j.spec?.template.spec;
    expect(podSpec?.volumes?.slice(3)).toEqual([
      { name: 'pvc-0', persistentVolumeClaim: { claimName: 'datasets', readOnly: true } },
      { name: 'pvc-1', persistentVolumeClaim: { claimName: 'eval.sets', readOnly: true } },
      { name: 'pvc-2', persistentVolumeClaim: { claimName: 'models' } },
    ]);
    expect(podSpec?.containers[0]?.volumeMounts?.slice(3)).toEqual([
      { name: 'pvc-0', mountPath: `${PVC_ROOT}/datasets`, readOnly: true },
      { name: 'pvc-1', mountPath: `${PVC_ROOT}/eval.sets`, readOnly: true },
      { name: 'pvc-2', mountPath: `${PVC_ROOT}/models` },
    ]);
    expect(env(j).WHISPEROPS_PVC_ROOT).toBe(PVC_ROOT);
    expect(env(desiredJob(fineTuneJob(), trainer)).WHISPEROPS_PVC_ROOT).toBeUndefined();
  });

  it('lists every URI of a spec, the output last', () => {
    const spec = {
      ...defaultSpec(),
      dataset: {
        ...defaultSpec().dataset,
        synthesize: { corpusUri: 's3://b/c.txt', scenario: 'finance', voices: [], wordsPerMinute: { min: 130, max: 200 }, pitch: { min: 25, max: 75 }, maxUtterances: 10 },
        selection: { referenceUri: 's3://b/terms.txt', topK: 5 },
      },
      augmentation: { ...defaultSpec().augmentation, noise: { ...defaultSpec().augmentation.noise, sourceUri: 's3://b/noise/' } },
      compression: { distillation: { teacherUri: 'pvc://teachers/large/', decoderLayers: 2, temperature: 2, klWeight: 0.5, ceWeight: 0.5, hiddenWeight: 0 } },
    };
    const fields = specUris(spec).map((u) => u.field);
    expect(fields[0]).toBe('spec.baseModel.uri');
    expect(fields).toEqual(expect.arrayContaining(['spec.dataset.synthesize.corpusUri', 'spec.dataset.selection.referenceUri', 'spec.augmentation.noise.sourceUri',
      'spec.compression.distillation.teacherUri']));
    expect(claimMounts(spec).map((m) => m.claim)).toContain('teachers');
    expect(specUris(spec).filter((u) => u.output)).toEqual([{ field: 'spec.output.uri', uri: spec.output.uri, output: true }]);
    expect(fields[fields.length - 1]).toBe('spec.output.uri');
  });

  it('claim mounts: one per claim, read-write exactly when the output is on it, for any URIs', () => {
    const claim = fc.constantFrom('a', 'b', 'models', 'data.sets');
    const anyUri = fc.oneof(claim.map((c) => `pvc://${c}/x`), fc.constant('s3://b/k'), fc.constant('file:///m'));
    fc.assert(fc.property(anyUri, anyUri, anyUri, (base, data, out) => {
      const mounts = claimMounts({ ...defaultSpec(), baseModel: { uri: base }, dataset: { ...defaultSpec().dataset, uri: data }, output: { uri: out } });
      const claims = [base, data, out].flatMap((u) => (u.startsWith('pvc://') ? [u.slice(6).split('/')[0] ?? ''] : []));
      expect(mounts.map((m) => m.claim)).toEqual([...new Set(claims)].sort());
      for (const m of mounts) expect(m.readOnly).toBe(!out.startsWith(`pvc://${m.claim}/`));
      expect(new Set(mounts.map((m) => m.volume)).size).toBe(mounts.length);
    }));
  });

  it('runs several nodes as an indexed Job with a headless Service for rendezvous', () => {
    const multi = fineTuneJob({ resources: { ...defaultSpec().resources, nodes: 3 } });
    const j = desiredJob(multi, trainer);
    const name = j.metadata?.name ?? '';
    expect(j.spec).toMatchObject({ completionMode: 'Indexed', completions: 3, parallelism: 3 });
    expect(j.spec?.template.spec?.subdomain).toBe(name);
    expect(env(j)).toMatchObject({
      NNODES: '3', NODE_RANK: "metadata.annotations['batch.kubernetes.io/job-completion-index']", MASTER_ADDR: `${name}-0.${name}`,
    });
    const svc = desiredService(multi, trainer);
    expect(svc?.metadata?.name).toBe(name);
    expect(svc?.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, selector: { 'batch.kubernetes.io/job-name': name } });
    expect(desiredService(fineTuneJob(), trainer)).toBeUndefined();
  });

  it('holds its invariants for any resources', () => {
    const resources = fc.record({
      gpusPerNode: fc.integer({ min: 0, max: 16 }),
      nodes: fc.integer({ min: 1, max: 64 }),
      gpuProducts: fc.array(fc.stringMatching(/^[A-Za-z0-9-]{1,30}$/), { minLength: 1, maxLength: 4 }),
    });
    fc.assert(fc.property(resources, fc.boolean(), (res, suspend) => {
      const j = desiredJob(fineTuneJob({ resources: res, suspend }), trainer);
      const c = j.spec?.template.spec?.containers[0];
      expect(j.spec?.completions).toBe(res.nodes);
      expect(j.spec?.parallelism).toBe(res.nodes);
      expect(j.spec?.suspend).toBe(suspend);
      expect(c?.resources?.requests?.[GPU_RESOURCE]).toBe(res.gpusPerNode > 0 ? String(res.gpusPerNode) : undefined);
      expect(c?.resources?.limits?.[GPU_RESOURCE]).toBe(c?.resources?.requests?.[GPU_RESOURCE]);
      const terms = j.spec?.template.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
      expect(terms?.[0]?.matchExpressions?.[0]?.values).toEqual(res.gpusPerNode > 0 ? res.gpuProducts : undefined);
      expect(j.metadata?.ownerReferences?.filter((r) => r.controller)).toHaveLength(1);
      expect(j.spec?.template.metadata?.labels?.[FINETUNEJOB_LABEL]).toBe('finance-lora');
    }));
  });
});

describe('desiredConfigMap', () => {
  it('holds the whole FineTuneJob as the trainer reads it', () => {
    const ftj = fineTuneJob({}, { generation: 3 });
    const cm = desiredConfigMap(ftj);
    const doc = JSON.parse(cm.data?.[JOB_FILE_KEY] ?? '{}') as Record<string, unknown>;
    expect(doc).toEqual({
      apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob',
      metadata: { name: 'finance-lora', namespace: 'ml', uid: ftj.metadata.uid, generation: 3 },
      spec: JSON.parse(JSON.stringify(ftj.spec)) as unknown,
    });
    expect(cm.metadata?.ownerReferences?.[0]?.uid).toBe(ftj.metadata.uid);
  });
});

describe('jobDrift', () => {
  const live = desiredJob(fineTuneJob(), trainer);
  it.each([
    ['nothing changed', {}, false, undefined],
    ['suspend', { suspend: true }, false, { spec: { suspend: true } }],
    ['suspend on a finished Job is left alone', { suspend: true }, true, undefined],
    ['deadline', { activeDeadlineSeconds: 60 }, false, { spec: { activeDeadlineSeconds: 60 } }],
    ['ttl, even when finished', { ttlSecondsAfterFinished: 30 }, true, { spec: { ttlSecondsAfterFinished: 30 } }],
  ])('%s', (_what, spec, finished, expected) => {
    expect(jobDrift(desiredJob(fineTuneJob(spec), trainer), live, finished)).toEqual(expected);
  });
});
