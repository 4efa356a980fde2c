// towerDispatcher's telemetry against real peers: node:http2 servers on
// their own loopback addresses, undici's request(), and the real
// OpenTelemetry SDK (sdk-metrics with an in-memory reader, sdk-trace with
// the in-memory span exporter, the W3C propagator of @opentelemetry/core).
import { ConfigError } from '@grpc-tower/core';
import { staticList } from '@grpc-tower/discover';
import { activeHandles, expectNoLeaks, pickHosts } from '@grpc-tower/testing';
import {
  type Context,
  type ContextManager,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  trace,
} from '@opentelemetry/api';
import { type TowerDispatcher, type TowerDispatcherOptions, towerDispatcher } from 'grpc-tower/undici';
import { request } from 'undici';
import { afterAll, beforeEach, describe, expect, onTestFinished, test } from 'vitest';
import { type TestServer, answer, startServer } from '../../tower/src/undici/test/servers.js';
import { HTTP_DURATION_BUCKETS_S, HttpLabels as H, Labels, MetricNames as M } from './names.js';
import { type Telemetry, telemetry } from './telemetry.js';
import { type Sdk, histogram, metric, points, startSdk, total } from './test/support.js';

const ORIGIN = 'http://orders.test:8080';

// every server, SDK and dispatcher is released when its test ends (onTestFinished); nothing of
// them may be left once the file is done
const baseline = activeHandles();
afterAll(() => expectNoLeaks(baseline, { settleMs: 5000 }));

async function serve(count: number): Promise<TestServer[]> {
  const started = await Promise.all(
    pickHosts(count).map((host, i) => startServer({ host, name: `s${i + 1}` })),
  );
  for (const s of started) onTestFinished(() => s.close());
  return started;
}

let sdk: Sdk;
beforeEach(() => {
  sdk = startSdk();
  onTestFinished(() => sdk.shutdown());
});

const withSdk = (): Telemetry =>
  telemetry({
    meterProvider: sdk.meterProvider,
    tracerProvider: sdk.tracerProvider,
    propagator: sdk.propagator,
  });

function dispatcherOver(
  targets: readonly TestServer[],
  options: TowerDispatcherOptions = {},
): TowerDispatcher {
  const d = towerDispatcher(ORIGIN, {
    discovery: staticList(targets.map((t) => t.address)),
    telemetry: withSdk(),
    ...options,
  });
  onTestFinished(() => d.close());
  return d;
}

/** A GET through `dispatcher`, its body read whole; returns the status. */
async function get(dispatcher: TowerDispatcher, path: string): Promise<number> {
  const res = await request(`${ORIGIN}${path}`, { dispatcher });
  await res.body.text();
  return res.statusCode;
}

/**
 * A context manager that holds a context while a function runs
 * synchronously (the SDK's async-hooks one is not installed here): enough
 * for a request whose dispatch runs synchronously from `request()`.
 */
class SyncContextManager implements ContextManager {
  #stack: Context[] = [];
  active(): Context {
    return this.#stack.at(-1) ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    this.#stack.push(ctx);
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.#stack.pop();
    }
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#stack = [];
    return this;
  }
}

const origin = { [H.serverAddress]: 'orders.test', [H.serverPort]: 8080, [H.urlScheme]: 'http' };

describe('without an SDK', () => {
  test('instrumentHttp finds no provider: its layers are the inner service itself; a bad origin is named', () => {
    const ins = telemetry().instrumentHttp(ORIGIN);
    expect(ins.enabled).toEqual({ metrics: false, tracing: false });
    const inner = { call: () => Promise.reject(new Error('not called')) };
    expect(ins.calls(inner)).toBe(inner);
    expect(ins.attempts(inner)).toBe(inner);
    expect(() => telemetry().instrumentHttp('')).toThrow(/telemetry\.instrumentHttp.*target/s);
  });
});

