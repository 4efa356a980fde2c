// The native transport through nginx grpc_pass (Debian's nginx, as the
// proxy benchmark runs it): the GOAWAY nginx sends after keepalive_requests
// streams, and its HTML error page when no upstream answers.
import { Status, background } from '@grpc-tower/core';
import { nativeGrpcEndpoint } from '@grpc-tower/core/grpc';
import { GeneratedEchoRequest, insecure, pickHosts, startEchoServer } from '@grpc-tower/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Nginx, startNginx } from '../../../bench/lib/nginx.js';
import { grpcRequest } from '../../core/src/grpc/test/request.js';
import { trackCleanups } from '../../balance/src/test/grpc-calls.js';

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
