import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import * as tls from 'node:tls';
import { pickHosts, selfSigned, spawnEchoServer } from '@grpc-tower/testing';
import { firstValueFrom, filter } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import { background, newContext } from '../context/index.js';
import { ConfigError } from '../errors.js';
import type { ConnectionEvent } from '../transport/connection.js';
import { type Http2Endpoint, Http2RequestError, http2Endpoint } from './endpoint.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(host: string, port = 0, settings?: http2.Settings) {
  const sessions: http2.ServerHttp2Session[] = [];
  const server = http2.createServer(settings === undefined ? {} : { settings });
  server.on('session', (s) => sessions.push(s));
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    const delay = Number(new URL(path, 'http://x').searchParams.get('delay') ?? 0);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      setTimeout(() => {
        if (stream.closed) return;
        stream.respond({ ':status': 200, 'x-path': path });
        stream.end(Buffer.concat([Buffer.from(`${headers[':method']} ${path} `), ...chunks]));
      }, delay);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = `${host}:${(server.address() as AddressInfo).port}`;
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sessions) s.destroy();
      server.close(() => resolve());
    });
  cleanups.push(stop);
  return { server, sessions, address, port: (server.address() as AddressInfo).port, stop };
}

const ready = (ep: Http2Endpoint) => firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));

describe('http2Endpoint', () => {
  test('requests reuse one session and bodies round trip', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    const ep = http2Endpoint(srv.address, { scheme: 'http' });
    cleanups.push(() => ep.close());
    await ready(ep);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ep.call({ path: `/r${i}`, body: `b${i}` }, background)),
    );
    expect(results.map((r) => r.body.toString())).toEqual(
      Array.from({ length: 20 }, (_, i) => `POST /r${i} b${i}`),
    );
    expect(results.every((r) => r.status === 200 && r.endpoint === srv.address)).toBe(true);
    expect(srv.sessions.length).toBe(1);
  });

  test('a request caught by GOAWAY before the server accepted it settles, as refused', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    const ep = http2Endpoint(srv.address, { scheme: 'http' });
    cleanups.push(() => ep.close());
    await ready(ep);
    await ep.call({ path: '/first' }, background); // stream 1
    const late = ep.call({ path: '/late?delay=100' }, background).then(
      (r) => r.status,
      (e: Http2RequestError) => (e.refused ? 'refused' : e.message),
    );
    srv.sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR, 1); // only stream 1 accepted
    expect([200, 'refused']).toContain(await late);
  });

  test('after GOAWAY, in-flight requests finish and new ones use a new session', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    const ep = http2Endpoint(srv.address, { scheme: 'http' });
    cleanups.push(() => ep.close());
    await ready(ep);
    let accepted = 0;
    srv.server.on('stream', () => accepted++);
    const slow = ep.call({ path: '/slow?delay=200' }, background);
    await expect.poll(() => accepted).toBe(1);
    srv.sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    await expect.poll(() => srv.sessions.length).toBe(2);
    await ready(ep);
    const after = await ep.call({ path: '/after' }, background);
    expect(after.body.toString()).toBe('GET /after ');
    expect((await slow).body.toString()).toBe('GET /slow?delay=200 ');
  });

  test('readiness follows the server: failed while down, ready again when back', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    const ep = http2Endpoint(srv.address, { scheme: 'http', initialBackoffMs: 20, maxBackoffMs: 100 });
    cleanups.push(() => ep.close());
    await ready(ep);
    await srv.stop();
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
    const err = await ep.call({ path: '/x' }, background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Http2RequestError);
    expect((err as Http2RequestError).endpoint).toBe(srv.address);
    const again = await startServer(host!, srv.port);
    await ready(ep);
    expect((await ep.call({ path: '/back' }, background)).status).toBe(200);
    void again;
  });

  test('a cancelled request settles at once with the abort reason', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    const ep = http2Endpoint(srv.address, { scheme: 'http' });
    cleanups.push(() => ep.close());
    await ready(ep);
    const scope = newContext({ timeoutMs: 50 });
    const err = await ep.call({ path: '/slow?delay=2000' }, scope.context).catch((e: unknown) => e);
    scope.release();
    expect((err as { code: number }).code).toBe(4);
    expect(ep.pending).toBe(0);
  });

  test('close drains requests in flight, then refuses', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    const ep = http2Endpoint(srv.address, { scheme: 'http' });
    await ready(ep);
    const inflight = ep.call({ path: '/d?delay=100' }, background);
    const closed = ep.close();
    expect((await inflight).status).toBe(200);
    await closed;
    expect(ep.readiness).toBe('closed');
    await expect(ep.call({ path: '/' }, background)).rejects.toMatchObject({ code: 14 });
  });

  test('bad options are named', () => {
    expect(() => http2Endpoint('nope', { scheme: 'http' })).toThrow(ConfigError);
    expect(() => http2Endpoint('127.0.0.1:80', { scheme: 'http', initialBackoffMs: -1 })).toThrow(
      /initialBackoffMs/,
    );
  });

  test.each([
    ['no options at all', undefined],
    ['options without a scheme', {}],
    ['scheme: undefined', { scheme: undefined }],
  ])('%s: refused, naming the scheme and how to choose TLS or cleartext', (_name, options) => {
    const make = () => http2Endpoint('127.0.0.1:80', options as never);
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(
      expect.objectContaining({
        where: 'http2Endpoint',
        option: 'scheme',
        value: undefined,
        message:
          'http2Endpoint: option "scheme" must be "https" for TLS, or "http" to choose cleartext (h2c), got undefined',
      }),
    );
  });

  test.each([['ftp'], ['HTTP'], [''], [null], [1]])('scheme %j is refused', (scheme) => {
    expect(() => http2Endpoint('127.0.0.1:80', { scheme: scheme as never })).toThrow(
      expect.objectContaining({ option: 'scheme', value: scheme }),
    );
  });
});

