// The native transport through nginx grpc_pass (Debian's nginx, as the
// proxy benchmark runs it): the GOAWAY nginx sends after keepalive_requests
// streams, its HTML error pages (502 with no upstream, 504 on
// grpc_read_timeout, 413 past client_max_body_size, too large request
// headers), and nginx listening with TLS and ALPN h2.
import { Status, background } from '@grpc-tower/core';
import { GrpcStatusError, type NativeGrpcEndpoint, nativeGrpcEndpoint } from '@grpc-tower/core/grpc';
import {
  type EchoServer,
  GeneratedEchoRequest,
  insecure,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Nginx, startNginx } from '../../../bench/lib/nginx.js';
import { grpcRequest } from '../../core/src/grpc/test/request.js';
import { trackCleanups } from '../../balance/src/test/grpc-calls.js';
import { makeCerts } from '../../../reliability/src/support/certs.js';

const cleanups = trackCleanups();
const ECHO = '/grpctower.testing.Echo/Unary';
const echo = Buffer.from(
  GeneratedEchoRequest.encode(GeneratedEchoRequest.fromPartial({ message: 'n' })).finish(),
);

describe('nginx grpc_pass in front of a grpc-js server', () => {
  let proxy: Nginx;
  let deadProxy: Nginx;
  beforeAll(async () => {
    const [serverHost, proxyHost, deadHost] = pickHosts(3) as [string, string, string];
    const server = await startEchoServer({ host: serverHost });
    cleanups.push(() => server.stop(0));
    proxy = await startNginx({ host: proxyHost, upstreams: [server.address], keepaliveRequests: 100 });
    // an upstream nobody listens on: nginx answers 502 itself
    deadProxy = await startNginx({ host: deadHost, upstreams: [`${serverHost}:1`] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await deadProxy?.stop();
  });

  test('a GOAWAY every 100 streams: 2,000 calls, 32 in flight, none lost', async () => {
    const ep = nativeGrpcEndpoint(proxy.address, { credentials: insecure });
    cleanups.push(() => ep.close({ graceMs: 0 }));
    let goaways = 0;
    const sub = ep.events$.subscribe((e) => (e.kind === 'goaway' ? goaways++ : 0));
    cleanups.push(() => sub.unsubscribe());
    const failures: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < 2_000) {
          next++;
          await ep
            .call(grpcRequest(ECHO, { messages: [echo] }), background)
            .catch((err: Error) => failures.push(err.message));
        }
      }),
    );
    console.log(`nginx keepalive_requests 100: ${goaways} GOAWAYs over 2,000 calls`);
    expect(failures).toEqual([]);
    expect(goaways).toBeGreaterThanOrEqual(10);
  });

  test("nginx's own 502 page (no upstream) is UNAVAILABLE, read as HTTP, not as a message", async () => {
    const ep = nativeGrpcEndpoint(deadProxy.address, { credentials: insecure });
    cleanups.push(() => ep.close({ graceMs: 0 }));
    const err = (await ep
      .call(grpcRequest(ECHO, { messages: [echo] }), background)
      .catch((e: unknown) => e)) as { code: number; details: string };
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.details).toMatch(/502/);
  });
});

