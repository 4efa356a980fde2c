// The native gRPC endpoint against peers that misbehave at the HTTP/2 and
// TCP level: HTTP error statuses a proxy may send, oversized trailers and
// request headers, a flood of streams reset by the peer, a server that never sends its
// SETTINGS, and a TCP black hole (a connection that stops carrying bytes
// without closing). Each call gets its named status; the process, the
// connection where it can, and no stream or socket is left behind.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { insecure, pickHosts, trackResources } from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, test } from 'vitest';
import type { GrpcTowerError } from '../../errors.js';
import { Status } from '../../status.js';
import { Http2Connection } from '../../transport/connection.js';
import { GrpcStatusError, type GrpcResponse } from '../types.js';
import { nativeGrpcEndpoint } from './endpoint.js';
import { afterEachCleanups, call, endpointsClosedAfter, failure, ready } from './test/calls.js';
import { grpcFrame, respondGrpc, startRawPeer } from './test/raw-peer.js';

const cleanups = afterEachCleanups();
const endpoint = endpointsClosedAfter(cleanups);

/**
 * A TCP relay to `target` that counts the connections it accepts and can
 * turn into a black hole: from `hole()` on, it swallows every byte both
 * ways and closes nothing, and new connections are accepted and never
 * answered.
 */
async function startRelay(host: string, target: string) {
  const at = target.lastIndexOf(':');
  const sockets = new Set<net.Socket>();
  let holed = false;
  let accepted = 0;
  const relay = net.createServer((client) => {
    accepted++;
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    if (holed) {
      client.resume(); // read and drop
      return;
    }
    const upstream = net.connect({ host: target.slice(0, at), port: Number(target.slice(at + 1)) });
    sockets.add(upstream);
    upstream.on('error', () => {});
    upstream.on('close', () => sockets.delete(upstream));
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (!holed) to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => relay.listen(0, host, resolve));
  return {
    address: `${host}:${(relay.address() as net.AddressInfo).port}`,
    get accepted() {
      return accepted;
    },
    hole() {
      holed = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        relay.close(() => resolve());
      }),
  };
}

describe('HTTP statuses and oversized metadata from the peer', () => {
  test('a 431, a 413 and a 504 page are read as HTTP and mapped (INTERNAL, UNKNOWN, UNAVAILABLE)', async () => {
    const [host] = pickHosts(1) as [string];
    const page = (status: number) => (stream: http2.ServerHttp2Stream) => {
      stream.respond({ ':status': status, 'content-type': 'text/html' });
      // a body that would decode as a gRPC message prefix if it were read as one
      stream.end(Buffer.concat([grpcFrame(Buffer.from('not a message')), Buffer.from(`<h1>${status}</h1>`)]));
    };
    const peer = await startRawPeer(host, { '/h/431': page(431), '/h/413': page(413), '/h/504': page(504) });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    for (const [path, code] of [
      ['/h/431', Status.INTERNAL],
      ['/h/413', Status.UNKNOWN],
      ['/h/504', Status.UNAVAILABLE],
    ] as const) {
      const err = failure(await call(ep, path));
      expect({ path, code: err.code }).toEqual({ path, code });
      expect(err.details).toBe(`Received HTTP status code ${path.slice(3)} without a gRPC status`);
    }
    expect(ep.pending).toBe(0);
  });

  test('trailers past the 64 KiB the client takes: INTERNAL on that call, the connection survives', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(host, {
      '/t/huge-trailers': (stream) =>
        respondGrpc(stream, [grpcFrame(Buffer.from('a'))], {
          'grpc-status': '0',
          'x-big': 'y'.repeat(100_000),
        }),
      '/t/ok': (stream) => respondGrpc(stream, [grpcFrame(Buffer.from('ok'))], { 'grpc-status': '0' }),
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    const err = failure(await call(ep, '/t/huge-trailers'));
    expect(err.code).toBe(Status.INTERNAL);
    expect(err.details).toContain('RST_STREAM');
    const ok = (await call(ep, '/t/ok')) as GrpcResponse;
    expect(ok.unary?.messages).toEqual([Buffer.from('ok')]);
    expect(ep.readiness).toBe('ready');
  });
});

describe('oversized request headers', () => {
  const big = () => {
    const md = new grpc.Metadata();
    md.set('x-big', 'v'.repeat(100_000));
    return md;
  };

  test("over the server's SETTINGS_MAX_HEADER_LIST_SIZE: RESOURCE_EXHAUSTED, never sent; the connection goes on", async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(
      host,
      { '/o/ok': (stream) => respondGrpc(stream, [grpcFrame(Buffer.from('ok'))], { 'grpc-status': '0' }) },
      { maxHeaderListSize: 16_384 },
    );
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    await ready(ep);
    const err = failure(await call(ep, '/o/ok', { metadata: big() }));
    expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/^request metadata of \d+ bytes is larger than the server's limit of 16384/);
    expect([err.delivery, err.retryable]).toEqual(['not-sent', false]);
    expect(peer.requests.get('/o/ok')).toBeUndefined();
    expect(await call(ep, '/o/ok')).not.toBeInstanceOf(Error);
    expect(ep.readiness).toBe('ready');
  });

  test('a server that sets no limit and refuses them with GOAWAY COMPRESSION_ERROR: UNAVAILABLE naming it; the next call reconnects', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(host, {
      '/o/ok': (stream) => respondGrpc(stream, [grpcFrame(Buffer.from('ok'))], { 'grpc-status': '0' }),
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    await ready(ep);
    const err = failure(await call(ep, '/o/ok', { metadata: big() }));
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.details).toContain('GOAWAY (code 9)');
    expect(await call(ep, '/o/ok')).not.toBeInstanceOf(Error);
    expect(ep.pending).toBe(0);
  });
});

