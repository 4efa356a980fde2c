/**
 * connect: Connect-ES clients through grpc-tower, against Connect-ES's
 * own gRPC transport, over one grpc-js echo server in a child process.
 * Two clients of the protoc-gen-es generated `Echo` service, measured in
 * alternating rounds:
 *
 * - `createGrpcTransport` (`@connectrpc/connect-node`): one HTTP/2 session
 *   to the server (the baseline);
 * - `towerTransport` (`grpc-tower/connect`): the whole default stack
 *   (health checks, outlier detection, p2c, retry with budget) over the
 *   native gRPC transport.
 *
 * Per round and client: throughput of a closed loop of unary calls (32 in
 * flight) and this process's CPU time per call during it. Targets:
 * `towerTransport` at least 1.0× `createGrpcTransport`'s calls/s and at
 * most 1.0× its client CPU per call, round by round.
 *
 * @module
 */
import { type Transport, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { Echo } from '@grpc-tower/testing/echo-es';
import { towerTransport } from 'grpc-tower/connect';
import { throughputMetrics, throughputRounds } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS, spawnServers, stopServers } from '../lib/servers.js';

const BASE = 'createGrpcTransport';
const TOWER = 'towerTransport (full stack)';

interface ConnectClient {
  readonly name: string;
  call(): Promise<string>;
  close(): Promise<void>;
}

/** A client of the generated Echo service over `transport`; each call resolves with the server's name. */
function clientOf(name: string, transport: Transport, close: () => Promise<void>): ConnectClient {
  const echo = createClient(Echo, transport);
  return {
    name,
    call: async () => (await echo.unary({ message: 'x' }, { timeoutMs: 10_000 })).server,
    close,
  };
}

/**
 * Runs the connect scenario.
 *
 * @example
 * ```ts
 * const body = await connectScenario({ quick: true, log: console.error });
 * ```
 */
export async function connectScenario({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 2 : 5;
  const throughputMs = quick ? 700 : 3_000;
  const warmupMs = quick ? 300 : 1_500;
  const concurrency = 32;
  // the scenarios run one after the other: this one uses the overhead scenario's host
  const servers = await spawnServers([{ host: HOSTS.overhead[0], name: 'connect-0' }]);
  const address = (servers[0] as (typeof servers)[0]).address;
  const clients: ConnectClient[] = [];
  try {
    const tower = towerTransport(`ipv4:${address}`, { tls: false });
    clients.push(
      clientOf(BASE, createGrpcTransport({ baseUrl: `http://${address}` }), async () => {}),
      clientOf(TOWER, tower, () => tower.close({ graceMs: 0 })),
    );
    const { rows, median, failures } = await throughputRounds(clients, BASE, {
      rounds,
      concurrency,
      throughputMs,
      warmupMs,
      log,
      label: 'connect',
    });
    return {
      title: 'Connect-ES clients over one server',
      description:
        'One grpc-js echo server in a child process; the protoc-gen-es generated Echo client over ' +
        "Connect-ES's own createGrpcTransport and over towerTransport (the whole default stack, native " +
        `gRPC endpoints), measured in alternating rounds. A closed loop with ${concurrency} unary calls in ` +
        "flight per round; client CPU is this process's user + system time per call during it. Ratios are " +
        "to createGrpcTransport's, round by round.",
      rounds,
      config: { concurrency, throughputMs, warmupMs, server: address },
      tables: [
        {
          title: `unary calls, ${concurrency} in flight`,
          metrics: throughputMetrics('calls/s', 'call'),
          rows,
        },
      ],
      targets: [
        target({
          id: 'connect-throughput',
          description: "towerTransport vs Connect-ES's createGrpcTransport, calls/s",
          row: TOWER,
          metric: 'rpsRatio',
          op: '>=',
          target: 1.0,
          value: median(TOWER, 'rpsRatio'),
          unit: '×',
        }),
        target({
          id: 'connect-cpu',
          description: "towerTransport vs Connect-ES's createGrpcTransport, client CPU per call",
          row: TOWER,
          metric: 'cpuRatio',
          op: '<=',
          target: 1.0,
          value: median(TOWER, 'cpuRatio'),
          unit: '×',
        }),
      ],
      notes: failures > 0 ? [`${failures} calls failed during the measurement`] : [],
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await stopServers(servers);
  }
}
