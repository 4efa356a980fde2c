// The native gRPC endpoint on the wire: against a raw HTTP/2 peer that
// shows what a grpc-js server cannot (malformed responses, proxies' pages,
// resets), and against real grpc-js servers (limits, small
// max_concurrent_streams, a SIGKILL, a graceful shutdown).
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as zlib from 'node:zlib';
import {
  GeneratedEchoReply,
  GeneratedEchoRequest,
  insecure,
  pickHosts,
  spawnEchoServer,
  startEchoServer,
  trackResources,
} from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { newContext } from '../../context/index.js';
import { ConfigError, type GrpcTowerError } from '../../errors.js';
import { Status } from '../../status.js';
import { RequestMessages } from '../messages.js';
import { grpcRequest } from '../test/request.js';
import type { GrpcResponse } from '../types.js';
import { nativeGrpcEndpoint } from './endpoint.js';
import { afterEachCleanups, call, endpointsClosedAfter, failure, ready } from './test/calls.js';
import { flood, grpcFrame, respondGrpc, startRawPeer } from './test/raw-peer.js';

const cleanups = afterEachCleanups();
const endpoint = endpointsClosedAfter(cleanups);

const echo = (fields: Partial<GeneratedEchoRequest>) =>
  Buffer.from(GeneratedEchoRequest.encode(GeneratedEchoRequest.fromPartial(fields)).finish());