describe('nginx limits and TLS in front of a grpc-js server', () => {
  const NAME = 'nginx.tls.test';
  const certs = makeCerts();
  let limited: Nginx;
  let secure: Nginx;
  let server: EchoServer;
  beforeAll(async () => {
    const [serverHost, limitedHost, secureHost] = pickHosts(3) as [string, string, string];
    server = await startEchoServer({ host: serverHost });
    limited = await startNginx({
      host: limitedHost,
      upstreams: [server.address],
      directives: ['grpc_read_timeout 300ms', 'client_max_body_size 1k', 'large_client_header_buffers 2 1k'],
    });
    secure = await startNginx({ host: secureHost, upstreams: [server.address], tls: certs.server(NAME) });
  });
  afterAll(async () => {
    await limited?.stop();
    await secure?.stop();
    await server?.stop(0);
    certs.remove();
  });

  async function failed(ep: NativeGrpcEndpoint, request: Partial<GeneratedEchoRequest>, md?: grpc.Metadata) {
    const body = Buffer.from(GeneratedEchoRequest.encode(GeneratedEchoRequest.fromPartial(request)).finish());
    const err = await ep
      .call(
        grpcRequest(ECHO, { messages: [body], ...(md === undefined ? {} : { metadata: md }) }),
        background,
      )
      .then(
        () => undefined,
        (e: unknown) => e as GrpcStatusError,
      );
    expect(err).toBeInstanceOf(GrpcStatusError);
    return err as GrpcStatusError;
  }

  test('grpc_read_timeout on a slow upstream: its 504 is UNAVAILABLE, read as HTTP, not as a message', async () => {
    const ep = nativeGrpcEndpoint(limited.address, { credentials: insecure });
    cleanups.push(() => ep.close({ graceMs: 0 }));
    const err = await failed(ep, { message: 'slow', delayMs: 2_000 });
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.details).toMatch(/HTTP status code 504/);
    expect(ep.pending).toBe(0);
  });

  test('client_max_body_size exceeded by a big request: its 413 is UNKNOWN (the gRPC mapping of an unlisted HTTP status), the connection survives', async () => {
    const ep = nativeGrpcEndpoint(limited.address, { credentials: insecure });
    cleanups.push(() => ep.close({ graceMs: 0 }));
    const err = await failed(ep, { payload: Buffer.alloc(64 * 1024, 1) });
    expect(err.code).toBe(Status.UNKNOWN);
    expect(err.details).toMatch(/HTTP status code 413/);
    // a small request still goes through on the same connection
    const ok = await ep.call(grpcRequest(ECHO, { messages: [echo] }), background);
    expect(ok.unary?.messages.length).toBe(1);
  });

  // nginx 1.22 answers request headers past its buffers with a connection
  // error (GOAWAY ENHANCE_YOUR_CALM), not a 431: the raw peer's tests cover a 431
  test.each([
    ['one field larger than a buffer', { 'x-big': 'b'.repeat(4_096) }],
    [
      'many fields, larger than the buffers together',
      Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`x-many-${i}`, 'm'.repeat(600)])),
    ],
  ])(
    'request headers past large_client_header_buffers (%s): UNAVAILABLE naming the GOAWAY; the next call reconnects',
    async (_case, headers) => {
      const ep = nativeGrpcEndpoint(limited.address, { credentials: insecure });
      cleanups.push(() => ep.close({ graceMs: 0 }));
      const goaways: number[] = [];
      const sub = ep.events$.subscribe((e) => (e.kind === 'goaway' ? goaways.push(e.code) : 0));
      cleanups.push(() => sub.unsubscribe());
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) md.set(k, v);
      const err = await failed(ep, { message: 'h' }, md);
      expect(err.code).toBe(Status.UNAVAILABLE);
      expect(err.details).toMatch(/GOAWAY \(code 11\)/);
      expect(goaways).toEqual([11]);
      const ok = await ep.call(grpcRequest(ECHO, { messages: [echo] }), background);
      expect(ok.unary?.messages.length).toBe(1);
      expect(ep.pending).toBe(0);
    },
  );

  test('TLS with ALPN h2 to nginx: calls go over TLS through it', async () => {
    const ep = nativeGrpcEndpoint(secure.address, {
      credentials: grpc.credentials.createSsl(certs.ca),
      authority: NAME,
    });
    cleanups.push(() => ep.close({ graceMs: 0 }));
    const before = server.calls.total;
    const results = await Promise.all(
      Array.from({ length: 20 }, () => ep.call(grpcRequest(ECHO, { messages: [echo] }), background)),
    );
    expect(results.map((r) => r.unary?.messages.length)).toEqual(Array(20).fill(1));
    expect(ep.secure).toBe(true);
    expect(server.calls.total - before).toBe(20);
    // a client that does not trust the certificate is refused at the handshake, never downgraded
    const untrusted = nativeGrpcEndpoint(secure.address, {
      credentials: grpc.credentials.createSsl(certs.rogue('other.test').cert),
      authority: NAME,
    });
    cleanups.push(() => untrusted.close({ graceMs: 0 }));
    const err = await failed(untrusted, { message: 'x' });
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.delivery).toBe('unconnected');
    expect(err.details).toMatch(/certificate|issuer|self.signed/i);
  });
});
