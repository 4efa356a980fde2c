// The native transport against a gRPC C-core server (Debian's Python grpcio,
// packages/testing/ccore/echo_server.py): another implementation's framing,
// trailers, status details, gzip responses, deadlines, its keepalive enforcement (too_many_pings)
// and its metadata size limit.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { Status, newContext } from '@grpc-tower/core';
import {
  GrpcStatusError,
  type GrpcResponse,
  type NativeGrpcEndpoint,
  nativeGrpcEndpoint,
} from '@grpc-tower/core/grpc';
import { insecure, pickHosts } from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { firstValueFrom, filter } from 'rxjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { trackCleanups } from '../../balance/src/test/grpc-calls.js';
import { grpcRequest } from '../../core/src/grpc/test/request.js';

const SERVER = new URL('../../testing/ccore/echo_server.py', import.meta.url).pathname;
const cleanups = trackCleanups();

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

describe('its metadata size limit (grpc.max_metadata_size, 8 KiB by default)', () => {
  test.each([
    ['one value of 20,000 bytes', { 'x-big': 'v'.repeat(20_000) }],
    [
      '20 values of 1,000 bytes',
      Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-m${i}`, 'v'.repeat(1_000)])),
    ],
  ])(
    'request metadata over it (%s): RESOURCE_EXHAUSTED from the server, and the endpoint recovers',
    async (_case, headers) => {
      const ep = endpoint();
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) md.set(k, v);
      const err = (await call(ep, 'Echo', { metadata: md, messages: [Buffer.from('m')] })) as GrpcStatusError;
      expect(err).toBeInstanceOf(GrpcStatusError);
      expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
      expect(err.details).toContain('metadata size exceeds limit');
      // this C-core (1.51) then closes the connection, as a grpc-js client sees too: a call sent
      // before the close fails UNAVAILABLE, and the endpoint connects again
      const outcomes: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await call(ep, 'Echo', { messages: [Buffer.from('small')] });
        outcomes.push(r instanceof GrpcStatusError ? `${r.code}` : 'ok');
        if (!(r instanceof GrpcStatusError)) break;
      }
      expect(outcomes.at(-1)).toBe('ok');
      expect(outcomes.slice(0, -1).every((o) => o === `${Status.UNAVAILABLE}`)).toBe(true);
      expect(ep.pending).toBe(0);
    },
  );
});
