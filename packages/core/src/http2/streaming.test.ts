// Streaming bodies of http2Endpoint against real node:http2 servers on
// loopback addresses: downloads and uploads with backpressure, replayable
// bodies, cancellation, trailers and failures after the headers.
import { getEventListeners } from 'node:events';
import * as http2 from 'node:http2';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pickHosts } from '@grpc-tower/testing';
import { filter, firstValueFrom } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import { background, newContext } from '../context/index.js';
import { CancelledError, ConfigError, ResourceExhaustedError } from '../errors.js';
import { Http2Body, http2Body } from './body.js';
import { type Http2Endpoint, type Http2Request, Http2RequestError, http2Endpoint } from './endpoint.js';
import { isIdempotent, isReplayable } from './request.js';
import {
  MiB,
  type TestServer,
  type WriteState,
  readBody,
  shaOf,
  startServer,
  writeBody,
} from './test/server.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server answering with `onStream`, and a ready endpoint for it; both closed after the test. */
async function setup(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<{ srv: TestServer; ep: Http2Endpoint }> {
  const [host] = pickHosts(1);
  const srv = await startServer(host!, onStream);
  cleanups.push(() => srv.stop());
  const ep = http2Endpoint(srv.address, { scheme: 'http' });
  cleanups.push(() => ep.close({ graceMs: 0 }));
  await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
  return { srv, ep };
}

const newWriteState = (): WriteState => ({ written: 0, waiting: false, blocked: 0 });

/** Lets the event loop run a few turns (I/O included), without measuring time. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** `n` bytes of `fill`, as `size`-byte chunks made one at a time; `state.produced` counts them. */
async function* generate(
  n: number,
  state: { produced: number } = { produced: 0 },
  size = 64 * 1024,
): AsyncGenerator<Buffer> {
  for (let i = 0; state.produced < n; i++) {
    const len = Math.min(size, n - state.produced);
    state.produced += len;
    yield Buffer.alloc(len, i & 0xff);
  }
}

/** The SHA-256 {@link generate} gives for `n` bytes. */
function generatedSha(n: number, size = 64 * 1024): string {
  const chunks: Buffer[] = [];
  for (let i = 0, at = 0; at < n; i++, at += size)
    chunks.push(Buffer.alloc(Math.min(size, n - at), i & 0xff));
  return shaOf(chunks);
}

/** A server that reads each request body whole and answers with its size and SHA-256. */
function echoDigest(seen: { bytes: number; sha: string }[] = []) {
  return (stream: http2.ServerHttp2Stream) => {
    readBody(stream).then(
      (digest) => {
        seen.push(digest);
        if (stream.closed) return;
        stream.respond({ ':status': 200 });
        stream.end(JSON.stringify(digest));
      },
      () => undefined,
    );
  };
}

/** `global.gc` when node was started with --expose-gc, else the same function made available now. */
function collector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * The memory in use once garbage is collected. V8 frees the memory of dead
 * Buffers on a background thread after a collection, so this collects a
 * few times with turns of the event loop between.
 */
async function liveMemory(gc: () => void): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc();
    await turns(1);
  }
  return process.memoryUsage();
}

