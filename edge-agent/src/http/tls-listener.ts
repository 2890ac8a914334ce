// The agent's TLS listener (HTTPS + WSS): certificate and key read from files and reloaded when either
// changes (a cert-manager Secret rotation needs no restart; a half-written pair keeps the old context).
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { RequestListener } from 'node:http';
import type { Logger } from 'pino';

export interface TlsListenerOptions {
  certFile: string;
  keyFile: string;
  host: string;
  port: number;
  headersTimeoutSeconds: number;
  /** How often the files are polled (fs.watchFile; also catches a Secret's symlink swap). */
  pollMs?: number;
}

export interface TlsListener {
  server: Server;
  url: string;
  /** Re-reads the files now (tests; the watcher does it on change). */
  reload(): boolean;
  stopWatching(): void;
}

export async function startTlsListener(handler: RequestListener, opts: TlsListenerOptions, log: Logger, onReload: (ok: boolean) => void = () => undefined): Promise<TlsListener> {
  const read = (): { cert: Buffer; key: Buffer } => ({ cert: readFileSync(opts.certFile), key: readFileSync(opts.keyFile) });
  const server = createServer({ ...read(), headersTimeout: opts.headersTimeoutSeconds * 1000, requestTimeout: 300_000, connectionsCheckingInterval: 1000 }, handler);
  const reload = (): boolean => {
    try {
      server.setSecureContext(read());
      log.info({ cert: opts.certFile }, 'TLS certificate reloaded');
      onReload(true);
      return true;
    } catch (err) {
      log.error({ cert: opts.certFile, key: opts.keyFile, err: (err as Error).message }, 'TLS certificate or key unusable; keeping the previous one');
      onReload(false);
      return false;
    }
  };
  const interval = opts.pollMs ?? 1000;
  const changed = (): void => void reload();
  watchFile(opts.certFile, { interval, persistent: false }, changed);
  watchFile(opts.keyFile, { interval, persistent: false }, changed);
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(opts.port, opts.host, () => {
      server.off('error', rej);
      res();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return {
    server,
    url: `https://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    reload,
    stopWatching: () => {
      unwatchFile(opts.certFile, changed);
      unwatchFile(opts.keyFile, changed);
    },
  };
}
