// The published packages as an application gets them: each is built and
// `npm pack`ed, its tarball's files are checked, and the tarballs are
// installed with `npm install --offline` (the npm cache alone) into four
// projects outside the repository, each with a lockfile made from the
// repository's (./lockfile.ts), so that every version they install is one
// that `npm ci` has cached:
//   esm     an ES module TypeScript project (module nodenext), tsc, run;
//   cjs     a CommonJS JavaScript project that require()s the packages,
//           without etcd3 and @kubernetes/client-node, which
//           @grpc-tower/discover must not need;
//   cjs-nodenext  a CommonJS TypeScript project with module nodenext
//           (TypeScript >= 5.8 compiles its require() of ES modules), tsc, run;
//   node10  a CommonJS TypeScript project with module commonjs and
//           moduleResolution node10, on the oldest @grpc/grpc-js and rxjs
//           the packages accept, tsc, run.
// The last two also compose a stack by hand over a discovery source made
// with the application's own rxjs.
// Beside those, from the registry (the npm cache first):
//   types   TypeScript 5.9, 6 and 7 each compile an ES module project
//           (nodenext) and CommonJS ones (nodenext, and commonjs with
//           TypeScript's default module resolution);
//   nestjs  a project as `nest new` (NestJS 11) makes one: CommonJS, Jest
//           30 with ts-jest and the starter's Jest configuration, with the
//           module and controller of examples/nestjs and a spec over them,
//           which Jest's CommonJS runtime must load with no configuration;
//   peers   an ES module project with the optional peers at the majors the
//           repository tests (OpenTelemetry SDK, undici,
//           @kubernetes/client-node) and @grpc-tower/telemetry: each subpath
//           that needs one is used against a real peer.
// Each of the first four runs calls through the grpc-tower channel against two grpc-js
// servers, child processes on their own 127.0.0.x addresses, SIGKILLs one
// while calls are in flight on it, and must see no call fail; once it has
// closed its client and channel, its process must exit by itself.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type LocalTarball, type LockEntry, type Lockfile, projectLock } from './lockfile.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(repo, 'packaging', 'fixtures');
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
/** The published packages: folder under packages/ and package name. */
const PUBLISHED = [
  ['core', '@grpc-tower/core'],
  ['discover', '@grpc-tower/discover'],
  ['balance', '@grpc-tower/balance'],
  ['retry', '@grpc-tower/retry'],
  ['health', '@grpc-tower/health'],
  ['tower', 'grpc-tower'],
] as const;

const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as Lockfile;
const locked = (path: string): string => {
  const entry = lock.packages[`node_modules/${path}`];
  if (entry === undefined) throw new Error(`package-lock.json has no node_modules/${path}`);
  return entry.version;
};
const versions = {
  grpc: locked('@grpc/grpc-js'),
  grpcOldest: locked('grpc-js-oldest'),
  rxjs: locked('rxjs'),
  rxjsOldest: locked('rxjs-oldest'),
  typesNode: locked('@types/node'),
};

