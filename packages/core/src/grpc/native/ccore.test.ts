// The native transport against a gRPC C-core server (Debian's Python grpcio,
// packages/testing/ccore/echo_server.py): another implementation's framing,
// trailers, status details, gzip responses, deadlines, its keepalive enforcement (too_many_pings)
// and its metadata size limit.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { activeHandles, expectNoLeaks, insecure, pickHosts } from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { firstValueFrom, filter } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { newContext } from '../../context/index.js';
import { Status } from '../../status.js';
import { grpcRequest } from '../test/request.js';
import { type GrpcResponse, GrpcStatusError } from '../types.js';
import { type NativeGrpcEndpoint, nativeGrpcEndpoint } from './endpoint.js';
import { afterEachCleanups } from './test/calls.js';

const SERVER = new URL('../../../../testing/ccore/echo_server.py', import.meta.url).pathname;
const cleanups = afterEachCleanups();
let baseline: ReturnType<typeof activeHandles>;
beforeAll(() => {
  baseline = activeHandles();
});
afterAll(async () => {
  await expectNoLeaks(baseline, { settleMs: 3000 });
});

let child: ChildProcessWithoutNullStreams;
let address: string;
beforeAll(async () => {
  const [host] = pickHosts(1) as [string];
  child = spawn('/usr/bin/python3', [SERVER, host]);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the C-core server exited (${code}): ${out}`)));
  });
  address = `${host}:${port}`;
});
afterAll(async () => {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin.end();
  child.kill('SIGKILL');
  await exited;
});

function endpoint(channelOptions: grpc.ChannelOptions = {}): NativeGrpcEndpoint {
  const ep = nativeGrpcEndpoint(address, { credentials: insecure, channelOptions });
  cleanups.push(() => ep.close({ graceMs: 0 }));
  return ep;
}

async function call(
  ep: NativeGrpcEndpoint,
  method: string,
  options: Parameters<typeof grpcRequest>[1] & { timeoutMs?: number } = {},
): Promise<GrpcResponse | GrpcStatusError> {
  const scope = newContext(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
  try {
    return await ep.call(grpcRequest(`/ccore.Test/${method}`, options), scope.context);
  } catch (err) {
    return err as GrpcStatusError;
  } finally {
    scope.release();
  }
}

describe('a C-core server', () => {
  test('unary and server streaming, metadata both ways (-bin included), gzip responses decompressed', async () => {
    const ep = endpoint();
    const md = new grpc.Metadata();
    md.set('x-text', 'hello');
    md.set('x-blob-bin', Buffer.from([0, 255, 1]));
    const body = Buffer.from('payload from node '.repeat(100));
    const res = (await call(ep, 'Echo', { metadata: md, messages: [body] })) as GrpcResponse;
    expect(res.unary?.messages).toEqual([body]);
    expect(res.headers.get('x-text')).toEqual(['hello']);
    expect(res.headers.get('x-blob-bin')).toEqual([Buffer.from([0, 255, 1])]);
    const streamed = (await call(ep, 'Stream', {
      kind: 'serverStream',
      messages: [Buffer.from('s')],
    })) as GrpcResponse;
    const got: Buffer[] = [];
    streamed.stream.start({ onMessage: (m) => got.push(m), onStatus: () => {} });
    for (let i = 0; i < 6; i++) streamed.stream.read();
    expect((await streamed.done).code).toBe(Status.OK);
    expect(got).toEqual(Array.from({ length: 5 }, () => Buffer.from('s')));
  });

  test('a stream of gzip and uncompressed messages interleaved: handed over in order, the status last', async () => {
    const res = (await call(endpoint(), 'Mixed', {
      kind: 'serverStream',
      messages: [Buffer.from('m')],
    })) as GrpcResponse;
    expect(res.headers.get('grpc-encoding')).toEqual(['gzip']);
    const events: string[] = [];
    res.stream.start({
      onMessage: (m) => {
        // a message is its number, then 1 MiB of "m" for every fourth
        events.push(m.length > 64 ? `${m.toString('latin1', 0, m.indexOf(58))}+${m.length}` : m.toString());
        res.stream.read();
      },
      onStatus: (s) => events.push(`status ${s.code}`),
    });
    res.stream.read();
    expect((await res.done).code).toBe(Status.OK);
    expect(events).toEqual([
      ...Array.from({ length: 12 }, (_, i) =>
        i % 4 === 0 ? `${i}+${(1 << 20) + String(i).length + 1}` : `${i}:`,
      ),
      `status ${Status.OK}`,
    ]);
  });

  test.each([
    [1, 'deflate'],
    [2, 'gzip'],
  ])('requests compressed with algorithm %s (%s) are taken and echoed', async (algorithm) => {
    const ep = endpoint({ 'grpc.default_compression_algorithm': algorithm });
    const body = Buffer.from('compressed from node '.repeat(200));
    for (let i = 0; i < 2; i++) {
      const res = (await call(ep, 'Echo', { messages: [body] })) as GrpcResponse;
      expect(res).not.toBeInstanceOf(Error);
      expect(res.unary?.messages).toEqual([body]);
    }
    // C-core takes both encodings: the second call was compressed too
    expect(ep.compression).toBe(algorithm === 1 ? 'deflate' : 'gzip');
  });

  test('a status with Unicode details, a binary trailer and status details', async () => {
    const err = (await call(endpoint(), 'Fail')) as GrpcStatusError;
    expect(err).toBeInstanceOf(GrpcStatusError);
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toBe('bad ✓ input');
    expect(err.metadata.get('x-t-bin')).toEqual([Buffer.from([1, 2, 3])]);
    expect(err.metadata.get('grpc-status-details-bin')).toEqual([Buffer.from([8, 3, 18, 3, 98, 97, 100])]);
    expect(err.serverResponded).toBe(true);
  });

  test('a deadline the server learns from grpc-timeout', async () => {
    const err = (await call(endpoint(), 'Sleep', { timeoutMs: 200 })) as GrpcStatusError;
    expect(err.code).toBe(Status.DEADLINE_EXCEEDED);
  });

  test("its keepalive enforcement: GOAWAY too_many_pings, and the client's interval doubles", async () => {
    const ep = endpoint({ 'grpc.keepalive_time_ms': 50, 'grpc.keepalive_timeout_ms': 1_000 });
    const goaway = firstValueFrom(ep.events$.pipe(filter((e) => e.kind === 'goaway')));
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
    // pings go out only while a call is open
    const sleeping = call(ep, 'Sleep', { timeoutMs: 5_000 });
    const event = await goaway;
    expect(event).toMatchObject({ kind: 'goaway', code: 11, debug: 'too_many_pings' });
    expect(ep.connection.keepaliveTimeMs).toBe(100);
    const outcome = await sleeping;
    // the call went down with the connection (or finished, had the GOAWAY come after it)
    if (outcome instanceof GrpcStatusError) expect(outcome.code).toBe(Status.UNAVAILABLE);
  });
});

describe('its metadata size limit (grpc.max_metadata_size, 8 KiB by default, advertised as SETTINGS_MAX_HEADER_LIST_SIZE)', () => {
  const pad = (n: number) => {
    const md = new grpc.Metadata();
    md.set('x-pad', 'p'.repeat(n));
    return md;
  };
  const sizeOf = (err: GrpcStatusError) => Number(/request metadata of (\d+) bytes/.exec(err.details)?.[1]);

  test.each([
    ['one value of 20,000 bytes', { 'x-big': 'v'.repeat(20_000) }],
    [
      '20 values of 1,000 bytes',
      Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-m${i}`, 'v'.repeat(1_000)])),
    ],
  ])(
    'request metadata over it (%s): RESOURCE_EXHAUSTED, not sent; the connection and the calls on it go on',
    async (_case, headers) => {
      const ep = endpoint();
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
      const states: string[] = [];
      const sub = ep.events$.subscribe((e) => (e.kind === 'state' ? states.push(e.state) : 0));
      cleanups.push(() => sub.unsubscribe());
      // a call in flight on the same connection when the oversized one is made
      const sleeping = call(ep, 'Sleep', { messages: [Buffer.from('z')], timeoutMs: 1_000 });
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) md.set(k, v);
      const err = (await call(ep, 'Echo', { metadata: md, messages: [Buffer.from('m')] })) as GrpcStatusError;
      expect(err).toBeInstanceOf(GrpcStatusError);
      expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
      expect(err.details).toMatch(
        /larger than the server's limit of 8192 \(its SETTINGS_MAX_HEADER_LIST_SIZE\)/,
      );
      expect([err.delivery, err.retryable, err.serverResponded]).toEqual(['not-sent', false, false]);
      const small = await call(ep, 'Echo', { messages: [Buffer.from('small')] });
      expect(small).not.toBeInstanceOf(Error);
      // the sleeper ran out its deadline on the server: its connection was never dropped
      expect(((await sleeping) as GrpcStatusError).code).toBe(Status.DEADLINE_EXCEEDED);
      expect(states).toEqual([]);
      expect(ep.pending).toBe(0);
    },
  );

  test('a header list of exactly the limit is sent and served; one byte more is not sent', async () => {
    const ep = endpoint();
    await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
    // the size of the headers the transport adds, from the size a refusal names
    const probe = (await call(ep, 'Echo', {
      metadata: pad(10_000),
      messages: [Buffer.from('m')],
    })) as GrpcStatusError;
    const base = sizeOf(probe) - ('x-pad'.length + 10_000 + 32);
    const fitting = 8192 - base - ('x-pad'.length + 32);
    const at = await call(ep, 'Echo', { metadata: pad(fitting), messages: [Buffer.from('m')] });
    expect(at).not.toBeInstanceOf(Error);
    expect((at as GrpcResponse).headers.get('x-pad')).toEqual(['p'.repeat(fitting)]);
    const over = (await call(ep, 'Echo', {
      metadata: pad(fitting + 1),
      messages: [Buffer.from('m')],
    })) as GrpcStatusError;
    expect([over.code, sizeOf(over)]).toEqual([Status.RESOURCE_EXHAUSTED, 8193]);
  });
});
