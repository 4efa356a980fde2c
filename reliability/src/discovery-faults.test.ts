// Discovery faults under load, through the full stack: the DNS server goes
// away, etcd goes away, and one key flaps (inserted and removed 1,000 times
// in a second). The client must keep serving from the last known set, pick
// up changes once the registry is back, and release every endpoint the
// flapping created. Over the default (native) transport only: the faults
// are discovery's, and the endpoints' closing, which the flapping exercises,
// is checked over both transports by the lifecycle and rolling-restart cases.
import { type DiscoveredAddress, type DiscoveryEvent, dns } from '@grpc-tower/discover';
import type { Change } from '@grpc-tower/core';
import { etcd } from '@grpc-tower/discover/etcd';
import {
  type EchoServer,
  activeHandles,
  expectNoLeaks,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import { type Observable, Subject, filter, firstValueFrom } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import { startDnsmasq, startEtcd } from '../../packages/discover/src/test/index.js';
import { Ledger } from './ledger.js';
import { startLoad } from './support/load.js';
import { fullStack } from './support/stack.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Echo servers named `s0`… on distinct loopback hosts, all on one port (as DNS A records need). */
async function serversOnOnePort(count: number): Promise<EchoServer[]> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const hosts = pickHosts(count);
    const first = await startEchoServer({ host: hosts[0]!, name: 's0', health: true });
    const servers = [first];
    try {
      for (let i = 1; i < count; i++) {
        servers.push(
          await startEchoServer({ host: hosts[i]!, port: first.port, name: `s${i}`, health: true }),
        );
      }
      return servers;
    } catch {
      await Promise.all(servers.map((s) => s.stop(0)));
    }
  }
  throw new Error(`could not bind ${count} echo servers on one port`);
}

const answers = (ledger: Ledger, name: string): number => ledger.report().byServer[name] ?? 0;

const nextEvent = (
  events$: Observable<DiscoveryEvent>,
  type: DiscoveryEvent['type'],
): Promise<DiscoveryEvent> => firstValueFrom(events$.pipe(filter((e) => e.type === type)));

describe('the DNS server goes down', () => {
  test('the last answer is kept, no call fails, and new records are picked up once it is back', async () => {
    const servers = await serversOnOnePort(3);
    cleanup.push(() => Promise.all(servers.map((s) => s.stop(0))));
    const [s0, s1, s2] = servers as [EchoServer, EchoServer, EchoServer];
    const dnsmasq = await startDnsmasq({ hosts: { 'echo.test': [s0.host, s1.host] }, ttl: 1 });
    cleanup.push(() => dnsmasq.close());
    const source = dns('echo.test', s0.port, {
      servers: [dnsmasq.address],
      intervalMs: 100,
      backoff: { initialMs: 100, maxMs: 200 },
    });
    const events: DiscoveryEvent[] = [];
    const sub = source.events$.subscribe((e) => events.push(e));
    cleanup.push(() => sub.unsubscribe());
    const ledger = new Ledger();
    const stack = fullStack({ source, ledger });
    cleanup.push(() => stack.close());
    await expect.poll(() => stack.balancer.counts().ready, { timeout: 10_000 }).toBe(2);

    const load = startLoad(ledger, stack.client, { concurrency: 8 });
    await load.more(200);
    const failed = nextEvent(source.events$, 'failed');
    await dnsmasq.stop();
    await failed;
    await load.more(300);
    // still both servers: a failed lookup removes nothing
    expect(stack.balancer.counts().ready).toBe(2);

    const resolved = nextEvent(source.events$, 'resolved');
    await dnsmasq.start();
    await resolved;
    await dnsmasq.setHosts({ 'echo.test': [s0.host, s1.host, s2.host] });
    await expect.poll(() => answers(ledger, 's2'), { timeout: 10_000 }).toBeGreaterThan(0);
    await load.stop();

    await ledger.check({ allowed: ['OK'], servers: new Set(['s0', 's1', 's2']) });
    expect(events.filter((e) => e.type === 'failed').length).toBeGreaterThan(0);
  });
});

