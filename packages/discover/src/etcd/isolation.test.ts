// `etcd3` is loaded by the etcd source only: a program that imports
// `@grpc-tower/discover` (DNS, static lists, poll) never resolves it. Each
// case runs in a fresh node process with a module hook that writes down
// every specifier resolved and what it resolved to; the etcd subpath is
// the control that shows the hook sees etcd3 when it is loaded.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const packageDir = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'discover-isolation-'));
  writeFileSync(
    join(dir, 'hooks.mjs'),
    [
      "import { appendFileSync } from 'node:fs';",
      'let log;',
      'export function initialize(data) { log = data.log; }',
      'export async function resolve(specifier, context, next) {',
      '  const result = await next(specifier, context);',
      "  appendFileSync(log, specifier + ' -> ' + result.url + '\\n');",
      '  return result;',
      '}',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    [
      "import { register } from 'node:module';",
      `register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)}, {`,
      '  data: { log: process.env.RESOLVE_LOG },',
      '});',
    ].join('\n'),
  );
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The `specifier -> url` lines of every module resolved while a fresh process runs `code`. */
function resolvedBy(name: string, code: string): string[] {
  const log = join(dir, `${name}.log`);
  writeFileSync(log, '');
  const r = spawnSync(
    process.execPath,
    [
      '--conditions=@grpc-tower/source',
      '--import',
      'tsx',
      '--import',
      pathToFileURL(join(dir, 'register.mjs')).href,
      '--input-type=module',
      '-e',
      code,
    ],
    { cwd: packageDir, env: { ...process.env, RESOLVE_LOG: log }, encoding: 'utf8', timeout: 60_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  return readFileSync(log, 'utf8').split('\n').filter(Boolean);
}

const loadsEtcd3 = (line: string): boolean =>
  line.startsWith('etcd3 ->') || line.includes('/node_modules/etcd3/');

describe('etcd3 is loaded only by the etcd source', () => {
  test('importing @grpc-tower/discover and building a static list never resolves etcd3', () => {
    const lines = resolvedBy(
      'root',
      "const d = await import('@grpc-tower/discover'); d.staticList(['127.0.0.2:50051']).subscribe().unsubscribe();",
    );
    // the hook saw the package itself, down to its sources
    expect(lines.some((l) => l.includes('/packages/discover/src/index.ts'))).toBe(true);
    expect(lines.some((l) => l.includes('/packages/discover/src/dns.ts'))).toBe(true);
    expect(lines.filter(loadsEtcd3)).toEqual([]);
  });

  test('importing @grpc-tower/discover/etcd resolves etcd3 (the hook sees it when it loads)', () => {
    const lines = resolvedBy(
      'etcd',
      "const { etcd } = await import('@grpc-tower/discover/etcd'); typeof etcd;",
    );
    expect(lines.some((l) => l.startsWith('etcd3 -> ') && l.includes('/node_modules/etcd3/'))).toBe(true);
  });
});
