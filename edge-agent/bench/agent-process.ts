// The benchmarks' edge agent: `edge-agent/src/main.ts` as a child process on a free loopback port,
// ready when /readyz answers 200 (120 s at most), stopped with SIGTERM.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { REPO_ROOT } from '../src/testing/speech.js';

export async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export interface AgentProcess {
  url: string;
  pid: number;
  stop: () => Promise<void>;
}

/** Starts an agent with `args` (after `--port`) and waits for it to be ready. */
export async function spawnAgent(args: string[]): Promise<AgentProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'edge-agent/src/main.ts', '--port', String(port), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`agent exited with code ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > 120_000) throw new Error('agent not ready after 120 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  const stop = async (): Promise<void> => {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    await exited;
  };
  return { url, pid: child.pid ?? 0, stop };
}
