// gRPC's interop test cases (named as in gRPC's interop spec) through the
// native transport: a grpc-js client over towerChannel with
// `transport: 'native'`, against a grpc-js server and a gRPC C-core server
// (Debian's python3-grpcio). Each case checks what the spec's client checks;
// after each, no call is left open on an endpoint, and the file ends with
// no leaked sockets or timers.
import * as grpc from '@grpc/grpc-js';
import type { NativeGrpcEndpoint } from '@grpc-tower/core/grpc';
import {
  type InteropServer,
  loadInteropPackage,
  pickHosts,
  startCcoreInteropServer,
  startInteropServer,
} from '@grpc-tower/testing';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { trackCleanups } from '../../balance/src/test/grpc-calls.js';
import { type TowerTelemetry, towerChannel } from './channel.js';

trackCleanups();
const insecure = grpc.credentials.createInsecure();
const { TestServiceClient, UnimplementedServiceClient } = loadInteropPackage();

const INITIAL = 'x-grpc-test-echo-initial';
const TRAILING = 'x-grpc-test-echo-trailing-bin';
const SPECIAL = '\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n';

interface Payload {
  body: Buffer;
}
interface OutputResponse {
  payload: Payload;
}

/** What a finished call showed: its value or error, response headers and status. */
interface Outcome<T> {
  readonly value?: T;
  readonly error?: grpc.ServiceError;
  readonly headers?: grpc.Metadata;
  readonly status: grpc.StatusObject;
}

type UnaryMethod = (
  req: unknown,
  md: grpc.Metadata,
  options: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, value?: unknown) => void,
) => grpc.ClientUnaryCall;

/** Calls a unary method of `client`; resolves once its status is known. */
function unary<T>(
  client: grpc.Client,
  method: string,
  request: unknown,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let result: { value?: T; error?: grpc.ServiceError } | undefined;
    let status: grpc.StatusObject | undefined;
    const settle = (): void => {
      if (result === undefined || status === undefined) return;
      resolve({ ...result, ...(headers === undefined ? {} : { headers }), status });
    };
    const call = ((client as unknown as Record<string, UnaryMethod>)[method] as UnaryMethod).call(
      client,
      request,
      metadata,
      options,
      (err, value) => {
        result = err === null ? { value: value as T } : { error: err };
        settle();
      },
    );
    call.on('metadata', (md: grpc.Metadata) => {
      headers = md;
    });
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      settle();
    });
  });
}

/** Collects a server stream or duplex call's responses until its status. */
function collect(call: grpc.ClientReadableStream<unknown>): Promise<Outcome<unknown[]> & { got: unknown[] }> {
  const got: unknown[] = [];
  let headers: grpc.Metadata | undefined;
  let error: grpc.ServiceError | undefined;
  call.on('data', (m: unknown) => got.push(m));
  call.on('metadata', (md: grpc.Metadata) => {
    headers = md;
  });
  call.on('error', (err: grpc.ServiceError) => {
    error = err;
  });
  return new Promise((resolve) =>
    call.on('status', (status: grpc.StatusObject) =>
      // 'status' comes before a failed call's 'error': let that land first
      setImmediate(() =>
        resolve({
          got,
          status,
          ...(error === undefined ? {} : { error }),
          ...(headers === undefined ? {} : { headers }),
        }),
      ),
    ),
  );
}

/** The next response of a duplex call. */
function nextResponse(call: grpc.ClientDuplexStream<unknown, unknown>): Promise<OutputResponse> {
  return new Promise((resolve, reject) => {
    const onData = (m: OutputResponse): void => {
      call.off('error', reject);
      resolve(m);
    };
    call.once('data', onData);
    call.once('error', reject);
  });
}

const zeros = (n: number) => ({ body: Buffer.alloc(n) });
const sizes = (responses: unknown[]) => responses.map((r) => (r as OutputResponse).payload.body.length);

