// Snippets of docs/guides/http2-and-fetch.md.
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { p2c } from '@grpc-tower/balance';
import { type CallContext, type Service, ServiceBuilder, newContext } from '@grpc-tower/core';
import {
  type Http2Request,
  type Http2Response,
  http2Body,
  http2Endpoint,
  httpProtocol,
} from '@grpc-tower/core/http2';
import { connect, dns, staticList } from '@grpc-tower/discover';
import { httpHealthChecked, outlierDetection } from '@grpc-tower/health';
import { httpRetry, retryBudget } from '@grpc-tower/retry';
import { telemetry } from '@grpc-tower/telemetry';
import { towerDispatcher } from 'grpc-tower/undici';
import { Agent, fetch, interceptors, request, setGlobalDispatcher } from 'undici';

export async function stack(): Promise<void> {
  // #region stack
  const health = httpHealthChecked({ path: '/healthz' }); // GET /healthz on each server's own session
  const outliers = outlierDetection({ protocol: httpProtocol() }); // 5xx and failed streams count, 4xx never
  const endpoints = connect(dns('items.internal', 8080), (addr) =>
    // one HTTP/2 session per server; 'http' is cleartext h2c, 'https' TLS with ALPN h2
    outliers.wrap(health(http2Endpoint(addr.address, { scheme: 'http', authority: 'items.internal' }))),
  );
  const items = new ServiceBuilder<Http2Request, Http2Response>()
    .layer(httpRetry({ maxAttempts: 3, budget: retryBudget() })) // a fresh pick per attempt
    .service(p2c(endpoints, { target: 'http://items.internal:8080' })); // PeakEWMA by default

  const scope = newContext({ timeoutMs: 2_000 }); // one deadline over every attempt
  try {
    const res = await items.call({ path: '/items/7' }, scope.context);
    console.log(res.status, res.endpoint, res.body.toString('utf8'));
  } finally {
    scope.release();
  }
  // #endregion stack
  await items.close();
}

declare const items: Service<Http2Request, Http2Response>;
declare const ctx: CallContext;

export async function streaming(): Promise<void> {
  // #region streaming
  // a request body read from a stream, kept (up to 1 MiB) so a retry can send it again
  const upload = http2Body(createReadStream('export.csv'), { replayBytes: 1024 * 1024 });
  await items.call({ method: 'PUT', path: '/exports/today.csv', body: upload }, ctx);

  // a response read as it arrives: the call resolves at the headers
  const download = await items.call({ path: '/exports/today.csv', response: 'stream' }, ctx);
  await pipeline(download.stream as NodeJS.ReadableStream, createWriteStream('today.csv'));
  const trailers = await download.trailers; // {} when the server sent none
  // #endregion streaming
  void trailers;
}

export async function dispatcher(): Promise<void> {
  // #region fetch
  // discovery (DNS of items.internal), outlier detection, p2c with PeakEWMA, httpRetry
  const items = towerDispatcher('http://items.internal:8080');

  const res = await fetch('http://items.internal:8080/items/7', { dispatcher: items });
  const item = await res.json();

  const { statusCode, body, context } = await request('http://items.internal:8080/items', {
    dispatcher: items,
    method: 'POST',
    body: JSON.stringify({ name: 'book' }),
    idempotent: true, // this POST may be sent twice: retried on 502/503/504 like a GET
  });
  console.log(statusCode, await body.json(), 'answered by', (context as { endpoint: string }).endpoint);

  await items.close(); // waits for requests in flight (30 s at most: closeGraceMs), then closes every session
  // #endregion fetch
  void item;
}

export function options(): void {
  // #region options
  const items = towerDispatcher('https://items.internal', {
    connectOptions: { ca: readFileSync('ca.pem') }, // TLS: SNI and :authority are items.internal
    dns: { intervalMs: 10_000 }, // or discovery: any Discover of { address } values
    health: { path: '/healthz', intervalMs: 2_000 }, // off by default: HTTP has no standard path
    outlierDetection: { consecutiveFailures: 3 }, // on by default, reading answers by httpProtocol()
    balancer: { failFastMs: 1_000 }, // PeakEWMA by default
    retry: { maxAttempts: 3, maxRetryAfterMs: 5_000 }, // httpRetry, within a retryBudget()
    timeoutMs: 10_000, // each whole request: attempts, backoffs and the response body
    headersTimeout: 5_000, // undici's, 300 s by default
    replayBytes: 4 * 1024 * 1024, // of a streamed request body, for a retry
    telemetry: telemetry(), // metrics and traces, as towerChannel's (register the SDK first)
  });
  // #endregion options
  void items;
}

export function global(): void {
  // #region global
  const items = towerDispatcher('http://items.internal:8080', {
    fallback: new Agent(), // every other origin goes out as before
  });
  setGlobalDispatcher(items); // undici's fetch, and Node's own fetch, use it from now on
  // #endregion global
}

export async function compose(): Promise<void> {
  // #region compose
  const items = towerDispatcher('http://items.internal:8080', {
    discovery: staticList(['10.0.0.7:8080', '10.0.0.8:8080']),
  }).compose(interceptors.responseError(), interceptors.redirect({ maxRedirections: 3 }));
  await request('http://items.internal:8080/items/7', { dispatcher: items });
  // #endregion compose
}
