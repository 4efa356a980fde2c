// httpRetry against real node:http2 servers on their own loopback
// addresses, through http2Endpoint and the tests' small picker (which
// honours AvoidEndpoints as the balancer does).
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { type Service, newContext } from '@grpc-tower/core';
import { http2Body, http2Endpoint, type Http2Request, type Http2Response } from '@grpc-tower/core/http2';
import { pickHosts } from '@grpc-tower/testing';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { retryBudget } from '../budget/budget.js';
import type { RetryEvent } from '../retry/layer.js';
import { type TestPicker, testPicker } from '../test/picker.js';
import { httpHedge, httpRetry } from './http.js';

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, n: number) => void;

interface Server {
  readonly address: string;
  readonly host: string;
  /** Requests seen: method, path, when (performance.now()), body bytes. */
  readonly seen: { method: string; path: string; at: number; bytes: number }[];
  readonly server: http2.Http2Server;
  close(): Promise<void>;
}

const servers: Server[] = [];
const pickers: TestPicker<Http2Request, Http2Response>[] = [];
afterEach(async () => {
  await Promise.all(pickers.splice(0).map((p) => p.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(host: string, handler: Handler): Promise<Server> {
  const seen: Server['seen'] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const entry = {
      method: String(headers[':method']),
      path: String(headers[':path']),
      at: performance.now(),
      bytes: 0,
    };
    seen.push(entry);
    stream.on('data', (c: Buffer) => {
      entry.bytes += c.length;
    });
    stream.on('error', () => undefined);
    handler(stream, headers, seen.length - 1);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const s: Server = {
    address: `${host}:${port}`,
    host,
    seen,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

const ok: Handler = (stream) => {
  stream.on('end', () => {
    if (!stream.destroyed) stream.respond({ ':status': 200 }, { endStream: false });
    stream.end('ok');
  });
  stream.resume();
};

function stackOver(
  targets: readonly Server[],
  policy: Parameters<typeof httpRetry>[0] = {},
  mode: 'first-ready' | 'round-robin' = 'first-ready',
) {
  const endpoints = targets.map((t) => http2Endpoint(t.address, { scheme: 'http' }));
  const picker = testPicker<Http2Request, Http2Response>(endpoints, mode);
  pickers.push(picker);
  const layer = httpRetry(policy);
  const events: RetryEvent[] = [];
  layer.events$.subscribe((e) => events.push(e));
  return { svc: layer(picker), layer, events, picker };
}

/** One call with its own deadline; the scope's timer is released when it settles. */
async function call(svc: Service<Http2Request, Http2Response>, req: Http2Request, timeoutMs = 5000) {
  const scope = newContext({ timeoutMs });
  try {
    return await svc.call(req, scope.context);
  } finally {
    scope.release();
  }
}

describe('httpRetry', () => {
  test('a 503 with Retry-After on a GET is retried after that delay, on another server; a POST is not', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    const busy = await serve(ha, (stream) => {
      stream.resume();
      stream.respond({ ':status': 503, 'retry-after': '1' });
      stream.end('busy');
    });
    const fine = await serve(hb, ok);
    const { svc, events } = stackOver([busy, fine]);

    const res = await call(svc, { path: '/items/7' });
    expect(res.status).toBe(200);
    expect(res.endpoint).toBe(fine.address);
    expect(res.body.toString()).toBe('ok');
    expect(events.filter((e) => e.type === 'retry')).toEqual([
      expect.objectContaining({ method: 'GET /items/7', cause: 'pushback', delayMs: 1000 }),
    ]);
    // the retry waited at least the server's second (a timer never fires early)
    expect((fine.seen[0]?.at as number) - (busy.seen[0]?.at as number)).toBeGreaterThanOrEqual(990);

    events.length = 0;
    const post = await call(svc, { method: 'POST', path: '/orders', body: '{"n":1}' });
    // not idempotent: the server may have acted on it; the caller gets the 503 as it was sent
    expect(post.status).toBe(503);
    expect(post.headers['retry-after']).toBe('1');
    expect(post.body.toString()).toBe('busy');
    expect(fine.seen.filter((r) => r.method === 'POST')).toEqual([]);
    expect(events.find((e) => e.type === 'give-up')).toMatchObject({ reason: 'non-retryable', attempts: 1 });

    // marked idempotent, the POST is retried
    const marked = await call(svc, { method: 'POST', path: '/orders', body: '{"n":2}', idempotent: true });
    expect(marked.status).toBe(200);
  });

  test('a Retry-After that would end past the deadline stops the retries; the 503 reaches the caller', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    const busy = await serve(ha, (stream) => {
      stream.resume();
      stream.respond({ ':status': 503, 'retry-after': '30' });
      stream.end();
    });
    const fine = await serve(hb, ok);
    const { svc, events } = stackOver([busy, fine]);
    const res = await call(svc, { path: '/slow' }, 2000);
    expect(res.status).toBe(503);
    expect(fine.seen).toEqual([]);
    expect(events.find((e) => e.type === 'give-up')).toMatchObject({ reason: 'deadline' });
  });

  test('502 and 504 are retried for a GET without pushback, 500 and 4xx are not', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    let status = 502;
    const flaky = await serve(ha, (stream) => {
      stream.resume();
      stream.respond({ ':status': status });
      stream.end();
    });
    const fine = await serve(hb, ok);
    const { svc } = stackOver([flaky, fine]);
    for (const s of [502, 504]) {
      status = s;
      expect((await call(svc, { path: `/s${s}` })).status).toBe(200);
    }
    for (const s of [500, 404, 429]) {
      status = s;
      expect((await call(svc, { path: `/s${s}` })).status).toBe(s);
    }
    expect(fine.seen.map((r) => r.path)).toEqual(['/s502', '/s504']);
  });

  test('a GOAWAY under load loses no request, POSTs included', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    let goaway = false;
    const leaving = await serve(ha, (stream, _h, n) => {
      if (n === 40 && !goaway) {
        goaway = true;
        // stop taking streams: the ones accepted finish, later ones are refused
        stream.session?.close();
        leaving.server.close();
      }
      ok(stream, _h, n);
    });
    const staying = await serve(hb, ok);
    const { svc, layer } = stackOver([leaving, staying], {}, 'round-robin');
    const results = await Promise.allSettled(
      Array.from({ length: 300 }, (_, i) =>
        call(
          svc,
          i % 2 === 0 ? { path: `/get/${i}` } : { method: 'POST', path: `/post/${i}`, body: `n=${i}` },
        ),
      ),
    );
    const failures = results
      .filter((r) => r.status === 'rejected')
      .map((r) => String((r as PromiseRejectedResult).reason));
    expect(failures).toEqual([]);
    expect(results.every((r) => r.status === 'fulfilled' && r.value.status === 200)).toBe(true);
    expect(goaway).toBe(true);
    // every request was answered once by a server: none ran twice
    expect(leaving.seen.length + staying.seen.length).toBeGreaterThanOrEqual(300);
    console.log(
      `GOAWAY under load: ${layer.stats().transparentRetries} transparent re-sends, ${layer.stats().retries} retries`,
    );
  });

  test('a connection lost with the request in flight: a GET is retried, a POST is not', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    const dying = await serve(ha, (stream) => {
      stream.resume();
      // the request arrived; the connection dies before any answer
      setTimeout(() => stream.session?.destroy(), 20);
    });
    const fine = await serve(hb, ok);
    const { svc } = stackOver([dying, fine]);
    expect((await call(svc, { path: '/read' })).status).toBe(200);
    await expect(call(svc, { method: 'POST', path: '/write', body: 'x' })).rejects.toThrow(/HTTP\/2/);
    expect(fine.seen.map((r) => r.method)).toEqual(['GET']);
  });

  test('past the response headers the request is committed: a body cut short is not retried', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    const cut = await serve(ha, (stream) => {
      stream.resume();
      stream.respond({ ':status': 200 });
      stream.write('partial');
      // the connection dies mid-body (a stream's own close would first end it cleanly)
      setTimeout(() => stream.session?.destroy(), 20);
    });
    const fine = await serve(hb, ok);
    const { svc } = stackOver([cut, fine]);
    await expect(call(svc, { path: '/big' })).rejects.toMatchObject({ afterHeaders: true });
    expect(fine.seen).toEqual([]);
  });

  test('a streamed body is re-sent while its replay buffer holds it, and not once it passed it', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    const busy = await serve(ha, (stream) => {
      stream.on('end', () => {
        stream.respond({ ':status': 503 });
        stream.end();
      });
      stream.resume();
    });
    const fine = await serve(hb, ok);
    const { svc, events } = stackOver([busy, fine]);
    const chunks = (n: number, size: number) =>
      Readable.from(Array.from({ length: n }, () => Buffer.alloc(size, 1)));

    const small = await call(svc, {
      method: 'PUT',
      path: '/small',
      body: http2Body(chunks(4, 1024), { replayBytes: 64 * 1024 }),
    });
    expect(small.status).toBe(200);
    expect(fine.seen.find((r) => r.path === '/small')?.bytes).toBe(4096);

    events.length = 0;
    const large = await call(svc, {
      method: 'PUT',
      path: '/large',
      body: http2Body(chunks(16, 1024), { replayBytes: 4096 }),
    });
    expect(large.status).toBe(503);
    expect(events.find((e) => e.type === 'give-up')).toMatchObject({ reason: 'not-replayable' });
    expect(fine.seen.find((r) => r.path === '/large')).toBeUndefined();
  });

  test('retries are paid from a budget; an empty one returns the 503', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    const busy = await serve(ha, (stream) => {
      stream.resume();
      stream.respond({ ':status': 503 });
      stream.end();
    });
    await serve(hb, ok);
    const budget = retryBudget({ minPerSec: 0, percent: 0 });
    const { svc, events } = stackOver([busy], { budget });
    expect((await call(svc, { path: '/x' })).status).toBe(503);
    expect(events.find((e) => e.type === 'give-up')).toMatchObject({ reason: 'budget' });
  });

  test('options are checked', () => {
    expect(() => httpRetry({ retryableStatuses: [200] })).toThrow(/retryableStatuses/);
    expect(() => httpRetry({ maxAttempts: 0 })).toThrow(/maxAttempts/);
    expect(() => httpRetry({ maxRetryAfterMs: -1 })).toThrow(/maxRetryAfterMs/);
    expect(() => httpRetry({ retryableStatusCodes: ['UNAVAILABLE'] } as never)).toThrow(
      /retryableStatusCodes/,
    );
  });
});

