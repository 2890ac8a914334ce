// The local demo (README's main command, run by scripts/demo.sh after set-up): the closed loop, with
// nobody at the keyboard from step 6 on. Everything runs on this machine and listens on 127.0.0.0/8:
//   1. the real local control plane (test/cluster): kwok A100 and Jetson nodes, process-backed nodes
//      whose pods of the project's images run as real processes, Prometheus and an S3 store;
//   2. whisperops installed with Helm; the chart's operator Deployment runs on a process-backed node,
//      pointed at the cluster's Prometheus;
//   3. the examples accepted by the API server (server-side dry run), an invalid one rejected;
//   4. an EdgePool of two agents on the process-backed Jetsons and an InferenceDeployment serving the
//      embedded model from the S3 store, watching medical and general WER, retraining enabled;
//   5. held-out medical and general speech (sentence patterns never used for traffic or training)
//      transcribed by the agents: WER before;
//   6. live traffic of general and medical speech (espeak-ng, several voices) with feedback: the
//      agents count word errors (scraped by Prometheus) and write feedback samples to the store;
//   7. the medical WER breaches maxWer → the operator creates a FineTuneJob from the deployment's
//      retraining template → its Job's pod runs the real trainer on the process-backed A100 node (CPU)
//      on the feedback samples + synthesis + general replay, reading and writing the S3 store;
//   8. its result becomes the candidate: canary, analysis from Prometheus, promotion;
//   9. held-out speech again: WER after, the goals, and a timeline from the resources' Events.
// Flags: --keep leaves the cluster and everything on it running.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Secret } from '@kubernetes/client-node';
import type { FineTuneJob, InferenceDeployment } from '../api/generated/types.js';
import { EDGEPOOL_LABEL } from '../operator/src/edgepool/names.js';
import { INFERENCE_DEPLOYMENTS } from '../operator/src/edgepool/reconciler.js';
import { adminClient } from '../operator/testing/operator-process.js';
import { CommandError, eventually, helm, kubectl, objectStore, prometheusUrl, s3Client } from '../test/cluster/index.js';
import { embeddedModelRef } from '../test/fixtures/models.js';
import { runCommand } from '../test/fixtures/process.js';
import { eventTimeline, heldOutWer, readyAgentUrls, startTraffic } from '../test/fixtures/loop.js';
import type { HeldOut, Stream } from '../test/fixtures/loop.js';
import { EVAL_SENTENCES, generalReplayCorpus, heldOutClinicalSentences, heldOutGeneralSentences, heldOutMedicalSentences, MEDICAL_VOICES, medicalRetrainTemplate, medicalSynthesisCorpus, trafficMedicalSentences } from '../test/fixtures/medical.js';
import { PutObjectCommand } from '@aws-sdk/client-s3';

const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const CACHE = process.env.WHISPEROPS_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache', 'whisperops');
const WORK = join(CACHE, 'demo');
const KEEP = process.argv.includes('--keep');
const SYSTEM_NS = 'whisperops-system';
const NS = 'speech';
const POOL = 'clinic';
const POOL_SIZE = 2;
const DEPLOYMENT = 'clinical-asr';
const SECRET = 'store-credentials';
const MEDICAL_MAX_WER = 0.2;
const VOICES = MEDICAL_VOICES;
// The admin client is made once the cluster is up (its kubeconfig does not exist before).
let apiClient: ReturnType<typeof adminClient> | undefined;
const kube = (): ReturnType<typeof adminClient> => (apiClient ??= adminClient());
const t0 = Date.now();
const timeline: string[] = [];

function step(title: string): void {
  const line = `+${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s  ${title}`;
  timeline.push(line);
  console.log(`\n\x1b[1m== ${title}\x1b[0m`);
}
const show = (text: string): void => console.log(text.replace(/\n+$/, '').split('\n').map((l) => `   ${l}`).join('\n'));


const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : 'n/a');
const infd = () => kube().get<InferenceDeployment>(INFERENCE_DEPLOYMENTS, NS, DEPLOYMENT);
const agentUrls = () => readyAgentUrls(kube(), NS, POOL);

