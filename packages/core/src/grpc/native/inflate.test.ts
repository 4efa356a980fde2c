// Compressed responses on the native endpoint, against a raw HTTP/2 peer
// that writes exactly the frames each case needs: gzip and deflate messages
// are inflated off the event loop's thread, yet handed over in the order
// sent (uncompressed ones never overtake them), before the trailers, held
// by flow control like any other, and dropped, their zlib stream closed,
// when the call ends while they inflate.
import { createHook } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import type * as http2 from 'node:http2';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { pickHosts, trackResources } from '@grpc-tower/testing';
import { describe, expect, test } from 'vitest';
import { Status } from '../../status.js';
import type { GrpcResponse } from '../types.js';
import { afterEachCleanups, call, endpointsClosedAfter, failure } from './test/calls.js';
import { MessageDecoder } from './wire.js';
import { flood, grpcFrame, respondGrpc, startRawPeer } from './test/raw-peer.js';

const cleanups = afterEachCleanups();
const endpoint = endpointsClosedAfter(cleanups);

type Encoding = 'gzip' | 'deflate';

/** A message `tag:` followed by `size` zero bytes (compressible a thousandfold). */
const big = (tag: string, size: number): Buffer =>
  Buffer.concat([Buffer.from(`${tag}:`), Buffer.alloc(size)]);

/** How a test names a message: its text, or its tag and length when large. */
const label = (m: Buffer): string =>
  m.length > 64 ? `${m.toString('latin1', 0, m.indexOf(58))}×${m.length}` : m.toString();

/** A framed message, compressed with `encoding` when given. */
const framed = (message: Buffer, encoding?: Encoding): Buffer =>
  encoding === undefined
    ? grpcFrame(message)
    : grpcFrame(encoding === 'gzip' ? zlib.gzipSync(message) : zlib.deflateSync(message), { flag: 1 });

/**
 * Reads a committed stream to its end, one read at a time (each read asked
 * for when the previous message came, at once or on a timer when `lazy`),
 * recording the messages and the status in the order handed over.
 */
function readAll(res: GrpcResponse, lazy = false): { events: string[]; ended: Promise<void> } {
  const events: string[] = [];
  let ended!: () => void;
  const done = new Promise<void>((resolve) => {
    ended = resolve;
  });
  res.stream.start({
    onMessage: (m) => {
      events.push(label(m));
      if (lazy) setTimeout(() => res.stream.read(), 1);
      else res.stream.read();
    },
    onStatus: (s) => {
      events.push(`status ${s.code}`);
      ended();
    },
  });
  res.stream.read();
  return { events, ended: done };
}

/** A raw-peer path whose streams get response headers at once and their DATA when the test says. */
function heldPath(encoding: Encoding) {
  let arrived!: (stream: http2.ServerHttp2Stream) => void;
  const stream = new Promise<http2.ServerHttp2Stream>((resolve) => {
    arrived = resolve;
  });
  const behaviour = (s: http2.ServerHttp2Stream): void => {
    s.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-encoding': encoding },
      { waitForTrailers: true },
    );
    s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
    arrived(s);
  };
  return { behaviour, stream };
}

