// The operator's HTTP endpoints: /healthz (the process is alive), /readyz (not draining and, while
// leading, caches synced), /metrics (Prometheus). Built without listening, so tests drive it in-process.
import express from 'express';
import type { Registry } from 'prom-client';

export interface ServerDeps {
  healthy(): boolean;
  ready(): { ready: boolean; reason: string };
  registry: Registry;
}

export function createApp(deps: ServerDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    if (deps.healthy()) res.type('text/plain').send('ok');
    else res.status(500).type('text/plain').send('unhealthy');
  });
  app.get('/readyz', (_req, res) => {
    const r = deps.ready();
    res.status(r.ready ? 200 : 503).type('text/plain').send(r.ready ? 'ok' : r.reason);
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  return app;
}