describe('http2Endpoint weight, zone, forZones, priority and group', () => {
  test('are refused, naming the insert change they moved to', () => {
    expect(() => http2Endpoint('127.0.0.1:1', { scheme: 'http', zone: 'eu-1a' } as never)).toThrow(
      /http2Endpoint: option "zone" must be absent: .*metadata: \{ zone \}/,
    );
    expect(() => http2Endpoint('127.0.0.1:1', { scheme: 'http', weight: 2 } as never)).toThrow(
      /http2Endpoint: option "weight" must be absent/,
    );
    expect(() => http2Endpoint('127.0.0.1:1', { scheme: 'http', forZones: ['eu-1a'] } as never)).toThrow(
      /http2Endpoint: option "forZones" must be absent/,
    );
    expect(() => http2Endpoint('127.0.0.1:1', { scheme: 'http', priority: 3 } as never)).toThrow(
      /http2Endpoint: option "priority" must be absent: .*metadata: \{ priority \}/,
    );
    expect(() => http2Endpoint('127.0.0.1:1', { scheme: 'http', group: 'canary' } as never)).toThrow(
      /http2Endpoint: option "group" must be absent/,
    );
  });
});

describe('http2Endpoint reconnect', () => {
  // a backoff of a minute: only reconnect() can connect within the test
  const slow = { scheme: 'http', initialBackoffMs: 60_000, maxBackoffMs: 120_000 } as const;

  /** An endpoint whose server has gone: failed, waiting out its backoff. */
  async function failedEndpoint() {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    await srv.stop();
    const ep = http2Endpoint(srv.address, slow);
    cleanups.push(() => ep.close());
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
    return { ep, host: host!, srv };
  }

  test('refused: one attempt, shared, ends failed; none more until the scheduled one has run', async () => {
    const { ep, srv } = await failedEndpoint();
    const attempt = ep.reconnect();
    expect(attempt).toBeInstanceOf(Promise);
    expect(ep.reconnect()).toBe(attempt);
    await attempt;
    expect(ep.readiness).toBe('failed');
    expect(ep.lastError).toBe(`connect ECONNREFUSED ${srv.address}`);
    expect(ep.reconnect()).toBeUndefined();
  });

  test('a server that came up meanwhile: the attempt connects', async () => {
    const { ep, host, srv } = await failedEndpoint();
    await startServer(host, srv.port);
    await ep.reconnect();
    expect(ep.readiness).toBe('ready');
    expect(ep.reconnect()).toBeUndefined();
    expect((await ep.call({ path: '/up' }, background)).status).toBe(200);
  });

  test('nothing to start while connected or once closed; close ends an attempt', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    const up = http2Endpoint(srv.address, slow);
    await ready(up);
    expect(up.reconnect()).toBeUndefined();
    await up.close();
    expect(up.reconnect()).toBeUndefined();
    const { ep: down } = await failedEndpoint();
    const attempt = down.reconnect();
    expect(attempt).toBeInstanceOf(Promise);
    await down.close();
    await attempt;
    expect(down.readiness).toBe('closed');
  });
});

