// Model artifacts: a folder with model-manifest.json (written by trainer-image) and the files it lists.
// Fetching goes through ArtifactStore, one small interface per URI scheme (file://, http(s)://, and
// s3:// in s3-store.ts). Verification: sha256 of the manifest against the model set, then sha256 and
// size of every listed file. Downloads are streamed: each file goes chunk by chunk to a partial folder
// while it is hashed and counted (at most the bytes its manifest lists, and never more than a cap),
// and the folder is renamed into the content-addressed cache only when every file is complete and
// verified — a failure removes it. Nothing holds a whole file in memory. A read that fails on the way
// (network, HTTP 5xx, no data for the idle timeout) is tried again from its start after a capped,
// jittered back-off; a wrong checksum or size is not (the model set's own retry comes back later).
// Error messages never carry a URL's user-info or query string (presigned URLs).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { ModelRef } from '../../../api/model-set.js';
import { backoffDelayMs } from '../dataset/writer.js';
import { redactText } from '../redact.js';
import { OPTIONAL_MODEL_FILES, onnxFileNames } from '../inference/model-files.js';
import type { ModelDtype } from '../inference/model-files.js';

export const MANIFEST = 'model-manifest.json';
/** Largest file the agent downloads, whatever a manifest says (ArtifactFetcher option maxFileBytes). */
export const DEFAULT_MAX_FILE_BYTES = 2 * 1024 ** 3;
/** Largest model-manifest.json the agent reads (it is read into memory). */
export const DEFAULT_MAX_MANIFEST_BYTES = 1024 ** 2;
/** Longest wait for a response, then for each next chunk of a download. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

export type ArtifactFailure =
  | 'unsupported_uri' | 'download_error' | 'manifest_checksum_mismatch' | 'invalid_manifest' | 'version_mismatch'
  | 'file_checksum_mismatch' | 'missing_file' | 'file_too_large';

export class ArtifactError extends Error {
  constructor(
    readonly reason: ArtifactFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(redactText(message), options);
    this.name = 'ArtifactError';
  }
}

export interface ModelManifest {
  version: string;
  name?: string;
  parentVersion?: string | null;
  quantization?: string;
  files: Record<string, { sha256: string; bytes?: number }>;
}

/** One URI scheme's way to read an artifact's files. */
export interface ArtifactStore {
  readonly schemes: readonly string[];
  /** A local folder holding the artifact, when the files can be used in place (file://). */
  localDir?(base: URL): string;
  /**
   * The bytes of `relPath` inside the artifact folder `base`, as chunks read on demand. Rejects with
   * an ArtifactError: missing_file (no such file), download_error (cannot be read), file_too_large
   * (the source announces more than `maxBytes`; the caller still counts what it reads). Reading the
   * chunks fails with an ArtifactError too (download_error); stopping early (break, throw) releases
   * the source. Start reading right away: an open source holds a connection or a file descriptor.
   */
  open(base: URL, relPath: string, maxBytes: number): Promise<AsyncIterable<Uint8Array>>;
  /**
   * Like open, asking for the bytes from `offset` on (a download resumed after a failed read;
   * `maxBytes` still caps the whole file). `from` says where the chunks start: `offset`, or 0 when the
   * source sent the whole file instead (an HTTP server that ignores Range). Undefined: nothing usable
   * (the caller opens the file again). Optional: without it, every retry starts from the beginning.
   */
  openFrom?(base: URL, relPath: string, maxBytes: number, offset: number): Promise<{ from: number; chunks: AsyncIterable<Uint8Array> } | undefined>;
}

function safeJoin(root: string, rel: string): string {
  const r = normalize(root).replace(/[\\/]+$/, '');
  const p = normalize(join(r, rel));
  if (!p.startsWith(r + sep)) throw new ArtifactError('invalid_manifest', `manifest path escapes the artifact folder: ${rel}`);
  return p;
}

