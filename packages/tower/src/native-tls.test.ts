// TLS on the native transport, from the grpc-js credentials users pass:
// the newest grpc-js (its connector) and the oldest supported, 1.12 (its
// connection options). Real certificates made by openssl, grpc-js TLS
// servers, and a TLS server that does not speak h2.
import * as tls from 'node:tls';
import {
  type EchoServer,
  GeneratedEchoRequest,
  activeHandles,
  expectNoLeaks,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import * as oldest from 'grpc-js-oldest';
import { firstValueFrom, filter } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Status, background } from '@grpc-tower/core';
import { grpcRequest } from '../../core/src/grpc/test/request.js';
import { type GrpcResponse, type NativeGrpcEndpoint, nativeGrpcEndpoint } from '@grpc-tower/core/grpc';
import { makeCerts } from '../../../reliability/src/support/certs.js';

const NAME = 'orders.tls.test';
const certs = makeCerts();
let server: EchoServer;
let mutual: EchoServer;
let plain: EchoServer;
let noAlpn: tls.Server;
let noAlpnAddress: string;

let baseline: ReturnType<typeof activeHandles>;
beforeAll(async () => {
  baseline = activeHandles();
  const [h1, h2, h3, h4] = pickHosts(4) as [string, string, string, string];
  const { key, cert } = certs.server(NAME);
  const pair = [{ private_key: key, cert_chain: cert }];
  server = await startEchoServer({
    host: h1,
    name: 'tls',
    credentials: grpc.ServerCredentials.createSsl(certs.ca, pair),
  });
  mutual = await startEchoServer({
    host: h2,
    name: 'mtls',
    credentials: grpc.ServerCredentials.createSsl(certs.ca, pair, true),
  });
  plain = await startEchoServer({ host: h3, name: 'plain' });
  noAlpn = tls.createServer({ key, cert }, (socket) => socket.end());
  await new Promise<void>((resolve) => noAlpn.listen(0, h4, resolve));
  noAlpnAddress = `${h4}:${(noAlpn.address() as { port: number }).port}`;
});
afterAll(async () => {
  await Promise.all([server.stop(0), mutual.stop(0), plain.stop(0)]);
  await new Promise((resolve) => noAlpn.close(resolve));
  certs.remove();
  // every connection, failed handshakes' included, is gone
  await expectNoLeaks(baseline, { settleMs: 3_000 });
});

const ECHO = '/grpctower.testing.Echo/Unary';

async function unary(ep: NativeGrpcEndpoint): Promise<GrpcResponse> {
  return ep.call(grpcRequest(ECHO), background);
}

/** The endpoint's state once settled: `ready`, or the reason it failed. */
async function outcome(ep: NativeGrpcEndpoint): Promise<string> {
  const r = await firstValueFrom(ep.readiness$.pipe(filter((x) => x === 'ready' || x === 'failed')));
  return r === 'ready' ? 'ready' : `failed: ${ep.lastError}`;
}

async function withEndpoint<T>(
  address: string,
  options: Parameters<typeof nativeGrpcEndpoint>[1],
  body: (ep: NativeGrpcEndpoint) => Promise<T>,
): Promise<T> {
  const ep = nativeGrpcEndpoint(address, options);
  try {
    return await body(ep);
  } finally {
    await ep.close({ graceMs: 0 });
  }
}