describe('http2Endpoint streamed responses', () => {
  test('a 50 MB response streams through in bounded memory', async () => {
    const total = 50 * MiB;
    const { ep } = await setup((stream) => {
      stream.respond({ ':status': 200 });
      void writeBody(stream, total, newWriteState());
    });
    const gc = collector();
    const base = await liveMemory(gc);
    const res = await ep.call({ path: '/big', response: 'stream' }, background);
    expect(res.body.length).toBe(0);
    let read = 0;
    let sampled = 0;
    let maxHeap = base.heapUsed;
    let retained: NodeJS.MemoryUsage | undefined;
    for await (const chunk of res.stream!) {
      read += (chunk as Buffer).length;
      if (read - sampled >= MiB) {
        sampled = read;
        maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed);
      }
      if (retained === undefined && read >= total / 2) retained = await liveMemory(gc);
    }
    expect(read).toBe(total);
    const heapGrowth = retained!.heapUsed - base.heapUsed;
    const bufferGrowth = retained!.arrayBuffers - base.arrayBuffers;
    console.info(
      `50 MB download: heap growth ${(heapGrowth / MiB).toFixed(2)} MiB and Buffer growth ` +
        `${(bufferGrowth / MiB).toFixed(2)} MiB after gc midway; largest heap sampled while reading ` +
        `${((maxHeap - base.heapUsed) / MiB).toFixed(2)} MiB above the start`,
    );
    expect(heapGrowth).toBeLessThan(10 * MiB);
    expect(bufferGrowth).toBeLessThan(10 * MiB);
    await expect(res.trailers).resolves.toEqual({});
    await expect.poll(() => ep.pending).toBe(0);
  });

  test('a reader that stops reading stops the server (backpressure), bytes in flight stay bounded', async () => {
    const total = 20 * MiB;
    const state = newWriteState();
    const { ep } = await setup((stream) => {
      stream.respond({ ':status': 200 });
      void writeBody(stream, total, state);
    });
    const res = await ep.call({ path: '/slow-reader', response: 'stream' }, background);
    // nothing is read: the server fills the flow-control window and its buffers, then waits
    // (Node.js 20 gets there at its first full buffer; 22 and later drain that one into the
    // window and stop at the next), so it is stalled once it waits and writes nothing more
    let stalled = -1;
    await expect
      .poll(async () => {
        const before = state.written;
        await turns(20);
        if (state.waiting && state.written === before) stalled = before;
        return stalled;
      })
      .toBeGreaterThan(0);
    await turns(50);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(state.waiting).toBe(true);
    expect(state.written).toBe(stalled);
    expect(stalled).toBeLessThan(2 * MiB);
    // read in small steps, letting the server run between them: it stays a bounded lead ahead
    let read = 0;
    let lead = 0;
    let step = 0;
    for await (const chunk of res.stream!) {
      read += (chunk as Buffer).length;
      lead = Math.max(lead, state.written - read);
      if (read - step >= 256 * 1024) {
        step = read;
        await turns(3);
      }
    }
    expect(read).toBe(total);
    expect(state.blocked).toBeGreaterThan(1);
    expect(lead).toBeLessThan(2 * MiB);
    console.info(
      `slow reader: the server stalled after ${(stalled / 1024).toFixed(0)} KiB unread; ` +
        `its largest lead over the reader ${(lead / 1024).toFixed(0)} KiB`,
    );
  });

  test('destroying a download midway cancels its stream (CANCEL), frees it, and the session stays usable', async () => {
    const closed: number[] = [];
    const { srv, ep } = await setup((stream, headers) => {
      if (headers[':path'] === '/after') {
        stream.respond({ ':status': 200 });
        stream.end('after');
        return;
      }
      stream.on('close', () => closed.push(stream.rstCode));
      stream.respond({ ':status': 200 });
      void writeBody(stream, Number.POSITIVE_INFINITY, newWriteState());
    });
    const res = await ep.call({ path: '/endless', response: 'stream' }, background);
    expect(ep.pending).toBe(1);
    let read = 0;
    for await (const chunk of res.stream!) {
      read += (chunk as Buffer).length;
      if (read >= MiB) break; // ends the loop by destroying the stream
    }
    expect(res.stream!.destroyed).toBe(true);
    await expect.poll(() => closed).toEqual([http2.constants.NGHTTP2_CANCEL]);
    await expect.poll(() => ep.pending).toBe(0);
    await expect(res.trailers).resolves.toEqual({});
    const after = await ep.call({ path: '/after' }, background);
    expect(after.body.toString()).toBe('after');
    expect(srv.sessions.length).toBe(1);
  });

  test('consume() hands a streamed body to a sink: every chunk, pause and resume, the trailers at its end', async () => {
    const { ep } = await setup((stream) => {
      stream.respond({ ':status': 200 }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-total': '3MiB' }));
      void writeBody(stream, 3 * MiB, newWriteState());
    });
    const res = await ep.call({ path: '/sink', response: 'stream' }, background);
    expect(res.consume).toBeTypeOf('function');
    let bytes = 0;
    let pauses = 0;
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      res.consume?.({
        data: (chunk) => {
          bytes += chunk.length;
          if (bytes < MiB || pauses > 0) return true;
          // hold the body a moment, as a handler applying backpressure does
          pauses++;
          setTimeout(() => res.resume?.(), 20);
          return false;
        },
        end: resolve,
        error: reject,
      });
    });
    expect(bytes).toBe(3 * MiB);
    expect(pauses).toBe(1);
    expect(trailers['x-total']).toBe('3MiB');
    await expect(res.trailers).resolves.toMatchObject({ 'x-total': '3MiB' });
    await expect.poll(() => ep.pending).toBe(0);
  });

  test('a streamed body whose connection dies midway fails its stream (Node ends it first, as if whole)', async () => {
    const { ep } = await setup((stream) => {
      stream.respond({ ':status': 200 });
      stream.write('partial');
      setTimeout(() => stream.session?.destroy(), 20);
    });
    const res = await ep.call({ path: '/cut', response: 'stream' }, background);
    const chunks: Buffer[] = [];
    const err = await (async () => {
      for await (const chunk of res.stream!) chunks.push(chunk as Buffer);
    })().catch((e: unknown) => e);
    expect(Buffer.concat(chunks).toString()).toBe('partial');
    expect(err).toBeInstanceOf(Http2RequestError);
    expect(err).toMatchObject({ afterHeaders: true });
  });

  test('a sink hears a failure after the headers; cancel() resets the stream with CANCEL', async () => {
    const closed: number[] = [];
    const { ep } = await setup((stream, headers) => {
      stream.on('close', () => closed.push(stream.rstCode));
      stream.respond({ ':status': 200 });
      if (headers[':path'] === '/cut') {
        stream.write('partial');
        setTimeout(() => stream.session?.destroy(), 20);
        return;
      }
      void writeBody(stream, Number.POSITIVE_INFINITY, newWriteState());
    });
    const cut = await ep.call({ path: '/cut', response: 'stream' }, background);
    const err = await new Promise<unknown>((resolve) =>
      cut.consume?.({ data: () => true, end: () => resolve('ended'), error: resolve }),
    );
    expect(err).toBeInstanceOf(Http2RequestError);
    expect(err).toMatchObject({ afterHeaders: true });

    const endless = await ep.call({ path: '/endless', response: 'stream' }, background);
    let seen = 0;
    const over = new Promise<boolean>((resolve) => endless.whenOver?.(resolve));
    endless.consume?.({
      data: (chunk) => {
        seen += chunk.length;
        if (seen >= 256 * 1024) endless.cancel?.();
        return true;
      },
      end: () => undefined,
      error: () => undefined,
    });
    expect(await over).toBe(false);
    await expect.poll(() => closed.at(-1)).toBe(http2.constants.NGHTTP2_CANCEL);
    await expect.poll(() => ep.pending).toBe(0);
  });

  test('close() waits for a streamed download being read, then closes', async () => {
    const { ep } = await setup((stream) => {
      stream.respond({ ':status': 200 });
      void writeBody(stream, 4 * MiB, newWriteState());
    });
    const res = await ep.call({ path: '/d', response: 'stream' }, background);
    let closed = false;
    const closing = ep.close().then(() => {
      closed = true;
    });
    let read = 0;
    for await (const chunk of res.stream!) {
      read += (chunk as Buffer).length;
      expect(closed).toBe(false);
    }
    await closing;
    expect(read).toBe(4 * MiB);
    expect(ep.readiness).toBe('closed');
  });
});

