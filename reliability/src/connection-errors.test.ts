// What a caller learns when no server can take its call, through a grpc-js
// client over the README's stack (DNS discovery → p2c → retry with a budget
// → a 2 s timeout → createChannel): every server refusing connections, a
// name that does not resolve, and TLS expected by a plaintext server each
// fail UNAVAILABLE at once, with the reason in the status details, after one
// attempt (not once per retry); a server that accepts connections and never
// speaks HTTP/2 keeps its endpoint connecting, so the deadline does pass,
// and says what the call waited for. Each over both transports, whose
// connection errors read the same. Real dnsmasq, real grpc-js servers,
// real sockets on 127.0.0.x.
import { type Server, createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, timeout } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect, dns } from '@grpc-tower/discover';
import { type RetryLayer, retry, retryBudget } from '@grpc-tower/retry';
import {
  type EchoProtoClient,
  createEchoClient,
  insecure,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
  trackResources,
} from '@grpc-tower/testing';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type Dnsmasq, freePort, startDnsmasq } from '../../packages/discover/src/test/index.js';

const DEADLINE_MS = 2_000;
const FAIL_FAST_MS = 3_000;

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

const [downA, downB, silentHost, plainHost] = pickHosts(4) as [string, string, string, string];
let dnsmasq: Dnsmasq;
let downPort: number;
beforeAll(async () => {
  downPort = await freePort(downA);
  dnsmasq = await startDnsmasq({
    hosts: { 'down.errors.test': [downA, downB], 'silent.errors.test': [silentHost] },
  });
});
afterAll(async () => {
  await dnsmasq?.close();
});

/** The README's stack over `dns(name, port)`, behind a proto-loader client. */
function readmeStack(
  transport: TestTransport,
  name: string,
  port: number,
  credentials: grpc.ChannelCredentials = insecure,
): { client: EchoProtoClient; retries: RetryLayer } {
  const endpoints = connect(dns(name, port, { servers: [dnsmasq.address] }), (addr) =>
    grpcEndpoint(addr.address, { authority: name, credentials, transport }),
  );
  const balancer = p2c(endpoints, { target: `${name}:${port}` });
  const retries = retry({ maxAttempts: 3, budget: retryBudget() });
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: DEADLINE_MS }))
    .layer(retries)
    .service(balancer);
  const channel = createChannel(stack, { target: `${name}:${port}` });
  const client = createEchoClient(`${name}:${port}`, { channelOverride: channel });
  cleanup.push(() => client.close());
  return { client, retries };
}

interface Failure {
  readonly code: grpc.status;
  readonly details: string;
  readonly elapsedMs: number;
}

function failure(client: EchoProtoClient): Promise<Failure> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    client.Unary({ message: 'x' }, new grpc.Metadata(), {}, (err, reply) => {
      if (err === null) reject(new Error(`the call succeeded: ${JSON.stringify(reply)}`));
      else resolve({ code: err.code, details: err.details, elapsedMs: Date.now() - started });
    });
  });
}

describe.each(TRANSPORTS)('no server can take the call, over the %s transport', (transport) => {
  test('every server refusing connections: UNAVAILABLE at once, naming ECONNREFUSED and an address, after one attempt', async () => {
    const tracker = trackResources();
    cleanup.push(() => tracker.stop());
    const { client, retries } = readmeStack(transport, 'down.errors.test', downPort);
    const f = await failure(client);
    console.log(`refused: ${grpc.status[f.code]} after ${f.elapsedMs} ms: ${f.details}`);
    // DEADLINE_EXCEEDED would mean it waited for the 2 s deadline
    expect(grpc.status[f.code]).toBe('UNAVAILABLE');
    expect(f.details).toContain('no ready endpoint for target "down.errors.test:');
    expect(f.details).toMatch(
      new RegExp(`(${downA}|${downB}):${downPort}: connect ECONNREFUSED (${downA}|${downB}):${downPort}`),
    );
    expect(f.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    // one attempt: the failure is not retried (once per attempt would be three)
    expect(retries.stats().attempts).toBe(1);
    // a second call fails as fast and as clearly
    const again = await failure(client);
    expect(grpc.status[again.code]).toBe('UNAVAILABLE');
    expect(again.details).toContain('ECONNREFUSED');
    expect(retries.stats().attempts).toBe(2);
    client.close();
    // grpc-js (1.14) lets a closed channel's reconnect backoff (1 s, jittered) run out
    await tracker.expectNone({ settleMs: 5_000 });
  });

  test('TLS expected, the server speaks plaintext: UNAVAILABLE at once, naming the handshake failure', async () => {
    const server = await startEchoServer({ host: plainHost });
    cleanup.push(() => server.stop(0));
    const endpoints = connect(
      dns('localhost', server.port),
      // the server listens on plainHost, so the endpoint is made for it
      () => grpcEndpoint(server.address, { credentials: grpc.credentials.createSsl(), transport }),
    );
    const balancer = p2c(endpoints, { target: 'tls.errors.test' });
    const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
      .layer(timeout({ ms: DEADLINE_MS }))
      .layer(retry({ maxAttempts: 3, budget: retryBudget() }))
      .service(balancer);
    const client = createEchoClient('tls.errors.test', {
      channelOverride: createChannel(stack, { target: 'tls.errors.test' }),
    });
    cleanup.push(() => client.close());
    const f = await failure(client);
    console.log(`tls: ${grpc.status[f.code]} after ${f.elapsedMs} ms: ${f.details}`);
    expect(grpc.status[f.code]).toBe('UNAVAILABLE');
    expect(f.details).toContain(`${server.address}: `);
    expect(f.details).toContain(`${server.address}: TLS error: wrong version number (SSL routines:`);
    expect(server.calls.total).toBe(0);
  });
});

describe.each(TRANSPORTS)('a deadline that really passes, over the %s transport', (transport) => {
  let silent: Server;
  let silentPort: number;
  beforeAll(async () => {
    // accepts TCP connections and never answers: grpc-js keeps connecting
    silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, silentHost, resolve));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    silent.close();
  });

  test('an endpoint that never finishes connecting: DEADLINE_EXCEEDED naming what the call waited for', async () => {
    const { client } = readmeStack(transport, 'silent.errors.test', silentPort);
    const f = await failure(client);
    console.log(`silent: ${grpc.status[f.code]} after ${f.elapsedMs} ms: ${f.details}`);
    expect(grpc.status[f.code]).toBe('DEADLINE_EXCEEDED');
    expect(f.details).toContain('waiting for a ready endpoint for target "silent.errors.test:');
    expect(f.details).toContain('1 known: 0 ready, 1 connecting');
  });
});

// no endpoint is ever made, so no transport takes part
describe('a name that does not resolve', () => {
  test('a name that does not resolve: UNAVAILABLE at once, naming the DNS error and the name', async () => {
    const { client, retries } = readmeStack('native', 'missing.errors.test', 50051);
    const f = await failure(client);
    console.log(`unresolvable: ${grpc.status[f.code]} after ${f.elapsedMs} ms: ${f.details}`);
    expect(grpc.status[f.code]).toBe('UNAVAILABLE');
    expect(f.details).toContain('(no endpoint known); discovery failed:');
    expect(f.details).toContain('missing.errors.test');
    expect(f.details).toContain('ENOTFOUND');
    expect(f.elapsedMs).toBeLessThan(FAIL_FAST_MS);
    expect(retries.stats().attempts).toBe(1);
  });
});
