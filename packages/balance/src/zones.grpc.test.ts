// Zone-aware routing over real gRPC: grpc-js echo servers on distinct
// 127.0.0.x loopback hosts stand for three zones' servers, one
// grpcEndpoint per server, inserted with its zone, createChannel and a
// proto-loader client. Servers are stopped for real to take a zone's
// capacity away. The zone draws use a seeded random source, and nothing
// else draws from it in a different order from run to run (no retries, no
// waiting), so the shares measured are the same on every run.
// The endpoints use the default (native) transport only: the zone travels
// on the insert change, whatever the transport, which only carries the calls
// whose shares are counted.
import * as grpc from '@grpc/grpc-js';
import {
  type NativeGrpcEndpoint,
  type GrpcRequest,
  type GrpcResponse,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import type { Change } from '@grpc-tower/core';
import {
  type EchoProtoClient,
  type EchoServer,
  insecure,
  pickHosts,
  seededRandom,
  startEchoServer,
} from '@grpc-tower/testing';
import { Subject } from 'rxjs';
import { describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import { p2c } from './p2c.js';
import type { ZoneRoutingOptions } from './options.js';
import { echoClient, load, trackCleanups, until } from './test/grpc-calls.js';

type GrpcBalancer = Balancer<GrpcRequest, GrpcResponse, string>;

const TARGET = 'zoned.test';

const cleanups = trackCleanups();

/**
 * `perZone` servers in each of `zones`, named `<zone><i>` (`a0`, `b2`), a
 * p2c balancer over them whose endpoints carry their zones, and a client.
 */
async function fleet(
  zones: readonly string[],
  perZone: number,
  options: {
    readonly zones: ZoneRoutingOptions;
    readonly panicThresholdPercent?: number;
  },
) {
  const names = zones.flatMap((z) => Array.from({ length: perZone }, (_, i) => `${z}${i}`));
  const hosts = pickHosts(names.length);
  const servers = await Promise.all(
    names.map((name, i) => startEchoServer({ host: hosts[i] as string, name })),
  );
  // stopping twice is harmless: a test stops some of them itself
  cleanups.push(() => Promise.all(servers.map((s) => s.stop(100))));
  const discover = new Subject<Change<string, NativeGrpcEndpoint>>();
  const balancer: GrpcBalancer = p2c(discover, { target: TARGET, random: seededRandom(42), ...options });
  const client = echoClient(balancer, TARGET, cleanups);
  for (const s of servers) {
    const zone = s.name.slice(0, 1);
    discover.next({
      type: 'insert',
      key: s.address,
      endpoint: grpcEndpoint(s.address, { credentials: insecure }),
      metadata: { zone },
    });
  }
  await until(balancer, (b) => b.counts().ready === servers.length);
  const server = (name: string): EchoServer => servers.find((s) => s.name === name) as EchoServer;
  return { balancer, client, server };
}

/** `total` calls (8 closed loops); the share of the replies from each zone. */
async function shares(client: EchoProtoClient, total: number): Promise<Record<string, number>> {
  const { servers, failures } = await load(client, 8, total / 8);
  expect(failures.map((f) => `${grpc.status[f.err.code]} ${f.err.details}`)).toEqual([]);
  const counts: Record<string, number> = {};
  for (const name of servers) counts[name.slice(0, 1)] = (counts[name.slice(0, 1)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).map(([zone, n]) => [zone, n / servers.length]));
}

/** The spill formula for equal client shares over `zones`, from each zone's ready capacity. */
function expected(ready: Readonly<Record<string, number>>, local: string): Record<string, number> {
  const zones = Object.keys(ready);
  const total = Object.values(ready).reduce((a, b) => a + b, 0);
  const c = 1 / zones.length;
  const u = (z: string) => (ready[z] as number) / total;
  if (u(local) >= c) return { [local]: 1 };
  const stay = u(local) / c;
  const others = zones.filter((z) => z !== local);
  const residual = (z: string) => Math.max(0, u(z) - c);
  const sum = others.reduce((s, z) => s + residual(z), 0);
  return Object.fromEntries([[local, stay], ...others.map((z) => [z, ((1 - stay) * residual(z)) / sum])]);
}

const pct = (r: Readonly<Record<string, number>>) =>
  Object.entries(r)
    .sort(([x], [y]) => x.localeCompare(y))
    .map(([z, v]) => `${z} ${(v * 100).toFixed(1)} %`)
    .join(', ');

describe('zone-aware routing over gRPC', () => {
  test('clients in zone a, two servers in each of a, b, c: every call stays in a', async () => {
    const { balancer, client } = await fleet(['a', 'b', 'c'], 2, { zones: { local: 'a' } });
    const measured = await shares(client, 1000);
    console.log(`2 per zone, all ready: ${pct(measured)}`);
    expect(measured.a).toBeGreaterThanOrEqual(0.95);
    expect(measured.a).toBe(1);
    expect(balancer.zoneRouting).toEqual({ mode: 'local', localShare: 1, shares: { a: 1 } });
  });

  test('as a loses servers, the calls that stay local and the split between b and c follow the formula', async () => {
    // a threshold of 30 %, so that one of three ready in a is not local panic (the default 50 % would be)
    const { balancer, client, server } = await fleet(['a', 'b', 'c'], 3, {
      zones: { local: 'a' },
      panicThresholdPercent: 30,
    });
    expect((await shares(client, 1000)).a).toBe(1);

    const stages: [stop: string, ready: Record<string, number>][] = [
      ['a2', { a: 2, b: 3, c: 3 }],
      ['a1', { a: 1, b: 3, c: 3 }],
    ];
    let readyNow = 9;
    for (const [stop, ready] of stages) {
      await server(stop).stop(100);
      readyNow--;
      await until(balancer, (b) => b.counts().ready === readyNow);
      const want = expected(ready, 'a');
      const measured = await shares(client, 4000);
      console.log(`ready ${JSON.stringify(ready)}: expected ${pct(want)}; measured ${pct(measured)}`);
      expect(balancer.zoneRouting?.mode).toBe('spill');
      for (const zone of ['a', 'b', 'c']) {
        expect(balancer.zoneRouting?.shares[zone]).toBeCloseTo(want[zone] as number, 12);
        expect(Math.abs((measured[zone] ?? 0) - (want[zone] as number)), zone).toBeLessThanOrEqual(0.02);
      }
    }

    // none left in a: every other zone, evenly by capacity
    await server('a0').stop(100);
    await until(balancer, (b) => b.counts().ready === 6);
    const measured = await shares(client, 1000);
    console.log(`a down: ${pct(measured)}`);
    expect(balancer.zoneRouting).toMatchObject({ mode: 'all', reason: 'no-local-endpoint' });
    expect(measured.a).toBeUndefined();
    expect(measured.b).toBeGreaterThan(0.35);
    expect(measured.c).toBeGreaterThan(0.35);
  });

  test('the local zone below the panic threshold: calls spread over every zone', async () => {
    const { balancer, client, server } = await fleet(['a', 'b', 'c'], 3, { zones: { local: 'a' } });
    await Promise.all([server('a1').stop(100), server('a2').stop(100)]);
    await until(balancer, (b) => b.counts().ready === 7);
    const measured = await shares(client, 2000);
    console.log(`a 1 of 3 ready (local panic): ${pct(measured)}`);
    expect(balancer.zoneRouting).toMatchObject({ mode: 'all', reason: 'local-panic' });
    // each ready server takes about a seventh: a 1/7, b and c 3/7
    expect(measured.a).toBeGreaterThan(0.07);
    expect(measured.a).toBeLessThan(0.25);
    expect(measured.b).toBeGreaterThan(0.3);
    expect(measured.c).toBeGreaterThan(0.3);
  });
});
