// The local demo (README's main command, run by scripts/demo.sh after set-up). Everything runs on
// this machine and listens on 127.0.0.1:
//   1. the real local control plane (test/cluster): kwok A100 and Jetson nodes, process-backed nodes
//      whose pods of the project's images run as real processes, Prometheus and an S3 store;
//   2. whisperops installed with Helm (CRDs, RBAC, config); the chart's operator Deployment runs as a
//      real process on a process-backed node with the chart's ConfigMap and ServiceAccount token;
//   3. the examples applied with kubectl, and an invalid one rejected by the API server;
//   4. the real trainer fine-tunes the embedded model on synthetic finance speech on the CPU (decoder only),
//      exports ONNX + INT8 behind its WER gate, and writes its result JSON;
//   5. a FineTuneJob on 4×A100 is reconciled by the operator into a batch/v1 Job; the scheduler puts
//      it on a kwok A100 node, and kwok ends the pod with the termination message of step 4 (a
//      stand-in, said so in the output: the trainer running in its pod is the closed-loop issue's),
//      which the operator copies into status.result;
//   6. the edge agent serves the base and the fine-tuned model; finance sentences that neither saw
//      (new templates around the finance terms, spoken by espeak-ng) are transcribed by both, feedback
//      feeds the agent's word-error counters, and the WER before and after is printed.
// Flags: --keep leaves the cluster running; --retrain ignores the cached fine-tune of step 4.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandError, eventually, helm, kubectl } from '../test/cluster/index.js';
import { wordErrors } from '../edge-agent/src/text/wer.js';
import { FINANCE_VOICES, financeSentences, speechWav } from '../test/fixtures/traffic.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const CACHE = process.env.WHISPEROPS_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache', 'whisperops');
const WORK = join(CACHE, 'demo');
const KEEP = process.argv.includes('--keep');
const RETRAIN = process.argv.includes('--retrain');
const SYSTEM_NS = 'whisperops-system';
const NS = 'speech';
const t0 = Date.now();
const timeline: string[] = [];
const children: ChildProcess[] = [];

