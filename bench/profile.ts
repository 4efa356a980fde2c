/**
 * Where the client's CPU goes per call: runs one client of the overhead
 * scenario (a closed loop of unary calls over one echo server in a child
 * process) under V8's sampling profiler, only while the loop runs, and
 * prints the self time per function and per file in µs per call.
 *
 *   npx tsx --conditions=@grpc-tower/source bench/profile.ts [plain|bare|full|telemetry[-metrics|-traces]|timeout|retry|health|outlier|p2c
 *     |http2-node|http2-undici|http2-stack|http2-dispatcher]
 *     [--ms 6000] [--top 40] [--out file.cpuprofile]
 *
 * The profiler's own sampling costs a little; compare profiles with each
 * other, and take absolute figures from `npm run bench`.
 *
 * @module
 */
// first: sets grpc-js's environment before grpc-js loads
import './lib/grpc-env.js';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { staticList } from '@grpc-tower/discover';
import { makeCerts } from '../reliability/src/support/certs.js';
import { NAME, dispatcherClient, nodeClient, stackClient, undiciClient } from './lib/http2-clients.js';
import { spawnHttp2Server } from './lib/http2-server.js';
import { type LoopResult, closedLoop, closedLoopOf } from './lib/load.js';
import { startBenchSdk } from './lib/otel.js';
import { HOSTS, spawnServers, stopServers } from './lib/servers.js';
import {
  type Contender,
  LAYER_STACKS,
  type LayerName,
  bareChannel,
  fullStack,
  plainClient,
} from './lib/stacks.js';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/**
 * Self time per function and per file of a V8 CPU profile, in µs.
 *
 * @example
 * ```ts
 * const { byFunction, byFile } = selfTimes(profile);
 * ```
 */
export function selfTimes(profile: Profile): {
  byFunction: Map<string, number>;
  byFile: Map<string, number>;
  totalUs: number;
} {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let totalUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + dt);
    totalUs += dt;
  }
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, us] of self) {
    const frame = nodes.get(id)?.callFrame;
    if (frame === undefined) continue;
    const file = shortFile(frame.url);
    const fn = `${frame.functionName || '(anonymous)'} ${file}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  }
  return { byFunction, byFile, totalUs };
}

function shortFile(url: string): string {
  if (url === '') return '(native)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) return path.slice(nm + 'node_modules/'.length);
  const pk = path.indexOf('/packages/');
  if (pk >= 0) return path.slice(pk + 1);
  const bench = path.indexOf('/bench/');
  if (bench >= 0) return path.slice(bench + 1);
  return path;
}

function parse(argv: readonly string[]): { which: string; ms: number; top: number; out?: string } {
  let which = 'bare';
  let ms = 6_000;
  let top = 40;
  let out: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--ms') ms = Number(argv[++i]);
    else if (a === '--top') top = Number(argv[++i]);
    else if (a === '--out') out = argv[++i];
    else which = a;
  }
  return { which, ms, top, ...(out === undefined ? {} : { out }) };
}

function contender(which: string, address: string): Contender {
  if (which === 'plain') return plainClient(which, address);
  if (which === 'bare') return bareChannel(which, address);
  if (which === 'full') return fullStack(which, staticList([address]), { target: address });
  if (which.startsWith('telemetry')) {
    // telemetry: metrics and traces; telemetry-metrics, telemetry-traces: one of them
    const sdk = startBenchSdk({
      metrics: which !== 'telemetry-traces',
      tracing: which !== 'telemetry-metrics',
    });
    return fullStack(which, staticList([address]), { target: address, telemetry: sdk.telemetry });
  }
  if (which in LAYER_STACKS) return LAYER_STACKS[which as LayerName](which, address);
  throw new Error(`unknown client ${which}`);
}

/** An HTTP/2 client of the http2 scenario, with its server (a child process) and certificates. */
async function http2Contender(
  which: string,
): Promise<{ run: () => Promise<string>; close: () => Promise<void> }> {
  const certs = makeCerts();
  const { key, cert } = certs.server(NAME);
  const server = await spawnHttp2Server(HOSTS.http2[0], key, cert);
  const origin = `https://${server.address}`;
  const make = {
    'http2-node': () => nodeClient(origin, certs.ca),
    'http2-undici': () => undiciClient(origin, certs.ca),
    'http2-stack': () => stackClient(server.address, certs.ca),
    'http2-dispatcher': () => dispatcherClient(server.address, certs.ca),
  }[which];
  if (make === undefined) throw new Error(`unknown client ${which}`);
  const client = make();
  return {
    run: () => client.call(),
    close: async () => {
      await client.close();
      await server.stop();
      certs.remove();
    },
  };
}

const { which, ms, top, out } = parse(process.argv.slice(2));
let runOne: () => Promise<LoopResult>;
let closeAll: () => Promise<void>;
let warm: () => Promise<unknown>;
if (which.startsWith('http2-')) {
  const h = await http2Contender(which);
  runOne = () => closedLoopOf(h.run, { concurrency: 32, durationMs: ms });
  warm = () => closedLoopOf(h.run, { concurrency: 32, durationMs: 1_500 });
  closeAll = h.close;
} else {
  const servers = await spawnServers([{ host: HOSTS.overhead[0], name: 'server', health: true }]);
  const c = contender(which, servers[0]!.address);
  runOne = () => closedLoop(c.client, { concurrency: 32, durationMs: ms });
  warm = () => closedLoop(c.client, { concurrency: 32, durationMs: 1_500 });
  closeAll = async () => {
    await c.close();
    await stopServers(servers);
  };
}
try {
  await warm();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  const loop = await runOne();
  const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: Profile };
  session.disconnect();
  if (out !== undefined) writeFileSync(out, JSON.stringify(profile));
  const calls = loop.calls + loop.failures;
  const { byFunction, byFile, totalUs } = selfTimes(profile);
  const perCall = (us: number) => (us / calls).toFixed(2).padStart(7);
  const idle = byFunction.get('(idle) (native)') ?? 0;
  const print = (title: string, m: Map<string, number>, n: number): void => {
    process.stdout.write(`\n${title}\n`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) {
      process.stdout.write(`${perCall(us)} µs/call  ${k}\n`);
    }
  };
  process.stdout.write(
    `${which}: ${calls} calls in ${loop.elapsedMs.toFixed(0)} ms (${((calls / loop.elapsedMs) * 1000).toFixed(0)}/s), ` +
      `${loop.failures} failed; process CPU ${(loop.cpuUs / calls).toFixed(1)} µs/call; ` +
      `profiled non-idle ${perCall(totalUs - idle)} µs/call\n`,
  );
  print('self time by file', byFile, 25);
  print('self time by function', byFunction, top);
} finally {
  await closeAll();
}
