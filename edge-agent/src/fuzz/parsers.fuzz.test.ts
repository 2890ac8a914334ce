// Fuzzing with fast-check (fixed seed, fixed run counts: the same inputs in every CI run) of everything
// that parses untrusted bytes in the agent: the WAV decoder, multipart uploads through the real HTTP
// server, the model-set parser (YAML/JSON from a ConfigMap) and the artifact manifest parser. Inputs:
// the kept corpus (corpus.json) as examples, structure-aware generators, and byte-level mutations of
// the corpus. Each must end in a result or in the parser's own error type: 0 crashes; every input is
// timed (0 hangs: no input over a bound) and memory is measured around the runs (bounded).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { stringify as toYaml } from 'yaml';
import { ModelSetError, modelSetProblems, parseModelSet } from '../../../api/model-set.js';
import { startAgent } from '../agent.js';
import type { Agent } from '../agent.js';
import { AudioFormatError, decodeWav } from '../audio/wav.js';
import { ArtifactError, parseManifest } from '../models/artifact.js';
import { parseOptions } from '../options.js';
import { REPO_ROOT, tempDir } from '../testing/speech.js';

jest.setTimeout(120_000);

const SEED = 20261202;
const corpus = JSON.parse(readFileSync(join(REPO_ROOT, 'edge-agent/src/fuzz/corpus.json'), 'utf8')) as { wav: string[]; modelSet: string[]; manifest: string[] };
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const wavSeeds = corpus.wav.map(b64);
const manifestSeeds = corpus.manifest.map(b64);

/** A byte-level mutation of one of `seeds`: flips, overwrites with edge values, inserts, deletes, truncation, splicing. */
function mutated(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xfe, 0xff) }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffff0) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), value: fc.integer({ min: 1, max: 64 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), value: fc.constant(0) }),
  );
  return fc.tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 8 })).map(([i, edits]) => {
    let b = Buffer.from(seeds[i] ?? new Uint8Array());
    for (const e of edits) {
      const at = b.length === 0 ? 0 : e.at % b.length;
      if (e.kind === 'set' && b.length > 0) b[at] = e.value;
      else if (e.kind === 'flip' && b.length > 0) b[at] = (b[at] ?? 0) ^ (1 << e.value);
      else if (e.kind === 'u32' && b.length >= at + 4) b.writeUInt32LE(e.value, at);
      else if (e.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from([e.value]), b.subarray(at)]);
      else if (e.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.value)]);
      else if (e.kind === 'truncate') b = b.subarray(0, at);
    }
    return new Uint8Array(b);
  });
}

/** A WAV built from arbitrary header fields and chunk layout (sizes that lie included). */
const structuredWav: fc.Arbitrary<Uint8Array> = fc
  .record({
    formatTag: fc.constantFrom(1, 3, 0xfffe, 6, 7, 2, 0x55, 0, 0xffff),
    subFormat: fc.constantFrom(1, 3, 6, 0),
    channels: fc.constantFrom(0, 1, 2, 6, 32, 33, 65535),
    sampleRate: fc.constantFrom(0, 999, 1000, 8000, 16000, 44100, 768000, 768001, 0xffffffff),
    bits: fc.constantFrom(0, 8, 12, 16, 24, 32, 64, 65535),
    fmtSize: fc.constantFrom(14, 16, 18, 39, 40),
    dataBytes: fc.integer({ min: 0, max: 4096 }),
    declared: fc.option(fc.constantFrom(0, 1, 0xffffffff, 0x7fffffff), { nil: undefined }),
    before: fc.array(fc.record({ id: fc.constantFrom('LIST', 'fact', 'junk', 'data', 'fmt '), size: fc.integer({ min: 0, max: 64 }), lie: fc.option(fc.constantFrom(0, 0xffffffff, 3), { nil: undefined }) }), { maxLength: 3 }),
    fill: fc.integer({ min: 0, max: 255 }),
  })
  .map((w) => {
    const fmt = Buffer.alloc(w.fmtSize);
    fmt.writeUInt16LE(w.formatTag, 0);
    fmt.writeUInt16LE(w.channels, 2);
    fmt.writeUInt32LE(w.sampleRate, 4);
    if (w.fmtSize >= 16) {
      fmt.writeUInt16LE(Math.min(65535, Math.floor((w.channels * w.bits) / 8)), 12);
      fmt.writeUInt16LE(w.bits, 14);
    }
    if (w.fmtSize >= 40) fmt.writeUInt16LE(w.subFormat, 24);
    const chunk = (id: string, body: Buffer, lie?: number): Buffer => {
      const h = Buffer.alloc(8);
      h.write(id, 0, 'latin1');
      h.writeUInt32LE(lie ?? body.length, 4);
      return Buffer.concat([h, body, body.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0)]);
    };
    const body = Buffer.concat([
      ...w.before.map((c) => chunk(c.id, Buffer.alloc(c.size, w.fill), c.lie)),
      chunk('fmt ', fmt),
      chunk('data', Buffer.alloc(w.dataBytes, w.fill), w.declared),
    ]);
    const riff = Buffer.alloc(12);
    riff.write('RIFF', 0, 'latin1');
    riff.writeUInt32LE(body.length + 4, 4);
    riff.write('WAVE', 8, 'latin1');
    return new Uint8Array(Buffer.concat([riff, body]));
  });

