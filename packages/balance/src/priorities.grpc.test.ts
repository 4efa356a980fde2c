// Priority failover over real gRPC: grpc-js echo servers on distinct
// 127.0.0.x loopback hosts, two at priority 0 and two at priority 1, one
// grpcEndpoint per server, its insert carrying its priority, createChannel and a
// proto-loader client. Priority 0 loses its endpoints for real (its servers
// stop, so its endpoints stop being ready) and gets them back (servers on the
// same addresses again, which the endpoints reconnect to).
import * as grpc from '@grpc/grpc-js';
import {
  type GrpcRequest,
  type GrpcResponse,
  type NativeGrpcEndpoint,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import type { Change } from '@grpc-tower/core';
import { type EchoServer, insecure, pickHosts, seededRandom, startEchoServer } from '@grpc-tower/testing';
import { Subject } from 'rxjs';
import { describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import type { BalancerEvent } from './events.js';
import { p2c } from './p2c.js';
import { echoClient, load, trackCleanups, until } from './test/grpc-calls.js';

type GrpcBalancer = Balancer<GrpcRequest, GrpcResponse, string>;

const TARGET = 'priorities.test';
const cleanups = trackCleanups();

/** Which server answered each call, by name prefix (`p0`, `p1`). */
async function byLevel(client: Parameters<typeof load>[0], total: number) {
  const { servers, failures } = await load(client, 4, total / 4);
  expect(failures.map((f) => `${grpc.status[f.err.code]} ${f.err.details}`)).toEqual([]);
  const counts: Record<string, number> = {};
  for (const name of servers) counts[name.slice(0, 2)] = (counts[name.slice(0, 2)] ?? 0) + 1;
  return counts;
}

describe('priority failover over gRPC', () => {
  test('priority 0 loses its endpoints: calls fail over to priority 1; they come back: calls fail back', async () => {
    const names = ['p0a', 'p0b', 'p1a', 'p1b'];
    const hosts = pickHosts(names.length);
    const servers: EchoServer[] = await Promise.all(
      names.map((name, i) => startEchoServer({ host: hosts[i] as string, name })),
    );
    cleanups.push(() => Promise.all(servers.map((s) => s.stop(100))));
    const discover = new Subject<Change<string, NativeGrpcEndpoint>>();
    const balancer: GrpcBalancer = p2c(discover, { target: TARGET, random: seededRandom(5) });
    const events: BalancerEvent<string>[] = [];
    balancer.events$.subscribe((e) => events.push(e));
    const client = echoClient(balancer, TARGET, cleanups);
    for (const s of servers) {
      const priority = Number(s.name.slice(1, 2));
      discover.next({
        type: 'insert',
        key: s.address,
        endpoint: grpcEndpoint(s.address, { credentials: insecure }),
        metadata: { priority },
      });
    }
    await until(balancer, (b) => b.counts().ready === 4);
    expect(await byLevel(client, 400)).toEqual({ p0: 400 });
    expect(balancer.priority).toBe(0);

    // priority 0's servers stop: their endpoints leave the ready set, calls go to priority 1
    const [p0a, p0b] = servers as [EchoServer, EchoServer];
    await Promise.all([p0a.stop(100), p0b.stop(100)]);
    await until(balancer, (b) => b.counts().ready === 2);
    expect(balancer.priority).toBe(1);
    expect(await byLevel(client, 400)).toEqual({ p1: 400 });

    // back on the same addresses: the endpoints reconnect, calls fail back
    const back = await Promise.all(
      [p0a, p0b].map((s) => startEchoServer({ host: s.host, port: s.port, name: s.name })),
    );
    servers.push(...back);
    await until(balancer, (b) => b.priority === 0, 20_000);
    expect(await byLevel(client, 400)).toEqual({ p0: 400 });
    const levels = events
      .filter((e) => e.type === 'priority')
      .map((e) => (e as { priority?: number }).priority);
    console.log(`priority events: ${JSON.stringify(levels)}`);
    // the first ready endpoints decide the level while the others connect; then 0, 1, 0
    expect(levels.slice(levels.lastIndexOf(1) - 1)).toEqual([0, 1, 0]);
  });
});