/** The pool: two agents on the process-backed Jetsons, feedback samples to the store. */
function demoPool(): object {
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'EdgePool', metadata: { name: POOL, namespace: NS },
    spec: {
      nodeSelector: { 'whisperops.dev/device': 'jetson-agx-xavier', type: 'process' },
      tolerations: [{ key: 'whisperops.dev/edge', operator: 'Equal', value: 'true', effect: 'NoSchedule' }],
      autoscaling: { mode: 'off' }, replicas: POOL_SIZE,
      artifactCredentials: { secretRef: { name: SECRET } },
      datasetStore: { uri: `s3://whisperops-datasets/feedback/${POOL}/`, retentionSeconds: 600, maxBytes: 268_435_456 },
    },
  };
}

/** The deployment: the embedded model, medical and general watched, retraining on medical speech. */
function demoDeployment(base: { uri: string; version: string; sha256: string }): object {
  return {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'InferenceDeployment', metadata: { name: DEPLOYMENT, namespace: NS },
    spec: {
      edgePoolRef: { name: POOL },
      model: base,
      rollout: {
        steps: [{ weight: 50, pauseSeconds: 10 }],
        analysis: { intervalSeconds: 15, minSamples: 60, maxWerIncrease: 0.02, maxP99LatencySeconds: 10, failureLimit: 2 },
      },
      monitoring: {
        scenarios: [
          // ~100 medical feedback samples (about 1,000 reference words) before a verdict: the retrain trains on them.
          { name: 'medical', maxWer: MEDICAL_MAX_WER, windowSeconds: 120, minReferenceWords: 1000 },
          { name: 'general', maxWer: 0.4, windowSeconds: 60, minReferenceWords: 150 },
        ],
      },
      retraining: { enabled: true, cooldownSeconds: 900, template: retrainTemplate() },
    },
  };
}

const DATA_PREFIX = 's3://whisperops-datasets/demo/';

/** The corpora the retraining template names, written to the store (the trainer reads them from there). */
async function uploadDemoData(): Promise<void> {
  const s3 = await s3Client();
  try {
    const files: Record<string, string[]> = {
      'medical-synthesis.txt': medicalSynthesisCorpus(),
      'general-replay.txt': generalReplayCorpus(),
      'medical-eval.txt': heldOutMedicalSentences(EVAL_SENTENCES),
      'general-eval.txt': heldOutGeneralSentences(EVAL_SENTENCES),
    };
    for (const [name, lines] of Object.entries(files)) {
      await s3.send(new PutObjectCommand({ Bucket: 'whisperops-datasets', Key: `demo/${name}`, Body: `${lines.join('\n')}\n`, ContentType: 'text/plain' }));
    }
    show(`corpora written to ${DATA_PREFIX}: ${Object.entries(files).map(([n, l]) => `${n} (${l.length} lines)`).join(', ')}`);
  } finally {
    s3.destroy();
  }
}

/** The retraining template: the recipe of test/fixtures/medical.ts, on the A100 process node, store in and out. */
function retrainTemplate(): object {
  const t = medicalRetrainTemplate({
    corpusUri: `${DATA_PREFIX}medical-synthesis.txt`, replayUri: `${DATA_PREFIX}general-replay.txt`,
    medicalEvalUri: `${DATA_PREFIX}medical-eval.txt`, generalEvalUri: `${DATA_PREFIX}general-eval.txt`,
    outputUri: 's3://whisperops-models/retrains/',
  });
  // DEMO_UTTERANCES / DEMO_EPOCHS shrink the recipe for a quick run (the goals are measured at the defaults).
  const utterances = Number(process.env.DEMO_UTTERANCES ?? t.dataset.synthesize?.maxUtterances ?? 400);
  const epochs = Number(process.env.DEMO_EPOCHS ?? t.training?.epochs ?? 2);
  return {
    ...t,
    dataset: { ...t.dataset, synthesize: { ...t.dataset.synthesize, maxUtterances: utterances } },
    training: { ...t.training, epochs },
    resources: { ...t.resources, gpusPerNode: 1, nodeSelector: { type: 'process' } },
    artifactCredentials: { secretRef: { name: SECRET } },
  };
}

/** The medical and general speech of the live traffic (patterns apart from the held-out ones). */
function trafficStreams(): Stream[] {
  const general = generalReplayCorpus().filter((x) => x.split(' ').length >= 5 && x.split(' ').length <= 12).slice(0, 120);
  return [
    { sentences: trafficMedicalSentences(120), scenario: 'medical', voices: VOICES },
    { sentences: general, scenario: 'general', voices: VOICES },
  ];
}