describe.each([
  ['a grpc-js server', startInteropServer],
  ['a C-core server (python3-grpcio)', startCcoreInteropServer],
])('the interop test cases against %s', (_name, start) => {
  let server: InteropServer;
  let channel: ReturnType<typeof towerChannel>;
  let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  let unimplemented: grpc.Client;
  const endpoints: NativeGrpcEndpoint[] = [];

  beforeAll(async () => {
    const [host] = pickHosts(1) as [string];
    server = await start(host);
    const target = `ipv4:${server.address}`;
    // the endpoints the channel makes, to check none keeps a call open
    const telemetry: TowerTelemetry = {
      instrument: () => ({
        calls: (inner) => inner,
        attempts: (inner) => inner,
        endpoint: (ep) => {
          endpoints.push(ep as unknown as NativeGrpcEndpoint);
          return ep;
        },
        observe: () => {},
        close: () => {},
      }),
    };
    channel = towerChannel(target, insecure, {
      services: [TestServiceClient.service, UnimplementedServiceClient.service],
      transport: 'native',
      telemetry,
    });
    client = new TestServiceClient(target, insecure, { channelOverride: channel }) as typeof client;
    unimplemented = new UnimplementedServiceClient(target, insecure, { channelOverride: channel });
  });
  afterAll(async () => {
    client?.close();
    unimplemented?.close();
    await channel?.closeAsync();
    await server?.stop();
  });
  afterEach(async () => {
    // cancellation reaches the endpoint within a turn of the event loop
    await new Promise((resolve) => setImmediate(resolve));
    expect(endpoints.length).toBeGreaterThan(0);
    expect(endpoints.map((ep) => ep.pending)).toEqual(endpoints.map(() => 0));
  });

  const duplex = (options: grpc.CallOptions = {}, metadata = new grpc.Metadata()) =>
    (
      client.FullDuplexCall as (
        md: grpc.Metadata,
        o: grpc.CallOptions,
      ) => grpc.ClientDuplexStream<unknown, unknown>
    )(metadata, options);

  test('empty_unary', async () => {
    const r = await unary(client, 'EmptyCall', {});
    expect(r.error).toBeUndefined();
    expect(r.value).toEqual({});
  });

  test('large_unary', async () => {
    const r = await unary<{ payload: Payload }>(client, 'UnaryCall', {
      responseSize: 314_159,
      payload: zeros(271_828),
    });
    expect(r.error).toBeUndefined();
    expect(r.value?.payload.body).toEqual(Buffer.alloc(314_159));
  });

  test('client_streaming', async () => {
    const result = new Promise<Outcome<{ aggregatedPayloadSize: number }>>((resolve) => {
      const call = (
        client.StreamingInputCall as (
          cb: (err: grpc.ServiceError | null, v?: { aggregatedPayloadSize: number }) => void,
        ) => grpc.ClientWritableStream<unknown>
      )((err, value) =>
        resolve(
          err === null
            ? { value: value as { aggregatedPayloadSize: number }, status: { code: 0 } as grpc.StatusObject }
            : { error: err, status: err as unknown as grpc.StatusObject },
        ),
      );
      for (const n of [27_182, 8, 1_828, 45_904]) call.write({ payload: zeros(n) });
      call.end();
    });
    const r = await result;
    expect(r.error).toBeUndefined();
    expect(r.value?.aggregatedPayloadSize).toBe(74_922);
  });

  test('server_streaming', async () => {
    const call = (client.StreamingOutputCall as (req: unknown) => grpc.ClientReadableStream<unknown>)({
      responseParameters: [31_415, 9, 2_653, 58_979].map((size) => ({ size })),
    });
    const r = await collect(call);
    expect(r.error).toBeUndefined();
    expect(r.status.code).toBe(grpc.status.OK);
    expect(sizes(r.got)).toEqual([31_415, 9, 2_653, 58_979]);
  });

  test('ping_pong', async () => {
    const call = duplex();
    const outcome = collect(call);
    const got: number[] = [];
    for (const [size, payload] of [
      [31_415, 27_182],
      [9, 8],
      [2_653, 1_828],
      [58_979, 45_904],
    ] as const) {
      const next = nextResponse(call);
      call.write({ responseParameters: [{ size }], payload: zeros(payload) });
      got.push((await next).payload.body.length);
    }
    call.end();
    const r = await outcome;
    expect(r.error).toBeUndefined();
    expect(r.status.code).toBe(grpc.status.OK);
    expect(got).toEqual([31_415, 9, 2_653, 58_979]);
  });

  test('empty_stream', async () => {
    const call = duplex();
    const outcome = collect(call);
    call.end();
    const r = await outcome;
    expect(r.error).toBeUndefined();
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.got).toEqual([]);
  });

  test('cancel_after_begin', async () => {
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = (
        client.StreamingInputCall as (
          cb: (err: grpc.ServiceError | null) => void,
        ) => grpc.ClientWritableStream<unknown>
      )((e) => resolve(e));
      call.cancel();
    });
    expect(err?.code).toBe(grpc.status.CANCELLED);
  });

  test('cancel_after_first_response', async () => {
    const call = duplex();
    const outcome = collect(call);
    const first = nextResponse(call);
    call.write({ responseParameters: [{ size: 31_415 }], payload: zeros(27_182) });
    expect((await first).payload.body.length).toBe(31_415);
    call.cancel();
    const r = await outcome;
    expect(r.status.code).toBe(grpc.status.CANCELLED);
    expect(r.error?.code).toBe(grpc.status.CANCELLED);
  });

  test('timeout_on_sleeping_server', async () => {
    const call = duplex({ deadline: Date.now() + 1 });
    const outcome = collect(call);
    call.write({ payload: zeros(27_182) });
    const r = await outcome;
    expect(r.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(r.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  test('custom_metadata', async () => {
    const metadata = () => {
      const md = new grpc.Metadata();
      md.set(INITIAL, 'test_initial_metadata_value');
      md.set(TRAILING, Buffer.from([0xab, 0xab, 0xab]));
      return md;
    };
    const r = await unary<{ payload: Payload }>(
      client,
      'UnaryCall',
      { responseSize: 314_159, payload: zeros(271_828) },
      metadata(),
    );
    expect(r.error).toBeUndefined();
    expect(r.value?.payload.body.length).toBe(314_159);
    expect(r.headers?.get(INITIAL)).toEqual(['test_initial_metadata_value']);
    expect(r.status.metadata.get(TRAILING)).toEqual([Buffer.from([0xab, 0xab, 0xab])]);
    // the same over a duplex call
    const call = duplex({}, metadata());
    const outcome = collect(call);
    call.write({ responseParameters: [{ size: 314_159 }], payload: zeros(271_828) });
    call.end();
    const s = await outcome;
    expect(s.error).toBeUndefined();
    expect(sizes(s.got)).toEqual([314_159]);
    expect(s.headers?.get(INITIAL)).toEqual(['test_initial_metadata_value']);
    expect(s.status.metadata.get(TRAILING)).toEqual([Buffer.from([0xab, 0xab, 0xab])]);
  });

  test('status_code_and_message', async () => {
    const responseStatus = { code: 2, message: 'test status message' };
    const r = await unary(client, 'UnaryCall', { responseStatus });
    expect([r.error?.code, r.error?.details]).toEqual([grpc.status.UNKNOWN, 'test status message']);
    const call = duplex();
    const outcome = collect(call);
    call.write({ responseStatus });
    call.end();
    const s = await outcome;
    expect([s.status.code, s.status.details]).toEqual([grpc.status.UNKNOWN, 'test status message']);
  });

  test('special_status_message', async () => {
    const r = await unary(client, 'UnaryCall', { responseStatus: { code: 2, message: SPECIAL } });
    expect(r.error?.code).toBe(grpc.status.UNKNOWN);
    expect(r.error?.details).toBe(SPECIAL);
  });

  test('unimplemented_method', async () => {
    const r = await unary(client, 'UnimplementedCall', {});
    expect(r.error?.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  test('unimplemented_service', async () => {
    const r = await unary(unimplemented, 'UnimplementedCall', {});
    expect(r.error?.code).toBe(grpc.status.UNIMPLEMENTED);
  });
});