describe('http2Endpoint trailers', () => {
  const withTrailers = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const path = String(headers[':path']);
    if (path === '/none') {
      stream.respond({ ':status': 200 });
      stream.end('plain');
      return;
    }
    stream.respond({ ':status': 200 }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc123' }));
    void writeBody(stream, path === '/big' ? 2 * MiB : 10, newWriteState());
  };

  test('arrive with a buffered response, settled when the call resolves', async () => {
    const { ep } = await setup(withTrailers);
    const res = await ep.call({ path: '/small' }, background);
    expect(res.body.length).toBe(10);
    expect(res.stream).toBeUndefined();
    expect(await res.trailers).toMatchObject({ 'x-checksum': 'abc123' });
    const none = await ep.call({ path: '/none' }, background);
    expect(await none.trailers).toEqual({});
  });

  test('arrive with a streamed response, settled when its body ends', async () => {
    const { ep } = await setup(withTrailers);
    const res = await ep.call({ path: '/big', response: 'stream' }, background);
    let read = 0;
    for await (const chunk of res.stream!) read += (chunk as Buffer).length;
    expect(read).toBe(2 * MiB);
    expect(await res.trailers).toMatchObject({ 'x-checksum': 'abc123' });
    const none = await ep.call({ path: '/none', response: 'stream' }, background);
    expect(Buffer.concat(await none.stream!.toArray()).toString()).toBe('plain');
    expect(await none.trailers).toEqual({});
  });
});

