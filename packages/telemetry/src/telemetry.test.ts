// Telemetry against real peers: grpc-js servers on distinct 127.0.0.x hosts,
// the one-call channel and a stack built layer by layer, and the real
// OpenTelemetry SDK (sdk-metrics with an in-memory reader, sdk-trace
// with the in-memory span exporter, the W3C propagator of @opentelemetry/core).
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { ConfigError, ServiceBuilder, Status } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { type DiscoveredAddress, connect, poll, staticList } from '@grpc-tower/discover';
import { hedge, retry, retryBudget } from '@grpc-tower/retry';
import {
  type EchoServer,
  GeneratedEchoReply,
  GeneratedEchoRequest,
  activeHandles,
  expectNoLeaks,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
  type TestTransport,
} from '@grpc-tower/testing';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { AlwaysOffSampler, type ReadableSpan, TracerProvider } from '@opentelemetry/sdk-trace';
import { towerChannel } from 'grpc-tower';
import { Subject } from 'rxjs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { eventually } from '../../retry/src/test/harness.js';
import { startRefusingServer } from '../../retry/src/test/servers.js';
import { LATENCY_BUCKETS_S, Labels, MetricNames as M, SIZE_BUCKETS_BY } from './names.js';
import type { ObservedHealthEvent } from './observe.js';
import { type Telemetry, type TelemetryOptions, telemetry } from './telemetry.js';
import { type Sdk, histogram, metric, points, startSdk, total } from './test/support.js';

const insecure = grpc.credentials.createInsecure();
const { EchoService } = loadEchoPackage();
const UNARY = '/grpctower.testing.Echo/Unary';
const SERVER_STREAM = '/grpctower.testing.Echo/ServerStream';
const UNARY_LABEL = 'grpctower.testing.Echo/Unary';
const ENDPOINT_STATES = ['ready', 'connecting', 'failed', 'draining'];
const identity = (b: Buffer): Buffer => b;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let baseline: ReturnType<typeof activeHandles>;
beforeAll(() => {
  baseline = activeHandles();
});
afterAll(async () => {
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

/** An echo request as bytes. */
const request = (fields: Parameters<typeof GeneratedEchoRequest.fromPartial>[0]): Buffer =>
  Buffer.from(GeneratedEchoRequest.encode(GeneratedEchoRequest.fromPartial(fields)).finish());

async function servers(
  n: number,
  options: Parameters<typeof startEchoServer>[0] = {},
): Promise<EchoServer[]> {
  const out = await Promise.all(pickHosts(n).map((host) => startEchoServer({ ...options, host })));
  for (const s of out) cleanups.push(() => s.stop(0));
  return out;
}

/** A raw-bytes grpc-js client over `channel`: what it sends and receives is exactly what the metrics count. */
function rawClient(channel: grpc.ChannelInterface): grpc.Client {
  const client = new grpc.Client('unused', insecure, { channelOverride: channel });
  cleanups.push(() => client.close());
  return client;
}

function unary(
  client: grpc.Client,
  body: Buffer,
  path = UNARY,
  metadata = new grpc.Metadata(),
): Promise<{ reply?: Buffer; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      identity,
      identity,
      body,
      metadata,
      { deadline: Date.now() + 10_000 },
      (err, reply) => resolve(err === null ? { reply: reply! } : { error: err }),
    );
  });
}

function serverStream(client: grpc.Client, body: Buffer): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const replies: Buffer[] = [];
    const call = client.makeServerStreamRequest(
      SERVER_STREAM,
      identity,
      identity,
      body,
      new grpc.Metadata(),
      {
        deadline: Date.now() + 10_000,
      },
    );
    call.on('data', (b: Buffer) => replies.push(b));
    call.on('error', reject);
    call.on('end', () => resolve(replies));
  });
}

/** A grpc-js server of our own that records the `traceparent` of every call it gets. */
async function traceparentServer(): Promise<{ address: string; host: string; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = new grpc.Server();
  server.addService(EchoService, {
    Unary: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      seen.push(String(call.metadata.get('traceparent')[0] ?? ''));
      cb(null, { message: 'pong', server: 'own' });
    },
  });
  const [host] = pickHosts(1);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  cleanups.push(() => new Promise<void>((r) => server.tryShutdown(() => r())));
  return { address: `${host}:${port}`, host: host!, port, seen };
}

