// The benchmark suite's smoke test: the quick run (`bench/run.ts --quick`)
// completes in a child process and writes, into a temporary folder, a JSON
// result with every scenario — each with tables of numbers, its targets and
// the machine it ran on — and a markdown report. It checks that the suite
// works, not how fast anything is.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';
import { type BenchResults, SCENARIO_NAMES, SCHEMA, type Spread } from '../lib/schema.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const RUN = fileURLToPath(new URL('../run.ts', import.meta.url));

let dir: string | undefined;
let child: ChildProcess | undefined;
afterAll(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function runSuite(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--conditions=@grpc-tower/source', '--import', 'tsx', RUN, ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    c.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr = (stderr + s).slice(-20_000);
    });
    c.once('error', reject);
    c.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function expectSpread(s: Spread | undefined, where: string): void {
  expect(s, where).toBeDefined();
  expect(isNumber(s?.median), `${where}: median ${String(s?.median)}`).toBe(true);
  expect(isNumber(s?.min), `${where}: min`).toBe(true);
  expect(isNumber(s?.max), `${where}: max`).toBe(true);
  expect(s?.runs, where).toBeGreaterThanOrEqual(1);
  expect(s?.min, where).toBeLessThanOrEqual(s?.median as number);
  expect(s?.median, where).toBeLessThanOrEqual(s?.max as number);
}

test('the quick suite completes and writes every scenario with numbers, targets and the machine', async () => {
  dir = await mkdtemp(join(tmpdir(), 'grpc-tower-bench-'));
  const { code, stdout, stderr } = await runSuite(['--quick', '--out', dir]);
  expect(code, `bench/run.ts --quick exited with ${code}\n${stdout}\n${stderr}`).toBe(0);

  const results = JSON.parse(await readFile(join(dir, 'quick.json'), 'utf8')) as BenchResults;
  expect(results.schema).toBe(SCHEMA);
  expect(results.quick).toBe(true);
  expect(isNumber(results.durationMs)).toBe(true);
  expect(Number.isInteger(results.machine.cores) && results.machine.cores > 0).toBe(true);
  expect(results.machine.node).toBe(process.version);
  expect(results.machine.grpcJs).toMatch(/^\d+\.\d+\.\d+/);
  expect(results.machine.loadAverage).toHaveLength(3);

  expect(Object.keys(results.scenarios).sort()).toEqual([...SCENARIO_NAMES].sort());
  for (const name of SCENARIO_NAMES) {
    const s = results.scenarios[name];
    expect(s?.status, `${name}: ${s?.status === 'error' ? s.error : ''}`).toBe('ok');
    if (s?.status !== 'ok') continue;
    expect(s.rounds, name).toBeGreaterThanOrEqual(1);
    expect(s.tables.length, name).toBeGreaterThan(0);
    expect(s.load.before).toHaveLength(3);
    for (const table of s.tables) {
      expect(table.rows.length, `${name}: ${table.title}`).toBeGreaterThan(0);
      for (const row of table.rows) {
        for (const metric of table.metrics) {
          expectSpread(row.metrics[metric.key], `${name} / ${table.title} / ${row.name} / ${metric.key}`);
        }
      }
    }
    for (const t of s.targets) {
      expect(typeof t.met, `${name}: ${t.id}`).toBe('boolean');
      expect(isNumber(t.value), `${name}: ${t.id} value`).toBe(true);
      expect(isNumber(t.target), `${name}: ${t.id} target`).toBe(true);
    }
  }
  // the idle-heap row is measured in fresh processes: what each keeps is a positive number of bytes
  const transport = results.scenarios.transport;
  const idleHeap =
    transport?.status === 'ok'
      ? transport.tables.find((t) => t.title.startsWith('heap per connected'))
      : undefined;
  expect(idleHeap?.rows.map((r) => r.name).sort()).toEqual(['grpc-js channel', 'native endpoint']);
  for (const row of idleHeap?.rows ?? []) {
    expect(row.metrics.heapBytes?.min, `transport / ${row.name} / heapBytes`).toBeGreaterThan(0);
    expect(row.metrics.heapRatio?.min, `transport / ${row.name} / heapRatio`).toBeGreaterThan(0);
  }
  // every target of the suite is reported
  const targetIds = SCENARIO_NAMES.flatMap((n) => {
    const s = results.scenarios[n];
    return s?.status === 'ok' ? s.targets.map((t) => t.id) : [];
  });
  expect(targetIds).toEqual(
    expect.arrayContaining([
      'overhead-full-throughput',
      'overhead-bare-throughput',
      'overhead-telemetry-cpu',
      'overhead-telemetry-producer-metrics-cpu',
      'overhead-telemetry-off-cpu',
      'heterogeneous-p99',
      'heterogeneous-p99-saturated',
      'churn-failed-calls',
      'churn-time-to-c',
      'http2-dispatcher-throughput',
      'http2-stack-throughput',
      'transport-stream-throughput',
      'transport-1mib-throughput',
      'transport-idle-heap',
      'connect-throughput',
      'connect-cpu',
      'xds-time-to-c',
      'xds-failed-calls',
    ]),
  );

  const report = await readFile(join(dir, 'quick.md'), 'utf8');
  for (const name of SCENARIO_NAMES) expect(report).toContain(`## ${name}`);
  expect(report).toContain(`${results.machine.cores} cores`);
}, 240_000);