describe('http2Endpoint stream request bodies', () => {
  test('a 20 MB upload from an async generator arrives whole, pulled only as fast as the server reads', async () => {
    const total = 20 * MiB;
    const source = { produced: 0 };
    let received = 0;
    let server: http2.ServerHttp2Stream | undefined;
    const { ep } = await setup((stream) => {
      server = stream;
      stream.pause(); // reads nothing until the test lets it
    });
    let lead = 0;
    async function* upload(): AsyncGenerator<Buffer> {
      for await (const chunk of generate(total, source)) {
        lead = Math.max(lead, source.produced - received);
        yield chunk;
      }
    }
    const call = ep.call({ method: 'PUT', path: '/upload', body: upload() }, background);
    await expect.poll(() => server !== undefined && source.produced > 0).toBe(true);
    await turns(50);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const stalled = source.produced;
    await turns(20);
    expect(source.produced).toBe(stalled);
    expect(stalled).toBeLessThan(2 * MiB);
    const digest = readBody(server!).then((d) => {
      server!.respond({ ':status': 200 });
      server!.end(JSON.stringify(d));
      return d;
    });
    server!.on('data', (c: Buffer) => {
      received += c.length;
    });
    server!.resume();
    const res = await call;
    expect(res.status).toBe(200);
    expect(await digest).toEqual({ bytes: total, sha: generatedSha(total) });
    expect(lead).toBeLessThan(2 * MiB);
    console.info(
      `20 MB upload: the generator stalled after ${(stalled / 1024).toFixed(0)} KiB while the server ` +
        `read nothing; its largest lead over the server ${(lead / 1024).toFixed(0)} KiB`,
    );
  });

  test('a Readable body is streamed once; a second send fails clearly', async () => {
    const { srv, ep } = await setup(echoDigest());
    const body = Readable.from(generate(3 * MiB));
    const req: Http2Request = { method: 'POST', path: '/once', body };
    expect(isReplayable(req)).toBe(true);
    const res = await ep.call(req, background);
    expect(JSON.parse(res.body.toString())).toEqual({ bytes: 3 * MiB, sha: generatedSha(3 * MiB) });
    expect(isReplayable(req)).toBe(false);
    const err = await ep.call(req, background).catch((e: unknown) => e);
    // a limit of this process, never counted against the server
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect(err).toMatchObject({ retryable: false });
    expect((err as Error).message).toMatch(/already sent once and cannot be sent again/);
    expect(srv.sessions.length).toBe(1);
  });

  test('an abort during an upload rejects with the reason, resets the stream and ends the source', async () => {
    const closed: number[] = [];
    const { ep } = await setup((stream) => {
      stream.on('close', () => closed.push(stream.rstCode));
      stream.pause(); // reads nothing: the upload waits on flow control
    });
    let ended = false;
    const source = { produced: 0 };
    async function* upload(): AsyncGenerator<Buffer> {
      try {
        yield* generate(10 * MiB, source);
      } finally {
        ended = true;
      }
    }
    const controller = new AbortController();
    const scope = newContext({ signal: controller.signal });
    cleanups.push(() => scope.release());
    const call = ep.call({ method: 'PUT', path: '/up', body: upload() }, scope.context);
    await expect.poll(() => source.produced).toBeGreaterThan(0);
    controller.abort();
    await expect(call).rejects.toBeInstanceOf(CancelledError);
    expect(ep.pending).toBe(0);
    await expect.poll(() => closed).toEqual([http2.constants.NGHTTP2_CANCEL]);
    await expect.poll(() => ended).toBe(true);
    expect(source.produced).toBeLessThan(2 * MiB);
  });

  test('a GET or DELETE with a body sends it', async () => {
    const { ep } = await setup(echoDigest());
    for (const method of ['GET', 'DELETE']) {
      const res = await ep.call({ method, path: '/m', body: 'abc' }, background);
      expect(JSON.parse(res.body.toString())).toMatchObject({ bytes: 3 });
      const streamed = await ep.call({ method, path: '/m', body: Readable.from(['ab', 'cd']) }, background);
      expect(JSON.parse(streamed.body.toString())).toMatchObject({ bytes: 4 });
    }
  });

  test('a body source that fails cancels the request', async () => {
    const closed: number[] = [];
    const { ep } = await setup((stream) => {
      stream.on('close', () => closed.push(stream.rstCode));
      stream.resume();
    });
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(1000);
      throw new Error('disk on fire');
    }
    const err = await ep.call({ path: '/fail', body: failing() }, background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledError);
    expect((err as Error).message).toMatch(/request body for .* failed while it was read: disk on fire/);
    await expect.poll(() => closed).toEqual([http2.constants.NGHTTP2_CANCEL]);
    expect(ep.pending).toBe(0);
  });
});

