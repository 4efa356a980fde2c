// The same layers over plain HTTP/2 (not gRPC): discovery → p2c → retry
// (`httpRetry`: HTTP's rules) → timeout around `http2Endpoint` from
// @grpc-tower/core/http2. Each endpoint keeps one HTTP/2 session per server
// and reuses it for every request; it is `ready` once the server's first
// SETTINGS arrived, moves to a new session when the server sends GOAWAY, and
// reconnects with backoff after a failure.
//
//   npm start -w @grpc-tower/example-http2      (starts two local servers)
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, background, timeout } from '@grpc-tower/core';
import { type Http2Request, type Http2Response, http2Endpoint } from '@grpc-tower/core/http2';
import { connect, poll } from '@grpc-tower/discover';
import { httpRetry, retryBudget } from '@grpc-tower/retry';
import { type ExampleOptions, type RoundsResult, runAsScript, twoRounds } from './rounds.js';

/** Builds the stack, sends two rounds of requests, and closes everything. */
export async function run(options: ExampleOptions): Promise<RoundsResult> {
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
    return await twoRounds(options, async (i) => {
      const res = await items.call({ path: `/items/${i}` }, background);
      return JSON.parse(res.body.toString('utf8')) as { server: string };
    });
  } finally {
    await balancer.close();
  }
}

runAsScript(import.meta.url, run);