describe.each(['gzip', 'deflate'] as const)('%s responses', (encoding) => {
  // compressed (c) and uncompressed (u) messages, written in three groups so that an
  // uncompressed message follows a compressed one inside one DATA frame; the last
  // message is large, compressed, and followed at once by the trailers
  const plan: [Buffer, boolean][] = [
    [big('c1', 2 << 20), true],
    [Buffer.from('u2'), false],
    [Buffer.alloc(0), true],
    [Buffer.from('c3'), true],
    // an empty message last in its DATA frame
    [Buffer.alloc(0), false],
    [Buffer.from('u4'), false],
    [Buffer.from('u5'), false],
    [big('c6', 3 << 20), true],
    [Buffer.from('u7'), false],
    [big('c8', 3 << 20), true],
  ];
  const expected = plan.map(([m]) => label(m));
  const frames = plan.map(([m, compressed]) => framed(m, compressed ? encoding : undefined));
  const writes = [frames.slice(0, 5), frames.slice(5, 6), frames.slice(6)].map((group) =>
    Buffer.concat(group),
  );
  const headers = { 'grpc-encoding': encoding };

  test('interleaved compressed and uncompressed messages keep their order; the status comes after the last inflated one', async () => {
    const [host] = pickHosts(1) as [string];
    const peer = await startRawPeer(host, {
      '/i/mixed': (stream) =>
        respondGrpc(stream, writes, { 'grpc-status': '0', 'grpc-message': 'sent' }, headers),
      // a failure status right behind a large compressed message
      '/i/then-fail': (stream) =>
        respondGrpc(
          stream,
          [Buffer.concat([framed(Buffer.from('u0')), framed(big('c1', 3 << 20), encoding)])],
          { 'grpc-status': String(Status.ABORTED), 'grpc-message': 'after the message' },
          headers,
        ),
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    // a stream read as messages come, and one read on a timer (the wire held between reads)
    for (const lazy of [false, true]) {
      const res = (await call(ep, '/i/mixed', { kind: 'serverStream' })) as GrpcResponse;
      const { events, ended } = readAll(res, lazy);
      await ended;
      expect(events).toEqual([...expected, `status ${Status.OK}`]);
    }
    // committed at its status: the whole response, its last message included
    const unary = (await call(ep, '/i/mixed')) as GrpcResponse;
    expect(unary.unary?.messages.map(label)).toEqual(expected);
    expect(unary.unary?.status.details).toBe('sent');
    // a server's failure status, too, comes after the message it followed
    const failing = (await call(ep, '/i/then-fail', { kind: 'serverStream' })) as GrpcResponse;
    const { events, ended } = readAll(failing);
    await ended;
    expect(events).toEqual(['u0', `c1×${(3 << 20) + 3}`, `status ${Status.ABORTED}`]);
    expect(ep.pending).toBe(0);
  });

  test('what follows a compressed message is still checked once it is inflated: a bad prefix, a cut message', async () => {
    const [host] = pickHosts(1) as [string];
    const compressed = framed(big('c1', 1 << 20), encoding);
    const peer = await startRawPeer(host, {
      '/i/bad-flag': (stream) =>
        respondGrpc(
          stream,
          [Buffer.concat([compressed, grpcFrame(Buffer.from('zz'), { flag: 7 })])],
          { 'grpc-status': '0' },
          headers,
        ),
      // three bytes of a prefix after the compressed message, then the trailers
      '/i/cut': (stream) =>
        respondGrpc(
          stream,
          [Buffer.concat([compressed, Buffer.from([0, 0, 0])])],
          { 'grpc-status': '0' },
          headers,
        ),
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    const flagged = (await call(ep, '/i/bad-flag', { kind: 'serverStream' })) as GrpcResponse;
    const read = readAll(flagged);
    await read.ended;
    expect(read.events).toEqual([`c1×${(1 << 20) + 3}`, `status ${Status.INTERNAL}`]);
    expect((await flagged.done).details).toContain('invalid flags byte 7');
    const cut = failure(await call(ep, '/i/cut'));
    expect([cut.code, cut.details]).toEqual([
      Status.INTERNAL,
      expect.stringContaining('ended inside a message (3 bytes of a 5-byte message prefix)'),
    ]);
    expect(ep.pending).toBe(0);
  });

  test('a consumer that does not read holds a server of compressed messages back (flow control)', async () => {
    const [host] = pickHosts(1) as [string];
    // random bytes do not compress: each message stays 32 KiB on the wire
    const chunk = framed(randomBytes(32 * 1024), encoding);
    let written = 0;
    const peer = await startRawPeer(host, {
      '/i/flood': (stream) => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...headers });
        flood(stream, chunk, 200, () => written++);
      },
    });
    cleanups.push(() => peer.close());
    const ep = endpoint(peer.address);
    const res = (await call(ep, '/i/flood', { kind: 'serverStream' })) as GrpcResponse;
    let received = 0;
    res.stream.start({ onMessage: () => received++, onStatus: () => {} });
    res.stream.read();
    await new Promise((r) => setTimeout(r, 300));
    // one message read; the rest waits in HTTP/2 flow control, not in this process
    expect(received).toBe(1);
    expect(written).toBeLessThan(200);
    const held = written;
    for (let i = 0; i < 20; i++) res.stream.read();
    await expect.poll(() => received, { timeout: 5_000 }).toBe(21);
    await new Promise((r) => setTimeout(r, 50));
    expect(received).toBe(21);
    res.stream.cancel(Status.CANCELLED, 'enough');
    expect((await res.done).code).toBe(Status.CANCELLED);
    console.log(`${encoding}: flow control held the server at ${held} of 200 compressed messages of 32 KiB`);
  });

  test('the event loop turns while a 12 MiB message inflates: an immediate set before it runs before it is handed over', async () => {
    const [host] = pickHosts(1) as [string];
    const held = heldPath(encoding);
    const peer = await startRawPeer(host, { '/i/big': held.behaviour });
    cleanups.push(() => peer.close());
    const size = 12 << 20;
    const compressed = framed(big('big', size), encoding);
    // one DATA frame (16 KiB at most) carries a small message and the whole compressed one
    expect(compressed.length + 10).toBeLessThan(16 * 1024);
    const ep = endpoint(peer.address, { 'grpc.max_receive_message_length': 16 << 20 });
    const res = (await call(ep, '/i/big', { kind: 'serverStream' })) as GrpcResponse;
    const events: string[] = [];
    let turns = 0;
    let inflated = false;
    const turn = (): void => {
      turns++;
      if (!inflated) setImmediate(turn);
    };
    const delay = monitorEventLoopDelay({ resolution: 1 });
    res.stream.start({
      onMessage: (m) => {
        events.push(label(m));
        if (m.length > 64) inflated = true;
        else
          setImmediate(() => {
            // set while the compressed message behind this one was still to be inflated
            events.push('immediate');
            turn();
          });
        res.stream.read();
      },
      onStatus: (s) => events.push(`status ${s.code}`),
    });
    res.stream.read();
    const stream = await held.stream;
    delay.enable();
    stream.end(Buffer.concat([framed(Buffer.from('first')), compressed]));
    expect((await res.done).code).toBe(Status.OK);
    delay.disable();
    expect(events).toEqual(['first', 'immediate', `big×${size + 4}`, `status ${Status.OK}`]);
    console.log(
      `${encoding}: the loop turned ${turns} times while ${size >> 20} MiB inflated; its longest delay ${(delay.max / 1e6).toFixed(1)} ms`,
    );
  });

  test('a call cancelled while a large message inflates: no message after the status, the zlib stream closed, nothing left', async () => {
    const tracker = trackResources();
    const [host] = pickHosts(1) as [string];
    const held = heldPath(encoding);
    const peer = await startRawPeer(host, { '/i/cancel': held.behaviour });
    cleanups.push(() => peer.close());
    const size = 8 << 20;
    const payload = big('big', size);
    const compressed = framed(payload, encoding);
    // the zlib streams of this process, and the callbacks each ran (one per 16 KiB of output)
    const zlibs: number[] = [];
    const callbacks = new Map<number, number>();
    const hook = createHook({
      init(id, type) {
        if (type === 'ZLIB') zlibs.push(id);
      },
      before(id) {
        if (callbacks.has(id) || zlibs.includes(id)) callbacks.set(id, (callbacks.get(id) ?? 0) + 1);
      },
    });
    const ep = endpoint(peer.address, { 'grpc.max_receive_message_length': 16 << 20 });
    const res = (await call(ep, '/i/cancel', { kind: 'serverStream' })) as GrpcResponse;
    const events: string[] = [];
    let atCancel: { streams: number; callbacks: number } | undefined;
    res.stream.start({
      onMessage: (m) => {
        events.push(label(m));
        // the compressed message behind this one begins to inflate in the same read
        setImmediate(() => {
          const id = zlibs[0] as number;
          atCancel = { streams: zlibs.length, callbacks: callbacks.get(id) ?? 0 };
          res.stream.cancel(Status.CANCELLED, 'enough');
        });
        res.stream.read();
      },
      onStatus: (s) => events.push(`status ${s.code}`),
    });
    res.stream.read();
    const stream = await held.stream;
    const reset = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode)));
    hook.enable();
    // no end: the cancel is the only way this call ends
    stream.write(Buffer.concat([framed(Buffer.from('first')), compressed]));
    expect((await res.done).code).toBe(Status.CANCELLED);
    expect(await reset).toBe(8); // RST_STREAM CANCEL
    // the same message inflated whole here, after which a late result would have come
    const whole = encoding === 'gzip' ? promisify(zlib.gunzip) : promisify(zlib.inflate);
    const reference = await whole(compressed.subarray(5));
    hook.disable();
    expect(reference.length).toBe(payload.length);
    expect(events).toEqual(['first', `status ${Status.CANCELLED}`]);
    // the decoder's zlib stream had begun, and ran at most the callback in flight after the cancel,
    // where inflating the whole message takes one per 16 KiB
    const [decoderZlib, referenceZlib] = zlibs as [number, number];
    expect(atCancel?.streams).toBe(1);
    const ranAfter = (callbacks.get(decoderZlib) ?? 0) - (atCancel?.callbacks ?? 0);
    expect(ranAfter).toBeLessThanOrEqual(1);
    expect(callbacks.get(referenceZlib)).toBeGreaterThan(size / (16 * 1024));
    expect(ep.pending).toBe(0);
    await ep.close({ graceMs: 0 });
    await peer.close();
    await tracker.expectNone({ settleMs: 2_000 });
    tracker.stop();
    console.log(
      `${encoding}: cancelled after ${atCancel?.callbacks} of the ${callbacks.get(referenceZlib)} zlib callbacks a whole inflate takes`,
    );
  });
});

