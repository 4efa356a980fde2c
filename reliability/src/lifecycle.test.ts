// The stack carries its own readiness and lifecycle. A stack of
// timeout → retry → p2c over polled discovery, health checks and outlier
// detection, given to createChannel with no option but its target, must
// report the truth to a grpc-js client (CONNECTING, READY,
// TRANSIENT_FAILURE while every server is down, READY again), and closing
// the channel must release everything the stack holds: endpoints and their
// sockets, health watches, the detector's timers (unref'd ones included),
// discovery polling. Servers are child processes on 127.0.0.x. The same
// for the one-call channel with telemetry recording into the real
// OpenTelemetry SDK.
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, timeout } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect } from '@grpc-tower/discover';
import { healthChecked, outlierDetection } from '@grpc-tower/health';
import { retry, retryBudget } from '@grpc-tower/retry';
import { callMetricsProducer, telemetry } from '@grpc-tower/telemetry';
import { TRANSPORTS, createEchoClient, insecure, trackResources } from '@grpc-tower/testing';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, InMemorySpanExporter, TracerProvider } from '@opentelemetry/sdk-trace';
import { towerChannel } from 'grpc-tower';
import { afterEach, describe, expect, test } from 'vitest';
import { PullReader } from '../../packages/telemetry/src/test/reader.js';
import { Fleet, Registry } from './support/fleet.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** The client's connectivity state once it differs from `from` (bounded by `ms`). */
function nextState(
  client: grpc.Client,
  from: grpc.connectivityState,
  ms: number,
): Promise<grpc.connectivityState> {
  return new Promise((resolve, reject) => {
    client.getChannel().watchConnectivityState(from, Date.now() + ms, (err) => {
      if (err) reject(new Error(`connectivity stayed ${grpc.connectivityState[from]} for ${ms} ms`));
      else resolve(client.getChannel().getConnectivityState(false));
    });
  });
}

/** Waits until the client reports `want`, following each change (bounded by `ms`). */
async function until(
  client: grpc.Client,
  want: grpc.connectivityState,
  ms: number,
): Promise<grpc.connectivityState[]> {
  const seen: grpc.connectivityState[] = [];
  const deadline = Date.now() + ms;
  let state = client.getChannel().getConnectivityState(false);
  while (state !== want) {
    state = await nextState(client, state, Math.max(1, deadline - Date.now()));
    seen.push(state);
  }
  return seen;
}

// connectivity and what closing releases are meant to be the same over both transports
describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  test('a stack of timeout, retry and p2c reports connectivity truthfully and closing the channel releases everything', async () => {
    const fleet = await Fleet.start(2);
    cleanup.push(() => fleet.close());
    const registry = new Registry(fleet.addresses());
    const tracker = trackResources();
    cleanup.push(() => tracker.stop());

    const health = healthChecked({ backoff: { initialMs: 50, maxMs: 200 } });
    const detector = outlierDetection({ intervalMs: 200 });
    const endpoints = connect(registry.source(100), (a) =>
      detector.wrap(
        health(
          grpcEndpoint(a.address, {
            credentials: insecure,
            transport,
            channelOptions: {
              'grpc.initial_reconnect_backoff_ms': 100,
              'grpc.max_reconnect_backoff_ms': 200,
            },
          }),
        ),
      ),
    );
    const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
      .layer(timeout({ ms: 2_000 }))
      .layer(retry({ maxAttempts: 3, budget: retryBudget() }))
      .service(p2c(endpoints, { target: 'echo.lifecycle' }));
    const channel = createChannel(stack, { target: 'echo.lifecycle' });
    const client = createEchoClient('echo.lifecycle', { channelOverride: channel });
    // before discovery has produced anything: connecting
    expect(client.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.CONNECTING);
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
    );
    expect(client.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY);
    const ok = await new Promise<string>((resolve, reject) =>
      client.Unary(
        { message: 'up' },
        new grpc.Metadata(),
        {},
        (err: grpc.ServiceError | null, reply?: { server: string }) =>
          err ? reject(err) : resolve(reply?.server ?? ''),
      ),
    );
    expect(fleet.names()).toContain(ok);

    // every server down: the connections drop and reconnecting fails
    for (const name of fleet.names()) await fleet.kill(name);
    const down = await until(client, grpc.connectivityState.TRANSIENT_FAILURE, 10_000);
    expect(down).not.toContain(grpc.connectivityState.SHUTDOWN);
    expect(client.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.TRANSIENT_FAILURE);

    // one back on its address: ready again, and calls go through
    const [first] = fleet.names();
    await fleet.restart(first!);
    await until(client, grpc.connectivityState.READY, 10_000);
    const back = await new Promise<string>((resolve, reject) =>
      client.Unary(
        { message: 'back' },
        new grpc.Metadata(),
        {},
        (err: grpc.ServiceError | null, reply?: { server: string }) =>
          err ? reject(err) : resolve(reply?.server ?? ''),
      ),
    );
    expect(back).toBe(first);

    // close: the client, then the channel, and nothing else by hand (no detector.close())
    client.close();
    await channel.closeAsync();
    expect(stack.readiness).toBe('closed');
    expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.SHUTDOWN);
    expect(detector.stats().known).toBe(0);
    // the servers were created while tracking, too: stop them, then nothing may be alive
    await fleet.close();
    await tracker.expectNone({ settleMs: 3_000 });
  });

  test('towerChannel with telemetry into the SDK: closing the channel releases everything, its watch of discovery included', async () => {
    const fleet = await Fleet.start(2);
    cleanup.push(() => fleet.close());
    const registry = new Registry(fleet.addresses());
    const tracker = trackResources();
    cleanup.push(() => tracker.stop());
    // the real SDK: a pull reader with the package's producer, traces through a batch processor; the
    // telemetry's subscriptions (discovery's events, the endpoints' readiness) must not keep polling alive
    const callMetrics = callMetricsProducer();
    const reader = new PullReader({ metricProducers: [callMetrics] });
    const meterProvider = new MeterProvider({ readers: [reader] });
    const spans = new InMemorySpanExporter();
    const tracerProvider = new TracerProvider({
      spanProcessors: [new BatchSpanProcessor({ exporter: spans })],
    });
    const channel = towerChannel('dns:///echo.lifecycle:1', insecure, {
      discovery: registry.source(100),
      telemetry: telemetry({ meterProvider, tracerProvider, callMetrics }),
      health: { backoff: { initialMs: 50, maxMs: 200 } },
      transport,
    });
    const client = createEchoClient('echo.lifecycle', { channelOverride: channel });
    const ok = await new Promise<string>((resolve, reject) =>
      client.Unary(
        { message: 'up' },
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (err: grpc.ServiceError | null, reply?: { server: string }) =>
          err ? reject(err) : resolve(reply?.server ?? ''),
      ),
    );
    expect(fleet.names()).toContain(ok);
    const { resourceMetrics } = await reader.collect();
    const names = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name));
    expect(names).toEqual(
      expect.arrayContaining(['grpc.client.call.duration', 'grpc_tower.lb.endpoint.state']),
    );

    client.close();
    await channel.closeAsync();
    await tracerProvider.forceFlush();
    expect(spans.getFinishedSpans().map((s) => s.name)).toEqual(
      expect.arrayContaining(['grpctower.testing.Echo/Unary', 'Attempt.grpctower.testing.Echo/Unary']),
    );
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
    await fleet.close();
    await tracker.expectNone({ settleMs: 3_000 });
  });
});