describe.each([
  ['grpc-js 1.14 (its secure connector)', grpc.credentials as typeof grpc.credentials],
  ['grpc-js 1.12 (its connection options)', oldest.credentials as unknown as typeof grpc.credentials],
])('TLS from %s', (_name, credentials) => {
  test('an IP address with the authority as the certificate name: calls go over TLS', async () => {
    await withEndpoint(
      server.address,
      { credentials: credentials.createSsl(certs.ca), authority: NAME },
      async (ep) => {
        expect(await outcome(ep)).toBe('ready');
        expect(ep.secure).toBe(true);
        const res = await unary(ep);
        expect(res.unary?.messages.length).toBe(1);
      },
    );
  });

  test('ssl_target_name_override names the certificate as the authority option does', async () => {
    await withEndpoint(
      server.address,
      {
        credentials: credentials.createSsl(certs.ca),
        channelOptions: { 'grpc.ssl_target_name_override': NAME },
      },
      async (ep) => expect(await outcome(ep)).toBe('ready'),
    );
  });

  test('mutual TLS: with the client certificate the server requires, and without it', async () => {
    const { key, cert } = certs.client;
    await withEndpoint(
      mutual.address,
      { credentials: credentials.createSsl(certs.ca, key, cert), authority: NAME },
      async (ep) => expect(await outcome(ep)).toBe('ready'),
    );
    // without: the server ends the handshake; the endpoint never becomes ready
    await withEndpoint(
      mutual.address,
      { credentials: credentials.createSsl(certs.ca), authority: NAME },
      async (ep) => {
        expect(await outcome(ep)).toMatch(/^failed: .*certificate required/);
      },
    );
    expect(mutual.calls.total).toBe(0);
  });

  test.each([
    [
      'a certificate for another name',
      () => server.address,
      'wrong.tls.test',
      /wrong\.tls\.test|altnames|Hostname/i,
    ],
    ['a plaintext server (never falls back)', () => plain.address, NAME, /SSL|TLS|wrong version|packet/i],
    ['a TLS server without ALPN h2', () => noAlpnAddress, NAME, /ALPN "h2"/],
  ])('%s fails with the reason, and no call is sent', async (_case, address, authority, reason) => {
    await withEndpoint(address(), { credentials: credentials.createSsl(certs.ca), authority }, async (ep) => {
      expect(await outcome(ep)).toMatch(reason);
      const err = (await unary(ep).catch((e: unknown) => e)) as { delivery?: string };
      expect(err.delivery).toBe('unconnected');
    });
    expect(plain.calls.total).toBe(0);
  });

  test('an untrusted CA fails', async () => {
    const { key, cert } = certs.rogue(NAME);
    const [host] = pickHosts(1) as [string];
    const rogue = await startEchoServer({
      host,
      credentials: grpc.ServerCredentials.createSsl(null, [{ private_key: key, cert_chain: cert }]),
    });
    try {
      await withEndpoint(
        rogue.address,
        { credentials: credentials.createSsl(certs.ca), authority: NAME },
        async (ep) => {
          expect(await outcome(ep)).toMatch(/certificate|issuer|self.signed/i);
        },
      );
      expect(rogue.calls.total).toBe(0);
    } finally {
      await rogue.stop(0);
    }
  });

  test("call credentials: the channel credentials' and the call's own reach the server; a failing one is named", async () => {
    const Md = (credentials === grpc.credentials ? grpc.Metadata : oldest.Metadata) as typeof grpc.Metadata;
    const generator = (key: string, value: string) =>
      credentials.createFromMetadataGenerator((params, callback) => {
        const md = new Md();
        md.set(key, value);
        if (key === 'x-call-token') md.set('x-service-url', params.service_url);
        callback(null, md);
      });
    const composed = credentials.createSsl(certs.ca).compose(generator('x-channel-token', 'c'));
    const echoMetadata = Buffer.from(
      GeneratedEchoRequest.encode(GeneratedEchoRequest.fromPartial({ echoMetadata: true })).finish(),
    );
    await withEndpoint(server.address, { credentials: composed, authority: NAME }, async (ep) => {
      const res = await ep.call(
        { ...grpcRequest(ECHO, { messages: [echoMetadata] }), credentials: generator('x-call-token', 'k') },
        background,
      );
      expect(res.headers.get('x-channel-token')).toEqual(['c']);
      expect(res.headers.get('x-call-token')).toEqual(['k']);
      expect(res.headers.get('x-service-url')).toEqual([`https://${NAME}/grpctower.testing.Echo`]);
      const failing = credentials.createFromMetadataGenerator((_params, callback) =>
        callback(new Error('no token today')),
      );
      const before = server.calls.total;
      const err = (await ep
        .call({ ...grpcRequest(ECHO), credentials: failing }, background)
        .catch((e: unknown) => e)) as { code: number; details: string };
      expect(err.code).toBe(Status.UNAVAILABLE);
      expect(err.details).toBe('Getting metadata from plugin failed with error: no token today');
      expect(server.calls.total).toBe(before);
    });
  });

  test("the credentials' checkServerIdentity is honoured", async () => {
    const refuse = credentials.createSsl(certs.ca, null, null, {
      checkServerIdentity: () => new Error('pinned certificate mismatch'),
    });
    await withEndpoint(server.address, { credentials: refuse, authority: NAME }, async (ep) => {
      expect(await outcome(ep)).toMatch(/pinned certificate mismatch/);
    });
    // an override that accepts lets a certificate for another name through
    const accept = credentials.createSsl(certs.ca, null, null, { checkServerIdentity: () => undefined });
    await withEndpoint(server.address, { credentials: accept, authority: 'other.tls.test' }, async (ep) => {
      expect(await outcome(ep)).toBe('ready');
    });
  });
});
