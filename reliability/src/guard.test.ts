// The unhandled-rejection guard (packages/testing/src/setup.ts, loaded by
// every test file) is itself tested: a child vitest runs a fixture whose
// tests leave rejections in three ways, once with the guard and once
// without it. With it, each leaking test fails by name (or, for a rejection
// that comes after the last test, the file fails) and the clean test
// passes; without it, every test passes, which shows that the failures come
// from the guard.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';

const fixtures = fileURLToPath(new URL('../fixtures', import.meta.url));
const setup = fileURLToPath(new URL('../../packages/testing/src/setup.ts', import.meta.url));
const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
const dir = mkdtempSync(join(tmpdir(), 'grpc-tower-guard-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  readonly exitCode: number | null;
  readonly fileMessage: string;
  readonly tests: Readonly<Record<string, { status: string; failure: string }>>;
}

/** Runs the fixture in a child vitest, with or without the guard, and reads its JSON report. */
function runFixture(guarded: boolean): Report {
  const name = guarded ? 'guarded' : 'bare';
  const config = join(dir, `${name}.config.mjs`);
  const output = join(dir, `${name}.json`);
  const test = {
    root: fixtures,
    include: ['*.fixture.ts'],
    pool: 'forks',
    ...(guarded ? { setupFiles: [setup] } : {}),
  };
  writeFileSync(config, `export default ${JSON.stringify({ test })};\n`);
  const child = spawnSync(
    process.execPath,
    [vitest, 'run', '--config', config, '--reporter=json', `--outputFile=${output}`],
    { cwd: fixtures, encoding: 'utf8', timeout: 60_000, env: { ...process.env, CI: '1' } },
  );
  const json = JSON.parse(readFileSync(output, 'utf8')) as {
    testResults: {
      message: string;
      assertionResults: { title: string; status: string; failureMessages: string[] }[];
    }[];
  };
  const file = json.testResults[0];
  const tests: Record<string, { status: string; failure: string }> = {};
  for (const a of file?.assertionResults ?? []) {
    tests[a.title] = { status: a.status, failure: a.failureMessages.join('\n') };
  }
  return { exitCode: child.status, fileMessage: file?.message ?? '', tests };
}

test('with the guard, a test that leaves an unhandled rejection fails by name; a clean one passes', () => {
  const r = runFixture(true);
  expect(r.exitCode).not.toBe(0);
  expect(r.tests['leaves nothing']?.status).toBe('passed');
  const end = r.tests['leaves a rejection at the end of its body'];
  expect(end?.status).toBe('failed');
  expect(end?.failure).toContain('test left 1 unhandled promise rejection(s): Error: forgotten at the end');
  const timer = r.tests['leaves a rejection from a timer that fires right after it'];
  expect(timer?.status).toBe('failed');
  expect(timer?.failure).toContain('Error: forgotten in a timer');
  // the last one surfaces after its test ended: it fails its test or, at the latest, the file
  const late = [r.fileMessage, ...Object.values(r.tests).map((t) => t.failure)].join('\n');
  expect(late).toContain('unhandled promise rejection(s): Error: forgotten, not awaited');
});

test('without the guard the same tests pass: the failures above are the guard’s', () => {
  const r = runFixture(false);
  expect(Object.values(r.tests).map((t) => t.status)).toEqual(['passed', 'passed', 'passed', 'passed']);
});