describe('an RST_STREAM flood', () => {
  test('1,000 calls, 100 in flight, each reset by the peer: each fails with its code; no stream, socket or call left', async () => {
    const tracker = trackResources();
    const [host] = pickHosts(1) as [string];
    // the code each call's stream is reset with, by the index in its path
    const codes = [
      [http2.constants.NGHTTP2_CANCEL, Status.CANCELLED, 'lost'],
      [http2.constants.NGHTTP2_INTERNAL_ERROR, Status.INTERNAL, 'lost'],
      [http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, Status.RESOURCE_EXHAUSTED, 'lost'],
      [http2.constants.NGHTTP2_PROTOCOL_ERROR, Status.INTERNAL, 'lost'],
      [http2.constants.NGHTTP2_REFUSED_STREAM, Status.UNAVAILABLE, 'refused'],
    ] as const;
    let open = 0;
    let sessions = 0;
    const server = http2.createServer();
    server.on('session', (s) => {
      sessions++;
      s.on('error', () => {});
    });
    server.on('stream', (stream, headers) => {
      open++;
      stream.on('close', () => open--);
      stream.on('error', () => {});
      const i = Number(String(headers[':path']).slice(3)) % codes.length;
      const [rst] = codes[i] as (typeof codes)[number];
      // half of them after the response headers and a message, half before anything
      if (i % 2 === 0) stream.close(rst);
      else {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.write(grpcFrame(Buffer.from('partial')), () => stream.close(rst));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const address = `${host}:${(server.address() as net.AddressInfo).port}`;
    const ep = nativeGrpcEndpoint(address, { credentials: insecure });
    await ready(ep);
    const wrong: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (next < 1_000) {
          const n = next++;
          const err = await call(ep, `/f/${n}`);
          const [, code, delivery] = codes[n % codes.length] as (typeof codes)[number];
          const got = err instanceof GrpcStatusError ? `${err.code} ${err.delivery}` : 'no error';
          if (got !== `${code} ${delivery}`) wrong.push(`/f/${n}: ${got} (${(err as Error).message})`);
        }
      }),
    );
    expect(wrong).toEqual([]);
    // the connection took it all, and a call that is not reset still works on it
    expect(ep.readiness).toBe('ready');
    expect(ep.pending).toBe(0);
    expect(ep.connection.waiting).toBe(0);
    expect(sessions).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(open).toBe(0);
    await ep.close({ graceMs: 0 });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await tracker.expectNone({ settleMs: 2_000 });
    tracker.stop();
  });
});