async function measureHeldOut(urls: string[]): Promise<{ medical: HeldOut; clinical: HeldOut; general: HeldOut }> {
  const n = Number(process.env.DEMO_HELDOUT ?? 40);
  const medical = await heldOutWer(urls, DEPLOYMENT, heldOutMedicalSentences(n), VOICES);
  const clinical = await heldOutWer(urls, DEPLOYMENT, heldOutClinicalSentences(n), VOICES);
  const general = await heldOutWer(urls, DEPLOYMENT, heldOutGeneralSentences(n), VOICES);
  const failures = medical.failures + clinical.failures + general.failures;
  if (failures > 0) throw new Error(`${failures} held-out transcriptions failed`);
  return { medical, clinical, general };
}

/** One line per held-out set: before → after, the ratio and whether the issue's goal is met. */
function verdicts(before: Awaited<ReturnType<typeof measureHeldOut>>, after: Awaited<ReturnType<typeof measureHeldOut>>): string {
  const ratio = (a: HeldOut, b: HeldOut): string => {
    const r = b.wer / a.wer;
    return `${pct(a.wer)} → ${pct(b.wer)} (× ${r.toFixed(2)}; goal ≤ × 0.33: ${r <= 1 / 3 ? 'met' : 'NOT met'})`;
  };
  const generalDelta = 100 * (after.general.wer - before.general.wer);
  return [
    `everyday medical (few terms per sentence): ${ratio(before.medical, after.medical)}`,
    `clinical (term-dense):                     ${ratio(before.clinical, after.clinical)}`,
    `general: ${pct(before.general.wer)} → ${pct(after.general.wer)} (${generalDelta >= 0 ? '+' : ''}${generalDelta.toFixed(1)} points; goal ≤ +2: ${generalDelta <= 2 ? 'met' : 'NOT met'})`,
  ].join('\n');
}