/** The environment for npm: none of the npm_* settings of an npm that started this test. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) && key.toLowerCase() !== 'npm_config_cache') continue;
    env[key] = value;
  }
  return { ...env, TURBO_TELEMETRY_DISABLED: '1', NO_UPDATE_NOTIFIER: '1' };
}

interface Ran {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end; rejects with its output when it fails. */
function run(cmd: string, args: readonly string[], cwd: string, env = npmEnv()): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 64 << 20, timeout: 240_000 }, (err, stdout, stderr) => {
      if (err)
        reject(
          new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${err.message}\n${stdout}\n${stderr}`),
        );
      else resolve({ stdout, stderr });
    });
  });
}

interface Packed {
  readonly name: string;
  readonly version: string;
  readonly filename: string;
  readonly integrity: string;
  readonly files: readonly { readonly path: string }[];
}

let work: string;
const tarballs = new Map<string, LocalTarball & { files: string[] }>();
const servers: ChildProcess[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'grpc-tower-packaging-'));
  await run('npx', ['turbo', 'run', 'build', '--output-logs=errors-only'], repo);
  const packs = join(work, 'tarballs');
  mkdirSync(packs);
  const { stdout } = await run(
    'npm',
    [
      'pack',
      '--json',
      '--pack-destination',
      packs,
      ...PUBLISHED.map(([dir]) => `--workspace=packages/${dir}`),
    ],
    repo,
  );
  for (const p of JSON.parse(stdout.slice(stdout.indexOf('['))) as Packed[]) {
    const dir = PUBLISHED.find(([, name]) => name === p.name)?.[0];
    const manifest = JSON.parse(
      readFileSync(join(repo, 'packages', `${dir}`, 'package.json'), 'utf8'),
    ) as LockEntry;
    tarballs.set(p.name, {
      name: p.name,
      version: p.version,
      file: `../tarballs/${p.filename}`,
      integrity: p.integrity,
      manifest,
      files: p.files.map((f) => f.path),
    });
  }
}, 300_000);

afterEach(() => {
  for (const s of servers.splice(0)) s.kill('SIGKILL');
});

afterAll(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** Whether a path inside a tarball is a test or a test helper. */
const isTest = (path: string): boolean =>
  /(^|\/)(test|test-support)\//.test(path) || /\.test(-d)?\.[^/]*$/.test(path);

describe('the tarballs', () => {
  test.each(PUBLISHED)(
    '%s holds README.md, LICENSE, package.json, dist and dist/cjs, and no test or test helper',
    (dir, name) => {
      const packed = tarballs.get(name);
      expect(packed, `npm pack made no tarball for ${name}`).toBeDefined();
      const files = packed!.files;
      const required = ['README.md', 'LICENSE', 'package.json', 'dist/index.js', 'dist/index.d.ts'];
      // the CommonJS implementation, and what makes its .js files CommonJS
      required.push('dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/package.json');
      for (const f of required) {
        expect(files, `${name} lacks ${f}`).toContain(f);
      }
      expect(files.filter(isTest)).toEqual([]);
      expect(readFileSync(join(repo, 'packages', dir, 'LICENSE'), 'utf8')).toBe(
        readFileSync(join(repo, 'LICENSE'), 'utf8'),
      );
      // every file that exports and typesVersions name is in the tarball
      const manifest = JSON.parse(readFileSync(join(repo, 'packages', dir, 'package.json'), 'utf8'));
      const named: string[] = [manifest.main, manifest.types];
      const targets = (value: unknown): string[] =>
        typeof value === 'string' ? [value] : Object.values(value as object).flatMap(targets);
      named.push(...targets(manifest.exports));
      for (const paths of Object.values((manifest.typesVersions?.['*'] ?? {}) as Record<string, string[]>)) {
        named.push(...paths);
      }
      for (const path of named) expect(files, `${name}: ${path}`).toContain(path.replace(/^\.\//, ''));
    },
  );

  test('the oldest @grpc/grpc-js and rxjs tested are the lowest the packages accept', () => {
    for (const [dir] of PUBLISHED) {
      const peers = JSON.parse(readFileSync(join(repo, 'packages', dir, 'package.json'), 'utf8'))
        .peerDependencies as Record<string, string>;
      if (peers['@grpc/grpc-js'] !== undefined)
        expect(peers['@grpc/grpc-js']).toBe(`^${versions.grpcOldest}`);
      if (peers.rxjs !== undefined) expect(peers.rxjs).toBe(`^${versions.rxjsOldest}`);
    }
  });
});

interface Project {
  readonly name: 'esm' | 'cjs' | 'cjs-nodenext' | 'node10';
  /** Whether it also runs the stack composed by hand (fixtures/commonjs-ts). */
  readonly composed?: boolean;
  readonly grpc: string;
  readonly rxjs: string;
  readonly type: 'module' | 'commonjs';
  readonly tsconfig?: object;
  /** Copies the sources in and returns the file node runs. */
  readonly setUp: (dir: string) => string;
}

const strict = {
  strict: true,
  target: 'es2022',
  types: ['node'],
  skipLibCheck: false,
  rootDir: 'src',
  outDir: 'dist',
};
const copySources = (dir: string, project: string): void => {
  mkdirSync(join(dir, 'src'));
  cpSync(join(fixtures, 'shared', 'scenario.ts'), join(dir, 'src', 'scenario.ts'));
  cpSync(join(fixtures, project, 'main.ts'), join(dir, 'src', 'main.ts'));
};

const PROJECTS: readonly Project[] = [
  {
    name: 'esm',
    grpc: versions.grpc,
    rxjs: versions.rxjs,
    type: 'module',
    tsconfig: {
      compilerOptions: { ...strict, module: 'nodenext', moduleResolution: 'nodenext' },
      include: ['src'],
    },
    setUp: (dir) => {
      copySources(dir, 'esm-nodenext');
      return 'dist/main.js';
    },
  },
  {
    name: 'cjs',
    grpc: versions.grpc,
    rxjs: versions.rxjs,
    type: 'commonjs',
    setUp: (dir) => {
      const scenario = readFileSync(join(fixtures, 'shared', 'scenario.ts'), 'utf8');
      const js = ts.transpileModule(scenario, {
        compilerOptions: {
          module: ts.ModuleKind.CommonJS,
          target: ts.ScriptTarget.ES2022,
          esModuleInterop: true,
        },
      }).outputText;
      writeFileSync(join(dir, 'scenario.cjs'), js);
      cpSync(join(fixtures, 'cjs', 'main.cjs'), join(dir, 'main.cjs'));
      return 'main.cjs';
    },
  },
  {
    name: 'cjs-nodenext',
    grpc: versions.grpc,
    rxjs: versions.rxjs,
    type: 'commonjs',
    composed: true,
    tsconfig: {
      compilerOptions: { ...strict, module: 'nodenext', moduleResolution: 'nodenext' },
      include: ['src'],
    },
    setUp: (dir) => {
      copySources(dir, 'commonjs-ts');
      return 'dist/main.js';
    },
  },
  {
    name: 'node10',
    composed: true,
    grpc: versions.grpcOldest,
    rxjs: versions.rxjsOldest,
    type: 'commonjs',
    tsconfig: {
      compilerOptions: { ...strict, module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true },
      include: ['src'],
    },
    setUp: (dir) => {
      copySources(dir, 'commonjs-ts');
      return 'dist/main.js';
    },
  },
];

interface Server {
  readonly address: string;
  readonly pid: number;
  /** The messages of the calls it has received, as they arrive. */
  readonly received: string[];
}

/** Starts fixtures/server.cjs in `dir` as `name` on `host`; resolves once it listens. */
function startServer(dir: string, name: string, host: string): Promise<Server> {
  const child = spawn(process.execPath, ['server.cjs', name, host], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  servers.push(child);
  const received: string[] = [];
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const m = JSON.parse(line) as { port?: number; received?: string };
        if (m.port !== undefined) resolve({ address: `${host}:${m.port}`, pid: child.pid!, received });
        if (m.received !== undefined) received.push(m.received);
      }
    });
    child.once('exit', (code) => reject(new Error(`server ${name} exited (${code}) before listening`)));
  });
}

/** Runs `file` with node in `dir`, with `args`: its output, exit code and when it exited. */
function runClient(
  dir: string,
  file: string,
  args: readonly string[],
): Promise<{ stdout: string; stderr: string; code: number | null; signal: string | null; exitedAt: number }> {
  const child = spawn(process.execPath, [file, ...args], { cwd: dir, env: npmEnv() });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  // a client that does not exit is killed here, and fails the test below
  const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ stdout, stderr, code, signal, exitedAt: Date.now() });
    });
  });
}

describe.each(PROJECTS)('an installed $name project', (project) => {
  let dir: string;

  test(`installs the tarballs and @grpc/grpc-js ${project.grpc}, rxjs ${project.rxjs} from the npm cache alone`, async () => {
    dir = join(work, project.name);
    mkdirSync(dir);
    const dependencies: Record<string, string> = {
      '@grpc/grpc-js': project.grpc,
      rxjs: project.rxjs,
    };
    for (const [name, packed] of tarballs) dependencies[name] = `file:${packed.file}`;
    const devDependencies: Record<string, string> = project.tsconfig
      ? { '@types/node': versions.typesNode }
      : {};
    const name = `packaging-${project.name}`;
    const manifest = {
      name,
      version: '0.0.0',
      private: true,
      type: project.type,
      dependencies,
      devDependencies,
    };
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const lockfile = projectLock(name, lock, dependencies, devDependencies, [...tarballs.values()]);
    writeFileSync(join(dir, 'package-lock.json'), `${JSON.stringify(lockfile, null, 2)}\n`);
    if (project.tsconfig)
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(project.tsconfig, null, 2));
    cpSync(join(fixtures, 'server.cjs'), join(dir, 'server.cjs'));
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund'], dir);

    const modules = join(dir, 'node_modules');
    const version = (pkg: string) =>
      JSON.parse(readFileSync(join(modules, pkg, 'package.json'), 'utf8')).version;
    expect(version('@grpc/grpc-js')).toBe(project.grpc);
    expect(version('rxjs')).toBe(project.rxjs);
    // one copy of each shared package: the application's
    const nested = [...readdirSync(join(modules, '@grpc-tower')).map((d) => `@grpc-tower/${d}`), 'grpc-tower']
      .flatMap((pkg) => ['rxjs', '@grpc/grpc-js'].map((dep) => join(modules, pkg, 'node_modules', dep)))
      .filter((path) => existsSync(path));
    expect(nested).toEqual([]);
    // etcd3 is an optional peer of discover: not installed, and nothing below needs it
    expect(existsSync(join(modules, 'etcd3'))).toBe(false);
    expect(existsSync(join(modules, '@kubernetes', 'client-node'))).toBe(false);
  }, 180_000);

  if (project.tsconfig) {
    test('type-checks and compiles with tsc', async () => {
      const main = project.setUp(dir);
      expect(main).toBe('dist/main.js');
      await run(process.execPath, [tsc, '-p', 'tsconfig.json'], dir);
      expect(existsSync(join(dir, main))).toBe(true);
    }, 120_000);
  }

  test('calls succeed while a server is SIGKILLed, and the process exits by itself once closed', async () => {
    const main = project.tsconfig ? 'dist/main.js' : project.setUp(dir);
    const base = 40 + 2 * PROJECTS.indexOf(project);
    const [a, b] = await Promise.all([
      startServer(dir, 'a', `127.0.0.${base}`),
      startServer(dir, 'b', `127.0.0.${base + 1}`),
    ]);
    const r = await runClient(dir, main, [`ipv4:${a.address},${b.address}`, String(a.pid), b.address]);
    expect({ code: r.code, signal: r.signal }, r.stderr).toEqual({ code: 0, signal: null });
    const line = r.stdout.trim().split('\n').at(-1) ?? '';
    const result = JSON.parse(line);
    expect(result.outcome.failures).toEqual([]);
    expect(result.outcome.calls).toBe(45);
    // both servers answered calls before one was killed; the survivor took the rest
    expect(result.outcome.servers.a).toBeGreaterThan(0);
    expect(result.outcome.servers.b).toBeGreaterThanOrEqual(20);
    // the SIGKILL hit calls in flight on a, and each of them succeeded on b
    expect(a.received.filter((m) => m.startsWith('kill-')).length).toBeGreaterThan(0);
    expect(r.exitedAt - result.closedAt).toBeLessThan(10_000);
    if (project.composed === true) {
      // the hand-composed stack over the application's own ReplaySubject
      expect(result.custom).toEqual({ message: 'custom', server: 'b' });
    }
    if (project.name === 'cjs') {
      expect(result.etcd.resolvable).toBe(false);
      expect(result.etcd.staticList).toBe('function');
      expect(result.etcd.subpathError).toMatch(/etcd3/);
      expect(result.kubernetes.resolvable).toBe(false);
      expect(result.kubernetes.subpathError).toMatch(/@kubernetes\/client-node/);
      // import() and require() give the same functions and classes
      expect(result.oneCopy).toEqual({ sameFunctions: true, sameClasses: true, crossInstanceOf: true });
    }
  }, 120_000);
});

/**
 * Writes a project `name` that depends on the tarballs and on `dependencies`
 * and `devDependencies` from the registry, and installs it, from the npm
 * cache where it can (the first run downloads, later ones reuse).
 */
async function installFromRegistry(
  name: string,
  fields: Record<string, unknown>,
  dependencies: Record<string, string>,
  devDependencies: Record<string, string>,
): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  const all = { ...dependencies };
  for (const [pkg, packed] of tarballs) all[pkg] = `file:${packed.file}`;
  const manifest = { name: `packaging-${name}`, version: '0.0.0', private: true, ...fields };
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ ...manifest, dependencies: all, devDependencies }, null, 2)}\n`,
  );
  const started = Date.now();
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], dir);
  console.log(`packaging ${name}: npm install took ${Date.now() - started} ms`);
  return dir;
}

