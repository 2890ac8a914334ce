// KubeClient over HTTP(S). One keep-alive agent for every request (client-node's own clients build a
// new agent per call); the Authorization header is asked for at every request, so rotating tokens
// (in-cluster token files) keep working. Credentials are never logged.
import type { KubernetesObject } from '@kubernetes/client-node';
import http from 'node:http';
import https from 'node:https';
import type {
  DeleteOptions, KubeClient, ListOptions, ListResult, PatchOptions, RequestOptions, ResourceType, WatchEvent, WatchOptions,
} from './client.js';
import { abortError, ApiError, resourcePath } from './client.js';
import type { ClusterAccess, KubeConfigLike } from './access.js';
import { kubeConfigObjectAccess } from './access.js';

const PATCH_CONTENT_TYPES: Record<NonNullable<PatchOptions['patchType']>, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

export interface HttpClientOptions {
  /** Per-request timeout of everything but watches. */
  requestTimeoutMs?: number;
  /** Client-side limit of concurrent connections to the API server. */
  maxSockets?: number;
  userAgent?: string;
}

interface Connection {
  base: URL;
  agent: http.Agent;
  transport: typeof http | typeof https;
}

function statusOf(body: string, statusCode: number): ApiError {
  try {
    const status = JSON.parse(body) as { reason?: string; message?: string };
    return new ApiError(statusCode, status.reason ?? String(statusCode), status.message ?? `HTTP ${statusCode}`);
  } catch {
    return new ApiError(statusCode, String(statusCode), `HTTP ${statusCode}: ${body.slice(0, 200)}`);
  }
}

export class HttpKubeClient implements KubeClient {
  private connection: Promise<Connection> | undefined;
  private readonly access: Promise<ClusterAccess>;
  private readonly requestTimeoutMs: number;
  private readonly maxSockets: number;
  private readonly userAgent: string;

  constructor(access: ClusterAccess | Promise<ClusterAccess>, opts: HttpClientOptions = {}) {
    this.access = Promise.resolve(access);
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.maxSockets = opts.maxSockets ?? 64;
    this.userAgent = opts.userAgent ?? 'whisperops-operator';
  }

  /** A client with the credentials of a @kubernetes/client-node KubeConfig (tests, exec plugins). */
  static fromKubeConfig(kc: KubeConfigLike, opts: HttpClientOptions = {}): HttpKubeClient {
    return new HttpKubeClient(kubeConfigObjectAccess(kc), opts);
  }

  private connect(): Promise<Connection> {
    this.connection ??= (async () => {
      const access = await this.access;
      const base = access.server;
      const secure = base.protocol === 'https:';
      const agent = secure
        ? new https.Agent({
          keepAlive: true, maxSockets: this.maxSockets, ca: access.ca, cert: access.cert, key: access.key,
          ...(access.insecureSkipTLSVerify ? { rejectUnauthorized: false } : {}),
          ...(access.tlsServerName ? { servername: access.tlsServerName } : {}),
        })
        : new http.Agent({ keepAlive: true, maxSockets: this.maxSockets });
      return { base, agent, transport: secure ? https : http };
    })();
    return this.connection;
  }

  private async headers(extra: Record<string, string>): Promise<http.OutgoingHttpHeaders> {
    const auth = await (await this.access).headers();
    return { ...auth, 'User-Agent': this.userAgent, Accept: 'application/json', ...extra };
  }