describe('the decoder alone', () => {
  /** A decoder whose sink records what it is handed, and resolves `idle` when it is idle again. */
  function recordingDecoder(encoding: Encoding, maxBytes = 16 << 20) {
    const events: string[] = [];
    let idle!: () => void;
    const idled = new Promise<void>((resolve) => {
      idle = resolve;
    });
    const decoder = new MessageDecoder(maxBytes, {
      onMessage: (m) => {
        events.push(label(m));
        return true;
      },
      onRefused: (f) => events.push(`refused: ${f.details}`),
      onInflating: (busy) => {
        events.push(busy ? 'busy' : 'idle');
        if (!busy) idle();
      },
    });
    decoder.encoding = encoding;
    return { decoder, events, idled };
  }

  test.each(['gzip', 'deflate'] as const)(
    '%s: DATA pushed while a message inflates waits behind it, undecoded, whatever it holds',
    async (encoding) => {
      const { decoder, events, idled } = recordingDecoder(encoding);
      decoder.push(framed(big('c1', 4 << 20), encoding));
      // each of these would be handed over at once without the message before it
      decoder.push(framed(Buffer.from('u2')));
      const rest = Buffer.concat([framed(Buffer.from('c3'), encoding), framed(Buffer.from('u4'))]);
      decoder.push(rest.subarray(0, 7));
      decoder.push(rest.subarray(7));
      expect(events).toEqual(['busy']);
      expect(decoder.busy).toBe(true);
      await idled;
      expect(events).toEqual(['busy', `c1×${(4 << 20) + 3}`, 'u2', 'c3', 'u4', 'idle']);
      expect([decoder.busy, decoder.partial]).toEqual([false, false]);
    },
  );

  test('without a receive limit (grpc.max_receive_message_length -1) a message is inflated whole', async () => {
    const { decoder, events, idled } = recordingDecoder('deflate', Number.POSITIVE_INFINITY);
    decoder.push(framed(big('c1', 6 << 20), 'deflate'));
    await idled;
    expect(events).toEqual(['busy', `c1×${(6 << 20) + 3}`, 'idle']);
  });

  test('empty messages: after another in one chunk, last in it, and alone', () => {
    const { decoder, events } = recordingDecoder('gzip');
    decoder.push(Buffer.concat([framed(Buffer.from('a')), framed(Buffer.alloc(0)), framed(Buffer.alloc(0))]));
    decoder.push(framed(Buffer.alloc(0)));
    expect(events).toEqual(['a', '', '', '']);
    expect(decoder.partial).toBe(false);
  });

  test('closed while a message inflates: nothing more reaches the sink', async () => {
    const { decoder, events } = recordingDecoder('gzip');
    decoder.push(framed(big('c1', 8 << 20), 'gzip'));
    decoder.push(framed(Buffer.from('u2')));
    decoder.close();
    // a whole inflate of the same size, after which a late result would have come
    await promisify(zlib.gunzip)(zlib.gzipSync(Buffer.alloc(8 << 20)));
    await new Promise((r) => setImmediate(r));
    expect(events).toEqual(['busy']);
    expect(decoder.partial).toBe(false);
  });
});
