// Model artifacts: a folder with model-manifest.json (written by trainer-image) and the files it lists.
// Fetching goes through ArtifactStore, one small interface per URI scheme (file://, http(s)://; more
// later). Verification: sha256 of the manifest against the model set, then sha256 and size of every
// listed file. Downloads land in a content-addressed cache folder, moved into place only when complete.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelRef } from '../../../api/model-set.js';
import { onnxFileNames } from '../inference/model-files.js';
import type { ModelDtype } from '../inference/model-files.js';

export const MANIFEST = 'model-manifest.json';

export type ArtifactFailure = 'unsupported_uri' | 'download_error' | 'manifest_checksum_mismatch' | 'invalid_manifest' | 'version_mismatch' | 'file_checksum_mismatch' | 'missing_file';

export class ArtifactError extends Error {
  constructor(
    readonly reason: ArtifactFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
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
  /** The bytes of `relPath` inside the artifact folder `base`. */
  read(base: URL, relPath: string): Promise<Uint8Array>;
}

function safeJoin(root: string, rel: string): string {
  const r = normalize(root).replace(/[\\/]+$/, '');
  const p = normalize(join(r, rel));
  if (!p.startsWith(r + sep)) throw new ArtifactError('invalid_manifest', `manifest path escapes the artifact folder: ${rel}`);
  return p;
}

export class FileArtifactStore implements ArtifactStore {
  readonly schemes = ['file:'] as const;
  localDir(base: URL): string {
    return fileURLToPath(base);
  }
  async read(base: URL, relPath: string): Promise<Uint8Array> {
    try {
      return await readFile(safeJoin(this.localDir(base), relPath));
    } catch (err) {
      if (err instanceof ArtifactError) throw err;
      throw new ArtifactError('missing_file', `cannot read ${relPath} from ${base.href}: ${(err as Error).message}`, { cause: err });
    }
  }
}

export class HttpArtifactStore implements ArtifactStore {
  readonly schemes = ['http:', 'https:'] as const;
  constructor(private readonly timeoutMs = 120_000) {}
  async read(base: URL, relPath: string): Promise<Uint8Array> {
    const url = new URL(relPath.split('/').map(encodeURIComponent).join('/'), base.href.endsWith('/') ? base : new URL(base.href + '/'));
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), redirect: 'follow' });
    } catch (err) {
      throw new ArtifactError('download_error', `GET ${url.href} failed: ${(err as Error).message}`, { cause: err });
    }
    if (!res.ok) throw new ArtifactError(res.status === 404 ? 'missing_file' : 'download_error', `GET ${url.href}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
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

export class ArtifactFetcher {
  constructor(
    private readonly stores: ArtifactStore[],
    private readonly cacheDir: string,
  ) {}

  private storeFor(uri: URL): ArtifactStore {
    const s = this.stores.find((st) => st.schemes.includes(uri.protocol));
    if (!s) throw new ArtifactError('unsupported_uri', `no artifact store for ${uri.protocol} URIs (${uri.href})`);
    return s;
  }

  /**
   * Fetches and verifies the artifact `ref`: manifest sha256 = ref.sha256, manifest version = ref.version,
   * every listed file present with its sha256. Uses `dtype`'s ONNX files, or the other dtype's when the
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
    const manifestBytes = await store.read(base, MANIFEST);
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
    const local = store.localDir?.(base);
    if (local) {
      await this.verifyDir(local, manifest, ref.uri);
      return { dir: local, manifest, dtype: chosen };
    }
    const dir = join(this.cacheDir, ref.sha256);
    try {
      await stat(join(dir, MANIFEST));
      await this.verifyDir(dir, manifest, ref.uri);
      return { dir, manifest, dtype: chosen };
    } catch {
      // not cached, or the cache is damaged: download again
    }
    const partial = `${dir}.partial-${process.pid}-${Date.now()}`;
    await rm(partial, { recursive: true, force: true });
    try {
      for (const [rel, meta] of Object.entries(manifest.files)) {
        const bytes = await store.read(base, rel);
        const got = sha256(bytes);
        if (got !== meta.sha256) throw new ArtifactError('file_checksum_mismatch', `${rel} of ${ref.uri} has sha256 ${got}, its manifest says ${meta.sha256}`);
        const target = safeJoin(partial, rel);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, bytes);
      }
      await writeFile(join(partial, MANIFEST), manifestBytes);
      await rm(dir, { recursive: true, force: true });
      await rename(partial, dir);
    } catch (err) {
      await rm(partial, { recursive: true, force: true });
      throw err;
    }
    return { dir, manifest, dtype: chosen };
  }

  private async verifyDir(dir: string, manifest: ModelManifest, uri: string): Promise<void> {
    for (const [rel, meta] of Object.entries(manifest.files)) {
      const path = safeJoin(dir, rel);
      let got: string;
      try {
        got = await sha256File(path);
      } catch (err) {
        throw new ArtifactError('missing_file', `${rel} listed in the manifest of ${uri} is missing`, { cause: err });
      }
      if (got !== meta.sha256) throw new ArtifactError('file_checksum_mismatch', `${rel} of ${uri} has sha256 ${got}, its manifest says ${meta.sha256}`);
    }
  }
}