let sdk: Sdk;
/** `telemetry()` over this test's SDK. */
const withSdk = (options: TelemetryOptions = {}): Telemetry =>
  telemetry({
    meterProvider: sdk.meterProvider,
    tracerProvider: sdk.tracerProvider,
    propagator: sdk.propagator,
    ...(sdk.callMetrics === undefined ? {} : { callMetrics: sdk.callMetrics }),
    ...options,
  });

/** A one-call channel over `addresses` with telemetry on, its endpoints over `transport`. */
function channelOn(
  transport: TestTransport,
  addresses: readonly string[],
  options: Parameters<typeof towerChannel>[2] = {},
  t: Telemetry = withSdk(),
) {
  const target = `ipv4:${addresses.join(',')}`;
  const channel = towerChannel(target, insecure, {
    transport,
    services: [EchoService],
    health: false,
    outlierDetection: false,
    telemetry: t,
    ...options,
  });
  cleanups.push(() => channel.close());
  return { channel, client: rawClient(channel), target };
}

const spansNamed = (name: string): ReadableSpan[] =>
  sdk.spans.getFinishedSpans().filter((s) => s.name === name);
const childrenOf = (parent: ReadableSpan): ReadableSpan[] =>
  sdk.spans.getFinishedSpans().filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);

describe('without an SDK', () => {
  test('the API is a no-op: instrumenting finds no provider and its layers are the inner service itself', async () => {
    const ins = telemetry().instrument('ipv4:127.0.0.1:1');
    expect(ins.enabled).toEqual({ metrics: false, tracing: false });
    const inner = { call: () => Promise.reject(new Error('not called')) };
    expect(ins.calls(inner)).toBe(inner);
    expect(ins.attempts(inner)).toBe(inner);
    // the one-call channel with it still works
    const [s] = await servers(1);
    const { client } = channelOn('native', [s!.address], {}, telemetry());
    expect((await unary(client, request({ message: 'x' }))).error).toBeUndefined();
  });

  test('bad options are named', () => {
    expect(() => telemetry({ metrics: 'yes' as unknown as boolean })).toThrow(ConfigError);
    expect(() => telemetry({ meterProvider: {} as never })).toThrow(/meterProvider/);
    expect(() => telemetry().instrument('')).toThrow(/target/);
    expect(() => towerChannel('ipv4:127.0.0.1:1', insecure, { telemetry: {} as never })).toThrow(/telemetry/);
    // a channel that cannot be built closes the telemetry it instrumented
    let closed = 0;
    const counting = {
      instrument(target: string) {
        const ins = telemetry().instrument(target);
        return { ...ins, close: () => void closed++ };
      },
    };
    expect(() =>
      towerChannel('ipv4:127.0.0.1:1', insecure, { telemetry: counting, balancer: { failFastMs: -5 } }),
    ).toThrow(/failFastMs/);
    expect(closed).toBe(1);
  });
});