async function main(): Promise<void> {
  mkdirSync(WORK, { recursive: true });
  const logs = join(WORK, 'logs');
  mkdirSync(logs, { recursive: true });

  step('1. Local control plane (kube-apiserver, etcd, controller-manager, scheduler built from Go modules; kwok and process-backed nodes; Prometheus; S3 store)');
  show((await runCommand(process.execPath, ['--import', 'tsx', 'test/cluster/cli.ts', 'up'])).split('\n').slice(-9).join('\n'));
  show(await kubectl(['get', 'nodes', '-L', 'type,nvidia.com/gpu.product,whisperops.dev/device', '--no-headers']).then((o) => {
    const lines = o.trim().split('\n');
    const kwokJetsons = lines.filter((l) => l.includes('jetson-') && l.includes(' kwok ')).length;
    return [...lines.filter((l) => !(l.includes('jetson-') && l.includes(' kwok '))), `… and ${kwokJetsons} kwok Jetson edge nodes`].join('\n');
  }));

  step('2. helm install whisperops (CRDs, RBAC, config); the chart\'s operator Deployment runs on a process-backed node');
  show(await helm(['upgrade', '--install', 'whisperops', join(ROOT, 'charts', 'whisperops'), '--namespace', SYSTEM_NS, '--create-namespace', '--take-ownership',
    '--set', 'replicaCount=1', '--set-json', 'nodeSelector={"type":"process","node-role.kubernetes.io/system":""}',
    '--set', `prometheus.url=${await prometheusUrl()}`, '--set', 'prometheus.loopbackOnly=true', '--set', 'edgePool.syncPeriodSeconds=5',
    '--wait', '--timeout', '120s']));
  const leader = await eventually('the operator to hold the leader Lease', async () => {
    const holder = (await kubectl(['get', 'lease', '-n', SYSTEM_NS, 'whisperops-operator', '-o', 'jsonpath={.spec.holderIdentity}'])).trim();
    return holder || undefined;
  }, 90_000, 500);
  show(await kubectl(['get', 'pods', '-n', SYSTEM_NS, '-l', 'app.kubernetes.io/name=whisperops', '-o', 'wide']));
  show(`Lease whisperops-operator held by ${leader} (kubectl logs -n ${SYSTEM_NS} ${leader.split('_')[0] ?? leader})`);

  step('3. The examples: accepted by the API server (server-side dry run); an invalid one rejected by its CEL rule');
  await kubectl(['apply', '-f', join(ROOT, 'examples', 'namespace.yaml')]);
  show(await kubectl(['apply', '--dry-run=server', '-f', join(ROOT, 'examples')]));
  try {
    await kubectl(['apply', '-f', join(ROOT, 'examples', 'invalid', 'infd-weights-not-rising.yaml')]);
    throw new Error('the invalid example was accepted');
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    show(`rejected: ${err.stderr.trim().split('\n').pop() ?? ''}`);
  }

  step('4. An EdgePool on the process-backed Jetsons serves the embedded model (from the S3 store) through an InferenceDeployment that watches medical and general WER');
  const store = await objectStore();
  const secret = JSON.parse(await kubectl(['get', 'secret', '-n', store.secret.namespace, store.secret.name, '-o', 'json'])) as V1Secret;
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: SECRET, namespace: NS }, data: secret.data }) });
  const base = { ...embeddedModelRef(), uri: store.embeddedModelUri };
  await uploadDemoData();
  await kubectl(['delete', 'inferencedeployment', '-n', NS, DEPLOYMENT, '--ignore-not-found', '--wait=true']);
  await kubectl(['delete', 'finetunejob', '-n', NS, '-l', `whisperops.dev/inferencedeployment=${DEPLOYMENT}`, '--ignore-not-found', '--wait=true']);
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(demoPool()) });
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(demoDeployment(base)) });
  const ready = await eventually('the deployment Ready on the pool\'s agents', async () => {
    const d = await infd();
    const urls = await agentUrls();
    return d.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') && urls.length === POOL_SIZE ? urls : undefined;
  }, 240_000, 1000);
  show(await kubectl(['get', 'edgepool,inferencedeployment', '-n', NS]));
  show(await kubectl(['get', 'pods', '-n', NS, '-l', `${EDGEPOOL_LABEL}=${POOL}`, '-o', 'wide']));
  show(`agents: ${ready.join(', ')} (own 127.x pod IPs on the process-backed Jetsons)`);

  step('5. Held-out speech before: everyday medical, term-dense clinical and general sentences of patterns never used for traffic or training, spoken by espeak-ng');
  const before = await measureHeldOut(ready);
  show(`stable ${before.medical.versions.join(',')}: everyday medical WER ${pct(before.medical.wer)} (${before.medical.words} words), clinical WER ${pct(before.clinical.wer)} (${before.clinical.words} words), general WER ${pct(before.general.wer)} (${before.general.words} words)`);

  step('6. Live traffic: general and medical speech with feedback (the agents count word errors; their feedback samples go to the dataset store)');
  const traffic = startTraffic({ urls: agentUrls, model: DEPLOYMENT, streams: trafficStreams(), concurrency: 2, deadlineMs: 2_400_000 });
  try {
    const breached = await eventually('the medical WER to breach its threshold', async () => {
      const d = await infd();
      return d.status?.lastRetrain ? d : undefined;
    }, 300_000, 1000);
    const medical = breached.status?.scenarios?.find((x) => x.name === 'medical');
    show(`medical WER ${pct(medical?.wer ?? NaN)} over ${medical?.referenceWords ?? 0} reference words > maxWer ${pct(MEDICAL_MAX_WER)}: Degraded`);
    const jobName = breached.status?.lastRetrain?.fineTuneJob ?? '';

    step(`7. The operator starts FineTuneJob ${jobName}; the real trainer runs in its pod on the process-backed A100 node (CPU), reading and writing the S3 store`);
    traffic.pause(); // the trainer gets the two cores; traffic resumes for the canary
    show(await kubectl(['get', 'finetunejob', '-n', NS, jobName]));
    const job = await eventually(`FineTuneJob ${jobName} to finish`, async () => {
      const j = JSON.parse(await kubectl(['get', 'finetunejob', '-n', NS, jobName, '-o', 'json'])) as FineTuneJob;
      return j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed' ? j : undefined;
    }, 1_800_000, 2000); // 3–5 min on a quiet machine; a shared one takes far longer
    show(await kubectl(['get', 'pods', '-n', NS, '-l', `whisperops.dev/finetunejob=${jobName}`, '-o', 'custom-columns=POD:.metadata.name,NODE:.spec.nodeName,PHASE:.status.phase']));
    show(await kubectl(['get', 'finetunejob', '-n', NS, jobName]));
    if (job.status?.phase !== 'Succeeded') throw new Error(`FineTuneJob ${jobName} ${job.status?.phase ?? ''}: ${job.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? ''}`);

    step('8. Its result becomes the candidate: canary steps, analysis of candidate vs stable WER and p99 from Prometheus, promotion');
    traffic.resume();
    const promoted = await eventually('the retrained model promoted', async () => {
      const d = await infd();
      if (d.status?.candidate?.rolledBackGeneration !== undefined) throw new Error(`the candidate was rolled back: ${d.status.candidate.lastVerdictMessage ?? ''}`);
      return d.status?.stable?.source === `FineTuneJob/${jobName}` && d.status.phase !== 'Progressing' ? d : undefined;
    }, 300_000, 1000);
    show(await kubectl(['get', 'inferencedeployment', '-n', NS, DEPLOYMENT]));
    show(`stable ${promoted.status?.stable?.version ?? ''} (${promoted.status?.stable?.uri ?? ''})`);
  } finally {
    const report = await traffic.stop();
    show(`traffic: ${report.requests} requests, ${report.failures} failed, ${report.feedbackPosted} feedback posts; per version: ${Object.entries(report.perVersion).map(([v, c]) => `${v} ${c.requests} (WER ${pct(c.words > 0 ? c.errors / c.words : NaN)})`).join(', ')}`);
  }

  step('9. Held-out speech after, on the same sentences and voices');
  // Promotion rewrites the pool's model set; each agent swaps when the ConfigMap reaches it. Measure
  // only once every agent serves the promoted model alone, so no answer comes from the old one.
  const promotedVersion = (await infd()).status?.stable?.version ?? '';
  const urls = await eventually(`every agent serving ${promotedVersion} alone`, async () => {
    const now = await agentUrls();
    const entries = await Promise.all(now.map(async (u) => (await (await fetch(`${u}/v1/models/${DEPLOYMENT}`, { signal: AbortSignal.timeout(5000) })).json()) as { stable?: { version: string }; candidate?: unknown }));
    return now.length === POOL_SIZE && entries.every((e) => e.stable?.version === promotedVersion && e.candidate === undefined) ? now : undefined;
  }, 120_000, 1000);
  const after = await measureHeldOut(urls);
  const served = [...new Set([...after.medical.versions, ...after.clinical.versions, ...after.general.versions])];
  if (served.length !== 1 || served[0] !== promotedVersion) throw new Error(`held-out speech after was answered by ${served.join(', ')}, not ${promotedVersion} alone`);
  show(`every answer from ${promotedVersion}`);
  show(verdicts(before, after));

  step('Timeline (from the resources\' Events)');
  const d = await infd();
  const jobName = d.status?.lastRetrain?.fineTuneJob ?? '';
  const events = await eventTimeline(kube(), NS, [{ kind: 'InferenceDeployment', name: DEPLOYMENT }, { kind: 'FineTuneJob', name: jobName }]);
  const first = events[0]?.time.getTime() ?? Date.now();
  show(events.map((e) => `+${String(Math.round((e.time.getTime() - first) / 1000)).padStart(4)} s  ${e.kind}/${e.name}  ${e.reason}: ${e.note.slice(0, 160)}`).join('\n'));

  step('Done');
  console.log('\nDemo steps:');
  show(timeline.join('\n'));
  show(`The pool's agents listen on ${urls.map((u) => `${u}/v1/audio/transcriptions`).join(' and ')} (model=${DEPLOYMENT})`);
  console.log(`\nLogs: ${logs}`);
  if (!clusterWasUp && !KEEP) console.log('The cluster is stopped on exit (run with --keep to leave it up).');
}

async function cleanup(stopCluster: boolean): Promise<void> {
  if (stopCluster) await runCommand(process.execPath, ['--import', 'tsx', 'test/cluster/cli.ts', 'down']).catch(() => undefined);
}

async function clusterIsUp(): Promise<boolean> {
  try {
    await kubectl(['get', '--raw', '/readyz']);
    return true;
  } catch {
    return false;
  }
}

const clusterWasUp = await clusterIsUp();
try {
  await main();
  await cleanup(!clusterWasUp && !KEEP);
} catch (err) {
  console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
  await cleanup(!clusterWasUp && !KEEP);
  process.exit(1);
}