/** Runs `fn` on every input, timing each: returns the slowest input's milliseconds. */
function timed<T>(fn: (x: T) => void): { run: (x: T) => void; slowest: () => number } {
  let slowest = 0;
  return {
    run: (x) => {
      const t0 = performance.now();
      try {
        fn(x);
      } finally {
        slowest = Math.max(slowest, performance.now() - t0);
      }
    },
    slowest: () => slowest,
  };
}

function heapMiB(): number {
  return process.memoryUsage().heapUsed / 2 ** 20;
}

describe('fuzz: WAV decoder', () => {
  it('20 000 inputs (corpus, structured headers, mutations, random bytes): a decoded clip or an AudioFormatError, nothing else', () => {
    const t = timed((bytes: Uint8Array) => {
      try {
        const a = decodeWav(bytes, { maxDurationSeconds: 600 });
        expect(a.samples.length).toBeGreaterThan(0);
        expect(a.samples.length * Math.min(8, a.channels * 1)).toBeLessThanOrEqual(bytes.length); // output bounded by the input
        expect(a.sampleRate).toBeGreaterThanOrEqual(1000);
      } catch (err) {
        if (!(err instanceof AudioFormatError)) throw err;
      }
    });
    const heap0 = heapMiB();
    fc.assert(fc.property(fc.oneof(mutated(wavSeeds), structuredWav, fc.uint8Array({ maxLength: 512 })), (b) => t.run(b)), {
      seed: SEED, numRuns: 20_000, examples: wavSeeds.map((w) => [w]),
    });
    expect(t.slowest()).toBeLessThan(500);
    expect(heapMiB() - heap0).toBeLessThan(256);
  });
});

