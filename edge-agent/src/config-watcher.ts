// Watches the model-set file. A ConfigMap volume updates by swapping the `..data` symlink in the file's
// folder, which fs.watch on the folder reports; polling (content hash) covers file systems where watch
// events are lost. `onChange` gets the new text only when the content really changed.
import { createHash } from 'node:crypto';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class ConfigWatcher {
  private lastHash = '';
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private checking: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly onChange: (text: string) => Promise<void>,
    private readonly onError: (err: Error) => void,
    private readonly pollMs = 10_000,
  ) {}

  /** Reads the file once (calling onChange) and starts watching. */
  async start(): Promise<void> {
    await this.check();
    try {
      this.watcher = watch(dirname(this.file), { persistent: false }, () => this.schedule());
      this.watcher.on('error', (err) => this.onError(err));
    } catch (err) {
      this.onError(err as Error); // polling still works
    }
    this.timer = setInterval(() => this.schedule(0), this.pollMs);
    this.timer.unref();
  }

  private schedule(delayMs = 200): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.check(), delayMs);
    this.debounce.unref();
  }

  /**
   * Re-reads now; resolves after onChange finished (if it was called). Never rejects: a failing read
   * or onChange goes to onError, and the next check runs as usual (one failure does not poison the
   * chain of checks; a content whose onChange failed is offered again on the next check).
   */
  check(): Promise<void> {
    const run = async (): Promise<void> => {
      let text: string;
      try {
        text = await readFile(this.file, 'utf8');
      } catch (err) {
        this.onError(asError(err));
        return;
      }
      const hash = createHash('sha256').update(text).digest('hex');
      if (hash === this.lastHash) return;
      this.lastHash = hash;
      try {
        await this.onChange(text);
      } catch (err) {
        this.lastHash = '';
        this.onError(asError(err));
      }
    };
    this.checking = this.checking.then(run, run);
    return this.checking;
  }

  stop(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
  }
}
