/**
 * http2: what the grpc-tower stack costs for plain HTTP/2 requests, over
 * one origin (a TLS `node:http2` server in a child process answering every
 * GET with a small JSON body). Clients, measured in alternating rounds:
 *
 * - node:http2: one `ClientHttp2Session`, a request per call (the floor);
 * - undici Pool (HTTP/2): undici's own `Pool` with `allowH2` over one
 *   connection, `pool.request()` (the baseline of the target);
 * - stack: `http2Endpoint` → outlier detection (HTTP policy) → p2c
 *   (PeakEWMA) → `httpRetry` → timeout, called directly;
 * - dispatcher: `undici.request()` through `towerDispatcher` (the same
 *   stack behind an undici `Dispatcher`).
 *
 * Per round and client: throughput of a closed loop (32 requests in
 * flight) and this process's CPU time per request during it. Target:
 * through the dispatcher and directly, at least 0.9× undici's throughput,
 * round by round.
 *
 * @module
 */
import {
  type Client,
  DISPATCHER,
  NAME,
  STACK,
  UNDICI,
  dispatcherClient,
  nodeClient,
  stackClient,
  undiciClient,
} from '../lib/http2-clients.js';
import { makeCerts } from '../../reliability/src/support/certs.js';
import { spawnHttp2Server } from '../lib/http2-server.js';
import { throughputMetrics, throughputRounds } from '../lib/rounds.js';
import { type ScenarioBody, type ScenarioOptions, target } from '../lib/schema.js';
import { HOSTS } from '../lib/servers.js';

/**
 * Runs the http2 scenario.
 *
 * @example
 * ```ts
 * const body = await http2Scenario({ quick: true, log: console.error });
 * ```
 */
export async function http2Scenario({ quick, log }: ScenarioOptions): Promise<ScenarioBody> {
  const rounds = quick ? 2 : 5;
  const throughputMs = quick ? 700 : 3_000;
  const warmupMs = quick ? 300 : 1_500;
  const concurrency = 32;
  const certs = makeCerts();
  const { key, cert } = certs.server(NAME);
  const server = await spawnHttp2Server(HOSTS.http2[0], key, cert);
  const origin = `https://${server.address}`;
  const clients: Client[] = [];
  try {
    clients.push(
      nodeClient(origin, certs.ca),
      undiciClient(origin, certs.ca),
      stackClient(server.address, certs.ca),
      dispatcherClient(server.address, certs.ca),
    );
    const { rows, median, failures } = await throughputRounds(clients, UNDICI, {
      rounds,
      concurrency,
      throughputMs,
      warmupMs,
      log,
      label: 'http2',
    });
    return {
      title: 'plain HTTP/2 requests over one origin',
      description:
        'One TLS node:http2 server in a child process answering each GET with a 28-byte JSON body; four ' +
        'clients measured in alternating rounds: one node:http2 session, undici’s own Pool with allowH2 ' +
        `over one connection, the grpc-tower stack called directly, and undici.request() through ` +
        `towerDispatcher. A closed loop with ${concurrency} requests in flight per round; client CPU is ` +
        "this process's user + system time per request during it. Ratios are to undici's Pool, round by round.",
      rounds,
      config: { concurrency, throughputMs, warmupMs, server: server.address },
      tables: [
        {
          title: `GET requests, ${concurrency} in flight`,
          metrics: throughputMetrics('requests/s', 'req'),
          rows,
        },
      ],
      targets: [
        target({
          id: 'http2-dispatcher-throughput',
          description: "undici.request() through towerDispatcher vs undici's own Pool with HTTP/2",
          row: DISPATCHER,
          metric: 'rpsRatio',
          op: '>=',
          target: 0.9,
          value: median(DISPATCHER, 'rpsRatio'),
          unit: '×',
        }),
        target({
          id: 'http2-stack-throughput',
          description: "the stack called directly vs undici's own Pool with HTTP/2",
          row: STACK,
          metric: 'rpsRatio',
          op: '>=',
          target: 0.9,
          value: median(STACK, 'rpsRatio'),
          unit: '×',
        }),
      ],
      notes: failures > 0 ? [`${failures} requests failed during the measurement`] : [],
    };
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await server.stop();
    certs.remove();
  }
}