describe('httpHedge', () => {
  test('an idempotent request goes to a second server when the first is slow; a POST is sent once', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    const cancelled: number[] = [];
    const slow = await serve(ha, (stream, _headers, n) => {
      stream.on('close', () => {
        if (stream.rstCode === http2.constants.NGHTTP2_CANCEL) cancelled.push(n);
      });
      stream.resume();
      setTimeout(() => {
        if (stream.destroyed || stream.closed) return;
        stream.respond({ ':status': 200 });
        stream.end('slow');
      }, 300);
    });
    const fast = await serve(hb, ok);
    const endpoints = [slow, fast].map((t) => http2Endpoint(t.address, { scheme: 'http' }));
    const picker = testPicker<Http2Request, Http2Response>(endpoints, 'first-ready');
    pickers.push(picker);
    const layer = httpHedge({ maxAttempts: 2, hedgingDelayMs: 30 });
    const svc = layer(picker);
    const res = await call(svc, { path: '/hedged' });
    expect(res.endpoint).toBe(fast.address);
    expect(layer.stats()).toMatchObject({ hedges: 1, wonByHedge: 1 });
    // the slow attempt was cancelled with RST_STREAM(CANCEL) once the fast one answered
    await vi.waitFor(() => expect(cancelled).toEqual([0]));

    const post = await call(svc, { method: 'POST', path: '/once', body: 'x' });
    expect(post.endpoint).toBe(slow.address);
    expect(fast.seen.filter((r) => r.path === '/once')).toEqual([]);
    expect(layer.stats().hedges).toBe(1);
  });

  test('a 503 from one hedge lets the next go out at once; all failing returns the last answer', async () => {
    const [ha, hb] = pickHosts(2) as [string, string];
    const busy: Handler = (stream) => {
      stream.resume();
      stream.respond({ ':status': 503 });
      stream.end('busy');
    };
    const a = await serve(ha, busy);
    const b = await serve(hb, busy);
    const endpoints = [a, b].map((t) => http2Endpoint(t.address, { scheme: 'http' }));
    const picker = testPicker<Http2Request, Http2Response>(endpoints, 'first-ready');
    pickers.push(picker);
    const svc = httpHedge({ maxAttempts: 2, hedgingDelayMs: 5000 })(picker);
    const res = await call(svc, { path: '/both-busy' });
    expect(res.status).toBe(503);
    expect(a.seen.length + b.seen.length).toBe(2);
  });
});
