// The one stack recipe, seen through both front ends against real peers
// (grpc-js echo servers with the grpc.health.v1 service, node:http2
// servers, undici's request()): the defaults they share and the one they
// do not (health checks), the order of the layers, the same words for the
// same bad option, and the release of what was made when building fails.
import * as grpc from '@grpc/grpc-js';
import { ConfigError, type Layer, Status, type Change } from '@grpc-tower/core';
import { type DiscoveredAddress, staticList } from '@grpc-tower/discover';
import {
  type EchoProtoClient,
  type EchoServer,
  activeHandles,
  createEchoClient,
  expectNoLeaks,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import { Observable } from 'rxjs';
import { request } from 'undici';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { type TowerOptions, towerChannel } from './channel.js';
import type { TowerInstrumentation } from './recipe.js';
import { type TowerDispatcher, type TowerDispatcherOptions, towerDispatcher } from './undici/index.js';
import { type TestServer, answer, startServer } from './undici/test/servers.js';

const insecure = grpc.credentials.createInsecure();
const { EchoService } = loadEchoPackage();
const ORIGIN = 'http://orders.test:8080';

const baseline = activeHandles();
afterAll(() => expectNoLeaks(baseline, { settleMs: 5000 }));

/** What a stack's telemetry was shown and what ran through its layers, as the documented interface reports it. */
interface Seen {
  readonly log: string[];
  readonly parts: Set<string>;
  budgetLevel: number | undefined;
  closed: number;
}

/**
 * A telemetry object of the shape both front ends take (`instrument` and
 * `instrumentHttp`): records the parts it is asked to observe and the order
 * in which its call and attempt layers run.
 */
function recording(): { telemetry: never; seen: Seen } {
  const seen: Seen = { log: [], parts: new Set(), budgetLevel: undefined, closed: 0 };
  const tag =
    <Req, Res>(name: string): Layer<Req, Res> =>
    (inner) => ({
      call(req, ctx) {
        seen.log.push(name);
        return inner.call(req, ctx);
      },
    });
  const instrumentation = (): TowerInstrumentation<unknown, unknown> => ({
    calls: tag('telemetry.calls'),
    attempts: tag('telemetry.attempts'),
    endpoint: (ep) => ep,
    observe(parts) {
      for (const [k, v] of Object.entries(parts)) if (v !== undefined) seen.parts.add(k);
      if (parts.retry !== undefined) seen.budgetLevel = parts.retry.stats().budgetLevel;
    },
    close() {
      seen.closed++;
    },
  });
  return { telemetry: { instrument: instrumentation, instrumentHttp: instrumentation } as never, seen };
}

const layer =
  <Req, Res>(log: string[], name: string): Layer<Req, Res> =>
  (inner) => ({
    call(req, ctx) {
      log.push(name);
      return inner.call(req, ctx);
    },
  });

async function echoServers(n: number): Promise<EchoServer[]> {
  const out = await Promise.all(pickHosts(n).map((host) => startEchoServer({ host, health: true })));
  for (const s of out) onTestFinished(() => s.stop(0));
  return out;
}

function channelOver(servers: readonly EchoServer[], options: TowerOptions = {}): EchoProtoClient {
  const target = `ipv4:${servers.map((s) => s.address).join(',')}`;
  const channel = towerChannel(target, insecure, { services: [EchoService], ...options });
  const client = createEchoClient(target, { channelOverride: channel });
  onTestFinished(async () => {
    client.close();
    await channel.closeGracefully();
  });
  return client;
}

function unary(client: EchoProtoClient): Promise<{ ok: boolean; code?: number }> {
  return new Promise((resolve) => {
    client.Unary({ message: 'm' }, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err) =>
      resolve(err === null ? { ok: true } : { ok: false, code: err.code }),
    );
  });
}

async function httpServers(n: number): Promise<TestServer[]> {
  const out = await Promise.all(pickHosts(n).map((host, i) => startServer({ host, name: `s${i + 1}` })));
  for (const s of out) onTestFinished(() => s.close());
  return out;
}

function dispatcherOver(
  servers: readonly TestServer[],
  options: TowerDispatcherOptions = {},
): TowerDispatcher {
  const d = towerDispatcher(ORIGIN, { discovery: staticList(servers.map((s) => s.address)), ...options });
  onTestFinished(() => d.destroy());
  return d;
}

