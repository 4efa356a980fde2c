/**
 * Echo servers for the scenarios, each in its own child process
 * (`spawnEchoServer` from `@grpc-tower/testing`), on loopback hosts
 * 127.0.0.242 to 127.0.0.254: the test suites use 127.0.0.2 to
 * 127.0.0.241, so a benchmark and the tests can run at the same time.
 *
 * @module
 */
import { type ChildEchoServer, type ChildEchoServerOptions, spawnEchoServer } from '@grpc-tower/testing';
import { freePort } from '../../packages/discover/src/test/index.js';

/**
 * The loopback hosts each scenario uses.
 *
 * @example
 * ```ts
 * const [a, b, c] = HOSTS.heterogeneous;
 * ```
 */
export const HOSTS = {
  overhead: ['127.0.0.242'],
  heterogeneous: ['127.0.0.243', '127.0.0.244', '127.0.0.245'],
  churn: ['127.0.0.246', '127.0.0.247', '127.0.0.248'],
  proxy: ['127.0.0.249', '127.0.0.250', '127.0.0.251'],
  nginx: '127.0.0.252',
  evenShares: ['127.0.0.236', '127.0.0.237', '127.0.0.238'],
  http2: ['127.0.0.253'],
  transport: ['127.0.0.254'],
  // the churn scenario's hosts (scenarios run one after the other), and one for the management server
  xds: ['127.0.0.246', '127.0.0.247', '127.0.0.248', '127.0.0.249'],
} as const;

/**
 * Starts one child echo server per options object, in parallel; if one
 * fails to start, stops those that did and rethrows.
 *
 * @example
 * ```ts
 * const [a, b] = await spawnServers([{ host: '127.0.0.243', name: 'a' }, { host: '127.0.0.244', name: 'b' }]);
 * ```
 */
export async function spawnServers(options: readonly ChildEchoServerOptions[]): Promise<ChildEchoServer[]> {
  const settled = await Promise.allSettled(options.map((o) => spawnEchoServer(o)));
  const started = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed !== undefined) {
    await stopServers(started);
    throw failed.reason;
  }
  return started;
}

/**
 * Starts servers on distinct hosts that share one port, as the members of
 * a DNS A-record pool must (a name resolves to addresses, not ports).
 * Retries with another port when one was taken.
 *
 * @example
 * ```ts
 * const servers = await spawnOnSharedPort([{ host: '127.0.0.246', name: 'A' }, { host: '127.0.0.247', name: 'B' }]);
 * servers[0].port === servers[1].port; // true
 * ```
 */
export async function spawnOnSharedPort(
  options: readonly Omit<ChildEchoServerOptions, 'port'>[],
): Promise<ChildEchoServer[]> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort(options[0]?.host ?? '127.0.0.1');
    try {
      return await spawnServers(options.map((o) => ({ ...o, port })));
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

/**
 * Stops servers gracefully (short grace), ignoring those already gone.
 *
 * @example
 * ```ts
 * await stopServers(servers);
 * ```
 */
export async function stopServers(servers: readonly ChildEchoServer[]): Promise<void> {
  await Promise.allSettled(servers.map((s) => s.stop(200)));
}