describe('a raw HTTP/2 peer', () => {
  test('request headers: method, path, authority, content-type, te, user agent, grpc-timeout', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(host, {
      '/s/ok': (stream) => respondGrpc(stream, [grpcFrame(Buffer.from('yo'))], { 'grpc-status': '0' }),
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address, { 'grpc.primary_user_agent': 'app/1' });
    const md = new grpc.Metadata();
    md.set('x-text', 'plain');
    md.set('x-data-bin', Buffer.from([0, 1, 2, 255]));
    const res = (await call(ep, '/s/ok', { metadata: md, timeoutMs: 5_000 })) as GrpcResponse;
    expect(res.unary?.messages).toEqual([Buffer.from('yo')]);
    const [h] = peer.requests.get('/s/ok') ?? [];
    expect(h?.[':method']).toBe('POST');
    expect(h?.[':authority']).toBe(peer.address);
    expect(h?.['content-type']).toBe('application/grpc');
    expect(h?.te).toBe('trailers');
    expect(h?.['user-agent']).toMatch(/^app\/1 grpc-tower-native\//);
    expect(h?.['grpc-timeout']).toMatch(/^\d{1,8}m$/);
    expect(Number.parseInt(String(h?.['grpc-timeout']), 10)).toBeLessThanOrEqual(5_000);
    expect(h?.['x-text']).toBe('plain');
    expect(Buffer.from(String(h?.['x-data-bin']), 'base64')).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  test('response metadata: -bin values with and without padding, comma-joined -bin values split, details decoded', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(host, {
      '/s/md': (stream) =>
        respondGrpc(
          stream,
          [grpcFrame(Buffer.from('x'))],
          { 'grpc-status': '0', 'x-t-bin': 'AQID' },
          { 'x-a-bin': 'AQ', 'x-b-bin': 'AQ==,AgM', 'x-plain': 'p' },
        ),
      '/s/fail': (stream) =>
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': '3',
            'grpc-message': '%E2%9C%93 bad %ZZ input',
          },
          { endStream: true },
        ),
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    const res = (await call(ep, '/s/md')) as GrpcResponse;
    expect(res.headers.get('x-a-bin')).toEqual([Buffer.from([1])]);
    expect(res.headers.get('x-b-bin')).toEqual([Buffer.from([1]), Buffer.from([2, 3])]);
    expect(res.headers.get('x-plain')).toEqual(['p']);
    expect(res.unary?.status.metadata.get('x-t-bin')).toEqual([Buffer.from([1, 2, 3])]);
    // trailers-only, with a grpc-message that is partly malformed: decoded where it can be
    const err = failure(await call(ep, '/s/fail'));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toBe('✓ bad %ZZ input');
    expect(err.serverResponded).toBe(true);
  });

  test("a proxy's HTML 503 is UNAVAILABLE, a 404 UNIMPLEMENTED, never a parsed body", async () => {
    const [host] = pickHosts(1) as [string];
    const page = (status: number) => (stream: http2.ServerHttp2Stream) => {
      stream.respond({ ':status': status, 'content-type': 'text/html' });
      stream.end(`<html><body>${status} from the proxy, a long page ${'x'.repeat(300)}</body></html>`);
    };
    const peer = await startRawPeer(host, { '/p/503': page(503), '/p/404': page(404), '/p/502': page(502) });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    for (const [path, code] of [
      ['/p/503', Status.UNAVAILABLE],
      ['/p/502', Status.UNAVAILABLE],
      ['/p/404', Status.UNIMPLEMENTED],
    ] as const) {
      const err = failure(await call(ep, path));
      expect(err.code).toBe(code);
      expect(err.details).toContain('HTTP status code');
    }
  });

  test('malformed responses fail that call with a named status; nothing crashes or leaks', async () => {
    const tracker = trackResources();
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(host, {
      // the prefix promises 100 bytes, 10 come, then the trailers
      '/m/short': (stream) =>
        respondGrpc(stream, [grpcFrame(Buffer.alloc(10), { length: 100 })], { 'grpc-status': '0' }),
      // compressed flag, no grpc-encoding
      '/m/compressed': (stream) =>
        respondGrpc(stream, [grpcFrame(Buffer.from('zz'), { flag: 1 })], { 'grpc-status': '0' }),
      '/m/flag': (stream) =>
        respondGrpc(stream, [grpcFrame(Buffer.from('zz'), { flag: 7 })], { 'grpc-status': '0' }),
      '/m/status': (stream) =>
        respondGrpc(stream, [grpcFrame(Buffer.from('ok'))], { 'grpc-status': 'abc', 'grpc-message': 'hm' }),
      '/m/status99': (stream) => respondGrpc(stream, [grpcFrame(Buffer.from('ok'))], { 'grpc-status': '99' }),
      '/m/nostatus': (stream) => respondGrpc(stream, [grpcFrame(Buffer.from('ok'))], { 'x-other': '1' }),
      '/m/calm': (stream) => stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM),
      '/m/reset-after-headers': (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.write(grpcFrame(Buffer.from('a')));
        // destroyed with an error: RST_STREAM INTERNAL_ERROR, no END_STREAM
        setTimeout(() => stream.destroy(new Error('peer failure')), 5);
      },
      // response headers past the 64 KiB node (nghttp2) takes by default
      '/m/huge-headers': (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-big': 'x'.repeat(100_000) });
        stream.end();
      },
      '/m/no-trailers': (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.end(grpcFrame(Buffer.from('a')));
      },
    });
    const ep = nativeGrpcEndpoint(peer.address, { credentials: insecure });
    const cases = [
      ['/m/short', Status.INTERNAL, 'ended inside a message (10 of 100 message bytes)'],
      ['/m/compressed', Status.INTERNAL, 'compressed message'],
      ['/m/flag', Status.INTERNAL, 'invalid flags byte 7'],
      ['/m/status', Status.UNKNOWN, 'invalid grpc-status "abc": hm'],
      ['/m/status99', Status.UNKNOWN, 'invalid grpc-status "99"'],
      ['/m/nostatus', Status.UNKNOWN, 'trailers without grpc-status'],
      ['/m/calm', Status.RESOURCE_EXHAUSTED, 'ENHANCE_YOUR_CALM'],
      ['/m/reset-after-headers', Status.INTERNAL, 'RST_STREAM with code 2'],
      ['/m/no-trailers', Status.INTERNAL, 'call ended without a gRPC status'],
      ['/m/huge-headers', Status.INTERNAL, 'RST_STREAM'],
    ] as const;
    for (const [path, code, text] of cases) {
      const err = failure(await call(ep, path));
      expect({ path, code: err.code }).toEqual({ path, code });
      expect(err.details).toContain(text);
    }
    // the connection survived every one of them
    expect(ep.readiness).toBe('ready');
    expect(ep.pending).toBe(0);
    await ep.close({ graceMs: 0 });
    await peer.close();
    await tracker.expectNone({ settleMs: 2_000 });
    tracker.stop();
  });

  test('gzip and deflate responses are decompressed, their size held to the receive limit', async () => {
    const [host] = pickHosts(1) as [string];
    const limit = 4 * 1024 * 1024;
    const compressed =
      (encoding: 'gzip' | 'deflate' | 'snappy', payload: Buffer) => (stream: http2.ServerHttp2Stream) =>
        respondGrpc(
          stream,
          [
            grpcFrame(encoding === 'deflate' ? zlib.deflateSync(payload) : zlib.gzipSync(payload), {
              flag: 1,
            }),
          ],
          { 'grpc-status': '0' },
          { 'grpc-encoding': encoding },
        );
    const peer = await startRawPeer(host, {
      '/z/gzip': compressed('gzip', Buffer.from('hello gzip')),
      '/z/deflate': compressed('deflate', Buffer.from('hello deflate')),
      '/z/at-limit': compressed('gzip', Buffer.alloc(limit)),
      '/z/bomb': compressed('gzip', Buffer.alloc(limit + 1)),
      '/z/snappy': compressed('snappy', Buffer.from('x')),
      '/z/garbage': (stream) =>
        respondGrpc(
          stream,
          [grpcFrame(Buffer.from('not gzip'), { flag: 1 })],
          { 'grpc-status': '0' },
          {
            'grpc-encoding': 'gzip',
          },
        ),
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    expect(((await call(ep, '/z/gzip')) as GrpcResponse).unary?.messages).toEqual([
      Buffer.from('hello gzip'),
    ]);
    expect(((await call(ep, '/z/deflate')) as GrpcResponse).unary?.messages).toEqual([
      Buffer.from('hello deflate'),
    ]);
    expect(((await call(ep, '/z/at-limit')) as GrpcResponse).unary?.messages[0]?.length).toBe(limit);
    const bomb = failure(await call(ep, '/z/bomb'));
    expect(bomb.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(bomb.details).toContain('once decompressed');
    const snappy = failure(await call(ep, '/z/snappy'));
    expect([snappy.code, snappy.details]).toEqual([Status.INTERNAL, expect.stringContaining('"snappy"')]);
    const garbage = failure(await call(ep, '/z/garbage'));
    expect([garbage.code, garbage.details]).toEqual([
      Status.INTERNAL,
      expect.stringContaining('could not decompress'),
    ]);
    expect(peer.requests.get('/z/gzip')?.[0]?.['grpc-accept-encoding']).toBe('identity,deflate,gzip');
  });

  test('a refused stream never reached the server: re-opened three times, then failed as refused', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(host, {
      '/r/refuse': (stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM),
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    const err = failure(await call(ep, '/r/refuse'));
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.delivery).toBe('refused');
    expect(err.serverResponded).toBe(false);
    expect(peer.requests.get('/r/refuse')?.length).toBe(4);
  });

  test('streams opened before the first SETTINGS wait for them: max_concurrent_streams 2, 24 calls, none refused', async () => {
    const [host] = pickHosts(1) as [string];
    let open = 0;
    let most = 0;
    const peer = await startRawPeer(
      host,
      {
        '/c/slow': (stream) => {
          open++;
          most = Math.max(most, open);
          stream.on('close', () => open--);
          setTimeout(() => respondGrpc(stream, [grpcFrame(Buffer.from('k'))], { 'grpc-status': '0' }), 20);
        },
      },
      { maxConcurrentStreams: 2 },
    );
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    // called at once, before the connection is up
    const results = await Promise.all(Array.from({ length: 24 }, () => call(ep, '/c/slow')));
    expect(results.filter((r) => r instanceof Error)).toEqual([]);
    expect(peer.requests.get('/c/slow')?.length).toBe(24);
    expect(most).toBeLessThanOrEqual(2);
  });

  test('a consumer that does not read holds the server back (flow control); cancel is RST_STREAM(CANCEL)', async () => {
    const [host] = pickHosts(1) as [string];
    const chunk = grpcFrame(Buffer.alloc(32 * 1024, 7));
    let written = 0;
    let closedWith: number | undefined;
    const peer = await startRawPeer(host, {
      '/b/flood': (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.on('close', () => {
          closedWith = stream.rstCode;
        });
        flood(stream, chunk, 200, () => written++);
      },
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    const res = (await call(ep, '/b/flood', { kind: 'serverStream' })) as GrpcResponse;
    const received: number[] = [];
    res.stream.start({ onMessage: (m) => received.push(m.length), onStatus: () => {} });
    res.stream.read();
    await new Promise((r) => setTimeout(r, 300));
    // one message read; the rest waits in HTTP/2 flow control, not in this process
    expect(received.length).toBe(1);
    expect(written).toBeLessThan(200);
    const held = written;
    for (let i = 0; i < 20; i++) res.stream.read();
    // the 20 messages arrive as flow control lets the server go on (slower on a busy machine) ...
    await expect.poll(() => received.length, { timeout: 5_000 }).toBe(21);
    // ... and no message beyond those read is handed over
    await new Promise((r) => setTimeout(r, 50));
    expect(received.length).toBe(21);
    res.stream.cancel(Status.CANCELLED, 'enough');
    expect((await res.done).code).toBe(Status.CANCELLED);
    await expect.poll(() => closedWith).toBe(http2.constants.NGHTTP2_CANCEL);
    console.log(`flow control held the server at ${held} of 200 messages of 32 KiB`);
  });

  test('a server that ends a stream before the request ends: the call ends with its status at once', async () => {
    const [host] = pickHosts(1) as [string];
    let closedWith: number | undefined;
    const peer = await startRawPeer(host, {
      '/e/early': (stream) => {
        stream.on('close', () => {
          closedWith = stream.rstCode;
        });
        respondGrpc(stream, [grpcFrame(Buffer.from('bye'))], { 'grpc-status': '0' });
      },
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    const messages = new RequestMessages();
    messages.push(Buffer.from('one'));
    // the request stream is never ended
    const scope = newContext();
    const res = await ep.call({ ...grpcRequest('/e/early', { kind: 'bidi' }), messages }, scope.context);
    const got: Buffer[] = [];
    res.stream.start({ onMessage: (m) => got.push(m), onStatus: () => {} });
    res.stream.read();
    res.stream.read();
    expect((await res.done).code).toBe(Status.OK);
    scope.release();
    expect(got).toEqual([Buffer.from('bye')]);
    expect(ep.pending).toBe(0);
    // this side ended too, without a reset
    await expect.poll(() => closedWith).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  test('calls that end while waiting for the connection open no stream', async () => {
    const [host] = pickHosts(1) as [string];
    // a TCP peer that never sends its SETTINGS
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, host, resolve));
    const sockets: net.Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          silent.close(() => resolve());
        }),
    );
    const ep = endpoint(`${host}:${(silent.address() as net.AddressInfo).port}`);
    const results = await Promise.all(Array.from({ length: 5 }, () => call(ep, '/w/x', { timeoutMs: 50 })));
    expect(results.map((r) => (r as GrpcTowerError).code)).toEqual(Array(5).fill(Status.DEADLINE_EXCEEDED));
    expect(ep.connection.waiting).toBe(0);
    expect(ep.readiness).toBe('connecting');
  });

  test('reconnect cuts a reconnect backoff short: one attempt per backoff interval, idempotent while it runs', async () => {
    const [host] = pickHosts(1) as [string];
    const probe = await startRawPeer(host, {});
    const address = probe.address;
    await probe.close(); // nothing listens there now
    const ep = endpoint(address, { 'grpc.initial_reconnect_backoff_ms': 60_000 });
    const states: string[] = [];
    const sub = ep.events$.subscribe((e) => (e.kind === 'state' ? states.push(e.state) : 0));
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
    // a minute of backoff ahead; reconnect starts the next attempt at once
    const attempt = ep.reconnect();
    expect(attempt).toBeInstanceOf(Promise);
    expect(ep.reconnect()).toBe(attempt);
    expect(ep.readiness).toBe('connecting');
    await attempt;
    expect(ep.readiness).toBe('failed');
    // that interval's early attempt is spent: calls to a dead server do not become a stream of connections
    expect(ep.reconnect()).toBeUndefined();
    expect(states).toEqual(['failed', 'connecting', 'failed']);
    sub.unsubscribe();
  });

  test('GOAWAY too_many_pings doubles the keepalive interval; GOAWAYs are events', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(host, {
      '/k/calm': (stream) => {
        const session = stream.session;
        // after the call's trailers: a C-core server's answer to pings it finds too frequent
        stream.on('close', () =>
          session?.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 1, Buffer.from('too_many_pings')),
        );
        respondGrpc(stream, [grpcFrame(Buffer.from('k'))], { 'grpc-status': '0' });
      },
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address, { 'grpc.keepalive_time_ms': 60_000 });
    const events: string[] = [];
    const sub = ep.events$.subscribe((e) =>
      events.push(e.kind === 'goaway' ? `goaway ${e.code} ${e.debug}` : e.kind),
    );
    await ready(ep);
    expect(await call(ep, '/k/calm')).not.toBeInstanceOf(Error);
    await firstValueFrom(ep.events$.pipe(filter((e) => e.kind === 'goaway')));
    expect(ep.connection.keepaliveTimeMs).toBe(120_000);
    expect(events).toContain('goaway 11 too_many_pings');
    sub.unsubscribe();
  });
});

describe('grpc-js servers', () => {
  test('the receive limit is 4 MiB by default, exact at the byte; the send limit is honoured', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    cleanups.push(() => server.stop(0));
    const limit = 4 * 1024 * 1024;
    const ep = endpoint(server.address);
    // a reply is the payload plus the reply's other fields: measure them once, at this size
    const probe = (await call(ep, '/grpctower.testing.Echo/Unary', {
      messages: [echo({ payload: Buffer.alloc(limit - 1_000) })],
    })) as GrpcResponse;
    const overhead = (probe.unary?.messages[0]?.length ?? 0) - (limit - 1_000);
    const at = await call(ep, '/grpctower.testing.Echo/Unary', {
      messages: [echo({ payload: Buffer.alloc(limit - overhead) })],
    });
    expect((at as Error).message).toBeUndefined();
    expect((at as GrpcResponse).unary?.messages[0]?.length).toBe(limit);
    const over = failure(
      await call(ep, '/grpctower.testing.Echo/Unary', {
        messages: [echo({ payload: Buffer.alloc(limit - overhead + 1) })],
      }),
    );
    expect(over.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(over.details).toContain(`(${limit + 1} vs. ${limit} bytes)`);
    // the send limit: a request of exactly the limit goes, one byte more does not
    const request = echo({ payload: Buffer.alloc(1_000) });
    const limited = endpoint(server.address, { 'grpc.max_send_message_length': request.length });
    expect(await call(limited, '/grpctower.testing.Echo/Unary', { messages: [request] })).not.toBeInstanceOf(
      Error,
    );
    const tooBig = failure(
      await call(limited, '/grpctower.testing.Echo/Unary', {
        messages: [echo({ payload: Buffer.alloc(1_001) })],
      }),
    );
    expect(tooBig.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(tooBig.details).toContain(`(${request.length + 1} vs. ${request.length} bytes)`);
    // its stream had started: not a failure to send again
    expect(tooBig.delivery).toBeUndefined();
    expect(server.calls.total).toBe(4);
  });

  test('a grpc-js server with max_concurrent_streams 4 takes 32 calls started at once, none lost', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host, serverOptions: { 'grpc.max_concurrent_streams': 4 } });
    cleanups.push(() => server.stop(0));
    const ep = endpoint(server.address);
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        call(ep, '/grpctower.testing.Echo/Unary', { messages: [echo({ message: `m${i}`, delayMs: 5 })] }),
      ),
    );
    expect(results.filter((r) => r instanceof Error)).toEqual([]);
    expect(server.calls.total).toBe(32);
  });

  test('a SIGKILLed server: calls in flight fail UNAVAILABLE as lost, the endpoint fails with the reason', async () => {
    const [host] = pickHosts(1) as [string];
    const child = await spawnEchoServer({ host });
    const ep = endpoint(child.address, {
      'grpc.initial_reconnect_backoff_ms': 50,
      'grpc.max_reconnect_backoff_ms': 100,
    });
    await ready(ep);
    const inflight = call(ep, '/grpctower.testing.Echo/Unary', { messages: [echo({ delayMs: 5_000 })] });
    await new Promise((r) => setTimeout(r, 100));
    await child.kill('SIGKILL');
    const err = failure(await inflight);
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.delivery).toBe('lost');
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
    // refused, or reset or closed by a listener the kernel had not torn down yet
    expect(ep.lastError).toMatch(/ECONNREFUSED|ECONNRESET|closed before the server sent its SETTINGS/);
    // a call on a failed endpoint is never sent
    const refused = failure(await call(ep, '/grpctower.testing.Echo/Unary', { messages: [echo({})] }));
    expect(refused.delivery).toBe('unconnected');
    // the endpoint is in backoff (50 ms here) or already trying again: reconnect starts at most one attempt
    const attempt = ep.reconnect();
    if (attempt !== undefined) expect(ep.reconnect()).toBe(attempt);
  });

  test('keepalive finds a server that stopped answering (SIGSTOP): the call in flight fails as lost', async () => {
    const [host] = pickHosts(1) as [string];
    const child = await spawnEchoServer({ host });
    cleanups.push(async () => {
      child.resume();
      await child.kill();
    });
    const ep = endpoint(child.address, {
      'grpc.keepalive_time_ms': 100,
      'grpc.keepalive_timeout_ms': 200,
      'grpc.initial_reconnect_backoff_ms': 50,
    });
    const timeouts: number[] = [];
    const sub = ep.events$.subscribe((e) =>
      e.kind === 'keepalive-timeout' ? timeouts.push(e.timeoutMs) : 0,
    );
    await ready(ep);
    // answered PINGs keep a busy connection up
    const slow = await call(ep, '/grpctower.testing.Echo/Unary', { messages: [echo({ delayMs: 400 })] });
    expect(slow).not.toBeInstanceOf(Error);
    expect(timeouts).toEqual([]);
    const inflight = call(ep, '/grpctower.testing.Echo/Unary', { messages: [echo({ delayMs: 10_000 })] });
    await new Promise((r) => setTimeout(r, 50));
    child.pause();
    const err = failure(await inflight);
    expect(err.code).toBe(Status.UNAVAILABLE);
    expect(err.delivery).toBe('lost');
    expect(timeouts).toEqual([200]);
    sub.unsubscribe();
  });

  test('a graceful tryShutdown lets calls in flight finish; the endpoint then fails', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    const ep = endpoint(server.address, { 'grpc.initial_reconnect_backoff_ms': 50 });
    await ready(ep);
    const inflight = Array.from({ length: 5 }, () =>
      call(ep, '/grpctower.testing.Echo/Unary', { messages: [echo({ delayMs: 200 })] }),
    );
    await new Promise((r) => setTimeout(r, 50));
    const stopped = server.stop(5_000);
    const results = await Promise.all(inflight);
    expect(results.filter((r) => r instanceof Error)).toEqual([]);
    await stopped;
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
  });

  test('a deadline reaches the server and ends the call DEADLINE_EXCEEDED; cancel resets the stream', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    cleanups.push(() => server.stop(0));
    const ep = endpoint(server.address);
    const err = await call(ep, '/grpctower.testing.Echo/Unary', {
      messages: [echo({ delayMs: 2_000 })],
      timeoutMs: 100,
    });
    expect((err as GrpcTowerError).code).toBe(Status.DEADLINE_EXCEEDED);
    expect(ep.pending).toBe(0);
  });
});