function step(title: string): void {
  const line = `+${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s  ${title}`;
  timeline.push(line);
  console.log(`\n\x1b[1m== ${title}\x1b[0m`);
}
const show = (text: string): void => console.log(text.replace(/\n+$/, '').split('\n').map((l) => `   ${l}`).join('\n'));

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; quiet?: boolean; onLine?: (line: string) => void } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let pending = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!opts.onLine) return;
      const lines = (pending + d.toString()).split('\n');
      pending = lines.pop() ?? '';
      lines.forEach(opts.onLine);
    });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); if (!opts.quiet) process.stderr.write(d); });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${err.slice(-2000)}`))));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

function startProcess(name: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  const chunks: string[] = [];
  child.stdout?.on('data', (d: Buffer) => chunks.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => chunks.push(d.toString()));
  child.on('exit', () => writeFileSync(logFile, chunks.join('')));
  child.on('exit', (code, signal) => { if (code !== 0 && signal === null) console.error(`   ${name} exited with ${String(code)}; log: ${logFile}`); });
  children.push(child);
  return child;
}

async function waitHttp(url: string, what: string, timeoutMs = 120_000): Promise<void> {
  await eventually(what, async () => ((await fetch(url)).ok ? true : undefined), timeoutMs, 500);
}

const sha256 = (buf: Buffer | string): string => createHash('sha256').update(buf).digest('hex');

async function main(): Promise<void> {
  mkdirSync(WORK, { recursive: true });
  const logs = join(WORK, 'logs');
  mkdirSync(logs, { recursive: true });

  step('1. Local control plane (kube-apiserver, etcd, controller-manager, scheduler built from Go modules; kwok and process-backed nodes; Prometheus; S3 store)');
  show((await run(process.execPath, ['--import', 'tsx', 'test/cluster/cli.ts', 'up'], { quiet: true })).split('\n').slice(-9).join('\n'));
  show(await kubectl(['get', 'nodes', '-L', 'type,nvidia.com/gpu.product,whisperops.dev/device', '--no-headers']).then((o) => {
    const lines = o.trim().split('\n');
    const kwokJetsons = lines.filter((l) => l.includes('jetson-') && l.includes(' kwok ')).length;
    return [...lines.filter((l) => !(l.includes('jetson-') && l.includes(' kwok '))), `… and ${kwokJetsons} kwok Jetson edge nodes`].join('\n');
  }));

  step('2. helm install whisperops (CRDs, RBAC, config); the chart\'s operator Deployment runs on a process-backed node');
  show(await helm(['upgrade', '--install', 'whisperops', join(ROOT, 'charts', 'whisperops'), '--namespace', SYSTEM_NS, '--create-namespace', '--take-ownership',
    '--set', 'replicaCount=1', '--set-json', 'nodeSelector={"type":"process","node-role.kubernetes.io/system":""}', '--wait', '--timeout', '120s']));
  const leader = await eventually('the operator to hold the leader Lease', async () => {
    const holder = (await kubectl(['get', 'lease', '-n', SYSTEM_NS, 'whisperops-operator', '-o', 'jsonpath={.spec.holderIdentity}'])).trim();
    return holder || undefined;
  }, 90_000, 500);
  show(await kubectl(['get', 'pods', '-n', SYSTEM_NS, '-l', 'app.kubernetes.io/name=whisperops', '-o', 'wide']));
  show(`Lease whisperops-operator held by ${leader} (kubectl logs -n ${SYSTEM_NS} ${leader.split('_')[0] ?? leader})`);

  step('3. kubectl apply the examples; the API server rejects an invalid one');
  await kubectl(['apply', '-f', join(ROOT, 'examples', 'namespace.yaml')]);
  show(await kubectl(['apply', '-f', join(ROOT, 'examples', 'edgepool-jetson.yaml'), '-f', join(ROOT, 'examples', 'inferencedeployment-clinical-asr.yaml')]));
  try {
    await kubectl(['apply', '-f', join(ROOT, 'examples', 'invalid', 'infd-weights-not-rising.yaml')]);
    throw new Error('the invalid example was accepted');
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    show(`rejected: ${err.stderr.trim().split('\n').pop() ?? ''}`);
  }

  step('4. The real trainer fine-tunes the embedded model on finance speech (CPU, decoder only, ONNX + INT8)');
  const data = join(ROOT, 'data');
  const spec = {
    baseModel: { uri: `file://${ROOT}/models/tiny-whisper-synth`, version: 'tiny-whisper-synth-1.0.0' },
    dataset: {
      scenario: 'finance',
      synthesize: { corpusUri: `file://${data}/domain/finance_corpus.txt`, scenario: 'finance', maxUtterances: Number(process.env.DEMO_UTTERANCES ?? 300) },
      replay: { uri: `file://${data}/general/general_corpus.txt`, fraction: 0.5 },
    },
    // The best small CPU recipe of trainer-image's benchmark (README "Figures"): decoder only,
    // half general replay, two epochs.
    method: { type: 'freezeEncoder' },
    training: { learningRate: 0.0001, batchSize: 16, epochs: Number(process.env.DEMO_EPOCHS ?? 2), seed: 42 },
    export: { onnx: true, quantization: 'int8', maxWerIncrease: 0.05 },
  };
  const trainerSources = readdirSync(join(ROOT, 'trainer-image', 'whisperops_trainer')).sort().map((f) => readFileSync(join(ROOT, 'trainer-image', 'whisperops_trainer', f)).toString()).join('');
  const key = sha256(JSON.stringify(spec) + trainerSources).slice(0, 12);
  const runDir = join(WORK, `finetune-${key}`);
  const resultFile = join(runDir, 'termination-log');
  if (RETRAIN) rmSync(runDir, { recursive: true, force: true });
  if (existsSync(resultFile)) {
    show(`cached: ${runDir} (same spec and trainer code; --retrain to run again)`);
  } else {
    mkdirSync(runDir, { recursive: true });
    const job = { apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name: 'finance-demo', namespace: NS, uid: `demo-${key}`, generation: 1 }, spec: { ...spec, output: { uri: `file://${runDir}/model` } } };
    writeFileSync(join(runDir, 'finetunejob.json'), JSON.stringify(job, null, 2));
    const venv = (await run('bash', [join(ROOT, 'scripts', 'setup', 'python.sh'), '--print'])).trim();
    const out = await run(join(venv, 'bin', 'python'), ['-m', 'whisperops_trainer', 'run'], {
      env: { WHISPEROPS_JOB_FILE: join(runDir, 'finetunejob.json'), WHISPEROPS_RESULT_FILE: resultFile, WHISPEROPS_WORK_DIR: join(runDir, 'work'), PYTHONPATH: join(ROOT, 'trainer-image'), OMP_NUM_THREADS: '2' },
      quiet: true,
      // The trainer logs JSON lines; show stage changes and every 20th training step as they happen.
      onLine: (line) => {
        if (!line.startsWith('{')) return;
        const r = JSON.parse(line) as Record<string, unknown>;
        if (r.msg === 'Training' && Number(r.step) % 10 !== 0) return;
        show(`${String(r.stage)}: ${String(r.msg)}${r.loss !== undefined ? ` step ${String(r.step)} loss ${Number(r.loss).toFixed(3)}` : ''}`);
      },
    });
    writeFileSync(join(logs, 'trainer.log'), out);
  }
  const result = JSON.parse(readFileSync(resultFile, 'utf8')) as { modelUri: string; version: string; sha256: string; wer: Record<string, number>; baseWer: Record<string, number>; trainableParams: number; totalParams: number };
  show(`result: version ${result.version}, trainable ${result.trainableParams.toLocaleString()} of ${result.totalParams.toLocaleString()} parameters`);
  show(`trainer's held-out WER: ${Object.keys(result.wer).map((s) => `${s} ${(100 * (result.baseWer[s] ?? NaN)).toFixed(1)}% → ${(100 * (result.wer[s] ?? NaN)).toFixed(1)}%`).join(', ')}`);

  step('5. FineTuneJob on 4×A100 → operator → batch/v1 Job → scheduler → A100 node → status.result');
  show('STAND-IN: kwok plays the trainer pod on a kwok A100 node and ends it with the result of step 4 as its termination message (the trainer running in its pod comes with the closed loop).');
  const ftj = JSON.stringify({
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name: 'finance-demo', namespace: NS },
    spec: {
      ...spec, output: { uri: result.modelUri },
      // kwok plays this pod (the stand-in below), so it goes to a kwok A100 node.
      resources: { gpusPerNode: 4, nodeSelector: { type: 'kwok' } },
      podMetadata: { annotations: { 'test.whisperops.dev/outcome': 'succeed', 'test.whisperops.dev/run-seconds': '3', 'test.whisperops.dev/termination-message': readFileSync(resultFile, 'utf8') } },
    },
  });
  await kubectl(['delete', 'ftj', '-n', NS, 'finance-demo', '--ignore-not-found', '--wait=true']);
  show(await kubectl(['apply', '-f', '-'], { input: ftj }));
  const phase = await eventually('the FineTuneJob to finish', async () => {
    const p = (await kubectl(['get', 'ftj', '-n', NS, 'finance-demo', '-o', 'jsonpath={.status.phase}'])).trim();
    return p === 'Succeeded' || p === 'Failed' ? p : undefined;
  }, 180_000, 1000);
  show(await kubectl(['get', 'pods', '-n', NS, '-l', 'whisperops.dev/finetunejob=finance-demo', '-o', 'custom-columns=POD:.metadata.name,NODE:.spec.nodeName,GPUS:.spec.containers[0].resources.limits.nvidia\\.com/gpu,PHASE:.status.phase']));
  show(await kubectl(['get', 'ftj', '-n', NS, 'finance-demo']));
  if (phase !== 'Succeeded') throw new Error(`FineTuneJob finance-demo ended ${phase}`);

  step('6. The edge agent serves base and fine-tuned models; unseen finance speech, before and after');
  const base = JSON.parse(readFileSync(join(ROOT, 'models', 'tiny-whisper-synth', 'model-manifest.json'), 'utf8')) as { version: string };
  const modelSet = {
    apiVersion: 'whisperops.dev/v1alpha1', kind: 'ModelSet', pool: 'jetson-clinics', scenarios: ['finance', 'medical', 'general'],
    models: [
      { name: 'base', stable: { version: base.version, uri: `file://${ROOT}/models/tiny-whisper-synth`, sha256: sha256(readFileSync(join(ROOT, 'models', 'tiny-whisper-synth', 'model-manifest.json'))) } },
      { name: 'finance', stable: { version: result.version, uri: result.modelUri, sha256: result.sha256 } },
    ],
  };
  writeFileSync(join(WORK, 'model-set.json'), JSON.stringify(modelSet, null, 2));
  const agentPort = await freePort();
  startProcess('edge-agent', ['edge-agent/src/main.ts', '--port', String(agentPort), '--config', join(WORK, 'model-set.json')], join(logs, 'agent.log'));
  const agent = `http://127.0.0.1:${agentPort}`;
  await waitHttp(`${agent}/readyz`, 'the edge agent to be ready', 180_000);
  const sentences = financeSentences(Number(process.env.DEMO_SENTENCES ?? 16));
  const totals: Record<string, { errors: number; words: number }> = { base: { errors: 0, words: 0 }, finance: { errors: 0, words: 0 } };
  const samples: string[] = [];
  for (const [i, sentence] of sentences.entries()) {
    const wav = speechWav(sentence, { voice: FINANCE_VOICES[i % FINANCE_VOICES.length] ?? 'en-us', wordsPerMinute: 160 });
    const hyps: Record<string, string> = {};
    for (const model of ['base', 'finance']) {
      const form = new FormData();
      form.set('file', new Blob([readFileSync(wav)], { type: 'audio/wav' }), 'clip.wav');
      form.set('model', model);
      const res = await fetch(`${agent}/v1/audio/transcriptions`, { method: 'POST', body: form });
      if (!res.ok) throw new Error(`transcription failed: ${res.status} ${await res.text()}`);
      const text = ((await res.json()) as { text: string }).text;
      hyps[model] = text.trim();
      const we = wordErrors(sentence, text);
      const t = totals[model];
      if (t) { t.errors += we.errors; t.words += we.referenceWords; }
      await fetch(`${agent}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request_id: res.headers.get('x-request-id'), reference: sentence, scenario: 'finance' }) });
    }
    if (i < 4) samples.push(`said:     ${sentence}\n  base:     ${hyps.base ?? ''}\n  finance:  ${hyps.finance ?? ''}`);
  }
  show(samples.join('\n'));
  const wer = (m: string) => { const t = totals[m]; return t && t.words > 0 ? t.errors / t.words : NaN; };
  show(`WER on ${sentences.length} unseen finance sentences: base ${(100 * wer('base')).toFixed(1)}% → fine-tuned ${(100 * wer('finance')).toFixed(1)}%`);
  const metrics = await (await fetch(`${agent}/metrics`)).text();
  show(metrics.split('\n').filter((l) => /^whisperops_agent_(word_errors_total|reference_words_total)\{/.test(l)).join('\n'));

  step('Done');
  console.log('\nTimeline:');
  show(timeline.join('\n'));
  console.log(`\nLogs: ${logs}`);
  if (!clusterWasUp && !KEEP) console.log('The cluster is stopped on exit (run with --keep to leave it up).');
}

async function cleanup(stopCluster: boolean): Promise<void> {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  if (stopCluster) await run(process.execPath, ['--import', 'tsx', 'test/cluster/cli.ts', 'down'], { quiet: true }).catch(() => undefined);
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