describe('Http2Body', () => {
  test('within its replay buffer, it is sent twice and the server receives the same bytes twice', async () => {
    const seen: { bytes: number; sha: string }[] = [];
    const { ep } = await setup(echoDigest(seen));
    const size = 300 * 1024;
    const body = http2Body(generate(size, undefined, 10_000));
    const req: Http2Request = { method: 'POST', path: '/twice', body };
    await ep.call(req, background);
    expect(body.replayable).toBe(true);
    expect(body.bytes).toBe(size);
    expect(isReplayable(req)).toBe(true);
    await ep.call(req, background);
    const expected = { bytes: size, sha: generatedSha(size, 10_000) };
    expect(seen).toEqual([expected, expected]);
  });

  test('after an attempt that failed midway, the next sends it from its start', async () => {
    const seen: { bytes: number; sha: string }[] = [];
    let attempts = 0;
    const answer = echoDigest(seen);
    const { ep } = await setup((stream) => {
      if (++attempts > 1) {
        answer(stream);
        return;
      }
      let got = 0;
      stream.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= 100 * 1024 && !stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
    });
    const size = 512 * 1024;
    const body = http2Body(generate(size, undefined, 16 * 1024));
    const req: Http2Request = { method: 'POST', path: '/retry', body };
    const err = await ep.call(req, background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Http2RequestError);
    expect(err).toMatchObject({ refused: false, afterHeaders: false });
    expect(isReplayable(req)).toBe(true);
    const res = await ep.call(req, background);
    expect(res.status).toBe(200);
    expect(seen).toEqual([{ bytes: size, sha: generatedSha(size, 16 * 1024) }]);
  });

  test('past its replay buffer it is not replayable, and a second send fails clearly', async () => {
    const seen: { bytes: number; sha: string }[] = [];
    const { ep } = await setup(echoDigest(seen));
    const size = 3 * MiB;
    const body = http2Body(generate(size), { replayBytes: MiB });
    const req: Http2Request = { method: 'POST', path: '/big', body };
    await ep.call(req, background);
    expect(seen).toEqual([{ bytes: size, sha: generatedSha(size) }]);
    expect(body.replayable).toBe(false);
    expect(body.bytes).toBe(size);
    expect(isReplayable(req)).toBe(false);
    const err = await ep.call(req, background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect(err).toMatchObject({
      retryable: false,
      endpoint: ep.address,
      message: `request body of ${size} bytes passed its replay buffer (${MiB} bytes) and cannot be sent again`,
    });
    expect(seen.length).toBe(1);
    expect(ep.pending).toBe(0);
  });

  test('a second attempt while the first still reads the source fails at once', async () => {
    const { ep } = await setup(echoDigest());
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* slow(): AsyncGenerator<string> {
      yield 'first ';
      await gate;
      yield 'second';
    }
    const body = http2Body(slow());
    const first = ep.call({ method: 'POST', path: '/a', body }, background);
    await expect.poll(() => body.bytes).toBe(6);
    await expect(ep.call({ method: 'POST', path: '/b', body }, background)).rejects.toThrow(
      'request body is being sent by another attempt (6 bytes read so far) and cannot be sent twice at once',
    );
    release();
    expect(JSON.parse((await first).body.toString())).toMatchObject({ bytes: 12 });
    // ended within its buffer: any number of attempts, even at once
    const again = await Promise.all([
      ep.call({ method: 'POST', path: '/c', body }, background),
      ep.call({ method: 'POST', path: '/d', body }, background),
    ]);
    expect(again.map((r) => JSON.parse(r.body.toString()).bytes)).toEqual([12, 12]);
  });

  test('a Buffer or string source is held whole; bad sources and options are named', () => {
    const big = http2Body(Buffer.alloc(2 * MiB), { replayBytes: 10 });
    expect([big.replayable, big.bytes]).toEqual([true, 2 * MiB]);
    expect(http2Body('héllo').bytes).toBe(6);
    expect(http2Body(Readable.from([])) instanceof Http2Body).toBe(true);
    expect(() => http2Body(42 as never)).toThrow(ConfigError);
    expect(() => http2Body('x', { replayBytes: -1 })).toThrow(
      /http2Body: option "replayBytes" must be a finite number >= 0/,
    );
  });
});

describe('http2Endpoint cancellation', () => {
  test('an abort before the headers of a streamed response rejects with the reason and resets the stream', async () => {
    const closed: number[] = [];
    const { ep } = await setup((stream) => {
      stream.on('close', () => closed.push(stream.rstCode));
    });
    const controller = new AbortController();
    const scope = newContext({ signal: controller.signal });
    cleanups.push(() => scope.release());
    const call = ep.call({ path: '/never', response: 'stream' }, scope.context);
    await expect.poll(() => ep.pending).toBe(1);
    controller.abort();
    await expect(call).rejects.toBeInstanceOf(CancelledError);
    expect(ep.pending).toBe(0);
    await expect.poll(() => closed).toEqual([http2.constants.NGHTTP2_CANCEL]);
    expect(getEventListeners(scope.context.signal, 'abort')).toHaveLength(0);
  });

  test('an abort during a streamed body destroys the stream with the reason and resets it', async () => {
    const closed: number[] = [];
    const { ep } = await setup((stream) => {
      stream.on('close', () => closed.push(stream.rstCode));
      stream.respond({ ':status': 200 });
      void writeBody(stream, Number.POSITIVE_INFINITY, newWriteState());
    });
    const controller = new AbortController();
    const scope = newContext({ signal: controller.signal });
    cleanups.push(() => scope.release());
    const res = await ep.call({ path: '/endless', response: 'stream' }, scope.context);
    const signal = scope.context.signal;
    expect(getEventListeners(signal, 'abort').length).toBeGreaterThan(0);
    let read = 0;
    const reading = (async () => {
      for await (const chunk of res.stream!) {
        read += (chunk as Buffer).length;
        if (read >= 256 * 1024) controller.abort();
      }
    })();
    await expect(reading).rejects.toBeInstanceOf(CancelledError);
    expect(res.stream!.errored).toBeInstanceOf(CancelledError);
    await expect.poll(() => closed).toEqual([http2.constants.NGHTTP2_CANCEL]);
    await expect.poll(() => ep.pending).toBe(0);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    await expect(res.trailers).resolves.toEqual({});
  });

  test('a streamed body that ends unlinks the call signal', async () => {
    const { ep } = await setup((stream) => {
      stream.respond({ ':status': 200 });
      stream.end('done');
    });
    const scope = newContext({ signal: new AbortController().signal });
    cleanups.push(() => scope.release());
    const signal = scope.context.signal;
    const before = getEventListeners(signal, 'abort').length;
    const res = await ep.call({ path: '/x', response: 'stream' }, scope.context);
    expect(Buffer.concat(await res.stream!.toArray()).toString()).toBe('done');
    await expect.poll(() => ep.pending).toBe(0);
    expect(getEventListeners(signal, 'abort')).toHaveLength(before);
  });
});

describe('http2Endpoint failures and the commit point', () => {
  const resetAfterHeaders = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    if (headers[':path'] === '/refuse') {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    stream.respond({ ':status': 200 });
    // reset at once, without the END_STREAM that close() would send first
    stream.write(Buffer.alloc(1000), () => stream.destroy(new Error('the server failed')));
  };

  test('a failure after the headers of a buffered response is afterHeaders, not refused', async () => {
    const { ep } = await setup(resetAfterHeaders);
    const err = await ep.call({ path: '/reset' }, background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Http2RequestError);
    expect(err).toMatchObject({ afterHeaders: true, refused: false, endpoint: ep.address });
    expect(ep.pending).toBe(0);
  });

  test('a failure after the headers of a streamed response is an error on its stream', async () => {
    const { ep } = await setup(resetAfterHeaders);
    const res = await ep.call({ path: '/reset', response: 'stream' }, background);
    expect(res.status).toBe(200);
    const err = await res.stream!.toArray().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Http2RequestError);
    expect(err).toMatchObject({ afterHeaders: true, refused: false });
    await expect(res.trailers).resolves.toEqual({});
    await expect.poll(() => ep.pending).toBe(0);
  });

  test('a stream refused before its headers is refused, not afterHeaders', async () => {
    const { ep } = await setup(resetAfterHeaders);
    for (const response of ['buffer', 'stream'] as const) {
      const err = await ep.call({ path: '/refuse', response }, background).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Http2RequestError);
      expect(err).toMatchObject({ refused: true, afterHeaders: false });
    }
  });

  test('a body of the wrong kind is refused with a ConfigError', async () => {
    const { ep } = await setup(echoDigest());
    await expect(ep.call({ path: '/', body: 42 as never }, background)).rejects.toBeInstanceOf(ConfigError);
    expect(ep.pending).toBe(0);
  });
});