/**
 * The chunks of `source` with a store's read errors turned into download_error (`where` names the
 * object, never credentials). With `idle`, a wait of more than `idle.ms` for the next chunk calls
 * `idle.abort`, which must make the pending read fail (abort the request, destroy the stream). The
 * clock stops while the consumer handles a chunk: only the source's silence counts.
 */
export async function* readChunks(
  source: AsyncIterable<Uint8Array>,
  where: string,
  idle?: { ms: number; abort: (reason: Error) => void },
): AsyncGenerator<Uint8Array, void, undefined> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const arm = (): void => {
    if (!idle) return;
    timer = setTimeout(() => {
      timedOut = true;
      idle.abort(new Error(`no data for ${idle.ms} ms`));
    }, idle.ms);
  };
  try {
    arm();
    for await (const chunk of source) {
      clearTimeout(timer);
      yield chunk;
      arm();
    }
  } catch (err) {
    if (err instanceof ArtifactError) throw err;
    const why = timedOut && idle ? `no data for ${idle.ms} ms` : errorText(err);
    throw new ArtifactError('download_error', `reading ${where} failed: ${why}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** True when a process `pid` exists (signal 0 checks without sending anything). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class FileArtifactStore implements ArtifactStore {
  readonly schemes = ['file:'] as const;
  localDir(base: URL): string {
    return fileURLToPath(base);
  }
  async open(base: URL, relPath: string, maxBytes: number): Promise<AsyncIterable<Uint8Array>> {
    const path = safeJoin(this.localDir(base), relPath);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw new ArtifactError('missing_file', `cannot read ${relPath} from ${base.href}: ${errorText(err)}`, { cause: err });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new ArtifactError('missing_file', `${relPath} of ${base.href} is not a file`);
      if (st.size > maxBytes) throw new ArtifactError('file_too_large', `${relPath} of ${base.href} has ${st.size} bytes`);
    } catch (err) {
      await fh.close();
      if (err instanceof ArtifactError) throw err;
      throw new ArtifactError('download_error', `cannot read ${relPath} from ${base.href}: ${errorText(err)}`, { cause: err });
    }
    return readChunks(fh.createReadStream(), `${relPath} of ${base.href}`);
  }
}

export class HttpArtifactStore implements ArtifactStore {
  readonly schemes = ['http:', 'https:'] as const;
  /** `idleTimeoutMs`: longest wait for the response, then for each next chunk of its body (no limit on the whole download). */
  constructor(private readonly idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS) {}
  async open(base: URL, relPath: string, maxBytes: number): Promise<AsyncIterable<Uint8Array>> {
    const got = await this.get(base, relPath, maxBytes, 0);
    if (!got) throw new ArtifactError('download_error', `GET ${relPath} of ${base.href}: no body`);
    return got.chunks;
  }

  /** A Range request for the bytes from `offset`: 206 → from offset; 200 (Range ignored) → the whole file, from 0; 416 or a Content-Range for other bytes → undefined. */
  openFrom(base: URL, relPath: string, maxBytes: number, offset: number): Promise<{ from: number; chunks: AsyncIterable<Uint8Array> } | undefined> {
    return this.get(base, relPath, maxBytes, offset);
  }

  private async get(base: URL, relPath: string, maxBytes: number, offset: number): Promise<{ from: number; chunks: AsyncIterable<Uint8Array> } | undefined> {
    const url = new URL(relPath.split('/').map(encodeURIComponent).join('/'), base.href.endsWith('/') ? base : new URL(base.href + '/'));
    const ms = this.idleTimeoutMs;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no response in ${ms} ms`)), ms);
    let res: Response;
    try {
      res = await fetch(url, { signal: abort.signal, redirect: 'follow', ...(offset > 0 ? { headers: { range: `bytes=${offset}-` } } : {}) });
    } catch (err) {
      throw new ArtifactError('download_error', `GET ${url.href} failed: ${errorText(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    const refuse = async (reason: ArtifactFailure, message: string): Promise<never> => {
      await res.body?.cancel().catch(() => undefined);
      throw new ArtifactError(reason, message);
    };
    if (offset > 0 && (res.status === 416 || (res.status === 206 && !(res.headers.get('content-range') ?? '').startsWith(`bytes ${offset}-`)))) {
      await res.body?.cancel().catch(() => undefined);
      return undefined; // not resumable here: the caller starts again
    }
    if (!res.ok) return refuse(res.status === 404 ? 'missing_file' : 'download_error', `GET ${url.href}: HTTP ${res.status}`);
    const from = res.status === 206 ? offset : 0;
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(length) && from + length > maxBytes) return refuse('file_too_large', `GET ${url.href}: Content-Length ${length}${from > 0 ? ` from byte ${from}` : ''}`);
    return { from, chunks: readChunks(res.body ?? Readable.from([]), `GET ${url.href}`, { ms, abort: (reason) => abort.abort(reason) }) };
  }
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function parseManifest(bytes: Uint8Array): ModelManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new ArtifactError('invalid_manifest', `${MANIFEST} is not JSON`, { cause: err });
  }
  const m = doc as Partial<ModelManifest> | null;
  if (!m || typeof m.version !== 'string' || typeof m.files !== 'object' || m.files === null) {
    throw new ArtifactError('invalid_manifest', `${MANIFEST} needs "version" (string) and "files" ({path: {sha256, bytes}})`);
  }
  for (const [rel, meta] of Object.entries(m.files)) {
    if (!meta || typeof meta.sha256 !== 'string' || !/^[a-f0-9]{64}$/.test(meta.sha256)) {
      throw new ArtifactError('invalid_manifest', `${MANIFEST}: file ${rel} has no valid sha256`);
    }
    if (meta.bytes !== undefined && !(Number.isSafeInteger(meta.bytes) && meta.bytes >= 0)) {
      throw new ArtifactError('invalid_manifest', `${MANIFEST}: file ${rel} has "bytes" ${JSON.stringify(meta.bytes)}, not a byte count`);
    }
    safeJoin('/artifact', rel); // no path may leave the folder: refused before anything is read
  }
  return m as ModelManifest;
}

export interface FetchedArtifact {
  dir: string;
  manifest: ModelManifest;
  dtype: ModelDtype;
}

/** The files the agent needs from an artifact for `dtype`. */
export function requiredFiles(dtype: ModelDtype): string[] {
  const onnx = onnxFileNames(dtype);
  return ['config.json', 'generation_config.json', 'preprocessor_config.json', 'tokenizer.json', onnx.encoder, onnx.decoder];
}

/**
 * The files of `manifest` the agent downloads and verifies for `dtype`: the required ones and the optional
 * ones it lists. Never the rest (the other dtype's ONNX pair, safetensors, training files): an INT8 agent
 * fetches ~11 MB of the embedded model's ~57 MB.
 */
export function filesToFetch(manifest: ModelManifest, dtype: ModelDtype): string[] {
  return [...requiredFiles(dtype), ...OPTIONAL_MODEL_FILES.filter((f) => f in manifest.files)];
}

/** Tries per file read (manifest and each listed file) on download_error, and the back-off between them. */
export const DEFAULT_DOWNLOAD_RETRY = { attempts: 4, initialMs: 500, maxMs: 10_000 };

export interface FetcherLimits {
  /** Tries of a read that fails with download_error, and the back-off (default DEFAULT_DOWNLOAD_RETRY). */
  retry?: { attempts: number; initialMs: number; maxMs: number };
  /** Jitter source for the back-off (tests). */
  random?: () => number;
  /** Largest file downloaded, whatever its manifest lists (default DEFAULT_MAX_FILE_BYTES, 2 GiB). */
  maxFileBytes?: number;
  /** Largest model-manifest.json read (default DEFAULT_MAX_MANIFEST_BYTES, 1 MiB). */
  maxManifestBytes?: number;
}

/** How many bytes one file may have, and the sentence that says why when it has more. */
interface Cap {
  bytes: number;
  tooLarge: string;
}

export class ArtifactFetcher {
  private readonly maxFileBytes: number;
  private readonly maxManifestBytes: number;
  private readonly retry: { attempts: number; initialMs: number; maxMs: number };
  private readonly random: () => number;
  /** Partial folders this process is writing now. */
  private readonly partials = new Set<string>();

  constructor(
    private readonly stores: ArtifactStore[],
    private readonly cacheDir: string,
    limits: FetcherLimits = {},
  ) {
    this.maxFileBytes = limits.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.maxManifestBytes = limits.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
    this.retry = limits.retry ?? DEFAULT_DOWNLOAD_RETRY;
    this.random = limits.random ?? Math.random;
  }

  /** Runs `attempt` again after a back-off while it fails with download_error, up to retry.attempts tries. */
  private async retried<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof ArtifactError) || err.reason !== 'download_error' || n >= this.retry.attempts) throw err;
        await new Promise((r) => setTimeout(r, backoffDelayMs(n, this.retry, this.random())));
      }
    }
  }

  private storeFor(uri: URL): ArtifactStore {
    const s = this.stores.find((st) => st.schemes.includes(uri.protocol));
    if (!s) throw new ArtifactError('unsupported_uri', `no artifact store for ${uri.protocol} URIs (${uri.href})`);
    return s;
  }

  /**
   * Fetches and verifies the artifact `ref`: manifest sha256 = ref.sha256, manifest version = ref.version,
   * every file the agent reads (filesToFetch) present with its listed size and sha256; the other listed
   * files are neither downloaded nor verified. Uses `dtype`'s ONNX files, or the other dtype's when the
   * artifact lacks them. Throws ArtifactError with a precise reason.
   */
  async fetch(ref: ModelRef, dtype: ModelDtype): Promise<FetchedArtifact> {
    let base: URL;
    try {
      base = new URL(ref.uri.endsWith('/') ? ref.uri : ref.uri + '/');
    } catch (err) {
      throw new ArtifactError('unsupported_uri', `invalid URI ${ref.uri}`, { cause: err });
    }
    const store = this.storeFor(base);
    const manifestBytes = await this.retried(() => this.readManifest(store, base, ref.uri));
    const actual = sha256(manifestBytes);
    if (actual !== ref.sha256) {
      throw new ArtifactError('manifest_checksum_mismatch', `${MANIFEST} of ${ref.uri} has sha256 ${actual}, the model set expects ${ref.sha256}`);
    }
    const manifest = parseManifest(manifestBytes);
    if (manifest.version !== ref.version) {
      throw new ArtifactError('version_mismatch', `${MANIFEST} of ${ref.uri} is version ${manifest.version}, the model set expects ${ref.version}`);
    }
    const other: ModelDtype = dtype === 'int8' ? 'fp32' : 'int8';
    const chosen = requiredFiles(dtype).every((f) => f in manifest.files) ? dtype : requiredFiles(other).every((f) => f in manifest.files) ? other : undefined;
    if (!chosen) {
      const missing = requiredFiles(dtype).filter((f) => !(f in manifest.files));
      throw new ArtifactError('missing_file', `${MANIFEST} of ${ref.uri} lists no ${missing.join(', ')}`);
    }
    // Only the files this agent reads are fetched and verified (see filesToFetch).
    const wanted = filesToFetch(manifest, chosen);
    const local = store.localDir?.(base);
    if (local) {
      await this.verifyDir(local, manifest, wanted, ref.uri);
      return { dir: local, manifest, dtype: chosen };
    }
    const dir = join(this.cacheDir, ref.sha256);
    try {
      await stat(join(dir, MANIFEST));
      await this.verifyDir(dir, manifest, wanted, ref.uri);
      return { dir, manifest, dtype: chosen };
    } catch {
      // not cached, cached for another dtype, or the cache is damaged: download again
    }
    // Every cap is known before the first byte is read: a manifest that lists a wanted file over the
    // agent's cap is refused without downloading anything.
    const caps = wanted.map((rel) => ({ rel, meta: manifest.files[rel] ?? { sha256: '' }, cap: this.capFor(rel, manifest.files[rel]?.bytes, ref.uri) }));
    await this.removeStalePartials(dir);
    const partial = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
    this.partials.add(partial);
    try {
      await mkdir(partial, { recursive: true });
      for (const { rel, meta, cap } of caps) {
        const target = safeJoin(partial, rel);
        await mkdir(dirname(target), { recursive: true });
        await this.download(store, base, rel, cap, target, meta, ref.uri);
      }
      const out = await open(join(partial, MANIFEST), 'wx');
      await out.writeFile(manifestBytes).finally(() => out.close());
      await rm(dir, { recursive: true, force: true });
      await rename(partial, dir);
    } catch (err) {
      await rm(partial, { recursive: true, force: true });
      throw err;
    } finally {
      this.partials.delete(partial);
    }
    return { dir, manifest, dtype: chosen };
  }

  /**
   * Removes `<dir>.partial-*` folders no live download is writing (not this process's, and their
   * process is gone — or has this process's pid, as a restarted container's agent has): what a killed
   * agent (SIGKILL, OOM, power loss) left behind. They are never used — only a complete, verified folder
   * is renamed into place — but they would hold disk space for ever.
   */
  private async removeStalePartials(dir: string): Promise<void> {
    const parent = dirname(dir);
    const prefix = `${dir.slice(parent.length + 1)}.partial-`;
    let names: string[];
    try {
      names = await readdir(parent);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(parent, name);
      if (!name.startsWith(prefix) || this.partials.has(path)) continue;
      const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
      if (pid !== process.pid && Number.isSafeInteger(pid) && processAlive(pid)) continue; // another agent sharing this cache, still downloading
      await rm(path, { recursive: true, force: true });
    }
  }

  private capFor(rel: string, listed: number | undefined, uri: string): Cap {
    const limit = `the agent's limit of ${this.maxFileBytes} bytes per file`;
    if (listed === undefined) return { bytes: this.maxFileBytes, tooLarge: `${rel} of ${uri} is larger than ${limit}` };
    if (listed > this.maxFileBytes) throw new ArtifactError('file_too_large', `${MANIFEST} of ${uri} lists ${rel} with ${listed} bytes, over ${limit}`);
    return { bytes: listed, tooLarge: `${rel} of ${uri} has more than the ${listed} bytes its manifest lists` };
  }

  /** The chunks of one file, refused (file_too_large) as soon as they add up to more than the cap. */
  private async *capped(store: ArtifactStore, base: URL, rel: string, cap: Cap): AsyncGenerator<Uint8Array, void, undefined> {
    let source: AsyncIterable<Uint8Array>;
    try {
      source = await store.open(base, rel, cap.bytes);
    } catch (err) {
      // The store saw the size before the body (Content-Length, stat): same refusal, said the same way.
      if (err instanceof ArtifactError && err.reason === 'file_too_large') throw new ArtifactError('file_too_large', `${cap.tooLarge} (${err.message})`, { cause: err });
      throw err;
    }
    let n = 0;
    for await (const chunk of source) {
      n += chunk.byteLength;
      if (n > cap.bytes) throw new ArtifactError('file_too_large', cap.tooLarge);
      yield chunk;
    }
  }

  /** The chunks of one file asked for from `offset` on, counted against the cap from where they start; undefined when the store will not resume. */
  private async cappedFrom(store: ArtifactStore, base: URL, rel: string, cap: Cap, offset: number): Promise<{ from: number; chunks: AsyncIterable<Uint8Array> } | undefined> {
    let got: { from: number; chunks: AsyncIterable<Uint8Array> } | undefined;
    try {
      got = await store.openFrom?.(base, rel, cap.bytes, offset);
    } catch (err) {
      if (err instanceof ArtifactError && err.reason === 'file_too_large') throw new ArtifactError('file_too_large', `${cap.tooLarge} (${err.message})`, { cause: err });
      throw err;
    }
    if (!got) return undefined;
    const { from, chunks: source } = got;
    return {
      from,
      chunks: (async function* counted() {
        let n = from;
        for await (const chunk of source) {
          n += chunk.byteLength;
          if (n > cap.bytes) throw new ArtifactError('file_too_large', cap.tooLarge);
          yield chunk;
        }
      })(),
    };
  }

  private async readManifest(store: ArtifactStore, base: URL, uri: string): Promise<Buffer> {
    const cap = { bytes: this.maxManifestBytes, tooLarge: `${MANIFEST} of ${uri} is larger than the agent's limit of ${this.maxManifestBytes} bytes for manifests` };
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.capped(store, base, MANIFEST, cap)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /**
   * Streams one file to `target` while hashing and counting it, then checks both against the manifest.
   * A read that fails with download_error is tried again after a back-off (retry.attempts tries): from
   * where the file on disk ends when the store can resume (HTTP Range; the part on disk is hashed
   * again first), else from the beginning.
   */
  private async download(store: ArtifactStore, base: URL, rel: string, cap: Cap, target: string, meta: { sha256: string; bytes?: number }, uri: string): Promise<void> {
    let hash = createHash('sha256');
    let n = 0;
    await rm(target, { force: true });
    for (let attempt = 1; ; attempt++) {
      try {
        let chunks: AsyncIterable<Uint8Array> | undefined;
        if (attempt > 1) {
          // What is on disk is what the next bytes follow (a chunk in flight when the read failed may not have been written).
          const onDisk = await stat(target).then((st) => st.size, () => 0);
          const resumed = onDisk > 0 && onDisk < cap.bytes && store.openFrom ? await this.cappedFrom(store, base, rel, cap, onDisk) : undefined;
          hash = createHash('sha256');
          n = 0;
          if (resumed && resumed.from > 0) {
            for await (const c of createReadStream(target)) hash.update(c as Buffer);
            n = onDisk;
          } else {
            await rm(target, { force: true }); // the whole file again (the store sent it from 0, or could not resume)
          }
          chunks = resumed?.chunks;
        }
        chunks ??= this.capped(store, base, rel, cap);
        const h = hash;
        await pipeline(
          (async function* hashed() {
            for await (const chunk of chunks) {
              h.update(chunk);
              n += chunk.byteLength;
              yield chunk;
            }
          })(),
          createWriteStream(target, { flags: 'a' }),
        );
        break;
      } catch (err) {
        if (!(err instanceof ArtifactError) || err.reason !== 'download_error' || attempt >= this.retry.attempts) throw err;
        await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, this.retry, this.random())));
      }
    }
    if (meta.bytes !== undefined && n !== meta.bytes) {
      throw new ArtifactError('file_checksum_mismatch', `${rel} of ${uri} has ${n} bytes, its manifest lists ${meta.bytes}`);
    }
    const got = hash.digest('hex');
    if (got !== meta.sha256) throw new ArtifactError('file_checksum_mismatch', `${rel} of ${uri} has sha256 ${got}, its manifest says ${meta.sha256}`);
  }

  private async verifyDir(dir: string, manifest: ModelManifest, wanted: readonly string[], uri: string): Promise<void> {
    for (const rel of wanted) {
      const meta = manifest.files[rel];
      if (!meta) throw new ArtifactError('missing_file', `${MANIFEST} of ${uri} lists no ${rel}`);
      const path = safeJoin(dir, rel);
      const missing = (err: unknown): ArtifactError => new ArtifactError('missing_file', `${rel} listed in the manifest of ${uri} is missing`, { cause: err });
      const size = await stat(path).then((st) => st.size, (err: unknown) => { throw missing(err); });
      if (meta.bytes !== undefined && size > meta.bytes) throw new ArtifactError('file_too_large', `${rel} of ${uri} has ${size} bytes, more than the ${meta.bytes} its manifest lists`);
      if (meta.bytes !== undefined && size !== meta.bytes) throw new ArtifactError('file_checksum_mismatch', `${rel} of ${uri} has ${size} bytes, its manifest lists ${meta.bytes}`);
      const got = await sha256File(path).catch((err: unknown) => { throw missing(err); });
      if (got !== meta.sha256) throw new ArtifactError('file_checksum_mismatch', `${rel} of ${uri} has sha256 ${got}, its manifest says ${meta.sha256}`);
    }
  }
}
