// healthChecked against real grpc-js servers: the standard health service
// (grpc-health-check, as the echo test server runs it), servers without
// it, and hand-written health services that fail on purpose. The Watch
// and Check calls run over both transports (a server stream and a unary
// call through the endpoint, their statuses and their cancel).
import { type Balancer, p2c, pendingRequests } from '@grpc-tower/balance';
import { ConfigError, type Readiness, type Change } from '@grpc-tower/core';
import { grpcEndpoint, type GrpcRequest, type GrpcResponse, type GrpcTransport } from '@grpc-tower/core/grpc';
import {
  ECHO_SERVICE_NAME,
  type EchoServer,
  activeHandles,
  expectNoLeaks,
  insecure,
  startEchoServer,
  TRANSPORTS,
} from '@grpc-tower/testing';
import * as grpc from '@grpc/grpc-js';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { HealthEvent } from '../events.js';
import {
  PLACED,
  type ScriptedHealthServer,
  next,
  placedInsert,
  send,
  startScriptedHealthServer,
  startServers,
} from '../test/support.js';
import { type HealthCheckedEndpoint, healthChecked } from './endpoint.js';
import type { HealthCheckOptions } from './options.js';

const servers: EchoServer[] = [];
const scripted: ScriptedHealthServer[] = [];
const endpoints: HealthCheckedEndpoint[] = [];
const balancers: Balancer<GrpcRequest, GrpcResponse, string>[] = [];

afterEach(async () => {
  await Promise.all(balancers.splice(0).map((b) => b.close({ graceMs: 0 })));
  await Promise.all(endpoints.splice(0).map((e) => e.close({ graceMs: 0 })));
  await Promise.all(servers.splice(0).map((s) => s.stop(0)));
  await Promise.all(scripted.splice(0).map((s) => s.stop()));
});

const fastReconnect = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 200,
};

function checked(transport: GrpcTransport, address: string, options: HealthCheckOptions = {}) {
  const health = healthChecked(options);
  const events: HealthEvent[] = [];
  health.events$.subscribe((e) => events.push(e));
  const ep = health(
    grpcEndpoint(address, { credentials: insecure, channelOptions: fastReconnect, transport }),
  );
  endpoints.push(ep);
  const states: Readiness[] = [];
  ep.readiness$.subscribe((r) => states.push(r));
  return { health, ep, events, states };
}

async function servers$(n: number, health = true): Promise<EchoServer[]> {
  const started = await startServers(n, health);
  servers.push(...started);
  return started;
}

async function scriptedServer(handlers: Parameters<typeof startScriptedHealthServer>[0]) {
  const s = await startScriptedHealthServer(handlers);
  scripted.push(s);
  return s;
}

const healthChanges = (events: HealthEvent[]) =>
  events.flatMap((e) => (e.type === 'health' ? [`${e.from}->${e.to}`] : []));