describe('http2Endpoint over the shared HTTP/2 connection layer', () => {
  /** A server, and a ready endpoint to it with the connection events it published from its start. */
  async function watchedEndpoint() {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    const ep = http2Endpoint(srv.address, { scheme: 'http' });
    cleanups.push(() => ep.close());
    const events: ConnectionEvent[] = [];
    ep.events$.subscribe((e) => events.push(e));
    await ready(ep);
    return { srv, ep, events };
  }

  test('requests started before the server sent its SETTINGS wait for them: max_concurrent_streams 2, 12 requests, none refused', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!, 0, { maxConcurrentStreams: 2 });
    let open = 0;
    let most = 0;
    srv.server.on('stream', (stream) => {
      most = Math.max(most, ++open);
      stream.once('close', () => open--);
    });
    const ep = http2Endpoint(srv.address, { scheme: 'http' });
    cleanups.push(() => ep.close());
    // all sent at once, while the endpoint still connects
    expect(ep.readiness).toBe('connecting');
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        ep.call({ path: `/w${i}?delay=20` }, background).then(
          (r) => r.status,
          (e: Error) => e.message,
        ),
      ),
    );
    console.log(
      `max_concurrent_streams 2: ${answers.filter((a) => a === 200).length} of 12 answered, at most ${most} streams open on the server`,
    );
    expect(answers).toEqual(Array.from({ length: 12 }, () => 200));
    expect(most).toBe(2);
    expect(srv.sessions.length).toBe(1);
  });

  test("the server's GOAWAY is an event of the endpoint; later requests go to a fresh session", async () => {
    const { srv, ep, events } = await watchedEndpoint();
    await ep.call({ path: '/one' }, background);
    srv.sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR, 1, Buffer.from('max_age'));
    await expect.poll(() => events.some((e) => e.kind === 'goaway')).toBe(true);
    expect(events.find((e) => e.kind === 'goaway')).toEqual({
      kind: 'goaway',
      address: srv.address,
      code: 0,
      lastStreamId: 1,
      debug: 'max_age',
    });
    expect((await ep.call({ path: '/two' }, background)).status).toBe(200);
    expect(srv.sessions.length).toBe(2);
    expect(events.map((e) => (e.kind === 'state' ? e.state : e.kind))).toEqual([
      'ready',
      'goaway',
      'connecting',
      'ready',
    ]);
  });

  test('a request node refuses to start (a connection-specific header) fails alone: the session stays', async () => {
    const { srv, ep, events } = await watchedEndpoint();
    const err = await ep.call({ path: '/bad', headers: { connection: 'close' } }, background).catch((e) => e);
    expect(err).toBeInstanceOf(Http2RequestError);
    expect(err).toMatchObject({ refused: true, message: expect.stringMatching(/connection/i) });
    expect((await ep.call({ path: '/good' }, background)).status).toBe(200);
    expect(srv.sessions.length).toBe(1);
    expect(events.map((e) => (e.kind === 'state' ? e.state : e.kind))).toEqual(['ready']);
    expect(ep.pending).toBe(0);
  });

  test('the session options of connectOptions reach the session; bad ones are named at once', async () => {
    const [host] = pickHosts(1);
    const srv = await startServer(host!);
    let window: number | undefined;
    srv.server.on('session', (s) =>
      s.once('remoteSettings', (settings) => (window = settings.initialWindowSize)),
    );
    const ep = http2Endpoint(srv.address, {
      scheme: 'http',
      connectOptions: { settings: { initialWindowSize: 1 << 20 } },
    });
    cleanups.push(() => ep.close());
    expect((await ep.call({ path: '/s' }, background)).status).toBe(200);
    expect(window).toBe(1 << 20);
    expect(() =>
      http2Endpoint(srv.address, { scheme: 'http', connectOptions: { settings: { initialWindowSize: -1 } } }),
    ).toThrow(
      expect.objectContaining({
        option: 'connectOptions',
        message: expect.stringMatching(/initialWindowSize/),
      }),
    );
    expect(() =>
      http2Endpoint(srv.address, {
        scheme: 'http',
        connectOptions: { createConnection: () => undefined as never },
      }),
    ).toThrow(
      expect.objectContaining({
        option: 'connectOptions',
        message: expect.stringMatching(/createConnection/),
      }),
    );
    expect(() =>
      http2Endpoint(srv.address, { scheme: 'https', connectOptions: { cert: 'garbage', key: 'garbage' } }),
    ).toThrow(
      expect.objectContaining({ option: 'connectOptions', message: expect.stringMatching(/TLS options/) }),
    );
  });

  test('keepalive finds a server that stopped answering (SIGSTOP): the request in flight fails, not refused', async () => {
    const [host] = pickHosts(1);
    // any HTTP/2 server in its own process will do: a gRPC one, which waits for the request's end
    const child = await spawnEchoServer({ host: host! });
    cleanups.push(async () => {
      child.resume();
      await child.kill();
    });
    const ep = http2Endpoint(child.address, {
      scheme: 'http',
      keepaliveTimeMs: 100,
      keepaliveTimeoutMs: 200,
      initialBackoffMs: 60_000,
    });
    cleanups.push(() => ep.close({ graceMs: 0 }));
    const timeouts: number[] = [];
    ep.events$.subscribe((e) => (e.kind === 'keepalive-timeout' ? timeouts.push(e.timeoutMs) : 0));
    await ready(ep);
    const body = new PassThrough();
    body.write('never ended');
    const inflight = ep
      .call(
        {
          method: 'POST',
          path: '/grpctower.testing.Echo/Unary',
          headers: { 'content-type': 'application/grpc', te: 'trailers' },
          body,
        },
        background,
      )
      .catch((e: unknown) => e);
    // answered PINGs keep a connection with a request open up
    await new Promise((r) => setTimeout(r, 350));
    expect(timeouts).toEqual([]);
    child.pause();
    const err = await inflight;
    expect(err).toBeInstanceOf(Http2RequestError);
    expect(err).toMatchObject({ refused: false });
    expect(timeouts).toEqual([200]);
    expect(() => http2Endpoint(child.address, { scheme: 'http', keepaliveTimeMs: 0 })).toThrow(
      expect.objectContaining({ option: 'keepaliveTimeMs' }),
    );
  });

  describe('TLS', () => {
    const { key, cert } = selfSigned('items.test');

    async function startTlsServer(host: string, alpn: string[]) {
      const names: (string | false | null)[] = [];
      const server =
        alpn[0] === 'h2'
          ? http2.createSecureServer({ key, cert }, (_req, res) => res.end('tls'))
          : tls.createServer({ key, cert, ...(alpn.length === 0 ? {} : { ALPNProtocols: alpn }) }, (socket) =>
              socket.end(),
            );
      server.on('secureConnection', (socket: tls.TLSSocket) => names.push(socket.servername));
      await new Promise<void>((resolve) => server.listen(0, host, resolve));
      cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
      return { address: `${host}:${(server.address() as AddressInfo).port}`, names };
    }

    test('the authority is the SNI name and the name checked; a server without ALPN h2 fails with a named error', async () => {
      const [host] = pickHosts(1);
      const good = await startTlsServer(host!, ['h2']);
      const ep = http2Endpoint(good.address, {
        scheme: 'https',
        authority: 'items.test',
        connectOptions: { ca: cert },
      });
      cleanups.push(() => ep.close({ graceMs: 0 }));
      const res = await ep.call({ path: '/t' }, background);
      expect([res.status, res.body.toString()]).toEqual([200, 'tls']);
      expect(good.names).toEqual(['items.test']);

      const wrongName = http2Endpoint(good.address, {
        scheme: 'https',
        authority: 'billing.test',
        connectOptions: { ca: cert },
        initialBackoffMs: 60_000,
      });
      cleanups.push(() => wrongName.close({ graceMs: 0 }));
      await firstValueFrom(wrongName.readiness$.pipe(filter((r) => r === 'failed')));
      expect(wrongName.lastError).toMatch(/billing\.test/);

      // a TLS server that speaks only HTTP/1.1 refuses the handshake; one without ALPN is refused here
      const http1 = await startTlsServer(host!, ['http/1.1']);
      const noAlpn = await startTlsServer(host!, []);
      const failing = [http1, noAlpn].map((srv) => {
        const ep = http2Endpoint(srv.address, {
          scheme: 'https',
          authority: 'items.test',
          connectOptions: { ca: cert },
          initialBackoffMs: 60_000,
        });
        cleanups.push(() => ep.close({ graceMs: 0 }));
        return ep;
      });
      for (const ep of failing) await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
      expect(failing.map((ep) => ep.lastError)).toEqual([
        expect.stringMatching(/^TLS error: .*no application protocol/),
        'TLS server did not negotiate ALPN "h2" (got none)',
      ]);
      const err = await failing[1]!.call({ path: '/x' }, background).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Http2RequestError);
      expect(err).toMatchObject({ refused: true, message: expect.stringMatching(/ALPN "h2"/) });
    });
  });
});