describe('options', () => {
  test.each([
    ['grpc.service_config', '{}', 'timeouts and retries'],
    ['grpc.lb_policy_name', 'round_robin', 'balances'],
    ['grpc.enable_retries', 1, '0'],
    ['grpc.max_connection_age_ms', 1000, 'server option'],
    ['grpc.made_up_option', 1, 'not an option the native transport knows'],
    ['grpc.keepalive_time_ms', -5, 'whole number of ms'],
    ['grpc.default_compression_algorithm', 3, '0 (identity), 1 (deflate) or 2 (gzip)'],
    ['grpc.default_compression_level', 2, 'not applied'],
    ['grpc.client_idle_timeout_ms', -1, 'whole number of ms'],
  ])('%s is refused with a ConfigError naming it', (key, value, why) => {
    let err: unknown;
    try {
      nativeGrpcEndpoint('127.0.0.1:1', { credentials: insecure, channelOptions: { [key]: value } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).option).toBe(`channelOptions.${key}`);
    expect((err as Error).message).toContain(why);
  });

  test('options that only switch off what the transport never does are accepted', async () => {
    const ep = nativeGrpcEndpoint('127.0.0.1:1', {
      credentials: insecure,
      channelOptions: {
        'grpc.enable_retries': 0,
        'grpc.use_local_subchannel_pool': 1,
        'grpc.enable_channelz': 0,
        'grpc.per_rpc_retry_buffer_size': 0,
      },
    });
    await ep.close({ graceMs: 0 });
  });
});

describe('request compression', () => {
  /** A peer whose `/z/echo` answers each request message, decompressed, with its compressed flag recorded. */
  async function compressionPeer(host: string, accept?: string) {
    const flags: number[] = [];
    const encodings: (string | undefined)[] = [];
    const peer = await startRawPeer(host, {
      '/z/echo': (stream, headers) => {
        const encoding = headers['grpc-encoding'] as string | undefined;
        encodings.push(encoding);
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const body = Buffer.concat(chunks);
          const out: Buffer[] = [];
          for (let at = 0; at < body.length; ) {
            const flag = body[at] as number;
            const length = body.readUInt32BE(at + 1);
            const data = body.subarray(at + 5, at + 5 + length);
            flags.push(flag);
            const plain =
              flag === 0 ? data : encoding === 'gzip' ? zlib.gunzipSync(data) : zlib.inflateSync(data);
            out.push(grpcFrame(plain));
            at += 5 + length;
          }
          respondGrpc(
            stream,
            out,
            { 'grpc-status': '0' },
            accept === undefined ? {} : { 'grpc-accept-encoding': accept },
          );
        });
      },
    });
    cleanups.push(() => peer.close());
    return { peer, flags, encodings };
  }

  test.each([
    [1, 'deflate'],
    [2, 'gzip'],
  ] as const)(
    'algorithm %s: grpc-encoding %s, each message flagged compressed but one written NoCompress',
    async (algorithm, name) => {
      const [host] = pickHosts(1) as [string];
      const { peer, flags, encodings } = await compressionPeer(host);
      const ep = endpoint(peer.address, { 'grpc.default_compression_algorithm': algorithm });
      const big = Buffer.alloc(64 * 1024, 'a'); // framed as prefix + message, and compressible
      const messages = new RequestMessages();
      messages.push(Buffer.from('one'));
      messages.push(Buffer.from('two'), 2); // grpc-js's WriteFlags.NoCompress
      messages.push(big);
      messages.end();
      const scope = newContext({ timeoutMs: 5_000 });
      const res = await ep.call({ ...grpcRequest('/z/echo', { kind: 'bidi' }), messages }, scope.context);
      const got: Buffer[] = [];
      res.stream.start({ onMessage: (m) => got.push(m), onStatus: () => {} });
      for (let i = 0; i < 4; i++) res.stream.read();
      expect((await res.done).code).toBe(Status.OK);
      scope.release();
      expect(got).toEqual([Buffer.from('one'), Buffer.from('two'), big]);
      expect(encodings).toEqual([name]);
      expect(flags).toEqual([1, 0, 1]);
      expect(peer.requests.get('/z/echo')?.[0]?.['grpc-accept-encoding']).toBe('identity,deflate,gzip');
    },
  );

  test('without the option nothing is compressed and no grpc-encoding is sent', async () => {
    const [host] = pickHosts(1) as [string];
    const { peer, flags, encodings } = await compressionPeer(host);
    const ep = endpoint(peer.address);
    const res = (await call(ep, '/z/echo', { messages: [Buffer.from('plain')] })) as GrpcResponse;
    expect(res.unary?.messages).toEqual([Buffer.from('plain')]);
    expect(encodings).toEqual([undefined]);
    expect(flags).toEqual([0]);
  });

  test('a server whose grpc-accept-encoding leaves the encoding out gets the next calls uncompressed', async () => {
    const [host] = pickHosts(1) as [string];
    const { peer, flags, encodings } = await compressionPeer(host, 'identity,deflate');
    const ep = endpoint(peer.address, { 'grpc.default_compression_algorithm': 2 });
    for (const m of ['first', 'second']) {
      const res = (await call(ep, '/z/echo', { messages: [Buffer.from(m)] })) as GrpcResponse;
      expect(res.unary?.messages).toEqual([Buffer.from(m)]);
    }
    expect(encodings).toEqual(['gzip', undefined]);
    expect(flags).toEqual([1, 0]);
  });

  test.each([1, 2])('a grpc-js server takes algorithm %s requests of every call shape', async (algorithm) => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    cleanups.push(() => server.stop(0));
    const ep = endpoint(server.address, { 'grpc.default_compression_algorithm': algorithm });
    const text = 'compress me '.repeat(1_000);
    const unary = (await call(ep, '/grpctower.testing.Echo/Unary', {
      messages: [echo({ message: text })],
    })) as GrpcResponse;
    expect(unary).not.toBeInstanceOf(Error);
    expect(GeneratedEchoReply.decode(unary.unary?.messages[0] as Buffer).message).toBe(text);
    const collected = (await call(ep, '/grpctower.testing.Echo/ClientStream', {
      kind: 'clientStream',
      messages: [echo({ message: 'a' }), echo({ message: text })],
    })) as GrpcResponse;
    expect(collected).not.toBeInstanceOf(Error);
    expect(GeneratedEchoReply.decode(collected.unary?.messages[0] as Buffer).received).toBe(2);
    expect(server.calls.total).toBe(2);
  });
});