describe.each(TRANSPORTS)('healthChecked: Watch, over the %s transport', (transport) => {
  test('SERVING → ready, NOT_SERVING → failed, SERVING again → ready; each change is an event', async () => {
    const [server] = await servers$(1);
    const { ep, events, states } = checked(transport, server!.address);
    await next(ep.readiness$, (r) => r === 'ready');
    expect(ep.health).toBe('healthy');
    expect(ep.servingStatus).toBe('SERVING');

    server!.setServing('NOT_SERVING');
    await next(ep.readiness$, (r) => r === 'failed');
    expect(ep.servingStatus).toBe('NOT_SERVING');
    server!.setServing('SERVING');
    await next(ep.readiness$, (r) => r === 'ready');

    expect(states).toEqual(['connecting', 'ready', 'failed', 'ready']);
    expect(healthChanges(events)).toEqual(['unknown->healthy', 'healthy->unhealthy', 'unhealthy->healthy']);
    const down = events[1];
    expect(down).toMatchObject({ type: 'health', endpoint: server!.address, status: 'NOT_SERVING' });
    expect(down?.type === 'health' && down.reason).toContain('NOT_SERVING');
  });

  test('an event is built only while somebody subscribes to events$', async () => {
    const [server] = await servers$(1);
    // the inner endpoint's address is read when a health event is built, and not otherwise
    const real = grpcEndpoint(server!.address, {
      credentials: insecure,
      channelOptions: fastReconnect,
      transport,
    });
    let addressReads = 0;
    const inner = new Proxy(real, {
      get(target, key) {
        if (key === 'address') addressReads++;
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const health = healthChecked();
    const ep = health(inner);
    endpoints.push(ep);
    const states: Readiness[] = [];
    ep.readiness$.subscribe((r) => states.push(r));
    const readsAtStart = addressReads;

    // two health changes with nobody listening: no event built
    await next(ep.readiness$, (r) => r === 'ready');
    server!.setServing('NOT_SERVING');
    await next(ep.readiness$, (r) => r === 'failed');
    expect(states).toEqual(['connecting', 'ready', 'failed']);
    expect(addressReads - readsAtStart).toBe(0);

    // with a subscriber, the next change is an event
    const events: HealthEvent[] = [];
    const subscription = health.events$.subscribe((e) => events.push(e));
    server!.setServing('SERVING');
    await next(ep.readiness$, (r) => r === 'ready');
    subscription.unsubscribe();
    expect(healthChanges(events)).toEqual(['unhealthy->healthy']);
    expect(events[0]).toMatchObject({ endpoint: server!.address, status: 'SERVING' });
    expect(addressReads - readsAtStart).toBe(1);
  });

  test('behind p2c: a NOT_SERVING server stops getting calls, and gets them again on SERVING', async () => {
    const [a, b] = await servers$(2);
    const health = healthChecked();
    const changes = new Subject<Change<string, HealthCheckedEndpoint>>();
    const balancer = p2c(changes, { target: 'echo', load: pendingRequests(), failFastMs: 2000 });
    balancers.push(balancer);
    const eps = [a!, b!].map((s) => health(grpcEndpoint(s.address, { credentials: insecure, transport })));
    for (const ep of eps) changes.next({ type: 'insert', key: ep.address, endpoint: ep });
    await Promise.all(eps.map((ep) => next(ep.readiness$, (r) => r === 'ready')));

    const names = async (n: number) => {
      const seen: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = await send(balancer);
        expect(r.code).toBe(grpc.status.OK);
        seen.push(r.server!);
      }
      return seen;
    };
    expect(new Set(await names(40))).toEqual(new Set(['s0', 's1']));

    a!.setServing('NOT_SERVING');
    // the server pushes the change on the open Watch: one message, no polling
    await next(eps[0]!.readiness$, (r) => r === 'failed');
    const before = a!.calls.total;
    expect(new Set(await names(40))).toEqual(new Set(['s1']));
    expect(a!.calls.total).toBe(before);

    a!.setServing('SERVING');
    await next(eps[0]!.readiness$, (r) => r === 'ready');
    expect(await names(40)).toContain('s0');
    expect(a!.calls.total).toBeGreaterThan(before);
  });

  test('a named service: its own status gates the endpoint, the server-wide one does not', async () => {
    const [server] = await servers$(1);
    const { ep } = checked(transport, server!.address, { service: ECHO_SERVICE_NAME });
    await next(ep.readiness$, (r) => r === 'ready');
    server!.setServing('NOT_SERVING', '');
    server!.setServing('NOT_SERVING', ECHO_SERVICE_NAME);
    await next(ep.readiness$, (r) => r === 'failed');
    server!.setServing('SERVING', ECHO_SERVICE_NAME);
    await next(ep.readiness$, (r) => r === 'ready');
  });

  test('a service the server does not know is SERVICE_UNKNOWN: failed', async () => {
    const [server] = await servers$(1);
    const { ep, events } = checked(transport, server!.address, { service: 'no.such.Service' });
    await next(ep.readiness$, (r) => r === 'failed');
    expect(ep.servingStatus).toBe('SERVICE_UNKNOWN');
    expect(events[0]).toMatchObject({
      type: 'health',
      from: 'unknown',
      to: 'unhealthy',
      status: 'SERVICE_UNKNOWN',
    });
  });

  test('a server without the health service stays in rotation; UNIMPLEMENTED is reported once', async () => {
    const [server] = await servers$(1, false);
    const { ep, events } = checked(transport, server!.address);
    await next(ep.readiness$, (r) => r === 'ready');
    expect(ep.health).toBe('healthy');
    expect((await send(ep)).code).toBe(grpc.status.OK);

    // the connection drops and comes back (a new server on the same address, still without health)
    const { host, port } = server!;
    server!.kill();
    await next(ep.readiness$, (r) => r !== 'ready');
    const again = await startEchoServer({ host, port, name: 'again' });
    servers.push(again);
    await next(ep.readiness$, (r) => r === 'ready');
    expect((await send(ep)).server).toBe('again');

    const notes = events.filter((e) => e.type === 'unimplemented');
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ endpoint: ep.address });
    expect(notes[0]?.reason).toContain('UNIMPLEMENTED');
    // the verdict was reset with the connection and given again by the new Watch
    expect(healthChanges(events)).toEqual(['unknown->healthy', 'healthy->unknown', 'unknown->healthy']);
  });

  test('a failing Watch makes the endpoint failed and is retried with backoff until it works', async () => {
    const server = await scriptedServer({
      watch: (call, n) => {
        if (n <= 2) call.emit('error', { code: grpc.status.UNAVAILABLE, details: `warming up ${n}` });
        else call.write({ status: 'SERVING' });
      },
    });
    const { ep, events, states } = checked(transport, server.address, {
      backoff: { initialMs: 20, maxMs: 40 },
    });
    await next(ep.readiness$, (r) => r === 'ready');
    expect(server.watches).toBe(3);
    expect(states).toEqual(['connecting', 'failed', 'ready']);
    expect(healthChanges(events)).toEqual(['unknown->unhealthy', 'unhealthy->healthy']);
    const failed = events[0];
    expect(failed?.type === 'health' && failed.reason).toContain('UNAVAILABLE: warming up 1');
  });

  test('a Watch that failed without a message waits for the backoff before the next attempt', async () => {
    const server = await scriptedServer({
      watch: (call) => call.emit('error', { code: grpc.status.INTERNAL, details: 'broken' }),
    });
    const { ep } = checked(transport, server.address, { backoff: { initialMs: 60_000 } });
    await next(ep.readiness$, (r) => r === 'failed');
    // many round trips later there is still only the first Watch
    for (let i = 0; i < 20; i++) await send(ep);
    expect(server.watches).toBe(1);
    expect(ep.readiness).toBe('failed');
  });

  test('any message resets the backoff: a Watch that ended after a message restarts at once', async () => {
    const server = await scriptedServer({
      watch: (call, n) => {
        call.write({ status: 'SERVING' });
        if (n <= 3) call.end(); // ends with OK: retried, but without waiting
      },
    });
    // a 60 s backoff would stall this test if it applied
    const { ep } = checked(transport, server.address, { backoff: { initialMs: 60_000 } });
    await expect.poll(() => server.watches, { timeout: 10_000 }).toBe(4);
    await next(ep.readiness$, (r) => r === 'ready');
  });

  test('the Watch stream is not counted in pending, and close() cancels it and closes the endpoint', async () => {
    const before = activeHandles();
    const [server] = await servers$(1);
    const inner = grpcEndpoint(server!.address, { credentials: insecure, closeGraceMs: 60_000, transport });
    const ep = healthChecked()(inner);
    const states: Readiness[] = [];
    let completed = false;
    ep.readiness$.subscribe({ next: (r) => states.push(r), complete: () => (completed = true) });
    await next(ep.readiness$, (r) => r === 'ready');
    expect(inner.pending).toBe(1);
    expect(ep.pending).toBe(0);
    // with the Watch left open, the inner endpoint would wait its 60 s grace
    await ep.close();
    expect(inner.readiness).toBe('closed');
    expect(states.at(-1)).toBe('closed');
    expect(completed).toBe(true);
    servers.splice(0);
    await server!.stop(0);
    await expectNoLeaks(before, { settleMs: 3000 });
  });
});