async function get(d: TowerDispatcher, path: string): Promise<number> {
  const res = await request(`${ORIGIN}${path}`, { dispatcher: d });
  await res.body.text();
  return res.statusCode;
}

describe('the defaults both front ends share', () => {
  test('outlier detection and retries within a fresh budget are on; health checks on for gRPC, off for HTTP', async () => {
    const grpcDefault = recording();
    const client = channelOver(await echoServers(1), { telemetry: grpcDefault.telemetry });
    expect((await unary(client)).ok).toBe(true);
    expect([...grpcDefault.seen.parts].sort()).toEqual([
      'balancer',
      'discovery',
      'health',
      'outlier',
      'retry',
    ]);
    // Finagle's budget: 20 % of requests + 10 retries/s, full at the start
    expect(grpcDefault.seen.budgetLevel).toBeGreaterThan(0);

    const httpDefault = recording();
    const d = dispatcherOver(await httpServers(1), { telemetry: httpDefault.telemetry });
    expect(await get(d, '/a')).toBe(200);
    expect([...httpDefault.seen.parts].sort()).toEqual(['balancer', 'discovery', 'outlier', 'retry']);
    expect(httpDefault.seen.budgetLevel).toBe(grpcDefault.seen.budgetLevel);
    expect(Object.keys(d.events).sort()).toEqual(['balancer', 'outlier', 'retry']);

    // `false` turns each off, the same way for both
    const off = { health: false, outlierDetection: false, retry: false } as const;
    const grpcOff = recording();
    expect(
      (await unary(channelOver(await echoServers(1), { ...off, telemetry: grpcOff.telemetry }))).ok,
    ).toBe(true);
    expect([...grpcOff.seen.parts].sort()).toEqual(['balancer', 'discovery']);
    const httpOff = recording();
    expect(
      await get(dispatcherOver(await httpServers(1), { ...off, telemetry: httpOff.telemetry }), '/b'),
    ).toBe(200);
    expect([...httpOff.seen.parts].sort()).toEqual(['balancer', 'discovery']);
  });

  test("the endpoint kind's protocol, passed once, is what retry and outlier detection both read: a 503 is retried and counted", async () => {
    const [bad, good] = await httpServers(2);
    bad!.handler = (stream) => {
      stream.on('end', () => {
        if (stream.closed || stream.destroyed) return;
        stream.respond({ ':status': 503 });
        stream.end('busy');
      });
    };
    const d = dispatcherOver([bad!, good!], { outlierDetection: { consecutiveFailures: 100 } });
    const codes: number[] = [];
    // ten calls: at most ten retries, within the default budget's reserve
    for (let i = 0; i < 10; i++) codes.push(await get(d, `/r${i}`));
    // every 503 was a failed attempt for the retry layer: the other server answered
    expect(codes).toEqual(Array(10).fill(200));
    const stats = d.stats();
    const failed = bad!.seen.length;
    expect(failed).toBeGreaterThan(0);
    expect(stats.retry?.retries).toBe(failed);
    // and a failure for outlier detection, in the same protocol's words
    const entry = stats.outlier?.endpoints.find((e) => e.address === bad!.address);
    expect(entry).toMatchObject({ consecutiveFailures: failed });
  });

  test('gRPC: a server whose grpc.health.v1 status is NOT_SERVING takes no call unless health is false', async () => {
    const servers = await echoServers(2);
    for (const s of servers) s.setServing('NOT_SERVING');
    const checked = channelOver(servers, { balancer: { failFastMs: 300 } });
    expect(await unary(checked)).toEqual({ ok: false, code: Status.UNAVAILABLE });
    expect(servers.reduce((n, s) => n + s.calls.total, 0)).toBe(0);
    const unchecked = channelOver(servers, { health: false, balancer: { failFastMs: 300 } });
    expect((await unary(unchecked)).ok).toBe(true);
    expect(servers.reduce((n, s) => n + s.calls.total, 0)).toBe(1);
  });

  test('HTTP: no health request unless a path is given; with one, each server is asked GET <path>', async () => {
    const [plain] = await httpServers(1);
    expect(await get(dispatcherOver([plain!]), '/a')).toBe(200);
    expect(plain!.seen.map((r) => r.path)).toEqual(['/a']);

    const [checked] = await httpServers(1);
    const d = dispatcherOver([checked!], { health: { path: '/healthz' } });
    expect(await get(d, '/b')).toBe(200);
    expect(d.events.health).toBeDefined();
    // the first request waits for the server's first check
    expect(checked!.seen.map((r) => `${r.method} ${r.path}`)).toContain('GET /healthz');
  });
});