/** The TypeScript releases the published types are checked with: `npm install typescript` gives the last. */
const TYPESCRIPTS = ['5.9.3', '6.0.3', '7.0.2'] as const;
/**
 * The programs each of them compiles: one with `module: nodenext` holding an
 * ES module project and a CommonJS one (each file's format is its folder's
 * `type`), and a CommonJS project with `module: commonjs` and TypeScript's
 * default module resolution (node10 on 5.9, bundler on 6 and 7).
 */
const CONSUMERS = [
  {
    name: 'nodenext',
    options: { module: 'nodenext' },
    projects: [
      { folder: 'esm', type: 'module', fixture: 'esm-nodenext' },
      { folder: 'cjs', type: 'commonjs', fixture: 'commonjs-ts' },
    ],
  },
  {
    name: 'commonjs',
    options: { module: 'commonjs', esModuleInterop: true },
    projects: [{ folder: 'cjs', type: 'commonjs', fixture: 'commonjs-ts' }],
  },
] as const;

describe('the published types', () => {
  let dir: string;

  test(`install with TypeScript ${TYPESCRIPTS.join(', ')}`, async () => {
    const typescripts = Object.fromEntries(
      TYPESCRIPTS.map((v) => [`typescript-${v}`, `npm:typescript@${v}`]),
    );
    dir = await installFromRegistry(
      'types',
      {},
      { '@grpc/grpc-js': versions.grpc, rxjs: versions.rxjs },
      { '@types/node': versions.typesNode, ...typescripts },
    );
    for (const consumer of CONSUMERS) {
      for (const project of consumer.projects) {
        const at = join(dir, consumer.name, project.folder);
        mkdirSync(at, { recursive: true });
        copySources(at, project.fixture);
        writeFileSync(join(at, 'package.json'), JSON.stringify({ type: project.type }));
      }
      const { rootDir: _, ...options } = strict;
      const compilerOptions = { ...options, ...consumer.options, noEmit: true };
      const include = consumer.projects.map((p) => `${p.folder}/src`);
      writeFileSync(
        join(dir, consumer.name, 'tsconfig.json'),
        JSON.stringify({ compilerOptions, include }, null, 2),
      );
    }
  }, 300_000);

  test.each(TYPESCRIPTS)(
    `TypeScript %s compiles ${CONSUMERS.map((c) => c.name).join(', ')}`,
    async (version) => {
      const tscOf = join(dir, 'node_modules', `typescript-${version}`, 'bin', 'tsc');
      expect((await run(process.execPath, [tscOf, '-v'], dir)).stdout).toContain(`Version ${version}`);
      const started = Date.now();
      for (const c of CONSUMERS)
        await run(process.execPath, [tscOf, '-p', join(c.name, 'tsconfig.json')], dir);
      console.log(`packaging types: TypeScript ${version} took ${Date.now() - started} ms`);
    },
    120_000,
  );
});

