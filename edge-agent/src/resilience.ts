// The process-wide net under the agent's promise chains: every chain handles its own failures (config
// watcher, model manager, inference pool and workers, dataset writer), and a rejection that still
// escapes is logged and counted here instead of ending the process (Node's default for an unhandled
// rejection is to throw and exit).
import type { Logger } from 'pino';

/** Installs the handler; returns the function that removes it. */
export function guardUnhandledRejections(log: Logger, count: () => void): () => void {
  const handler = (reason: unknown): void => {
    try {
      count();
      log.error({ err: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason) }, 'Unhandled promise rejection (the agent keeps running)');
    } catch {
      // logging must never throw out of this handler
    }
  };
  process.on('unhandledRejection', handler);
  return () => {
    process.off('unhandledRejection', handler);
  };
}
