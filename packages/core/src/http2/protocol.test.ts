// The HTTP protocol of the seam (httpProtocol), read over real requests on an
// http2Endpoint against a real node:http2 server: an answer's outcome and the
// failures it stands for, idempotence and the commit point, Retry-After as
// the pushback, a streamed response's end, and the "reached the server" fact
// that the endpoint itself sets on the error it raises.
import * as http2 from 'node:http2';
import { closedPort, pickHosts } from '@grpc-tower/testing';
import { afterEach, describe, expect, test } from 'vitest';
import { background } from '../context/index.js';
import { ConfigError, type GrpcTowerError } from '../errors.js';
import { FailedResponseError, type ResponseStatus } from '../protocol.js';
import { Status } from '../status.js';
import { type Http2Request, Http2RequestError, type Http2Response, http2Endpoint } from './endpoint.js';
import { httpProtocol, parseRetryAfter } from './protocol.js';
import { startServer } from './test/server.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const NO_CODES = { retryableStatusCodes: new Set<never>() };

/**
 * A server that answers `/status/<n>` with that status (and `retry-after`
 * from the query), resets `/refuse` with REFUSED_STREAM and `/drop` with
 * INTERNAL_ERROR once it has read the request, and streams 3 chunks for `/stream`.
 */
async function server() {
  const [host] = pickHosts(1) as [string];
  const srv = await startServer(host, (stream, headers) => {
    const url = new URL(String(headers[':path']), 'http://x');
    if (url.pathname === '/refuse') {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.resume();
    stream.on('end', () => {
      if (url.pathname === '/drop') {
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      if (url.pathname === '/stream') {
        stream.respond({ ':status': 200 });
        for (let i = 0; i < 3; i++) stream.write(Buffer.alloc(1024, i));
        stream.end();
        return;
      }
      const status = Number(url.pathname.split('/')[2] ?? 200);
      const after = url.searchParams.get('after');
      stream.respond({ ':status': status, ...(after === null ? {} : { 'retry-after': after }) });
      stream.end('body');
    });
  });
  cleanups.push(() => srv.stop());
  const ep = http2Endpoint(srv.address, { scheme: 'http' });
  cleanups.push(() => ep.close({ graceMs: 0 }));
  return { srv, ep };
}

const fail = (p: Promise<Http2Response>): Promise<unknown> =>
  p.then(
    () => expect.unreachable('the request should have failed'),
    (e: unknown) => e,
  );

describe('httpProtocol', () => {
  test("an answer's outcome: 5xx is a failure in gRPC's codes, 4xx a success; 502-504 are retried for idempotent requests only", async () => {
    const { ep } = await server();
    const protocol = httpProtocol();
    const get: Http2Request = { path: '/status/503?after=2' };
    const post: Http2Request = { method: 'POST', path: '/status/503', body: 'x' };
    expect(protocol.method(get)).toBe('GET /status/503?after=2');
    expect(protocol.method(post)).toBe('POST /status/503');
    expect(protocol.hedgeable(get)).toBe(true);
    expect(protocol.hedgeable(post)).toBe(false);
    expect(protocol.wholeResponse(get)).toBe(true);

    const ok = await ep.call({ path: '/status/200' }, background);
    expect(protocol.statusOf(ok)).toEqual({ code: Status.OK, details: '' });
    expect(protocol.failureOf(ok, get)).toBeUndefined();
    const missing = await ep.call({ path: '/status/404' }, background);
    expect(protocol.statusOf(missing)?.code).toBe(Status.OK);
    const broken = await ep.call({ path: '/status/500' }, background);
    expect(protocol.statusOf(broken)).toEqual({ code: Status.INTERNAL, details: 'HTTP 500' });
    // 500 is not among the retryable answers by default
    expect(protocol.failureOf(broken, get)).toBeUndefined();

    const busy = await ep.call(get, background);
    expect(protocol.statusOf(busy)).toEqual({ code: Status.UNAVAILABLE, details: 'HTTP 503' });
    const seen: ResponseStatus[] = [];
    protocol.whenStatus(busy, (s) => seen.push(s));
    expect(seen).toEqual([{ code: Status.UNAVAILABLE, details: 'HTTP 503' }]);
    const failure = protocol.failureOf(busy, get);
    expect(failure).toBeInstanceOf(FailedResponseError);
    expect(failure?.code).toBe(Status.UNAVAILABLE);
    expect(failure?.response).toBe(busy);
    expect(protocol.retryable(failure as GrpcTowerError, get, NO_CODES, false)).toBe(true);
    expect(protocol.retryable(failure as GrpcTowerError, post, NO_CODES, false)).toBe(false);
    expect(protocol.pushback(failure as GrpcTowerError)).toEqual({ kind: 'delay', ms: 2_000 });
    expect(httpProtocol({ maxRetryAfterMs: 1_000 }).pushback(failure as GrpcTowerError)).toEqual({
      kind: 'stop',
      value: '2000',
    });
    expect(httpProtocol({ retryableStatuses: [500] }).failureOf(broken, get)?.code).toBe(Status.INTERNAL);
  });

  test('a streamed response commits at its headers and is done at the end of its body', async () => {
    const { ep } = await server();
    const protocol = httpProtocol();
    const req: Http2Request = { path: '/stream', response: 'stream' };
    expect(protocol.wholeResponse(req)).toBe(false);
    const res = await ep.call(req, background);
    const done = new Promise<boolean>((r) => protocol.whenDone(res, r));
    let bytes = 0;
    for await (const chunk of res.stream!) bytes += (chunk as Buffer).length;
    expect(bytes).toBe(3 * 1024);
    expect(await done).toBe(true);
  });

  test('the endpoint says whether a request reached the server: refused and unconnected are safe to send again, lost is not', async () => {
    const { ep } = await server();
    const protocol = httpProtocol();
    const post = (path: string): Http2Request => ({ method: 'POST', path, body: 'x' });

    const refused = await fail(ep.call(post('/refuse'), background));
    expect(refused).toBeInstanceOf(Http2RequestError);
    expect((refused as Http2RequestError).delivery).toBe('refused');
    expect((refused as Http2RequestError).refused).toBe(true);
    expect(protocol.neverReachedServer(refused)).toBe(true);
    expect(protocol.origin(refused, false)).toBe('local');
    // never processed: any method may go again
    expect(protocol.retryable(refused as GrpcTowerError, post('/refuse'), NO_CODES, false)).toBe(true);

    const lost = await fail(ep.call(post('/drop'), background));
    expect((lost as Http2RequestError).delivery).toBe('lost');
    expect((lost as Http2RequestError).refused).toBe(false);
    expect(protocol.neverReachedServer(lost)).toBe(false);
    expect(protocol.origin(lost, false)).toBe('connection');
    // it may have run: only an idempotent request goes again
    expect(protocol.retryable(lost as GrpcTowerError, post('/drop'), NO_CODES, false)).toBe(false);
    expect(protocol.retryable(lost as GrpcTowerError, { path: '/drop' }, NO_CODES, false)).toBe(true);

    const [host] = pickHosts(1) as [string];
    const down = http2Endpoint(`${host}:${await closedPort(host)}`, { scheme: 'http' });
    cleanups.push(() => down.close({ graceMs: 0 }));
    const unconnected = await fail(down.call(post('/x'), background));
    expect((unconnected as Http2RequestError).delivery).toBe('unconnected');
    expect(protocol.neverReachedServer(unconnected)).toBe(true);
    expect(protocol.origin(unconnected, false)).toBe('connection');
  });

  test.each([
    [{ retryableStatuses: [200] }, 'retryableStatuses'],
    [{ retryableStatuses: '503' }, 'retryableStatuses'],
    [{ maxRetryAfterMs: -1 }, 'maxRetryAfterMs'],
  ])('options %j throw ConfigError naming %s', (options, option) => {
    expect(() => httpProtocol(options as never)).toThrow(ConfigError);
    expect(() => httpProtocol(options as never)).toThrow(
      expect.objectContaining({ where: 'httpProtocol', option }),
    );
  });
});

describe('parseRetryAfter', () => {
  test('seconds or an HTTP date, from now; anything else is ignored', () => {
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:27:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