/** What `nest new` (@nestjs/schematics 11) writes into package.json for Jest, untouched. */
const NEST_STARTER_JEST = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: 'src',
  testRegex: '.*\\.spec\\.ts$',
  transform: { '^.+\\.(t|j)s$': 'ts-jest' },
  collectCoverageFrom: ['**/*.(t|j)s'],
  coverageDirectory: '../coverage',
  testEnvironment: 'node',
};

interface JestResult {
  readonly numPassedTests: number;
  readonly numFailedTests: number;
  readonly testResults: readonly {
    readonly message: string;
    readonly assertionResults: readonly { readonly title: string; readonly status: string }[];
  }[];
}

describe('a NestJS 11 project made as nest new makes one, with the module and controller of examples/nestjs', () => {
  let dir: string;

  test('installs @nestjs/* 11, Jest 30, ts-jest 29 and TypeScript 5.9 beside the tarballs', async () => {
    dir = await installFromRegistry(
      'nestjs',
      { license: 'UNLICENSED', scripts: { test: 'jest' }, jest: NEST_STARTER_JEST },
      {
        '@grpc/grpc-js': versions.grpc,
        '@grpc/proto-loader': locked('@grpc/proto-loader'),
        '@nestjs/common': '^11.0.1',
        '@nestjs/core': '^11.0.1',
        '@nestjs/microservices': '^11.0.1',
        'reflect-metadata': '^0.2.2',
        rxjs: '^7.8.1',
      },
      {
        '@nestjs/testing': '^11.0.1',
        '@types/jest': '^30.0.0',
        '@types/node': versions.typesNode,
        jest: '^30.0.0',
        'ts-jest': '^29.2.5',
        typescript: '~5.9.3',
      },
    );
    const version = (pkg: string) =>
      JSON.parse(readFileSync(join(dir, 'node_modules', pkg, 'package.json'), 'utf8')).version as string;
    expect(version('@nestjs/core')).toMatch(/^11\./);
    expect(version('jest')).toMatch(/^30\./);
    mkdirSync(join(dir, 'src'));
    for (const file of ['app.module.ts', 'echo.controller.ts', 'echo.ts', 'echo.proto', 'server.ts']) {
      cpSync(join(repo, 'examples', 'nestjs', 'src', file), join(dir, 'src', file));
    }
    cpSync(join(fixtures, 'nestjs', 'app.controller.spec.ts'), join(dir, 'src', 'app.controller.spec.ts'));
    cpSync(join(fixtures, 'nestjs', 'tsconfig.json'), join(dir, 'tsconfig.json'));
  }, 300_000);

  test('type-checks with the starter tsconfig (CommonJS, module nodenext)', async () => {
    const projectTsc = join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
    await run(process.execPath, [projectTsc, '-p', 'tsconfig.json', '--noEmit'], dir);
  }, 120_000);

  test('its Jest spec passes with the starter Jest configuration, none for grpc-tower', async () => {
    const started = Date.now();
    const jest = join(dir, 'node_modules', 'jest', 'bin', 'jest.js');
    const outcome = await new Promise<{ code: number | null; output: string }>((resolve) => {
      execFile(
        process.execPath,
        [jest, '--json', '--outputFile=jest-result.json'],
        { cwd: dir, env: { ...npmEnv(), ECHO_HOSTS: '127.0.0.50,127.0.0.51' }, timeout: 180_000 },
        (err, stdout, stderr) => resolve({ code: err ? (err.code as number) : 0, output: stdout + stderr }),
      );
    });
    console.log(`packaging nestjs: jest took ${Date.now() - started} ms`);
    expect(existsSync(join(dir, 'jest-result.json')), outcome.output).toBe(true);
    const result = JSON.parse(readFileSync(join(dir, 'jest-result.json'), 'utf8')) as JestResult;
    const failed = result.testResults.flatMap((r) =>
      r.assertionResults.filter((a) => a.status !== 'passed').map((a) => a.title),
    );
    expect({ failed, suiteErrors: result.testResults.map((r) => r.message).filter(Boolean) }).toEqual({
      failed: [],
      suiteErrors: [],
    });
    expect(result.numPassedTests).toBe(3);
    expect(outcome.code, outcome.output).toBe(0);
  }, 200_000);
});