describe('etcd goes down', () => {
  test('the last set is kept, no call fails, and a server registered after the restart gets traffic', async () => {
    const servers = await serversOnOnePort(3);
    cleanup.push(() => Promise.all(servers.map((s) => s.stop(0))));
    const [s0, s1, s2] = servers as [EchoServer, EchoServer, EchoServer];
    const server = await startEtcd();
    cleanup.push(() => server.close());
    await server.put('/svc/echo/s0', s0.address);
    await server.put('/svc/echo/s1', s1.address);
    const source = etcd(server.url, '/svc/echo/', {
      requestTimeoutMs: 1_000,
      backoff: { initialMs: 100, maxMs: 500 },
      watchBackoff: { initialMs: 100, maxMs: 500 },
    });
    const events: DiscoveryEvent[] = [];
    const sub = source.events$.subscribe((e) => events.push(e));
    cleanup.push(() => sub.unsubscribe());
    const ledger = new Ledger();
    const stack = fullStack({ source, ledger });
    cleanup.push(() => stack.close());
    await expect.poll(() => stack.balancer.counts().ready, { timeout: 10_000 }).toBe(2);

    const load = startLoad(ledger, stack.client, { concurrency: 8 });
    await load.more(200);
    await server.stop();
    await expect.poll(() => events.some((e) => e.type === 'disconnected' || e.type === 'failed')).toBe(true);
    await load.more(300);
    expect(stack.balancer.counts().ready).toBe(2);

    await server.start();
    await server.put('/svc/echo/s2', s2.address);
    await expect.poll(() => answers(ledger, 's2'), { timeout: 20_000 }).toBeGreaterThan(0);
    await load.stop();

    await ledger.check({ allowed: ['OK'], servers: new Set(['s0', 's1', 's2']) });
  });
});

describe('endpoints that leave discovery', () => {
  test('an endpoint removed after it connected closes its connection and opens no other', async () => {
    const servers = await serversOnOnePort(2);
    cleanup.push(() => Promise.all(servers.map((s) => s.stop(0))));
    const [s0, s1] = servers as [EchoServer, EchoServer];
    const changes = new Subject<Change<string, DiscoveredAddress>>();
    const ledger = new Ledger();
    const stack = fullStack({ source: changes, ledger });
    cleanup.push(() => stack.close());
    const insert = (s: EchoServer): void =>
      changes.next({ type: 'insert', key: s.address, endpoint: { address: s.address } });
    insert(s0);
    await expect.poll(() => stack.balancer.counts().ready, { timeout: 10_000 }).toBe(1);
    const baseline = activeHandles();
    for (let i = 0; i < 20; i++) {
      insert(s1);
      await expect.poll(() => stack.balancer.counts().ready, { timeout: 10_000 }).toBe(2);
      await ledger.unary(stack.client, `m${i}`);
      const closed = firstValueFrom(
        stack.balancer.events$.pipe(filter((e) => e.type === 'closed' && e.address === s1.address)),
      );
      changes.next({ type: 'remove', key: s1.address });
      await closed;
    }
    // the servers run in this process: a connection left open shows as sockets on both ends
    await expectNoLeaks(baseline, { settleMs: 3_000 });
    await ledger.check({ allowed: ['OK'], servers: new Set(['s0', 's1']) });
  });
});

describe('discovery flapping', () => {
  test('one key inserted and removed 1,000 times in a second: no call fails and every endpoint it made is released', async () => {
    const servers = await serversOnOnePort(3);
    cleanup.push(() => Promise.all(servers.map((s) => s.stop(0))));
    const [s0, s1, s2] = servers as [EchoServer, EchoServer, EchoServer];
    const changes = new Subject<Change<string, DiscoveredAddress>>();
    const ledger = new Ledger();
    const stack = fullStack({ source: changes, ledger });
    cleanup.push(() => stack.close());
    const insert = (s: EchoServer): void =>
      changes.next({ type: 'insert', key: s.address, endpoint: { address: s.address } });
    insert(s0);
    insert(s1);
    await expect.poll(() => stack.balancer.counts().ready, { timeout: 10_000 }).toBe(2);

    // the baseline: the stack idle after some traffic
    const warmUp = startLoad(ledger, stack.client, { concurrency: 8, maxCalls: 100 });
    await warmUp.stop();
    const baseline = activeHandles();

    const load = startLoad(ledger, stack.client, { concurrency: 8 });
    await load.more(50);
    const closed: string[] = [];
    const sub = stack.balancer.events$.subscribe((e) => {
      if (e.type === 'closed' && e.address === s2.address) closed.push(e.address);
    });
    cleanup.push(() => sub.unsubscribe());
    // 100 turns of 10 insert/remove pairs, 10 ms apart
    for (let turn = 0; turn < 100; turn++) {
      for (let i = 0; i < 10; i++) {
        insert(s2);
        changes.next({ type: 'remove', key: s2.address });
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await load.more(200);
    await load.stop();
    // every endpoint the flapping made has drained and closed
    await expect.poll(() => closed.length, { timeout: 15_000 }).toBe(1_000);
    expect(
      stack.balancer
        .stats()
        .endpoints.map((e) => e.address)
        .sort(),
    ).toEqual([s0.address, s1.address].sort());
    await expectNoLeaks(baseline, { settleMs: 5_000 });

    // the key comes back for good and takes traffic
    insert(s2);
    const after = startLoad(ledger, stack.client, { concurrency: 8 });
    await expect.poll(() => answers(ledger, 's2'), { timeout: 10_000 }).toBeGreaterThan(0);
    await after.stop();
    await ledger.check({ allowed: ['OK'], servers: new Set(['s0', 's1', 's2']) });
  });
});
