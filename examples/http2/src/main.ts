// The same layers over plain HTTP/2 (not gRPC): discovery → p2c → retry
// (`httpRetry`: HTTP's rules) → timeout around `http2Endpoint` from
// @grpc-tower/core/http2. Each endpoint
// keeps one HTTP/2 session per server and reuses it for every request; it
// is `ready` while that session is up, moves to a new session when the
// server sends GOAWAY, and reconnects with backoff after a failure.
//
//   npm start -w @grpc-tower/example-http2      (starts two local servers)
import { pathToFileURL } from 'node:url';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, type Service, background, timeout } from '@grpc-tower/core';
import { type Http2Request, type Http2Response, http2Endpoint } from '@grpc-tower/core/http2';
import { connect, poll } from '@grpc-tower/discover';
import { httpRetry, retryBudget } from '@grpc-tower/retry';
import { startItemServer } from './server.js';

/** Options of {@link run}. */
export interface Http2ExampleOptions {
  /** The servers, `host:port` (cleartext HTTP/2). */
  readonly servers: readonly string[];
  /** Requests per round; default 40. */
  readonly requests?: number;
  /** Runs between the two rounds (the test and the CLI make a server send GOAWAY). */
  readonly between?: () => void | Promise<void>;
}

/** Which server answered how many requests, per round, and how many failed. */
export interface Http2ExampleResult {
  readonly first: Readonly<Record<string, number>>;
  readonly second: Readonly<Record<string, number>>;
  readonly failed: number;
}

/** Sends `n` GET requests, ten at a time; counts answers per server and failures. */
async function round(
  items: Service<Http2Request, Http2Response>,
  n: number,
): Promise<{ tally: Record<string, number>; failed: number }> {
  const tally: Record<string, number> = {};
  let failed = 0;
  for (let i = 0; i < n; i += 10) {
    await Promise.all(
      Array.from({ length: Math.min(10, n - i) }, async (_, j) => {
        try {
          const res = await items.call({ path: `/items/${i + j}` }, background);
          const body = JSON.parse(res.body.toString('utf8')) as { server: string };
          tally[body.server] = (tally[body.server] ?? 0) + 1;
        } catch {
          failed++;
        }
      }),
    );
  }
  return { tally, failed };
}

/** Builds the stack, sends two rounds of requests, and closes everything. */
export async function run(options: Http2ExampleOptions): Promise<Http2ExampleResult> {
  const requests = options.requests ?? 40;
  // #region stack
  // discovery: any function that returns the current addresses, polled every second
  const registry = new Set(options.servers);
  const source = poll(async () => [...registry], { name: 'items', intervalMs: 1_000 });
  // one HTTP/2 endpoint (one reused session) per address; the local servers are cleartext (h2c)
  const endpoints = connect(source, (addr) => http2Endpoint(addr.address, { scheme: 'http' }));
  const balancer = p2c(endpoints, { target: 'h2:items' });
  const items = new ServiceBuilder<Http2Request, Http2Response>()
    .layer(timeout({ ms: 2_000 }))
    // refused streams (a GOAWAY) always go again; GETs also on 502/503/504 and lost connections
    .layer(httpRetry({ maxAttempts: 3, budget: retryBudget() }))
    .service(balancer);
  // #endregion stack
  try {
    const first = await round(items, requests);
    await options.between?.();
    const second = await round(items, requests);
    return { first: first.tally, second: second.tally, failed: first.failed + second.failed };
  } finally {
    await balancer.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const main = async (): Promise<void> => {
    const servers = await Promise.all(
      ['one', 'two'].map((name) => startItemServer({ host: '127.0.0.1', name, latencyMs: 5 })),
    );
    try {
      const result = await run({
        servers: servers.map((s) => s.address),
        between: () => servers[0]?.goaway(),
      });
      console.log(JSON.stringify(result, null, 2));
      console.log(
        servers.map((s) => `${s.name}: ${s.sessions} HTTP/2 session(s), ${s.answered} requests`).join('\n'),
      );
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  };
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
