// Entry point: `npm run agent -- --port 8000 [--config model-set.yaml]`.
import { fileURLToPath } from 'node:url';
import { startAgent } from './agent.js';
import { OptionsError, parseOptions, usage } from './options.js';
import { agentLogger } from './redact.js';
import { guardUnhandledRejections } from './resilience.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/dist\/?$/, '/').replace(/\/$/, '');

async function main(): Promise<void> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2), process.env, repoRoot);
  } catch (err) {
    if (err instanceof OptionsError) {
      process.stderr.write(`${err.message}\n\n${usage()}`);
      process.exit(2);
    }
    throw err;
  }
  if (opts === 'help') {
    process.stdout.write(usage());
    return;
  }
  const log = agentLogger(opts.logLevel);
  let counted = 0;
  let count = (): void => void counted++;
  guardUnhandledRejections(log, () => count());
  const agent = await startAgent(opts, log);
  agent.metrics.unhandledRejections.inc(counted);
  count = () => agent.metrics.unhandledRejections.inc();
  const stop = (signal: string): void => {
    log.info({ signal }, 'Received signal');
    agent.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: (err as Error).message }, 'Shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`edge-agent failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
