// scripts/check-deps.mjs on small trees of its own (`--root`): each case
// is one way a published manifest can disagree with the code it ships.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';

const script = fileURLToPath(new URL('../../scripts/check-deps.mjs', import.meta.url));
const roots: string[] = [];

afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A tree with one published package `pkg` whose manifest has `fields` and whose src/ holds `files`. */
function check(fields: object, files: Record<string, string>): { status: number | null; output: string } {
  const root = mkdtempSync(join(tmpdir(), 'check-deps-'));
  roots.push(root);
  const dir = join(root, 'packages', 'pkg');
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: '@x/pkg', version: '1.0.0', ...fields }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, 'src', path)), { recursive: true });
    writeFileSync(join(dir, 'src', path), text);
  }
  const r = spawnSync(process.execPath, [script, '--root', root], { encoding: 'utf8' });
  return { status: r.status, output: r.stdout + r.stderr };
}

const rxjsPeer = { peerDependencies: { rxjs: '^7.8.0' }, devDependencies: { rxjs: '7.8.2' } };

describe('check-deps', () => {
  test('passes a package whose manifest matches its imports', () => {
    const r = check(rxjsPeer, {
      'index.ts': "import { Subject } from 'rxjs';\nexport const s = new Subject();\n",
    });
    expect(r.output).toContain('match their imports');
    expect(r.status).toBe(0);
  });

  test('fails a run-time dependency that no published source imports (a test helper does)', () => {
    const r = check(
      { dependencies: { 'grpc-health-check': '^2.1.0' } },
      { 'index.ts': 'export const a = 1;\n', 'test/support.ts': "import 'grpc-health-check';\n" },
    );
    expect(r.status).toBe(1);
    expect(r.output).toContain('"grpc-health-check" is in dependencies, but no published source imports it');
  });

  test('fails rxjs imported at run time but not declared', () => {
    const r = check({}, { 'index.ts': "import { Subject } from 'rxjs';\nexport const s = new Subject();\n" });
    expect(r.status).toBe(1);
    expect(r.output).toContain(
      'imports "rxjs" at run time, but it is not in dependencies or peerDependencies',
    );
  });

  test('fails grpc-js whose types alone are imported, undeclared', () => {
    const r = check(
      {},
      { 'index.ts': "import type { Metadata } from '@grpc/grpc-js';\nexport type M = Metadata;\n" },
    );
    expect(r.status).toBe(1);
    expect(r.output).toContain('imports types from "@grpc/grpc-js"');
  });

  test('fails rxjs as a dependency instead of a peer, and an exact pin', () => {
    const r = check(
      { dependencies: { rxjs: '7.8.2' } },
      { 'index.ts': "import { Subject } from 'rxjs';\nexport const s = new Subject();\n" },
    );
    expect(r.status).toBe(1);
    expect(r.output).toContain('"rxjs" is in dependencies; it must be a peer dependency');
    expect(r.output).toContain('"rxjs": "7.8.2" in dependencies is not a range');
  });

  test('fails a peer dependency that the workspace does not install as a devDependency', () => {
    const r = check(
      { peerDependencies: { rxjs: '^7.8.0' } },
      { 'index.ts': "import { Subject } from 'rxjs';\nexport const s = new Subject();\n" },
    );
    expect(r.status).toBe(1);
    expect(r.output).toContain('the peer dependency "rxjs" is not in devDependencies');
  });

  test('passes a dependency the build bundles when it is a devDependency, fails it in dependencies', () => {
    const source = { 'index.ts': "import pRetry from 'p-retry';\nexport const r = pRetry;\n" };
    const build = { build: 'node ../../scripts/build-package.mjs --bundle p-retry' };
    const ok = check({ scripts: build, devDependencies: { 'p-retry': '7.1.1' } }, source);
    expect(ok.output).toContain('match their imports');
    expect(ok.status).toBe(0);
    const both = check({ scripts: build, dependencies: { 'p-retry': '^7.1.1' } }, source);
    expect(both.status).toBe(1);
    expect(both.output).toContain(
      '"p-retry" is bundled by the build (--bundle), so it must not be in dependencies',
    );
    const missing = check({ scripts: build }, source);
    expect(missing.status).toBe(1);
    expect(missing.output).toContain(
      '"p-retry" is bundled by the build (--bundle), but it is not in devDependencies',
    );
  });
});