describe('fuzz: model-set parser', () => {
  const ref = fc.record({
    version: fc.oneof(fc.constantFrom('v1', '1.0.0', '', '-x'), fc.string({ maxLength: 20 })),
    uri: fc.oneof(fc.constantFrom('s3://b/k/', 'file:///m', 'https://h/m/', 'ftp://x', 'file://host/p', ''), fc.webUrl()),
    sha256: fc.oneof(fc.constant('a'.repeat(64)), fc.stringMatching(/^[a-f0-9]{0,70}$/)),
  });
  const modelSet = fc.record(
    {
      pool: fc.oneof(fc.constantFrom('p', 'jetson-east', 'UPPER', ''), fc.string({ maxLength: 10 })),
      defaultModel: fc.constantFrom('asr', 'other', ''),
      scenarios: fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }),
      models: fc.array(fc.record({ name: fc.constantFrom('asr', 'b', 'Bad', ''), stable: ref, candidate: fc.option(fc.record({ version: fc.string({ maxLength: 5 }), uri: fc.constant('s3://b/c/'), sha256: fc.constant('c'.repeat(64)), weight: fc.integer({ min: -5, max: 105 }) }), { nil: undefined }) }, { requiredKeys: ['name'] }), { maxLength: 4 }),
      extra: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: [] },
  );
  const text = fc.oneof(
    modelSet.map((m) => JSON.stringify(m)),
    modelSet.map((m) => toYaml(m)),
    fc.constantFrom(...corpus.modelSet),
    fc.tuple(fc.constantFrom(...corpus.modelSet), fc.nat(), fc.string({ maxLength: 8 })).map(([s, at, ins]) => s.slice(0, at % (s.length + 1)) + ins + s.slice(at % (s.length + 1))),
    fc.string({ maxLength: 200 }),
    fc.json({ maxDepth: 4 }),
  );

  it('2 000 texts (JSON, YAML, corpus, mutations, anchors/aliases): a valid model set or a ModelSetError, nothing else', () => {
    const t = timed((s: string) => {
      try {
        const set = parseModelSet(s);
        expect(modelSetProblems(set)).toEqual([]);
      } catch (err) {
        if (!(err instanceof ModelSetError)) throw err;
      }
    });
    const heap0 = heapMiB();
    fc.assert(fc.property(text, (s) => t.run(s)), { seed: SEED, numRuns: 2_000, examples: corpus.modelSet.map((s) => [s]) });
    expect(t.slowest()).toBeLessThan(1000);
    expect(heapMiB() - heap0).toBeLessThan(256);
  });

  it('an alias bomb (billion laughs) is refused, not expanded', () => {
    const bomb = corpus.modelSet.find((s) => s.startsWith('a: &a')) ?? '';
    const t0 = performance.now();
    expect(() => parseModelSet(bomb)).toThrow(ModelSetError);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('fuzz: artifact manifest parser', () => {
  const files = fc.dictionary(
    fc.oneof(fc.constantFrom('config.json', 'onnx/encoder_model.onnx', '../x', '/abs', 'a/../../b', '', '.', 'a\u0000b'), fc.string({ maxLength: 12 })),
    fc.oneof(
      fc.record({ sha256: fc.oneof(fc.constant('a'.repeat(64)), fc.string({ maxLength: 70 })), bytes: fc.oneof(fc.nat(), fc.constantFrom(-1, 1.5, 1e300, Number.MAX_SAFE_INTEGER + 2)) }, { requiredKeys: ['sha256'] }),
      fc.jsonValue({ maxDepth: 1 }),
    ),
    { maxKeys: 6 },
  );
  const bytes = fc.oneof(
    fc.record({ version: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), files }, { requiredKeys: [] }).map((m) => new Uint8Array(Buffer.from(JSON.stringify(m)))),
    mutated(manifestSeeds),
    fc.uint8Array({ maxLength: 256 }),
  );

  it('20 000 manifests: parsed (every path inside the folder, every size a byte count) or an ArtifactError invalid_manifest', () => {
    const t = timed((b: Uint8Array) => {
      try {
        const m = parseManifest(b);
        for (const [rel, meta] of Object.entries(m.files)) {
          expect(rel.split('/').filter((p) => p === '..').length === 0 || !rel.startsWith('..')).toBe(true);
          expect(/^[a-f0-9]{64}$/.test(meta.sha256)).toBe(true);
          if (meta.bytes !== undefined) expect(Number.isSafeInteger(meta.bytes) && meta.bytes >= 0).toBe(true);
        }
      } catch (err) {
        if (!(err instanceof ArtifactError) || err.reason !== 'invalid_manifest') throw err;
      }
    });
    fc.assert(fc.property(bytes, (b) => t.run(b)), { seed: SEED, numRuns: 20_000, examples: manifestSeeds.map((m) => [m]) });
    expect(t.slowest()).toBeLessThan(500);
  });
});

describe('fuzz: multipart uploads through the real agent', () => {
  let agent: Agent;
  let port = 0;
  beforeAll(async () => {
    const o = parseOptions(['--port', '0', '--workers', '1', '--threads', '1'], {}, REPO_ROOT);
    if (o === 'help') throw new Error('unexpected');
    agent = await startAgent({ ...o, cacheDir: tempDir('cache'), shutdownDelaySeconds: 0, maxUploadBytes: 64 * 1024, bodyTimeoutSeconds: 2 }, pino({ level: 'silent' }));
    port = Number(new URL(agent.url).port);
  });
  afterAll(() => agent.shutdown());

  /** One raw request; resolves with the status (0: the server closed without answering). */
  const send = (contentType: string, body: Buffer, declared?: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/audio/transcriptions', headers: { 'content-type': contentType, 'content-length': String(declared ?? body.length) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.setTimeout(15_000, () => reject(new Error('no answer in 15 s (hang)')));
      req.on('error', () => resolve(0));
      req.end(body);
    });

  const part = (name: string, value: Buffer, filename?: string, type?: string): Buffer =>
    Buffer.concat([Buffer.from(`Content-Disposition: form-data; name="${name}"${filename === undefined ? '' : `; filename="${filename}"`}\r\n${type ? `Content-Type: ${type}\r\n` : ''}\r\n`, 'latin1'), value]);

  /** Mostly absent: one input in `n` gets the fault. */
  const sometimes = <T>(arb: fc.Arbitrary<T>, n = 4): fc.Arbitrary<T | undefined> => fc.oneof({ arbitrary: fc.constant(undefined), weight: n - 1 }, { arbitrary: arb, weight: 1 });
  const field = fc
    .record({ name: fc.constantFrom('model', 'response_format', 'temperature', 'language', 'prompt', 'stream', 'x'), value: fc.oneof(fc.constantFrom('json', 'verbose_json', 'srt', 'text', '0.2', '2', 'NaN', 'true', 'en', 'tiny-whisper-synth', ''), fc.string({ maxLength: 40 })) })
    .map((p) => part(p.name, Buffer.from(p.value, 'utf8')));
  const file = fc
    .record({ wav: fc.oneof({ arbitrary: fc.constantFrom(...wavSeeds), weight: 2 }, { arbitrary: mutated(wavSeeds), weight: 2 }, { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 }), filename: fc.oneof(fc.constant('a.wav'), fc.string({ maxLength: 10 })), type: fc.constantFrom('audio/wav', 'application/octet-stream', '') })
    .map((p) => part('file', Buffer.from(p.wav), p.filename, p.type));
  const upload = fc.record({
    boundary: fc.oneof({ arbitrary: fc.constant('xYzBoundary'), weight: 3 }, { arbitrary: fc.stringMatching(/^[-A-Za-z0-9_'()+,./:=?]{1,70}$/), weight: 1 }),
    headerBoundary: sometimes(fc.oneof(fc.constant('other'), fc.constant(''), fc.string({ maxLength: 10 }))),
    fields: fc.array(field, { maxLength: 4 }),
    file,
    hasFile: fc.oneof({ arbitrary: fc.constant(true), weight: 6 }, { arbitrary: fc.constant(false), weight: 1 }),
    fileFirst: fc.boolean(),
    junkPart: sometimes(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b))),
    cut: sometimes(fc.nat()),
    noise: sometimes(fc.uint8Array({ minLength: 1, maxLength: 16 })),
    lengthLie: sometimes(fc.integer({ min: -20, max: -1 })),
  });

  it('300 multipart bodies (bad boundaries, broken parts, truncated, lying Content-Length, mutated WAVs): every one answered, none with a 5xx, the agent healthy after', async () => {
    const statuses = new Map<number, number>();
    let slowest = 0;
    const heap0 = heapMiB();
    await fc.assert(
      fc.asyncProperty(upload, async (u) => {
        const filePart = u.hasFile ? [u.file] : [];
        const parts = [...(u.fileFirst ? filePart : []), ...u.fields, ...(u.junkPart ? [u.junkPart] : []), ...(u.fileFirst ? [] : filePart)];
        let body = Buffer.concat([...parts.flatMap((p) => [Buffer.from(`--${u.boundary}\r\n`, 'latin1'), p, Buffer.from('\r\n')]), Buffer.from(`--${u.boundary}--\r\n`, 'latin1')]);
        if (u.noise) body = Buffer.concat([body.subarray(0, body.length >> 1), Buffer.from(u.noise), body.subarray(body.length >> 1)]);
        if (u.cut !== undefined) body = body.subarray(0, u.cut % (body.length + 1));
        // A Content-Length smaller than the body cuts it (a larger one would only wait for the body timeout: the slow-client tests).
        const declared = u.lengthLie === undefined ? undefined : Math.max(0, body.length + u.lengthLie);
        const t0 = performance.now();
        const status = await send(`multipart/form-data; boundary="${u.headerBoundary ?? u.boundary}"`, body, declared);
        slowest = Math.max(slowest, performance.now() - t0);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        expect(status === 0 || (status >= 200 && status < 500)).toBe(true);
      }),
      { seed: SEED, numRuns: 300 },
    );
    expect((await fetch(`${agent.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${agent.url}/readyz`)).status).toBe(200);
    expect(heapMiB() - heap0).toBeLessThan(256);
    expect(agent.admission.activeCount + agent.admission.queuedCount).toBe(0);
    // Something of every kind came back: refusals and (for intact WAVs) transcriptions.
    expect([...statuses.keys()].some((s) => s >= 400)).toBe(true);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
    expect(slowest).toBeLessThan(5_000);
    process.stdout.write(`multipart fuzz: statuses ${JSON.stringify(Object.fromEntries(statuses))}, slowest ${slowest.toFixed(0)} ms\n`);
  });
});