/** The major of a package installed in `dir`. */
const installedMajor = (dir: string, pkg: string): number =>
  Number(
    JSON.parse(readFileSync(join(dir, 'node_modules', pkg, 'package.json'), 'utf8')).version.split('.')[0],
  );

describe('the optional peers at the majors the repository tests (OpenTelemetry SDK, undici, @kubernetes/client-node), from the tarballs', () => {
  let dir: string;

  test('installs them beside the tarballs and @grpc-tower/telemetry', async () => {
    const { stdout } = await run(
      'npm',
      ['pack', '--json', '--pack-destination', join(work, 'tarballs'), '--workspace=packages/telemetry'],
      repo,
    );
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Packed[];
    expect(packed?.name).toBe('@grpc-tower/telemetry');
    const peers = ['undici', '@kubernetes/client-node', '@opentelemetry/api', '@opentelemetry/sdk-metrics'];
    const dependencies: Record<string, string> = {
      '@grpc/grpc-js': versions.grpc,
      rxjs: versions.rxjs,
      '@grpc-tower/telemetry': `file:../tarballs/${packed?.filename}`,
    };
    for (const pkg of peers) dependencies[pkg] = locked(pkg);
    dir = await installFromRegistry('peers', { type: 'module' }, dependencies, {});
    // the majors the repository's own tests run on
    for (const pkg of peers) expect(installedMajor(dir, pkg), pkg).toBe(Number(locked(pkg).split('.')[0]));
    cpSync(join(fixtures, 'server.cjs'), join(dir, 'server.cjs'));
    cpSync(join(fixtures, 'peers', 'main.mjs'), join(dir, 'main.mjs'));
  }, 300_000);

  test('telemetry records calls into the SDK, fetch goes through towerDispatcher, kubernetes() takes the application KubeConfig', async () => {
    const server = await startServer(dir, 'a', '127.0.0.52');
    const r = await runClient(dir, 'main.mjs', [server.address]);
    expect({ code: r.code, signal: r.signal }, r.stderr).toEqual({ code: 0, signal: null });
    const seen = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(seen.otel).toEqual({ callDuration: true, calls: 3 });
    expect(seen.undici).toEqual({ status: 200, body: 'hello /peers' });
    expect(seen.kubernetes.failed).toMatch(/ECONNREFUSED|connect/i);
    expect(server.received.filter((m) => m.startsWith('otel-'))).toHaveLength(3);
  }, 120_000);
});