describe('isIdempotent and isReplayable', () => {
  test.each([
    [{ path: '/' }, true],
    [{ path: '/', body: 'x' }, false],
    [{ path: '/', method: 'get' }, true],
    [{ path: '/', method: 'HEAD' }, true],
    [{ path: '/', method: 'options' }, true],
    [{ path: '/', method: 'PUT', body: 'x' }, true],
    [{ path: '/', method: 'Delete' }, true],
    [{ path: '/', method: 'POST' }, false],
    [{ path: '/', method: 'PATCH' }, false],
    [{ path: '/', method: 'POST', idempotent: true }, true],
    [{ path: '/', body: 'x', idempotent: false }, false],
    [{ path: '/', method: 'CONNECT' }, false],
  ] satisfies [Http2Request, boolean][])('isIdempotent(%j) is %s', (req, expected) => {
    expect(isIdempotent(req)).toBe(expected);
  });

  test('isReplayable: no body, Buffer and string bodies, Http2Body by its state, a plain stream until sent', () => {
    expect(isReplayable({ path: '/' })).toBe(true);
    expect(isReplayable({ path: '/', body: 'x' })).toBe(true);
    expect(isReplayable({ path: '/', body: Buffer.from('x') })).toBe(true);
    expect(isReplayable({ path: '/', body: http2Body(Readable.from(['x'])) })).toBe(true);
    expect(isReplayable({ path: '/', body: Readable.from(['x']) })).toBe(true);
  });
});
