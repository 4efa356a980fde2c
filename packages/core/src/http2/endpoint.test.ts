import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { pickHosts } from '@grpc-tower/testing';
import { firstValueFrom, filter } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import { background, newContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { type Http2Endpoint, Http2RequestError, http2Endpoint } from './endpoint.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(host: string, port = 0) {
  const sessions: http2.ServerHttp2Session[] = [];
  const server = http2.createServer();
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

describe('http2Endpoint zone and forZones', () => {
  test('are kept, and checked like weight', async () => {
    // an address nothing listens on: the endpoint only has to be built
    const ep = http2Endpoint('127.0.0.1:1', { scheme: 'http', zone: 'eu-1a', forZones: ['eu-1a'] });
    try {
      expect([ep.zone, ep.forZones]).toEqual(['eu-1a', ['eu-1a']]);
    } finally {
      await ep.close({ graceMs: 0 });
    }
    expect(() => http2Endpoint('127.0.0.1:1', { scheme: 'http', zone: '' })).toThrow(
      /http2Endpoint: option "zone" must be a non-empty string/,
    );
    expect(() => http2Endpoint('127.0.0.1:1', { scheme: 'http', forZones: [''] })).toThrow(
      /http2Endpoint: option "forZones" must be an array of non-empty strings/,
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