describe('a peer that never sends SETTINGS', () => {
  /** A TCP listener that accepts and never writes a byte. */
  async function silentPeer(host: string) {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    );
    return { address: `${host}:${(server.address() as net.AddressInfo).port}`, sockets };
  }

  test('the connection attempt fails within its connect timeout, naming it; waiting streams are never sent', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await silentPeer(host);
    const tracker = trackResources();
    const [h, port] = [host, Number(peer.address.slice(host.length + 1))];
    const connection = new Http2Connection({
      host: h,
      port,
      address: peer.address,
      connectTimeoutMs: 300,
      backoff: { initialMs: 60_000 },
    });
    const notSent: [string, boolean][] = [];
    for (let i = 0; i < 3; i++) {
      connection.request(
        { ':method': 'POST', ':path': '/s/x' },
        {
          opened: () => {
            throw new Error('a stream was opened without the server SETTINGS');
          },
          notSent: (reason, unconnected) => notSent.push([reason, unconnected]),
        },
      );
    }
    const failed = await firstValueFrom(
      connection.events$.pipe(filter((e) => e.kind === 'state' && e.state === 'failed')),
    );
    expect(failed).toMatchObject({ reason: 'no SETTINGS frame from the server within 300 ms' });
    expect(notSent).toEqual(
      Array(3).fill([
        `no connection to ${peer.address}: no SETTINGS frame from the server within 300 ms`,
        true,
      ]),
    );
    expect(connection.waiting).toBe(0);
    // the silent peer's socket was closed by this side
    await new Promise((r) => setTimeout(r, 50));
    expect(peer.sockets.size).toBe(0);
    connection.close();
    await tracker.expectNone({ settleMs: 2_000 });
    tracker.stop();
  });

  test('an endpoint: calls without a deadline fail UNAVAILABLE, never sent, after the 20 s connect timeout', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await silentPeer(host);
    const ep = endpoint(peer.address, { 'grpc.initial_reconnect_backoff_ms': 60_000 });
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 3 }, () => call(ep, '/s/x')));
    console.log(`never SETTINGS: calls failed after ${Date.now() - started} ms`);
    for (const r of results) {
      const err = failure(r);
      expect(err.code).toBe(Status.UNAVAILABLE);
      expect(err.delivery).toBe('unconnected');
      expect(err.details).toContain('no SETTINGS frame from the server within 20000 ms');
    }
    expect(ep.readiness).toBe('failed');
    expect(ep.pending).toBe(0);
  }, 45_000);
});

describe('a TCP black hole', () => {
  /** A raw peer behind a relay, and an endpoint to the relay with a 100 ms keepalive. */
  async function behindRelay(channelOptions: grpc.ChannelOptions) {
    const [host, relayHost] = pickHosts(2) as [string, string];
    const peer = await startRawPeer(host, {
      '/b/ok': (stream) => respondGrpc(stream, [grpcFrame(Buffer.from('ok'))], { 'grpc-status': '0' }),
    });
    cleanups.push(() => peer.close());
    const relay = await startRelay(relayHost, peer.address);
    cleanups.push(() => relay.close());
    const ep = endpoint(relay.address, {
      'grpc.keepalive_time_ms': 100,
      'grpc.keepalive_timeout_ms': 200,
      'grpc.initial_reconnect_backoff_ms': 60_000,
      ...channelOptions,
    });
    return { peer, relay, ep };
  }

  test('a call on a connection that stopped carrying bytes while idle: keepalive finds it, the call fails as lost', async () => {
    const { peer, relay, ep } = await behindRelay({});
    const timeouts: number[] = [];
    const sub = ep.events$.subscribe((e) =>
      e.kind === 'keepalive-timeout' ? timeouts.push(e.timeoutMs) : 0,
    );
    cleanups.push(() => sub.unsubscribe());
    expect(await call(ep, '/b/ok')).not.toBeInstanceOf(Error);
    relay.hole();
    // no keepalive while idle (no permit_without_calls): the call is what finds out
    const err = failure(await call(ep, '/b/ok'));
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.delivery).toBe('lost');
    expect(timeouts).toEqual([200]);
    expect(ep.pending).toBe(0);
    expect(peer.requests.get('/b/ok')?.length).toBe(1);
  });

  test('keepalive_permit_without_calls finds a black hole with no call open; the endpoint leaves ready', async () => {
    const { relay, ep } = await behindRelay({ 'grpc.keepalive_permit_without_calls': 1 });
    await ready(ep);
    const states: string[] = [];
    const sub = ep.events$.subscribe((e) =>
      states.push(
        e.kind === 'state' ? e.state : e.kind === 'keepalive-timeout' ? `timeout ${e.timeoutMs}` : e.kind,
      ),
    );
    cleanups.push(() => sub.unsubscribe());
    relay.hole();
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r !== 'ready')));
    expect(states.slice(0, 2)).toEqual(['timeout 200', 'connecting']);
    // the new connection lands in the hole too: accepted, never answered; a call with a deadline ends on it
    const err = (await call(ep, '/b/any', { timeoutMs: 300 })) as GrpcTowerError;
    expect(err.code).toBe(Status.DEADLINE_EXCEEDED);
    expect(relay.accepted).toBe(2);
    expect(ep.pending).toBe(0);
    expect(ep.connection.waiting).toBe(0);
  });
});