describe.each(TRANSPORTS)('healthChecked: Check polling, over the %s transport', (transport) => {
  test('polls Check: NOT_SERVING → failed, SERVING → ready', async () => {
    const [server] = await servers$(1);
    const { ep, states } = checked(transport, server!.address, {
      mode: 'check',
      intervalMs: 20,
      timeoutMs: 1000,
    });
    await next(ep.readiness$, (r) => r === 'ready');
    server!.setServing('NOT_SERVING');
    await next(ep.readiness$, (r) => r === 'failed');
    server!.setServing('SERVING');
    await next(ep.readiness$, (r) => r === 'ready');
    expect(states).toEqual(['connecting', 'ready', 'failed', 'ready']);
  });

  test('NOT_FOUND for an unknown service is SERVICE_UNKNOWN', async () => {
    const [server] = await servers$(1);
    const { ep, events } = checked(transport, server!.address, { mode: 'check', service: 'no.such.Service' });
    await next(ep.readiness$, (r) => r === 'failed');
    expect(ep.servingStatus).toBe('SERVICE_UNKNOWN');
    expect(events[0]?.type === 'health' && events[0].reason).toContain('NOT_FOUND');
  });

  test('a Check that times out counts as unhealthy; the next answer counts again', async () => {
    const server = await scriptedServer({
      check: (_call, callback, n) => {
        if (n === 1) return; // never answers
        callback(null, { status: 'SERVING' });
      },
    });
    const { ep, events } = checked(transport, server.address, {
      mode: 'check',
      intervalMs: 20,
      timeoutMs: 100,
    });
    await next(ep.readiness$, (r) => r === 'ready');
    expect(healthChanges(events)).toEqual(['unknown->unhealthy', 'unhealthy->healthy']);
    expect(events[0]?.type === 'health' && events[0].reason).toContain('timed out after 100 ms');
  });

  test('UNIMPLEMENTED: healthy, reported once, and not polled again', async () => {
    const [server] = await servers$(1, false);
    const { ep, events } = checked(transport, server!.address, { mode: 'check', intervalMs: 10 });
    await next(ep.readiness$, (r) => r === 'ready');
    for (let i = 0; i < 10; i++) expect((await send(ep)).code).toBe(grpc.status.OK);
    expect(events.filter((e) => e.type === 'unimplemented')).toHaveLength(1);
    // no Check in flight, none scheduled: the only call the endpoint holds is none
    expect(ep.inner.pending).toBe(0);
  });
});

