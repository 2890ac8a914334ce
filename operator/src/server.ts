// The operator's HTTP endpoints: /healthz (the process is alive), /readyz (not draining and, while
// leading, caches synced), /metrics (Prometheus). Built without listening, so tests drive it in-process.
// Plain node:http: three GET routes do not need a framework, and the operator image carries none.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export interface ServerDeps {
  healthy(): boolean;
  ready(): { ready: boolean; reason: string };
  registry: Registry;
}

export interface OperatorApp {
  /** The request handler (for a server of the caller's own). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Starts a server on host:port; the callback gets the listen error, if any (as express 5's does). */
  listen(port: number, host: string, callback: (err?: Error) => void): Server;
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const TEXT = 'text/plain; charset=utf-8';

export function createApp(deps: ServerDeps): OperatorApp {
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0];
    const known = path === '/healthz' || path === '/readyz' || path === '/metrics';
    if (!known) return send(res, 404, TEXT, 'not found');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, TEXT, 'method not allowed');
    }
    if (path === '/healthz') {
      const ok = deps.healthy();
      return send(res, ok ? 200 : 500, TEXT, ok ? 'ok' : 'unhealthy');
    }
    if (path === '/readyz') {
      const r = deps.ready();
      return send(res, r.ready ? 200 : 503, TEXT, r.ready ? 'ok' : r.reason);
    }
    return send(res, 200, deps.registry.contentType, await deps.registry.metrics());
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, TEXT, err instanceof Error ? err.message : String(err));
      else res.destroy();
    });
  };
  return {
    handle,
    listen(port, host, callback) {
      const server = createServer(handle);
      const onError = (err: Error) => callback(err);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        callback();
      });
      return server;
    },
  };
}