describe('towerDispatcher with telemetry', () => {
  test('each request: one http.client.request.duration point and one client span, its traceparent at the server', async () => {
    const [s1, s2] = await serve(2);
    const d = dispatcherOver([s1!, s2!]);
    for (let i = 0; i < 6; i++) expect(await get(d, `/items/${i}`)).toBe(200);
    await d.close();
    const m = await sdk.metrics();
    const ok = { ...origin, [H.method]: 'GET', [H.statusCode]: 200 };
    const h = histogram(m, M.httpRequestDuration, ok);
    expect(metric(m, M.httpRequestDuration).descriptor.unit).toBe('s');
    expect(h.count).toBe(6);
    expect(h.sum).toBeGreaterThan(0);
    expect(h.boundaries).toEqual(HTTP_DURATION_BUCKETS_S);
    expect(points(m, M.httpRequestDuration)[0]!.attributes).toEqual(ok);
    // gRPC's per-call metrics are not recorded for HTTP requests
    expect(m.get(M.attemptStarted)).toBeUndefined();
    const spans = sdk.spans.getFinishedSpans();
    expect(spans).toHaveLength(6);
    const seen = [...s1!.seen, ...s2!.seen].map((r) => String(r.headers.traceparent));
    expect(seen).toHaveLength(6);
    for (const span of spans) {
      expect(span.name).toBe('GET');
      expect(span.kind).toBe(SpanKind.CLIENT);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.attributes).toMatchObject({
        ...ok,
        [H.urlFull]: expect.stringMatching(/^http:\/\/orders\.test:8080\/items\/\d$/),
      });
      const peer = `${span.attributes[H.peerAddress]}:${span.attributes[H.peerPort]}`;
      expect([s1!.address, s2!.address]).toContain(peer);
      expect(span.attributes[H.resendCount]).toBeUndefined();
      const { traceId, spanId } = span.spanContext();
      expect(seen).toContain(`00-${traceId}-${spanId}-01`);
    }
  });

  test('a retried request: a 503 point and span, then the retry as a child of the same parent with its resend count', async () => {
    const [s1, s2] = await serve(2);
    let failed = 0;
    for (const s of [s1!, s2!]) {
      s.handler = (stream, seen, server) => {
        if (seen.path === '/flaky' && failed++ === 0) {
          stream.respond({ ':status': 503 });
          stream.end();
          return;
        }
        answer(stream, seen, server);
      };
    }
    const d = dispatcherOver([s1!, s2!], { retry: { initialBackoffMs: 1, maxBackoffMs: 1 } });
    context.setGlobalContextManager(new SyncContextManager());
    onTestFinished(() => context.disable());
    const parent = sdk.tracerProvider.getTracer('test').startSpan('checkout');
    // the request starts inside the parent's context (dispatch runs synchronously from request())
    const status = await context.with(trace.setSpan(ROOT_CONTEXT, parent), () => get(d, '/flaky'));
    parent.end();
    expect(status).toBe(200);
    const m = await sdk.metrics();
    expect(
      histogram(m, M.httpRequestDuration, { ...origin, [H.statusCode]: 503, [H.errorType]: '503' }).count,
    ).toBe(1);
    expect(histogram(m, M.httpRequestDuration, { ...origin, [H.statusCode]: 200 }).count).toBe(1);
    const attempts = sdk.spans.getFinishedSpans().filter((s) => s.name === 'GET');
    expect(attempts).toHaveLength(2);
    const [first, second] = attempts;
    for (const a of attempts) {
      expect(a.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
      expect(a.spanContext().traceId).toBe(parent.spanContext().traceId);
    }
    expect(first!.attributes[H.statusCode]).toBe(503);
    expect(first!.status.code).toBe(SpanStatusCode.ERROR);
    expect(first!.attributes[H.resendCount]).toBeUndefined();
    expect(second!.attributes[H.statusCode]).toBe(200);
    expect(second!.attributes[H.resendCount]).toBe(1);
    // the retry layer and the outlier detector saw it too
    expect(d.stats().retry?.retries).toBe(1);
  });

  test("the parts' metrics: connections, balancer, discovery, retry budget, labelled with the origin; stopped by close()", async () => {
    const [s1, s2] = await serve(2);
    const d = dispatcherOver([s1!, s2!]);
    for (let i = 0; i < 4; i++) expect(await get(d, `/p/${i}`)).toBe(200);
    const m = await sdk.metrics();
    const target = { [Labels.target]: 'http://orders.test:8080' };
    expect(total(m, M.connectionAttemptsSucceeded)).toBeGreaterThanOrEqual(1);
    expect(total(m, M.endpointPicks, target)).toBe(4);
    expect(total(m, M.discoveryEndpoints, target)).toBe(2);
    expect(points(m, M.retryBudgetLevel, target)).toHaveLength(1);
    await d.close();
    // the dispatcher's close stops the telemetry after the servers' sessions closed: each counted closed
    const after = await sdk.metrics();
    for (const s of [s1!, s2!]) {
      expect(total(after, M.openConnections, { [Labels.endpoint]: s.address })).toBe(0);
      expect(
        total(after, M.disconnections, {
          [Labels.endpoint]: s.address,
          [Labels.disconnectError]: 'subchannel shutdown',
        }),
      ).toBe(1);
    }
  });

  test('a telemetry without instrumentHttp is refused by name, and nothing is left running', () => {
    expect(() =>
      towerDispatcher(ORIGIN, {
        discovery: staticList([]),
        telemetry: { instrument: () => undefined } as never,
      }),
    ).toThrow(ConfigError);
    expect(() => towerDispatcher(ORIGIN, { discovery: staticList([]), telemetry: {} as never })).toThrow(
      /towerDispatcher.*telemetry.*instrumentHttp/s,
    );
    // a dispatcher that cannot be built closes the telemetry it instrumented
    let closed = 0;
    const counting = {
      instrumentHttp(o: string) {
        return { ...withSdk().instrumentHttp(o), close: () => void closed++ };
      },
    };
    expect(() =>
      towerDispatcher(ORIGIN, {
        discovery: staticList([]),
        telemetry: counting,
        balancer: { failFastMs: -5 },
      }),
    ).toThrow(/failFastMs/);
    expect(closed).toBe(1);
  });
});