describe('one assembly', () => {
  test('the layers run in the same order for both: calls, outer, then per attempt inner and attempts', async () => {
    const expected = [
      'telemetry.calls',
      'outer',
      'inner',
      'telemetry.attempts',
      // the first attempt failed UNAVAILABLE (gRPC) or 503 (HTTP): retried below the outer layers
      'inner',
      'telemetry.attempts',
    ];

    const [echo] = await echoServers(1);
    echo!.failNext(1, Status.UNAVAILABLE);
    const g = recording();
    const client = channelOver([echo!], {
      telemetry: g.telemetry,
      retry: { initialBackoffMs: 1, maxBackoffMs: 1 },
      layers: { outer: [layer(g.seen.log, 'outer')], inner: [layer(g.seen.log, 'inner')] },
    });
    expect((await unary(client)).ok).toBe(true);
    expect(g.seen.log).toEqual(expected);

    const [http] = await httpServers(1);
    let first = true;
    http!.handler = (stream, seen, server) => {
      if (first) {
        first = false;
        stream.respond({ ':status': 503 });
        stream.end();
      } else {
        answer(stream, seen, server);
      }
    };
    const h = recording();
    const d = dispatcherOver([http!], {
      telemetry: h.telemetry,
      retry: { initialBackoffMs: 1, maxBackoffMs: 1 },
      layers: { outer: [layer(h.seen.log, 'outer')], inner: [layer(h.seen.log, 'inner')] },
    });
    expect(await get(d, '/c')).toBe(200);
    expect(h.seen.log).toEqual(expected);
  });

  test('the same bad option is refused in the same words by both, naming the front end', () => {
    const bad: [string, Record<string, unknown>][] = [
      ['health', { health: 5 }],
      ['outlierDetection', { outlierDetection: 'on' }],
      ['retry', { retry: true }],
      ['layers', { layers: [] as unknown[] }],
      ['layers.outer[0]', { layers: { outer: [1] } }],
      ['telemetry', { telemetry: {} }],
    ];
    for (const [option, options] of bad) {
      const fromChannel = errorOf(() => towerChannel('ipv4:127.0.0.1:1', insecure, options as TowerOptions));
      const fromDispatcher = errorOf(() =>
        towerDispatcher(ORIGIN, { discovery: staticList([]), ...(options as TowerDispatcherOptions) }),
      );
      expect(fromChannel).toBeInstanceOf(ConfigError);
      expect(fromDispatcher).toBeInstanceOf(ConfigError);
      expect(fromChannel.message).toContain(`towerChannel: option "${option}"`);
      expect(fromDispatcher.message).toContain(`towerDispatcher: option "${option}"`);
      // the telemetry names the method each front end calls; every other message is word for word the same
      if (option !== 'telemetry') {
        expect(fromDispatcher.message.replace('towerDispatcher', 'towerChannel')).toBe(fromChannel.message);
      }
    }
  });

  test('a stack that cannot be built releases what it made: the telemetry, and the balancer with its discovery', () => {
    // a discovery source that counts who listens
    let listening = 0;
    const source = new Observable<Change<string, DiscoveredAddress>>(() => {
      listening++;
      return () => void listening--;
    });
    for (const build of [
      (t: never) =>
        towerChannel('ipv4:127.0.0.1:1', insecure, {
          discovery: source,
          telemetry: t,
          balancer: { failFastMs: -5 },
        }),
      // the channel's replay limit is checked after the balancer subscribed to discovery
      (t: never) =>
        towerChannel('ipv4:127.0.0.1:1', insecure, {
          discovery: source,
          telemetry: t,
          replay: { perCallBytes: -1 },
        }),
      (t: never) =>
        towerDispatcher(ORIGIN, { discovery: source, telemetry: t, balancer: { failFastMs: -5 } }),
    ]) {
      const { telemetry, seen } = recording();
      expect(() => build(telemetry)).toThrow(ConfigError);
      expect(seen.closed).toBe(1);
      expect(listening).toBe(0);
    }
  });
});

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('did not throw');
}
