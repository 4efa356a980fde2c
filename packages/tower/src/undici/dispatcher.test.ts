// towerDispatcher against real node:http2 servers on their own loopback
// addresses: undici's fetch and request(), Node's own fetch, streaming both
// ways, aborts, retries, TLS, DNS discovery and the dispatcher's options.
import * as http2 from 'node:http2';
import { Readable } from 'node:stream';
import { ConfigError, type Layer } from '@grpc-tower/core';
import type { Http2Request, Http2Response } from '@grpc-tower/core/http2';
import { staticList } from '@grpc-tower/discover';
import { pickHosts, selfSigned } from '@grpc-tower/testing';
import {
  Agent,
  type Dispatcher,
  errors,
  fetch,
  getGlobalDispatcher,
  request,
  setGlobalDispatcher,
} from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { type Dnsmasq, freePort, startDnsmasq } from '../../../discover/src/test/index.js';
import { type TowerDispatcher, type TowerDispatcherOptions, towerDispatcher } from './index.js';
import { type TestServer, stall, startServer } from './test/servers.js';

const servers: TestServer[] = [];
const dispatchers: Dispatcher[] = [];
const dnsServers: Dnsmasq[] = [];
afterEach(async () => {
  await Promise.all(dispatchers.splice(0).map((d) => d.destroy()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(dnsServers.splice(0).map((d) => d.close()));
});

async function serve(
  count: number,
  options: { latencyMs?: number; tls?: { key: Buffer; cert: Buffer } } = {},
) {
  const started = await Promise.all(
    pickHosts(count).map((host, i) =>
      startServer({
        host,
        name: `s${i + 1}`,
        ...(options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs }),
        ...(options.tls === undefined ? {} : { tls: options.tls }),
      }),
    ),
  );
  servers.push(...started);
  return started;
}

const ORIGIN = 'http://orders.test:8080';

function dispatcherOver(
  targets: readonly TestServer[],
  options: TowerDispatcherOptions = {},
  origin = ORIGIN,
): TowerDispatcher {
  const d = towerDispatcher(origin, {
    discovery: staticList(targets.map((t) => t.address)),
    ...options,
  });
  dispatchers.push(d);
  return d;
}

/** Runs `fn(i)` for i in [0, n), `concurrency` at a time. */
async function load<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A response's JSON body from the default handler. */
interface Answer {
  readonly server: string;
  readonly path: string;
  readonly bytes: number;
}

function shares(names: readonly string[]): Record<string, number> {
  const tally: Record<string, number> = {};
  for (const n of names) tally[n] = (tally[n] ?? 0) + 1;
  return tally;
}

describe('fetch through the stack', () => {
  test('fetch() balances across three servers: each gets a fair share', async () => {
    const three = await serve(3, { latencyMs: 2 });
    const dispatcher = dispatcherOver(three);
    const n = 300;
    const answers = await load(n, 10, async (i) => {
      const res = await fetch(`${ORIGIN}/orders/${i}?full=1`, { dispatcher });
      expect(res.status).toBe(200);
      return (await res.json()) as Answer;
    });
    expect(answers.map((a) => a.path)).toEqual(Array.from({ length: n }, (_, i) => `/orders/${i}?full=1`));
    const tally = shares(answers.map((a) => a.server));
    console.log(`fetch over three equal servers, ${n} requests: ${JSON.stringify(tally)}`);
    for (const s of three) {
      expect(tally[s.name] ?? 0).toBeGreaterThan(n * 0.25);
      expect(tally[s.name] ?? 0).toBeLessThan(n * 0.42);
      // every request of a server went over one HTTP/2 session, with the origin as :authority
      expect(s.sessions).toBe(1);
      expect(s.seen.every((r) => r.headers[':authority'] === 'orders.test:8080')).toBe(true);
    }
    expect(dispatcher.stats().inFlight).toBe(0);
  });

  test('with PeakEWMA a server 50 ms slower than the others gets under 5 % of the requests', async () => {
    const three = await serve(3);
    const slow = three[2] as TestServer;
    slow.latencyMs = 50;
    const dispatcher = dispatcherOver(three);
    const n = 600;
    const answers = await load(n, 8, async (i) => {
      const res = await fetch(`${ORIGIN}/items/${i}`, { dispatcher });
      return (await res.json()) as Answer;
    });
    const tally = shares(answers.map((a) => a.server));
    const share = (tally[slow.name] ?? 0) / n;
    console.log(
      `PeakEWMA, one server +50 ms, ${n} requests, 8 at a time: ${JSON.stringify(tally)}; the slow one ${(share * 100).toFixed(1)} %`,
    );
    expect(share).toBeLessThan(0.05);
  });

  test('a POST body streams through, from a Readable and from a fetch stream body', async () => {
    const [one] = await serve(1);
    const dispatcher = dispatcherOver([one as TestServer]);
    const chunk = Buffer.alloc(64 * 1024, 7);
    const count = 64; // 4 MiB, past the 1 MiB replay buffer
    let produced = 0;
    async function* chunks() {
      for (let i = 0; i < count; i++) {
        produced++;
        yield chunk;
      }
    }
    const res = await fetch(`${ORIGIN}/upload`, {
      dispatcher,
      method: 'POST',
      body: Readable.toWeb(Readable.from(chunks())) as ReadableStream<Uint8Array>,
      duplex: 'half',
    });
    expect(((await res.json()) as Answer).bytes).toBe(count * chunk.length);
    expect(produced).toBe(count);

    const { statusCode, body } = await request(`${ORIGIN}/upload`, {
      dispatcher,
      method: 'PUT',
      body: Readable.from(chunks()),
    });
    expect(statusCode).toBe(200);
    expect(((await body.json()) as Answer).bytes).toBe(count * chunk.length);
  });

  test('a large response streams with bounded memory: a reader that stops stops the server', async () => {
    const [one] = await serve(1);
    const server = one as TestServer;
    const total = 80 * 1024 * 1024; // more than the endpoint would ever buffer (64 MiB)
    const piece = Buffer.alloc(64 * 1024, 1);
    let written = 0;
    server.handler = (stream) => {
      stream.respond({ ':status': 200 });
      const pump = (): void => {
        while (written < total) {
          written += piece.length;
          if (!stream.write(piece)) {
            stream.once('drain', pump);
            return;
          }
        }
        stream.end();
      };
      pump();
    };
    const dispatcher = dispatcherOver([server]);
    const res = await fetch(`${ORIGIN}/big`, { dispatcher });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let received = (await reader.read()).value?.length ?? 0;
    await sleep(300);
    // flow control holds the server while nobody reads
    const whilePaused = written;
    console.log(`response of ${total} bytes: ${whilePaused} written by the server while the reader waited`);
    expect(whilePaused).toBeLessThan(4 * 1024 * 1024);
    let heapPeak = 0;
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      received += r.value.length;
      heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    }
    expect(received).toBe(total);
    expect(heapPeak).toBeLessThan(total);
  });

  test('abort cancels the request: RST_STREAM(CANCEL) before the headers and in the body', async () => {
    const [one] = await serve(1);
    const server = one as TestServer;
    // headers and a first chunk for /body, nothing for /headers: the client must cancel
    server.handler = stall(['/body']);
    const dispatcher = dispatcherOver([server]);

    const early = new AbortController();
    const pending = fetch(`${ORIGIN}/headers`, { dispatcher, signal: early.signal });
    await expect.poll(() => server.seen.length).toBe(1);
    early.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await expect.poll(() => server.seen[0]?.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);

    const late = new AbortController();
    const res = await fetch(`${ORIGIN}/body`, { dispatcher, signal: late.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    expect(Buffer.from((await reader.read()).value as Uint8Array).toString()).toBe('first');
    late.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });
    await expect.poll(() => server.seen[1]?.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);

    // undici.request's signal too
    const third = new AbortController();
    const req = request(`${ORIGIN}/headers`, { dispatcher, signal: third.signal });
    await expect.poll(() => server.seen.length).toBe(3);
    third.abort();
    await expect(req).rejects.toMatchObject({ name: 'AbortError' });
    await expect.poll(() => server.seen[2]?.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(dispatcher.stats().inFlight).toBe(0);
  });

  test('a 503 with Retry-After on a GET is retried after that delay on another server', async () => {
    const three = await serve(3);
    const busy = three[0] as TestServer;
    busy.handler = (stream) => {
      stream.respond({ ':status': 503, 'retry-after': '1' });
      stream.end('busy');
    };
    const dispatcher = dispatcherOver(three, { outlierDetection: false });
    const results = await load(6, 6, async (i) => {
      const started = performance.now();
      const res = await fetch(`${ORIGIN}/r/${i}`, { dispatcher });
      const body = (await res.json()) as Answer;
      return { path: `/r/${i}`, status: res.status, server: body.server, ms: performance.now() - started };
    });
    expect(results.every((r) => r.status === 200 && r.server !== busy.name)).toBe(true);
    const retried = new Set(busy.seen.map((s) => s.path));
    expect(retried.size).toBeGreaterThan(0);
    for (const r of results.filter((x) => retried.has(x.path))) expect(r.ms).toBeGreaterThanOrEqual(990);
    expect(dispatcher.stats().retry?.retries).toBe(retried.size);

    // a POST is not idempotent: the 503 reaches the caller as the server sent it
    const posts = await load(6, 6, async (i) => {
      const res = await fetch(`${ORIGIN}/p/${i}`, { dispatcher, method: 'POST', body: 'x' });
      return { status: res.status, text: await res.text(), ra: res.headers.get('retry-after') };
    });
    const refused = posts.filter((p) => p.status === 503);
    expect(refused.length).toBe(busy.seen.filter((s) => s.method === 'POST').length);
    for (const p of refused) expect(p).toEqual({ status: 503, text: 'busy', ra: '1' });
  });

  test('outlier detection with HTTP outcomes: a server answering 500 is ejected, one answering 404 never', async () => {
    const three = await serve(3);
    const [broken, missing] = three as [TestServer, TestServer, TestServer];
    broken.handler = (stream) => {
      stream.respond({ ':status': 500 });
      stream.end('broken');
    };
    missing.handler = (stream) => {
      stream.respond({ ':status': 404 });
      stream.end('no such order');
    };
    const dispatcher = dispatcherOver(three, { outlierDetection: { consecutiveFailures: 3 } });
    const verdicts: string[] = [];
    dispatcher.events.outlier?.subscribe((e) => verdicts.push(`${e.type} ${e.endpoint}`));
    const statuses = await load(90, 3, async (i) => (await fetch(`${ORIGIN}/o/${i}`, { dispatcher })).status);
    expect(verdicts).toEqual([`ejected ${broken.address}`]);
    expect(dispatcher.stats().outlier?.endpoints.find((e) => e.address === broken.address)?.ejected).toBe(
      true,
    );
    // a 500 is no gateway failure: not retried, the caller sees it; after the ejection no more of them
    expect(statuses.filter((s) => s === 500).length).toBe(broken.seen.length);
    expect(broken.seen.length).toBeLessThanOrEqual(5);
    expect(statuses.filter((s) => s === 404).length).toBe(missing.seen.length);
  });

  test('undici.request(): status, headers, body, trailers, and the answering endpoint in its context', async () => {
    const [one] = await serve(1);
    const server = one as TestServer;
    server.handler = (stream, seen) => {
      stream.on('end', () => {
        stream.respond(
          { ':status': 201, 'x-path': seen.path, 'set-cookie': ['a=1', 'b=2'] },
          { waitForTrailers: true },
        );
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-bytes': String(seen.bytes) }));
        stream.end('created');
      });
    };
    const dispatcher = dispatcherOver([server]);
    const res = await request(`${ORIGIN}/orders`, {
      dispatcher,
      method: 'POST',
      query: { n: 1, tag: 'a b' },
      headers: { 'x-one': '1', connection: 'keep-alive' },
      body: '{"n":1}',
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers['x-path']).toBe('/orders?n=1&tag=a%20b');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(await res.body.text()).toBe('created');
    expect(res.trailers).toEqual({ 'x-bytes': '7' });
    expect((res.context as { endpoint?: string }).endpoint).toBe(server.address);
    expect(server.seen[0]?.headers['x-one']).toBe('1');
    expect(server.seen[0]?.headers.connection).toBeUndefined();
  });

  test('a v7 handler: dispatch() with the controller pausing and resuming, trailers to onResponseEnd', async () => {
    const [one] = await serve(1);
    const server = one as TestServer;
    server.handler = (stream) => {
      stream.respond({ ':status': 200 }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-done': 'yes' }));
      for (let i = 0; i < 8; i++) stream.write(Buffer.alloc(32 * 1024, i));
      stream.end();
    };
    const dispatcher = dispatcherOver([server]);
    const chunks: Buffer[] = [];
    let pauses = 0;
    const result = await new Promise<{ status: number; trailers: unknown }>((resolve, reject) => {
      let status = 0;
      dispatcher.dispatch(
        { origin: ORIGIN, path: '/stream', method: 'GET' },
        {
          onRequestStart() {},
          onResponseStart(_c, statusCode) {
            status = statusCode;
          },
          onResponseData(controller, chunk) {
            chunks.push(chunk);
            // every chunk pauses the response; it flows again a turn later
            controller.pause();
            pauses++;
            setImmediate(() => controller.resume());
          },
          onResponseEnd(_c, trailers) {
            resolve({ status, trailers });
          },
          onResponseError(_c, err) {
            reject(err);
          },
        },
      );
    });
    expect(result).toEqual({ status: 200, trailers: { 'x-done': 'yes' } });
    expect(Buffer.concat(chunks).length).toBe(8 * 32 * 1024);
    expect(pauses).toBe(chunks.length);
  });

  test("Node's own fetch takes the dispatcher too", async () => {
    const three = await serve(3);
    const dispatcher = dispatcherOver(three);
    const nodeFetch = globalThis.fetch as (
      url: string,
      init: Omit<RequestInit, 'dispatcher'> & { dispatcher: unknown },
    ) => Promise<Response>;
    const answers = await load(30, 5, async (i) => {
      const res = await nodeFetch(`${ORIGIN}/n/${i}`, { dispatcher, method: 'POST', body: `n=${i}` });
      return (await res.json()) as Answer;
    });
    expect(answers.map((a) => a.bytes)).toEqual(Array.from({ length: 30 }, (_, i) => `n=${i}`.length));
    expect(new Set(answers.map((a) => a.server)).size).toBe(3);
    console.log(
      `Node ${process.versions.node}'s fetch (undici ${process.versions.undici}) through the dispatcher: ok`,
    );
  });

  test("as the global dispatcher, with a fallback: Node's fetch and undici's go through the stack for its origin", async () => {
    const [one, other] = await serve(2);
    const agent = new Agent();
    dispatchers.push(agent);
    const dispatcher = dispatcherOver([one as TestServer], { fallback: agent });
    const before = getGlobalDispatcher();
    setGlobalDispatcher(dispatcher);
    try {
      const mine = await globalThis.fetch(`${ORIGIN}/g`);
      expect(((await mine.json()) as Answer).server).toBe('s1');
      const viaUndici = await fetch(`${ORIGIN}/u`);
      expect(((await viaUndici.json()) as Answer).path).toBe('/u');
      // another origin: the Agent sends it (over HTTP/1.1, which this HTTP/2-only server refuses)
      await expect(globalThis.fetch(`http://${(other as TestServer).address}/x`)).rejects.toThrow();
      expect((other as TestServer).seen).toEqual([]);
    } finally {
      setGlobalDispatcher(before);
    }
    expect((one as TestServer).seen.map((s) => s.path)).toEqual(['/g', '/u']);
  });

  test('TLS: an https origin over three servers with a self-signed certificate for its host', async () => {
    const tls = selfSigned('orders.test');
    const three = await serve(3, { tls });
    const dispatcher = dispatcherOver(three, { connectOptions: { ca: tls.cert } }, 'https://orders.test');
    const answers = await load(60, 6, async (i) => {
      const res = await fetch(`https://orders.test/t/${i}`, { dispatcher });
      return (await res.json()) as Answer;
    });
    expect(new Set(answers.map((a) => a.server)).size).toBe(3);
    for (const s of three) expect(s.seen[0]?.headers[':authority']).toBe('orders.test');

    // a certificate for another name fails the connection, and the request says so
    const other = dispatcherOver(
      three,
      { connectOptions: { ca: tls.cert }, balancer: { failFastMs: 500 } },
      'https://billing.test',
    );
    await expect(fetch('https://billing.test/x', { dispatcher: other })).rejects.toMatchObject({
      cause: expect.objectContaining({ message: expect.stringMatching(/billing\.test/) }),
    });
  });

  test("without discovery, DNS resolves the origin's host: the servers behind one name share the requests", async () => {
    const hosts = pickHosts(3);
    const port = await freePort(hosts[0] as string);
    const three = await Promise.all(hosts.map((host, i) => startServer({ host, port, name: `d${i + 1}` })));
    servers.push(...three);
    const dnsmasq = await startDnsmasq({ hosts: { 'orders.test': hosts } });
    dnsServers.push(dnsmasq);
    const origin = `http://orders.test:${port}`;
    const dispatcher = towerDispatcher(origin, { dns: { servers: [dnsmasq.address] } });
    dispatchers.push(dispatcher);
    const answers = await load(60, 6, async (i) => {
      const res = await fetch(`${origin}/d/${i}`, { dispatcher });
      return (await res.json()) as Answer;
    });
    expect(new Set(answers.map((a) => a.server))).toEqual(new Set(['d1', 'd2', 'd3']));
  });
});

describe('the dispatcher', () => {
  test('a request to another origin fails naming both, or goes to the fallback', async () => {
    const [one, two] = await serve(2);
    const dispatcher = dispatcherOver([one as TestServer]);
    await expect(fetch(`http://${(two as TestServer).address}/x`, { dispatcher })).rejects.toMatchObject({
      cause: expect.objectContaining({
        code: 'UND_ERR_INVALID_ARG',
        message: expect.stringMatching(
          /for http:\/\/orders\.test:8080 cannot send a request to http:\/\/127/,
        ),
      }),
    });
    const agent = new Agent({ allowH2: true });
    dispatchers.push(agent);
    const withFallback = dispatcherOver([one as TestServer], { fallback: agent });
    const elsewhere = await request(`https://localhost:1/`, { dispatcher: withFallback }).catch(
      (e: Error) => e,
    );
    // the Agent tried (and failed to connect): it was the Agent's request
    expect(elsewhere).toMatchObject({ code: 'ECONNREFUSED' });
    const mine = await fetch(`${ORIGIN}/mine`, { dispatcher: withFallback });
    expect(((await mine.json()) as Answer).server).toBe('s1');
  });

  test('CONNECT, upgrade and the options undici 7 refuses are refused clearly', async () => {
    const [one] = await serve(1);
    const dispatcher = dispatcherOver([one as TestServer]);
    await expect(request(`${ORIGIN}/`, { dispatcher, upgrade: 'websocket' })).rejects.toMatchObject({
      code: 'UND_ERR_NOT_SUPPORTED',
      message: expect.stringMatching(/CONNECT or upgrade/),
    });
    await expect(dispatcher.connect({ origin: ORIGIN, path: '/' })).rejects.toThrow(/CONNECT or upgrade/);
    await expect(
      request(`${ORIGIN}/`, { dispatcher, expectContinue: true, method: 'PUT', body: 'x' }),
    ).rejects.toMatchObject({
      code: 'UND_ERR_NOT_SUPPORTED',
    });
    await expect(
      request(`${ORIGIN}/`, { dispatcher, headers: { 'transfer-encoding': 'chunked' } }),
    ).rejects.toMatchObject({
      code: 'UND_ERR_INVALID_ARG',
    });
    await expect(request(`${ORIGIN}/`, { dispatcher, headers: { te: 'gzip' } })).rejects.toThrow(/trailers/);
    expect((one as TestServer).seen).toEqual([]);
    // accepted and without effect over HTTP/2
    const res = await request(`${ORIGIN}/ok`, { dispatcher, reset: true, blocking: true });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  test('headersTimeout and bodyTimeout fail with undici’s errors and reset the stream', async () => {
    const [one] = await serve(1);
    const server = one as TestServer;
    server.handler = stall(['/slow-body']);
    const dispatcher = dispatcherOver([server], { headersTimeout: 200 });
    await expect(request(`${ORIGIN}/slow-headers`, { dispatcher })).rejects.toBeInstanceOf(
      errors.HeadersTimeoutError,
    );
    const res = await request(`${ORIGIN}/slow-body`, { dispatcher, bodyTimeout: 200 });
    await expect(res.body.text()).rejects.toBeInstanceOf(errors.BodyTimeoutError);
    await expect.poll(() => server.seen.map((s) => s.rstCode)).toEqual([8, 8]);
  });

  test('long timeouts (2 s and more) are checked by the shared sweep, with the same errors', async () => {
    const [one] = await serve(1);
    const server = one as TestServer;
    server.handler = stall(['/slow-body']);
    const dispatcher = dispatcherOver([server], { headersTimeout: 2_000 });
    const started = performance.now();
    await expect(request(`${ORIGIN}/slow-headers`, { dispatcher })).rejects.toBeInstanceOf(
      errors.HeadersTimeoutError,
    );
    // never early; at most one sweep late
    expect(performance.now() - started).toBeGreaterThanOrEqual(2_000);
    const res = await request(`${ORIGIN}/slow-body`, { dispatcher, bodyTimeout: 2_000 });
    await expect(res.body.text()).rejects.toBeInstanceOf(errors.BodyTimeoutError);
    await expect.poll(() => server.seen.map((s) => s.rstCode)).toEqual([8, 8]);
  });

  test('timeoutMs is a deadline over the whole request, body included', async () => {
    const [one] = await serve(1);
    const server = one as TestServer;
    server.handler = stall('all');
    const dispatcher = dispatcherOver([server], { timeoutMs: 300 });
    const started = performance.now();
    const res = await request(`${ORIGIN}/t`, { dispatcher });
    await expect(res.body.text()).rejects.toMatchObject({ name: 'DeadlineExceededError' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  test('close() lets requests in flight finish and refuses new ones; destroy() fails them', async () => {
    const [one] = await serve(1, { latencyMs: 200 });
    const server = one as TestServer;
    const dispatcher = dispatcherOver([server]);
    const inFlight = fetch(`${ORIGIN}/a`, { dispatcher });
    await expect.poll(() => server.seen.length).toBe(1);
    const closed = dispatcher.close();
    await expect(fetch(`${ORIGIN}/b`, { dispatcher })).rejects.toMatchObject({
      cause: expect.objectContaining({ code: 'UND_ERR_CLOSED' }),
    });
    expect((await inFlight).status).toBe(200);
    await closed;
    expect(dispatcher.readiness).toBe('closed');

    const second = dispatcherOver([server]);
    const doomed = request(`${ORIGIN}/c`, { dispatcher: second }).catch((e: unknown) => e);
    await expect.poll(() => server.seen.length).toBe(2);
    await second.destroy();
    expect(await doomed).toMatchObject({ code: 'UND_ERR_DESTROYED' });
    await expect.poll(() => server.seen[1]?.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
  });

  test('bad options throw ConfigError naming the option', () => {
    const bad: [string, TowerDispatcherOptions | undefined, RegExp][] = [
      ['ftp://orders.test', {}, /"origin"/],
      ['http://orders.test/path', {}, /"origin"/],
      [ORIGIN, { timeoutMs: -1 }, /"timeoutMs"/],
      [ORIGIN, { headersTimeout: Number.NaN }, /"headersTimeout"/],
      [ORIGIN, { replayBytes: -1 }, /"replayBytes"/],
      [ORIGIN, { fallback: {} as Dispatcher }, /"fallback"/],
      [ORIGIN, { layers: { outer: [1 as never] } }, /"layers\.outer\[0\]"/],
      [ORIGIN, { health: { path: 'healthz' } }, /"path"/],
      [ORIGIN, { retry: { maxAttempts: 0 } }, /maxAttempts/],
    ];
    for (const [origin, options, message] of bad) {
      expect(() => towerDispatcher(origin, { discovery: staticList([]), ...options })).toThrow(message);
      expect(() => towerDispatcher(origin, { discovery: staticList([]), ...options })).toThrow(ConfigError);
    }
  });

  test('an answer passes through a layer of your own, once per request (outer) and per attempt (inner)', async () => {
    const [one] = await serve(1);
    const seen: string[] = [];
    const noting =
      (where: string): Layer<Http2Request, Http2Response> =>
      (inner) => ({
        call(req, ctx) {
          seen.push(`${where} ${req.path}`);
          return inner.call(req, ctx);
        },
      });
    const dispatcher = dispatcherOver([one as TestServer], {
      layers: {
        outer: [noting('outer')],
        inner: [noting('inner')],
      },
    });
    await (await fetch(`${ORIGIN}/l`, { dispatcher })).text();
    expect(seen).toEqual(['outer /l', 'inner /l']);
  });

  test('the stats and events of the parts', async () => {
    const three = await serve(3);
    const dispatcher = dispatcherOver(three, { health: { path: '/healthz', intervalMs: 1_000 } });
    const health: string[] = [];
    dispatcher.events.health?.subscribe((e) => health.push(e.type));
    await expect.poll(() => dispatcher.readiness).toBe('ready');
    await (await fetch(`${ORIGIN}/s`, { dispatcher })).text();
    const stats = dispatcher.stats();
    expect(stats.balancer.target).toBe(ORIGIN);
    expect(stats.balancer.endpoints).toHaveLength(3);
    expect(stats.retry?.calls).toBe(1);
    expect(stats.outlier?.endpoints).toHaveLength(3);
    await expect.poll(() => three.every((s) => s.seen.some((r) => r.path === '/healthz'))).toBe(true);
  }, 10_000);
});