describe('idle timeout', () => {
  test('a connection without a call for grpc.client_idle_timeout_ms closes; the endpoint stays ready and the next call connects again', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    cleanups.push(() => server.stop(0));
    // count the TCP connections the server accepts
    let accepted = 0;
    const tap = await startTcpTap(host, server.address, () => accepted++);
    cleanups.push(() => tap.close());
    const ep = endpoint(tap.address, { 'grpc.client_idle_timeout_ms': 1_000 });
    const states: string[] = [];
    const sub = ep.events$.subscribe((e) => (e.kind === 'state' ? states.push(e.state) : 0));
    cleanups.push(() => sub.unsubscribe());
    const idle = () =>
      firstValueFrom(ep.events$.pipe(filter((e) => e.kind === 'state' && e.state === 'idle')));
    await ready(ep);
    // a call longer than the timeout keeps the connection: it idles only after the call ends
    const slow = call(ep, '/grpctower.testing.Echo/Unary', { messages: [echo({ delayMs: 1_500 })] });
    const firstIdle = idle();
    expect(await slow).not.toBeInstanceOf(Error);
    expect(states).not.toContain('idle');
    await firstIdle;
    expect(ep.readiness).toBe('ready');
    expect(ep.connected).toBe(false);
    expect(accepted).toBe(1);
    const again = await call(ep, '/grpctower.testing.Echo/Unary', { messages: [echo({ message: 'back' })] });
    expect(again).not.toBeInstanceOf(Error);
    expect(accepted).toBe(2);
    expect(server.calls.total).toBe(2);
    await idle();
    expect(states).toEqual(['ready', 'idle', 'connecting', 'ready', 'idle']);
  });
});

/** A TCP relay to `target` on `host` that reports each connection it accepts. */
async function startTcpTap(host: string, target: string, onConnection: () => void) {
  const [targetHost, targetPort] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ];
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    onConnection();
    const upstream = net.connect({ host: targetHost, port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => relay.listen(0, host, resolve));
  const { port } = relay.address() as net.AddressInfo;
  return {
    address: `${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        relay.close(() => resolve());
      }),
  };
}