// every test with the per-call metrics through the Meter API and aggregated by the package's
// producer, over the default (native) transport; and through the Meter API over the grpc-js one,
// whose calls, attempts and streams are meant to be recorded alike
describe.each([
  ['meter', 'native'],
  ['producer', 'native'],
  ['meter', 'grpc-js'],
] as const)('with the SDK, per-call metrics through the %s, over the %s transport', (mode, transport) => {
  const channelOver = (
    addresses: readonly string[],
    options: Parameters<typeof towerChannel>[2] = {},
    t: Telemetry = withSdk(),
  ) => channelOn(transport, addresses, options, t);
  beforeEach(() => {
    sdk = startSdk(mode);
    cleanups.push(() => sdk.shutdown());
  });

  test('unary calls: A66 attempt and call metrics, a call span with an attempt span on the endpoint, the traceparent at the server', async () => {
    const { address, host, port, seen } = await traceparentServer();
    const { client, target } = channelOver([address]);
    const body = request({ message: 'ping' });
    const replies: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await unary(client, body);
      expect(r.error).toBeUndefined();
      replies.push(r.reply!);
    }
    const m = await sdk.metrics();
    const labels = { [Labels.method]: UNARY_LABEL, [Labels.target]: target };
    const ok = { ...labels, [Labels.status]: 'OK' };
    expect(metric(m, M.attemptStarted).descriptor.unit).toBe('{attempt}');
    expect(total(m, M.attemptStarted, labels)).toBe(5);
    expect(points(m, M.attemptStarted)[0]!.attributes).toEqual(labels);
    for (const name of [M.attemptDuration, M.callDuration]) {
      expect(metric(m, name).descriptor.unit).toBe('s');
      const h = histogram(m, name, ok);
      expect(h.count).toBe(5);
      expect(h.sum).toBeGreaterThan(0);
      expect(h.sum).toBeLessThan(5 * 10);
      expect(h.boundaries).toEqual(LATENCY_BUCKETS_S);
      expect(points(m, name)[0]!.attributes).toEqual(ok);
    }
    // the call lasts at least as long as its one attempt
    expect(histogram(m, M.callDuration, ok).sum).toBeGreaterThanOrEqual(
      histogram(m, M.attemptDuration, ok).sum,
    );
    const sent = histogram(m, M.attemptSentSize, ok);
    expect(metric(m, M.attemptSentSize).descriptor.unit).toBe('By');
    expect(sent).toEqual({ count: 5, sum: 5 * body.length, boundaries: SIZE_BUCKETS_BY });
    const rcvd = histogram(m, M.attemptRcvdSize, ok);
    expect(rcvd.sum).toBe(replies.reduce((n, b) => n + b.length, 0));
    expect(rcvd.sum).toBeGreaterThan(0);
    // no retries: A96's histograms record nothing
    expect(m.get(M.callRetries)?.dataPoints ?? []).toEqual([]);
    // spans: one call span per call, its one attempt span a child, on the endpoint, whose context the server saw
    const calls = spansNamed(UNARY_LABEL);
    expect(calls).toHaveLength(5);
    for (const call of calls) {
      expect(call.kind).toBe(SpanKind.CLIENT);
      expect(call.attributes).toMatchObject({
        'rpc.system': 'grpc',
        'rpc.service': 'grpctower.testing.Echo',
        'rpc.method': 'Unary',
        'rpc.grpc.status_code': 0,
      });
      const [attempt, ...more] = childrenOf(call);
      expect(more).toEqual([]);
      expect(attempt!.name).toBe(`Attempt.${UNARY_LABEL}`);
      expect(attempt!.attributes).toMatchObject({
        'server.address': host,
        'server.port': port,
        'grpc.previous_rpc_attempts': 0,
        'rpc.grpc.status_code': 0,
      });
      const { traceId, spanId } = attempt!.spanContext();
      expect(traceId).toBe(call.spanContext().traceId);
      expect(seen).toContain(`00-${traceId}-${spanId}-01`);
    }
    expect(seen).toHaveLength(5);
  });

  test('a server-streaming call: the bytes of every message received, the call and attempt ending at the status', async () => {
    const [s] = await servers(1);
    const { client, target } = channelOver([s!.address]);
    const replies = await serverStream(client, request({ message: 'm', count: 3 }));
    expect(replies).toHaveLength(3);
    const m = await sdk.metrics();
    const ok = {
      [Labels.method]: 'grpctower.testing.Echo/ServerStream',
      [Labels.target]: target,
      [Labels.status]: 'OK',
    };
    await eventually(
      async () => histogram(await sdk.metrics(), M.callDuration, ok).count === 1,
      'the call to end',
    );
    expect(histogram(m, M.attemptRcvdSize, ok).sum).toBe(replies.reduce((n, b) => n + b.length, 0));
    const [call] = spansNamed('grpctower.testing.Echo/ServerStream');
    expect(childrenOf(call!)).toHaveLength(1);
    expect(GeneratedEchoReply.decode(replies[2]!).index).toBe(2);
  });

  test('a client-streaming call: the bytes of every message sent; a cancelled stream ends CANCELLED', async () => {
    const [s] = await servers(1);
    const { client, target } = channelOver([s!.address]);
    const parts = [
      request({ message: 'one' }),
      request({ message: 'two', payload: Buffer.alloc(3000) }),
      request({}),
    ];
    await new Promise<void>((resolve, reject) => {
      const call = client.makeClientStreamRequest(
        '/grpctower.testing.Echo/ClientStream',
        identity,
        identity,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (err) => (err ? reject(err) : resolve()),
      );
      for (const p of parts) call.write(p);
      call.end();
    });
    const labels = { [Labels.target]: target, [Labels.method]: 'grpctower.testing.Echo/ClientStream' };
    let m = await sdk.metrics();
    const sent = histogram(m, M.attemptSentSize, { ...labels, [Labels.status]: 'OK' });
    expect(sent).toMatchObject({ count: 1, sum: parts.reduce((n, b) => n + b.length, 0) });
    // the 3 KiB call lands in the 4 KiB bucket
    expect(sent.sum).toBeGreaterThan(2048);
    // a server stream the caller cancels after its first message
    const stream = client.makeServerStreamRequest(
      SERVER_STREAM,
      identity,
      identity,
      request({ message: 'slow', count: 5, delayMs: 200 }),
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
    );
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.on('error', () => undefined);
    stream.cancel();
    const cancelled = {
      [Labels.target]: target,
      [Labels.method]: 'grpctower.testing.Echo/ServerStream',
      [Labels.status]: 'CANCELLED',
    };
    await eventually(
      async () => histogram(await sdk.metrics(), M.callDuration, cancelled).count === 1,
      'the cancelled call to end',
    );
    m = await sdk.metrics();
    expect(histogram(m, M.attemptDuration, cancelled).count).toBe(1);
    expect(histogram(m, M.attemptRcvdSize, cancelled).sum).toBeGreaterThan(0);
  });

  test('retries (A96): call.retries and retry_delay; one attempt per try with its status; one span per attempt', async () => {
    const [s] = await servers(1);
    s!.failNext(2, Status.UNAVAILABLE, 'try again');
    const { client, target } = channelOver([s!.address], {
      retry: {
        maxAttempts: 5,
        initialBackoffMs: 10,
        maxBackoffMs: 20,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    });
    expect((await unary(client, request({ message: 'r' }))).error).toBeUndefined();
    const m = await sdk.metrics();
    const labels = { [Labels.method]: UNARY_LABEL, [Labels.target]: target };
    expect(total(m, M.attemptStarted, labels)).toBe(3);
    expect(histogram(m, M.attemptDuration, { ...labels, [Labels.status]: 'UNAVAILABLE' }).count).toBe(2);
    expect(histogram(m, M.attemptDuration, { ...labels, [Labels.status]: 'OK' }).count).toBe(1);
    expect(histogram(m, M.callDuration, { ...labels, [Labels.status]: 'OK' }).count).toBe(1);
    expect(metric(m, M.callRetries).descriptor.unit).toBe('{retry}');
    expect(histogram(m, M.callRetries, labels)).toMatchObject({
      count: 1,
      sum: 2,
      boundaries: [1, 2, 3, 4, 5],
    });
    const delay = histogram(m, M.callRetryDelay, labels);
    expect(delay.count).toBe(1);
    expect(delay.sum).toBeGreaterThanOrEqual(0);
    expect(delay.sum).toBeLessThanOrEqual(0.04);
    expect(m.get(M.callHedges)?.dataPoints ?? []).toEqual([]);
    const [call] = spansNamed(UNARY_LABEL);
    const attempts = childrenOf(call!).sort(
      (a, b) =>
        (a.attributes['grpc.previous_rpc_attempts'] as number) -
        (b.attributes['grpc.previous_rpc_attempts'] as number),
    );
    expect(attempts.map((a) => a.attributes['grpc.previous_rpc_attempts'])).toEqual([0, 1, 2]);
    expect(attempts.map((a) => a.attributes['rpc.grpc.status_code'])).toEqual([
      Status.UNAVAILABLE,
      Status.UNAVAILABLE,
      Status.OK,
    ]);
    expect(attempts[0]!.status).toMatchObject({
      code: SpanStatusCode.ERROR,
      message: expect.stringContaining('try again'),
    });
    expect(call!.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  test('hedges (A96): call.hedges; the attempt that lost ends CANCELLED; both are children of the call span', async () => {
    const ss = await servers(2, { latencyMs: 150 });
    const { client, target } = channelOver(
      ss.map((s) => s.address),
      {
        retry: false,
        layers: { inner: [hedge({ maxAttempts: 2, hedgingDelayMs: 20, budget: retryBudget() })] },
      },
    );
    for (let i = 0; i < 3; i++)
      expect((await unary(client, request({ message: 'h' }))).error).toBeUndefined();
    const labels = { [Labels.method]: UNARY_LABEL, [Labels.target]: target };
    await eventually(
      async () => histogram(await sdk.metrics(), M.attemptDuration, labels).count === 6,
      'the losing attempts to end',
    );
    const m = await sdk.metrics();
    expect(total(m, M.attemptStarted, labels)).toBe(6);
    expect(histogram(m, M.callHedges, labels)).toMatchObject({ count: 3, sum: 3 });
    expect(metric(m, M.callHedges).descriptor.unit).toBe('{hedge}');
    expect(histogram(m, M.attemptDuration, { ...labels, [Labels.status]: 'OK' }).count).toBe(3);
    expect(histogram(m, M.attemptDuration, { ...labels, [Labels.status]: 'CANCELLED' }).count).toBe(3);
    for (const call of spansNamed(UNARY_LABEL)) {
      const attempts = childrenOf(call);
      expect(attempts).toHaveLength(2);
      // each on its own server
      expect(new Set(attempts.map((a) => a.attributes['server.address'])).size).toBe(2);
    }
  });

  // the native endpoint re-opens a refused stream itself three times before the attempt fails:
  // a difference by design, so the refusals per attempt differ
  const refusalsPerAttempt = { native: 4, 'grpc-js': 1 }[transport];
  test('transparent retries in a stack built layer by layer: a refused stream is an attempt of its own, counted apart', async () => {
    const [s] = await servers(1);
    const [host] = pickHosts(1);
    const refusing = await startRefusingServer(host!);
    cleanups.push(() => refusing.stop());
    const target = 'refusing-and-echo';
    const ins = withSdk().instrument(target);
    const endpoints = connect(staticList([refusing.address, s!.address]), (a: DiscoveredAddress) =>
      ins.endpoint(grpcEndpoint(a.address, { credentials: insecure, transport })),
    );
    const balancer = p2c(endpoints, { target });
    const layer = retry({ maxAttempts: 1, budget: retryBudget({ minPerSec: 0, percent: 0 }) });
    ins.observe({ balancer, retry: layer });
    const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
      .layer(ins.calls)
      .layer(layer)
      .layer(ins.attempts)
      .service(balancer);
    const channel = createChannel(stack, { target, services: [EchoService] });
    cleanups.push(() => ins.close());
    cleanups.push(() => channel.close());
    const client = rawClient(channel);
    let calls = 0;
    while (refusing.refused < 3 && calls < 200) {
      calls++;
      expect((await unary(client, request({ message: 't' }))).error).toBeUndefined();
    }
    expect(refusing.refused).toBeGreaterThanOrEqual(3);
    expect(refusing.refused % refusalsPerAttempt).toBe(0);
    const refusedAttempts = refusing.refused / refusalsPerAttempt;
    const m = await sdk.metrics();
    const labels = { [Labels.method]: UNARY_LABEL, [Labels.target]: target };
    expect(histogram(m, M.callTransparentRetries, labels)).toMatchObject({
      count: refusedAttempts,
      sum: refusedAttempts,
    });
    expect(metric(m, M.callTransparentRetries).descriptor.unit).toBe('{transparent_retry}');
    expect(total(m, M.attemptStarted, labels)).toBe(calls + refusedAttempts);
    expect(histogram(m, M.attemptDuration, { ...labels, [Labels.status]: 'UNAVAILABLE' }).count).toBe(
      refusedAttempts,
    );
    expect(m.get(M.callRetries)?.dataPoints ?? []).toEqual([]);
    // the refused attempts' spans name the refusing server
    const refusedSpans = sdk.spans
      .getFinishedSpans()
      .filter(
        (sp) =>
          sp.name.startsWith('Attempt.') && sp.attributes['rpc.grpc.status_code'] === Status.UNAVAILABLE,
      );
    expect(refusedSpans).toHaveLength(refusedAttempts);
    for (const sp of refusedSpans) expect(sp.attributes['server.address']).toBe(host);
    // the retry budget is empty, and its gauge says so
    expect(total(m, M.retryBudgetLevel, { [Labels.target]: target })).toBe(0);
    // picks per endpoint add up to the attempts the balancer placed
    expect(total(m, M.endpointPicks, { [Labels.target]: target })).toBe(calls + refusedAttempts);
  });

  test('ejections (A91): the failing endpoint ejected; an outlier over maxEjectionPercent not, and counted as unenforced', async () => {
    const ss = await servers(3);
    for (const s of ss.slice(0, 2)) s.failNext(1000, Status.UNAVAILABLE, 'down');
    const { client, target } = channelOver(
      ss.map((s) => s.address),
      {
        retry: false,
        outlierDetection: { consecutiveFailures: 3, maxEjectionPercent: 34, baseEjectionTimeMs: 30_000 },
      },
    );
    // send until both failing servers met the rule (one is ejected; the other cannot be)
    const unenforced = { [Labels.target]: target, [Labels.unenforcedReason]: 'max_ejection_overflow' };
    await eventually(
      async () => {
        await Promise.all(Array.from({ length: 6 }, () => unary(client, request({ message: 'e' }))));
        const m = await sdk.metrics();
        return (
          m.has(M.ejectionsEnforced) &&
          m.has(M.ejectionsUnenforced) &&
          total(m, M.ejectionsUnenforced, unenforced) > 0
        );
      },
      'an enforced and an unenforced ejection',
      10_000,
    );
    const m = await sdk.metrics();
    const enforced = points(m, M.ejectionsEnforced, { [Labels.target]: target });
    expect(enforced).toHaveLength(1);
    expect(enforced[0]!.value).toBe(1);
    expect(enforced[0]!.attributes[Labels.detectionMethod]).toBe('consecutive_failures');
    const ejected = enforced[0]!.attributes[Labels.endpoint];
    expect([ss[0]!.address, ss[1]!.address]).toContain(ejected);
    const skipped = points(m, M.ejectionsUnenforced, unenforced);
    expect(skipped.map((p) => p.attributes[Labels.endpoint])).toEqual([
      [ss[0]!.address, ss[1]!.address].find((a) => a !== ejected),
    ]);
    expect(metric(m, M.ejectionsEnforced).descriptor.unit).toBe('{ejection}');
    // the ejected endpoint's state set says failed; the healthy one's ready
    const state = (address: string, s: string) =>
      total(m, M.endpointState, { [Labels.endpoint]: address, [Labels.endpointState]: s });
    expect(state(ejected as string, 'failed')).toBe(1);
    expect(state(ejected as string, 'ready')).toBe(0);
    expect(state(ss[2]!.address, 'ready')).toBe(1);
    // the balancer saw the failures of the failing servers
    expect(total(m, M.endpointFailures, { [Labels.endpoint]: ss[2]!.address })).toBe(0);
    expect(total(m, M.endpointFailures, { [Labels.endpoint]: ejected as string })).toBeGreaterThanOrEqual(3);
  });

  test('a failed health check: a transition to unhealthy, the endpoint failed, and back', async () => {
    const ss = await servers(2, { health: true });
    const { client, target } = channelOver(
      ss.map((s) => s.address),
      { health: {} },
    );
    expect((await unary(client, request({ message: 'a' }))).error).toBeUndefined();
    ss[0]!.setServing('NOT_SERVING');
    const sick = { [Labels.target]: target, [Labels.endpoint]: ss[0]!.address };
    await eventually(async () => {
      const m = await sdk.metrics();
      return (
        m.has(M.healthTransitions) &&
        total(m, M.healthTransitions, { ...sick, [Labels.healthState]: 'unhealthy' }) === 1
      );
    }, 'the transition to unhealthy');
    let m = await sdk.metrics();
    expect(total(m, M.endpointState, { ...sick, [Labels.endpointState]: 'failed' })).toBe(1);
    expect(
      total(m, M.healthTransitions, { [Labels.endpoint]: ss[1]!.address, [Labels.healthState]: 'unhealthy' }),
    ).toBe(0);
    // the connection stays up while the health check holds the endpoint out
    expect(total(m, M.openConnections, sick)).toBe(1);
    ss[0]!.setServing('SERVING');
    await eventually(
      async () =>
        total(await sdk.metrics(), M.endpointState, { ...sick, [Labels.endpointState]: 'ready' }) === 1,
      'the endpoint to return',
    );
    m = await sdk.metrics();
    expect(
      total(m, M.healthTransitions, { ...sick, [Labels.healthState]: 'healthy' }),
    ).toBeGreaterThanOrEqual(2);
  });

  test('a discovery change: resolutions, endpoints known, a removed endpoint disconnected; connection attempts', async () => {
    const ss = await servers(2);
    const [deadHost] = pickHosts(1);
    let current = [ss[0]!.address, ss[1]!.address, `${deadHost}:1`];
    let failing = false;
    const source = poll(
      async () => {
        if (failing) throw new Error('registry unreachable');
        return current;
      },
      { intervalMs: 100, name: 'registry' },
    );
    const { client, target } = channelOver([ss[0]!.address], {
      discovery: source,
      channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 200 },
    });
    for (let i = 0; i < 4; i++)
      expect((await unary(client, request({ message: 'd' }))).error).toBeUndefined();
    const reg = { [Labels.target]: target, [Labels.source]: 'registry' };
    let m = await sdk.metrics();
    expect(total(m, M.discoveryEndpoints, reg)).toBe(3);
    expect(total(m, M.discoveryResolutions, reg)).toBeGreaterThanOrEqual(1);
    for (const s of ss) {
      expect(total(m, M.connectionAttemptsSucceeded, { [Labels.endpoint]: s.address })).toBe(1);
      expect(total(m, M.openConnections, { [Labels.endpoint]: s.address })).toBe(1);
    }
    await eventually(
      async () =>
        total(await sdk.metrics(), M.connectionAttemptsFailed, { [Labels.endpoint]: `${deadHost}:1` }) >= 1,
      'a failed connection attempt to the dead address',
    );
    current = [ss[0]!.address];
    const removed = { [Labels.target]: target, [Labels.endpoint]: ss[1]!.address };
    await eventually(async () => {
      const now = await sdk.metrics();
      return (
        total(now, M.discoveryEndpoints, reg) === 1 &&
        now.has(M.disconnections) &&
        total(now, M.disconnections, { ...removed, [Labels.disconnectError]: 'subchannel shutdown' }) === 1
      );
    }, 'the removal to close the endpoint');
    m = await sdk.metrics();
    expect(total(m, M.openConnections, removed)).toBe(0);
    expect(total(m, M.openConnections, { [Labels.endpoint]: ss[0]!.address })).toBe(1);
    expect(m.has(M.discoveryFailures)).toBe(false);
    // an endpoint the balancer no longer holds is reported in no state, with no calls in flight
    for (const s of ENDPOINT_STATES) {
      expect(total(m, M.endpointState, { ...removed, [Labels.endpointState]: s })).toBe(0);
    }
    expect(total(m, M.endpointCallsInFlight, removed)).toBe(0);
    expect(
      total(m, M.endpointState, { [Labels.endpoint]: ss[0]!.address, [Labels.endpointState]: 'ready' }),
    ).toBe(1);
    expect(total(m, M.callsWaiting, { [Labels.target]: target })).toBe(0);
    // a failing source: counted, and the endpoints it knows stay those of its last resolution
    failing = true;
    await eventually(async () => {
      const now = await sdk.metrics();
      return now.has(M.discoveryFailures) && total(now, M.discoveryFailures, reg) >= 1;
    }, 'a failed resolution');
    expect(total(await sdk.metrics(), M.discoveryEndpoints, reg)).toBe(1);
  });

  test('A66: a method the channel was not told about is labelled other, unless allMethods', async () => {
    const [s] = await servers(1);
    for (const [t, expected] of [
      [withSdk(), 'other'],
      [withSdk({ allMethods: true }), UNARY_LABEL],
    ] as const) {
      const target = `ipv4:${s!.address}`;
      const channel = towerChannel(target, insecure, {
        transport,
        health: false,
        outlierDetection: false,
        telemetry: t,
      });
      cleanups.push(() => channel.close());
      expect((await unary(rawClient(channel), request({ message: 'o' }))).error).toBeUndefined();
      const m = await sdk.metrics();
      expect(total(m, M.attemptStarted, { [Labels.method]: expected })).toBeGreaterThanOrEqual(1);
    }
    // spans carry the method either way
    expect(spansNamed(UNARY_LABEL)).toHaveLength(2);
  });

  test('a call the sampler drops records no span and still tells the server, as not sampled', async () => {
    const { address, seen } = await traceparentServer();
    const dropping = new TracerProvider({ sampler: new AlwaysOffSampler() });
    const { client } = channelOver([address], {}, withSdk({ tracerProvider: dropping }));
    expect((await unary(client, request({ message: 's' }))).error).toBeUndefined();
    expect(sdk.spans.getFinishedSpans()).toEqual([]);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  });

  test('a static target: its one resolution and the endpoints it names', async () => {
    const ss = await servers(2);
    const { client, target } = channelOver(ss.map((s) => s.address));
    expect((await unary(client, request({ message: 'st' }))).error).toBeUndefined();
    const m = await sdk.metrics();
    const source = points(m, M.discoveryResolutions, { [Labels.target]: target });
    expect(source).toHaveLength(1);
    expect(source[0]!.value).toBe(1);
    expect(total(m, M.discoveryEndpoints, { [Labels.target]: target })).toBe(2);
  });

  test('close() stops the collection callbacks and the subscriptions', async () => {
    const [s] = await servers(1);
    const target = 'closing';
    const ins = withSdk().instrument(target);
    const source = staticList([s!.address]);
    const health = new Subject<ObservedHealthEvent>();
    ins.observe({ discovery: source });
    const endpoints = connect(source, (a: DiscoveredAddress) =>
      ins.endpoint(grpcEndpoint(a.address, { credentials: insecure, transport })),
    );
    const balancer = p2c(endpoints, { target });
    let reads = 0;
    ins.observe({
      balancer: {
        stats: () => {
          reads++;
          return balancer.stats();
        },
      },
      health,
    });
    const channel = createChannel(new ServiceBuilder<GrpcRequest, GrpcResponse>().service(balancer), {
      target,
    });
    cleanups.push(() => channel.close());
    expect((await unary(rawClient(channel), request({ message: 'c' }))).error).toBeUndefined();
    await sdk.metrics();
    expect(reads).toBe(1);
    expect(health.observed).toBe(true);
    await channel.closeAsync();
    ins.close();
    const m = await sdk.metrics();
    expect(reads).toBe(1);
    expect(health.observed).toBe(false);
    // the endpoint closed before the telemetry did: its connection is counted closed
    expect(total(m, M.openConnections, { [Labels.endpoint]: s!.address })).toBe(0);
    expect(
      total(m, M.disconnections, {
        [Labels.endpoint]: s!.address,
        [Labels.disconnectError]: 'subchannel shutdown',
      }),
    ).toBe(1);
    ins.close(); // twice: nothing happens
  });

  test('metrics only, or tracing only', async () => {
    const [s] = await servers(1);
    const { client: a, target } = channelOver([s!.address], {}, withSdk({ tracing: false }));
    expect((await unary(a, request({ message: 'm' }))).error).toBeUndefined();
    expect(sdk.spans.getFinishedSpans()).toEqual([]);
    expect(total(await sdk.metrics(), M.attemptStarted, { [Labels.target]: target })).toBe(1);
    const t = withSdk({ metrics: false });
    expect(t.instrument('x').enabled).toEqual({ metrics: false, tracing: true });
    const { client: b } = channelOver([s!.address], {}, t);
    const md = new grpc.Metadata();
    md.set('x-caller', 'kept');
    expect((await unary(b, request({ message: 't' }), UNARY, md)).error).toBeUndefined();
    expect(spansNamed(UNARY_LABEL)).toHaveLength(1);
    // the caller's metadata is not written to: the attempt sends a copy with traceparent
    expect(md.get('traceparent')).toEqual([]);
  });
});

describe('telemetry never fails a call', () => {
  test('a propagator, a tracer and instruments that throw: every call still succeeds', async () => {
    const boom = (): never => {
      throw new Error('broken by the application');
    };
    const throwing = { add: boom, record: boom };
    const meter = {
      createCounter: () => throwing,
      createHistogram: () => throwing,
      createUpDownCounter: () => throwing,
      createObservableGauge: () => ({}),
      createObservableCounter: () => ({}),
      addBatchObservableCallback: () => undefined,
      removeBatchObservableCallback: () => undefined,
    };
    const own = startSdk();
    cleanups.push(() => own.shutdown());
    const broken = [
      telemetry({ meterProvider: { getMeter: () => meter } as never, tracing: false }),
      telemetry({ tracerProvider: own.tracerProvider, propagator: { inject: boom }, metrics: false }),
      telemetry({ tracerProvider: { getTracer: () => ({ startSpan: boom }) } as never, metrics: false }),
    ];
    const [s] = await servers(1);
    for (const t of broken) {
      // its endpoint's connection counters throw too, inside an rxjs subscriber: nothing escapes
      const { client } = channelOn('native', [s!.address], {}, t);
      for (let i = 0; i < 3; i++)
        expect((await unary(client, request({ message: 'b' }))).error).toBeUndefined();
      expect((await serverStream(client, request({ message: 'b', count: 2 }))).length).toBe(2);
    }
  });
});
