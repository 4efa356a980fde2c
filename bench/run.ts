/**
 * The grpc-tower benchmark suite: grpc-tower side by side with plain
 * grpc-js and with an nginx gRPC proxy, on the same machine in the same
 * run. Runs the scenarios one after the other, prints a table per
 * scenario, and writes the results as JSON and as a markdown report.
 *
 *   npx tsx --conditions=@grpc-tower/source bench/run.ts [--quick] [--only name[,name]] [--out dir]
 *
 * - `--quick`: a smoke run (under 2 minutes), written to `quick.json` / `quick.md`;
 *   a full run writes `latest.json` / `latest.md`;
 * - `--only`: run only these scenarios (overhead, heterogeneous, even-shares, churn, proxy, scale, subsetting, http2, transport, connect, xds);
 * - `--out dir`: the folder to write into; default `bench/results` (tests pass a
 *   temporary folder so that they never overwrite the committed results).
 *
 * Exits with 1 when a scenario failed to run (a target that is not met is
 * reported, not an error), and with 2 on bad arguments.
 *
 * @module
 */
// first: sets grpc-js's environment before grpc-js loads
import './lib/grpc-env.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage, machineInfo } from './lib/machine.js';
import { markdownReport, scenarioText } from './lib/report.js';
import {
  type BenchResults,
  SCENARIO_NAMES,
  SCHEMA,
  type Scenario,
  type ScenarioError,
  type ScenarioName,
  type ScenarioResult,
} from './lib/schema.js';
import { churn } from './scenarios/churn.js';
import { evenShares } from './scenarios/even-shares.js';
import { heterogeneous } from './scenarios/heterogeneous.js';
import { overhead } from './scenarios/overhead.js';
import { proxy } from './scenarios/proxy.js';
import { scale } from './scenarios/scale.js';
import { subsetting } from './scenarios/subsetting.js';
import { http2Scenario } from './scenarios/http2.js';
import { transportScenario } from './scenarios/transport.js';
import { connectScenario } from './scenarios/connect.js';
import { xdsScenario } from './scenarios/xds.js';

const scenarios: Record<ScenarioName, Scenario> = {
  overhead,
  heterogeneous,
  'even-shares': evenShares,
  churn,
  proxy,
  scale,
  subsetting,
  http2: http2Scenario,
  transport: transportScenario,
  connect: connectScenario,
  xds: xdsScenario,
};

interface Args {
  readonly quick: boolean;
  readonly only: readonly ScenarioName[];
  readonly out: string;
}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: bench/run.ts [--quick] [--only ${SCENARIO_NAMES.join(',')}] [--out dir]\n`,
  );
  process.exit(2);
}

const isScenario = (s: string): s is ScenarioName => (SCENARIO_NAMES as readonly string[]).includes(s);

function parseArgs(argv: readonly string[]): Args {
  let quick = false;
  let only: ScenarioName[] = [...SCENARIO_NAMES];
  let out = fileURLToPath(new URL('./results', import.meta.url));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined || v === '') usage(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') quick = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const names = value().split(',');
      const bad = names.filter((n) => !isScenario(n));
      if (bad.length > 0) usage(`unknown scenario(s): ${bad.join(', ')}`);
      only = SCENARIO_NAMES.filter((n) => names.includes(n));
    } else if (a === '--out' || a.startsWith('--out=')) out = value();
    else usage(`unknown argument: ${a}`);
  }
  return { quick, only, out: resolve(out) };
}

const args = parseArgs(process.argv.slice(2));
const started = performance.now();
const log = (line: string): void => {
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
};

// A run that hangs must not hang its caller: give up well after the expected time.
const limitMs = args.quick ? 170_000 : 20 * 60_000;
const watchdog = setTimeout(() => {
  log(`the suite did not finish within ${limitMs / 1000} s; giving up`);
  process.exit(1);
}, limitMs);
watchdog.unref();

const machine = machineInfo();
log(
  `grpc-tower benchmarks${args.quick ? ' (quick)' : ''}: ${machine.cores} cores, node ${machine.node}, ` +
    `grpc-js ${machine.grpcJs}, load ${machine.loadAverage.join(' / ')}; scenarios: ${args.only.join(', ')}`,
);

const results: Partial<Record<ScenarioName, ScenarioResult | ScenarioError>> = {};
for (const name of args.only) {
  log(`${name}: starting`);
  const before = loadAverage();
  const t0 = performance.now();
  let result: ScenarioResult | ScenarioError;
  try {
    const body = await scenarios[name]({ quick: args.quick, log });
    result = {
      name,
      status: 'ok',
      durationMs: Math.round(performance.now() - t0),
      load: { before, after: loadAverage() },
      ...body,
    };
  } catch (err) {
    result = {
      name,
      status: 'error',
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      durationMs: Math.round(performance.now() - t0),
    };
  }
  results[name] = result;
  log(`${name}: ${result.status} in ${(result.durationMs / 1000).toFixed(1)} s`);
  process.stdout.write(`${scenarioText(result)}\n`);
}

const flags = [
  ...(args.quick ? ['--quick'] : []),
  ...(args.only.length < SCENARIO_NAMES.length ? ['--only', args.only.join(',')] : []),
];
const command = `npm run bench${flags.length > 0 ? ` -- ${flags.join(' ')}` : ''}`;
const output: BenchResults = {
  schema: SCHEMA,
  date: new Date().toISOString(),
  quick: args.quick,
  command,
  durationMs: Math.round(performance.now() - started),
  machine,
  scenarios: results,
};
const base = args.quick ? 'quick' : 'latest';
mkdirSync(args.out, { recursive: true });
const jsonFile = join(args.out, `${base}.json`);
const mdFile = join(args.out, `${base}.md`);
// NaN and Infinity are not JSON: write them as null
writeFileSync(
  jsonFile,
  `${JSON.stringify(output, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`,
);
writeFileSync(mdFile, markdownReport(output));

const all = Object.values(results);
const failed = all.filter((r) => r.status === 'error').map((r) => r.name);
const targets = all.flatMap((r) => (r.status === 'ok' ? r.targets : []));
process.stdout.write(
  `\n${targets.filter((t) => t.met).length}/${targets.length} targets met; ` +
    `results in ${jsonFile} and ${mdFile} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`,
);
if (failed.length > 0) process.stdout.write(`scenarios that failed: ${failed.join(', ')}\n`);
clearTimeout(watchdog);
// every client and server was closed; exit now rather than wait on a lingering idle handle
process.stdout.write('', () => process.exit(failed.length > 0 ? 1 : 0));