  private async request(method: string, path: string, query: URLSearchParams | undefined, body: unknown, contentType?: string, signal?: AbortSignal): Promise<unknown> {
    if (signal?.aborted) throw abortError(signal);
    const conn = await this.connect();
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = await this.headers(payload === undefined ? {} : { 'Content-Type': contentType ?? 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) });
    const url = new URL(conn.base.pathname.replace(/\/$/, '') + path, conn.base);
    if (query) url.search = query.toString();
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const req = conn.transport.request(url, { method, headers, agent: conn.agent, timeout: this.requestTimeoutMs, ...(signal ? { signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          if (code < 200 || code >= 300) {
            reject(statusOf(text, code));
            return;
          }
          try {
            resolve(text === '' ? undefined : JSON.parse(text));
          } catch (err) {
            reject(new Error(`${method} ${path}: the API server's answer is not JSON`, { cause: err }));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${this.requestTimeoutMs} ms`)));
      req.on('error', (err) => reject(signal?.aborted ? abortError(signal) : err));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async list<T extends KubernetesObject>(type: ResourceType, opts: ListOptions = {}): Promise<ListResult<T>> {
    const q = new URLSearchParams();
    if (opts.labelSelector) q.set('labelSelector', opts.labelSelector);
    if (opts.fieldSelector) q.set('fieldSelector', opts.fieldSelector);
    if (opts.limit) q.set('limit', String(opts.limit));
    if (opts.continue) q.set('continue', opts.continue);
    if (opts.resourceVersion !== undefined) q.set('resourceVersion', opts.resourceVersion);
    const list = (await this.request('GET', resourcePath(type, opts.namespace), q, undefined, undefined, opts.signal)) as {
      items?: T[]; metadata?: { resourceVersion?: string; continue?: string };
    };
    // List items carry no apiVersion/kind; fill them in so that every object is complete.
    const apiVersion = type.group === '' ? type.version : `${type.group}/${type.version}`;
    const items = (list.items ?? []).map((item) => ({ ...item, apiVersion, kind: type.kind }));
    const result: ListResult<T> = { items, resourceVersion: list.metadata?.resourceVersion ?? '' };
    if (list.metadata?.continue) result.continue = list.metadata.continue;
    return result;
  }

  async watch(type: ResourceType, opts: WatchOptions, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const conn = await this.connect();
    const headers = await this.headers({});
    const q = new URLSearchParams({ watch: 'true', resourceVersion: opts.resourceVersion, timeoutSeconds: String(opts.timeoutSeconds) });
    if (opts.allowWatchBookmarks) q.set('allowWatchBookmarks', 'true');
    if (opts.labelSelector) q.set('labelSelector', opts.labelSelector);
    if (opts.fieldSelector) q.set('fieldSelector', opts.fieldSelector);
    const url = new URL(conn.base.pathname.replace(/\/$/, '') + resourcePath(type, opts.namespace), conn.base);
    url.search = q.toString();
    // The server ends the watch after timeoutSeconds; silence well past that means a dead connection.
    const idleMs = (opts.timeoutSeconds + 30) * 1000;
    await new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const req = conn.transport.request(url, { method: 'GET', headers, agent: conn.agent, timeout: idleMs, signal }, (res) => {
        const code = res.statusCode ?? 0;
        if (code !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(statusOf(Buffer.concat(chunks).toString('utf8'), code)));
          res.on('error', reject);
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let nl = buffered.indexOf('\n');
          while (nl >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (line !== '') {
              let event: WatchEvent | undefined;
              try {
                event = JSON.parse(line) as WatchEvent;
              } catch (err) {
                req.destroy(new Error('the watch stream sent a line that is not JSON', { cause: err }));
                return;
              }
              onEvent(event);
            }
            nl = buffered.indexOf('\n');
          }
        });
        res.on('end', () => resolve());
        res.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
        res.on('close', () => resolve());
      });
      req.on('timeout', () => req.destroy(new Error(`watch ${type.plural}: no data for ${idleMs} ms`)));
      req.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      req.end();
    });
  }

  async get<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string, opts: RequestOptions = {}): Promise<T> {
    return (await this.request('GET', resourcePath(type, namespace, name), undefined, undefined, undefined, opts.signal)) as T;
  }

  async create<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, body: T, opts: RequestOptions = {}): Promise<T> {
    return (await this.request('POST', resourcePath(type, namespace), undefined, body, undefined, opts.signal)) as T;
  }

  async replace<T extends KubernetesObject>(type: ResourceType, namespace: string | undefined, name: string, body: T, opts: RequestOptions = {}): Promise<T> {
    return (await this.request('PUT', resourcePath(type, namespace, name), undefined, body, undefined, opts.signal)) as T;
  }

  async patch<T extends KubernetesObject>(
    type: ResourceType, namespace: string | undefined, name: string, patch: unknown,
    opts: PatchOptions = {},
  ): Promise<T> {
    const contentType = PATCH_CONTENT_TYPES[opts.patchType ?? 'merge'];
    return (await this.request('PATCH', resourcePath(type, namespace, name, opts.subresource), undefined, patch, contentType, opts.signal)) as T;
  }

  async delete(type: ResourceType, namespace: string | undefined, name: string, opts: DeleteOptions = {}): Promise<void> {
    const body = opts.propagationPolicy ? { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: opts.propagationPolicy } : undefined;
    await this.request('DELETE', resourcePath(type, namespace, name), undefined, body, undefined, opts.signal);
  }

  /** Closes idle keep-alive connections (shutdown). */
  async close(): Promise<void> {
    if (this.connection) (await this.connection).agent.destroy();
  }
}