describe('healthChecked: options', () => {
  test.each([
    [{ mode: 'poll' }, 'mode'],
    [{ service: 7 }, 'service'],
    [{ intervalMs: 0 }, 'intervalMs'],
    [{ timeoutMs: -1 }, 'timeoutMs'],
    [{ backoff: { initialMs: 0 } }, 'backoff.initialMs'],
    [{ backoff: { initialMs: 100, maxMs: 50 } }, 'backoff.maxMs'],
    [{ backoff: { multiplier: 0.5 } }, 'backoff.multiplier'],
    [{ backoff: { jitter: 2 } }, 'backoff.jitter'],
    [{ random: 1 }, 'random'],
  ])('%j throws ConfigError naming %s', (options, option) => {
    expect(() => healthChecked(options as HealthCheckOptions)).toThrow(ConfigError);
    try {
      healthChecked(options as HealthCheckOptions);
    } catch (err) {
      expect((err as ConfigError).option).toBe(option);
      expect((err as ConfigError).where).toBe('healthChecked');
    }
  });

  test('wrapping something that is not an endpoint throws ConfigError', () => {
    expect(() => healthChecked()({} as never)).toThrow(ConfigError);
  });

  test('the weight, zone and topology hints of a discovered address travel on its insert, around the wrapper', async () => {
    const insert = await placedInsert((address) =>
      healthChecked()(grpcEndpoint(address, { credentials: insecure })),
    );
    endpoints.push(insert.endpoint);
    expect(insert.endpoint.address).toBe(PLACED.address);
    expect(insert.metadata).toEqual({ weight: 2, zone: 'a', forZones: ['a'] });
  });

  test('defaults: Watch on the whole server, 1 s backoff growing 1.6× to 30 s', () => {
    expect(healthChecked().options).toMatchObject({
      service: '',
      mode: 'watch',
      intervalMs: 10_000,
      timeoutMs: 1_000,
      backoff: { initialMs: 1_000, maxMs: 30_000, multiplier: 1.6, jitter: 0.2 },
    });
  });
});
