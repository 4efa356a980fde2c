// The balancers over real gRPC: grpc-js echo servers on distinct 127.0.0.x
// loopback hosts, one grpcEndpoint per server, createChannel, and a
// proto-loader client, so calls go through the whole gRPC path. What the
// endpoints' transport takes part in (failures and their endpoint, a killed
// server, draining, when a round trip is measured, churn, replacement) runs
// over both transports; the balancer's own arithmetic (shares by latency,
// event-loop blocks) runs over the default one, which only carries its calls.
import * as grpc from '@grpc/grpc-js';
import { type Endpoint, type Readiness, statusName, type Change } from '@grpc-tower/core';
import {
  ENDPOINT_METADATA_KEY,
  type GrpcEndpoint,
  type NativeGrpcEndpoint,
  type GrpcRequest,
  type GrpcResponse,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import { type DiscoveredAddress, connect } from '@grpc-tower/discover';
import {
  insecure,
  type ChildEchoServer,
  type EchoProtoClient,
  type EchoReply,
  type EchoServer,
  pickHosts,
  spawnEchoServer,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { BehaviorSubject, Subject, combineLatest, distinctUntilChanged, map } from 'rxjs';
import { describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import { peakEwma } from './load/peak-ewma.js';
import { p2c } from './p2c.js';
import { roundRobin } from './round-robin.js';
import { echoClient, load, trackCleanups, unary, until } from './test/grpc-calls.js';

type GrpcBalancer = Balancer<GrpcRequest, GrpcResponse, string>;
type Discovery = Subject<Change<string, GrpcEndpoint | NativeGrpcEndpoint>>;

const TARGET = 'echo.test';

/** Reconnect quickly after a server restart, so the test does not wait on grpc-js's 1 s+ backoff. */
const fastReconnect: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
};

const cleanups = trackCleanups();

async function servers(latencies: readonly number[]): Promise<EchoServer[]> {
  const hosts = pickHosts(latencies.length);
  const started = await Promise.all(
    latencies.map((latencyMs, i) => startEchoServer({ host: hosts[i] as string, name: `s${i}`, latencyMs })),
  );
  cleanups.push(() => Promise.all(started.map((s) => s.stop(100))));
  return started;
}

function client(balancer: GrpcBalancer): EchoProtoClient {
  return echoClient(balancer, TARGET, cleanups);
}

function insertAll(
  discover: Discovery,
  addresses: readonly string[],
  options: { fast?: boolean; transport?: TestTransport } = {},
): (GrpcEndpoint | NativeGrpcEndpoint)[] {
  return addresses.map((address) => {
    const endpoint = grpcEndpoint(address, {
      credentials: insecure,
      transport: options.transport ?? 'native',
      ...(options.fast ? { channelOptions: fastReconnect } : {}),
    });
    discover.next({ type: 'insert', key: address, endpoint });
    return endpoint;
  });
}

const share = (names: readonly string[], name: string): number =>
  names.filter((n) => n === name).length / names.length;

describe('one of three servers 50× slower', () => {
  test('p2c with PeakEWMA sends the slow one under 5 % of calls; round robin about a third', async () => {
    const [fastA, fastB, slow] = await servers([2, 2, 100]);
    const addresses = [fastA, fastB, slow].map((s) => (s as EchoServer).address);

    const d1: Discovery = new Subject();
    const peak = p2c(d1, { target: TARGET, load: peakEwma() });
    insertAll(d1, addresses);
    const peakClient = client(peak);
    await until(peak, (b) => b.counts().ready === 3);
    await load(peakClient, 4, 40); // warm-up
    const measured = await load(peakClient, 4, 150);

    const d2: Discovery = new Subject();
    const rr = roundRobin(d2, { target: TARGET });
    insertAll(d2, addresses);
    const rrClient = client(rr);
    await until(rr, (b) => b.counts().ready === 3);
    await load(rrClient, 4, 10); // warm-up
    const baseline = await load(rrClient, 4, 60);

    expect(measured.failures).toEqual([]);
    expect(baseline.failures).toEqual([]);
    const p2cSlow = share(measured.servers, 's2');
    const rrSlow = share(baseline.servers, 's2');
    expect(p2cSlow, `p2c+PeakEWMA slow share ${p2cSlow}`).toBeLessThan(0.05);
    expect(rrSlow, `roundRobin slow share ${rrSlow}`).toBeGreaterThan(0.28);
    expect(rrSlow).toBeLessThan(0.39);
    // the balancer's own view agrees: the slow endpoint has the highest estimate
    const stats = peak.stats().endpoints;
    const slowStats = stats.find((e) => e.address === slow?.address);
    for (const e of stats)
      if (e !== slowStats) expect(e.ewmaMs as number).toBeLessThan(slowStats?.ewmaMs as number);
  });
});

describe.each(TRANSPORTS)('waiting and fail-fast over gRPC, over the %s transport', (transport) => {
  test('zero endpoints, then one appears: the waiting call succeeds', async () => {
    const [server] = await servers([0]);
    const d: Discovery = new Subject();
    const balancer = p2c(d, { target: TARGET });
    const c = client(balancer);
    const call = unary(c, { message: 'early' });
    await until(balancer, (b) => b.stats().waiting === 1);
    insertAll(d, [(server as EchoServer).address], { transport });
    const reply = await call;
    expect(reply.message).toBe('early');
    expect(reply.server).toBe('s0');
  });

  test('past fail-fast the client gets UNAVAILABLE naming the target and the endpoint counts', async () => {
    const [host] = pickHosts(1);
    const d: Discovery = new Subject();
    const balancer = p2c(d, { target: TARGET, failFastMs: 300 });
    // nothing listens on port 1
    insertAll(d, [`${host}:1`], { transport });
    const c = client(balancer);
    const err = await unary(c, { message: 'x' }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toContain(`no ready endpoint for target "${TARGET}"`);
    expect(err?.details).toContain('1 known: 0 ready');
    expect(balancer.counts().known).toBe(1); // the unreachable endpoint is kept, and keeps trying
  });
});

describe.each(TRANSPORTS)('failures name their endpoint, over the %s transport', (transport) => {
  test('a server failure reaches the client with the grpc-tower-endpoint trailer', async () => {
    const [a, b] = await servers([0, 0]);
    const d: Discovery = new Subject();
    const balancer = p2c(d, { target: TARGET });
    insertAll(d, [(a as EchoServer).address, (b as EchoServer).address], { transport });
    const c = client(balancer);
    await until(balancer, (x) => x.counts().ready === 2);
    for (const s of [a, b] as EchoServer[]) s.failNext(1, grpc.status.UNAVAILABLE, `${s.name} is unhappy`);
    const err = await unary(c, { message: 'x' }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    const named = err?.metadata.get(ENDPOINT_METADATA_KEY)[0];
    const failed = [a, b].find((s) => err?.details.includes(`${s?.name} is unhappy`));
    expect(named).toBe(failed?.address);
    expect(balancer.stats().endpoints.find((e) => e.address === named)?.failures).toBe(1);
  });
});

describe.each(TRANSPORTS)('an endpoint killed under load, over the %s transport', (transport) => {
  test('its calls fail with its address, it leaves the ready set, and it returns when restarted', async () => {
    const hosts = pickHosts(3);
    const [a, b] = await Promise.all([
      startEchoServer({ host: hosts[0] as string, name: 'a' }),
      startEchoServer({ host: hosts[1] as string, name: 'b' }),
    ]);
    let victim: ChildEchoServer = await spawnEchoServer({ host: hosts[2] as string, name: 'victim' });
    cleanups.push(() => Promise.all([a.stop(100), b.stop(100)]));
    cleanups.push(() => victim.kill());
    const victimAddress = victim.address;

    const d: Discovery = new Subject();
    const balancer = p2c(d, { target: TARGET });
    insertAll(d, [a.address, b.address, victimAddress], { fast: true, transport });
    const c = client(balancer);
    await until(balancer, (x) => x.counts().ready === 3);

    // 6 closed loops of 40 ms calls, until stopped
    let running = true;
    const names: string[] = [];
    const failures: grpc.ServiceError[] = [];
    const loops = Array.from({ length: 6 }, async () => {
      while (running) {
        try {
          names.push((await unary(c, { message: 'x', delayMs: 40 })).server);
        } catch (err) {
          failures.push(err as grpc.ServiceError);
        }
      }
    });
    await until(balancer, () => names.filter((n) => n === 'victim').length >= 5);
    await victim.kill('SIGKILL');
    await until(balancer, (x) => x.counts().ready === 2);
    const afterKill = names.length;
    await until(balancer, () => names.length >= afterKill + 60);
    running = false;
    await Promise.all(loops);

    // calls in flight on the victim failed, each naming it; nothing else failed
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) {
      expect(f.code).toBe(grpc.status.UNAVAILABLE);
      expect(f.metadata.get(ENDPOINT_METADATA_KEY)).toEqual([victimAddress]);
    }
    expect(names.slice(afterKill)).not.toContain('victim');
    // still known, not ready
    const victimStats = () => balancer.stats().endpoints.find((e) => e.address === victimAddress);
    expect(balancer.counts().known).toBe(3);
    expect(victimStats()?.state).not.toBe('ready');

    // restart on the same address: the endpoint reconnects and takes calls again
    const [vHost, vPort] = [
      victimAddress.slice(0, victimAddress.lastIndexOf(':')),
      Number(victimAddress.split(':')[1]),
    ];
    victim = await spawnEchoServer({ host: vHost, port: vPort, name: 'victim' });
    await until(balancer, (x) => x.counts().ready === 3, 20_000);
    const again = await load(c, 4, 30);
    expect(again.failures).toEqual([]);
    expect(again.servers).toContain('victim');
  });
});

describe.each(TRANSPORTS)('removal drains over gRPC, over the %s transport', (transport) => {
  test('calls in flight on a removed endpoint finish, none fail, then it closes', async () => {
    const [a, b] = await servers([0, 0]);
    const d: Discovery = new Subject();
    const balancer = p2c(d, { target: TARGET });
    const [epA] = insertAll(d, [(a as EchoServer).address, (b as EchoServer).address], { transport });
    const c = client(balancer);
    await until(balancer, (x) => x.counts().ready === 2);
    const calls = Array.from({ length: 20 }, (_, i) => unary(c, { message: `m${i}`, delayMs: 300 }));
    await until(balancer, () => (a as EchoServer).calls.total + (b as EchoServer).calls.total === 20);
    const onA = (a as EchoServer).calls.total;
    expect(onA).toBeGreaterThan(0);
    d.next({ type: 'remove', key: (a as EchoServer).address });
    expect(epA?.readiness).not.toBe('closed'); // draining, not cut
    const later = await Promise.all(Array.from({ length: 10 }, () => unary(c, { message: 'later' })));
    expect(later.every((r) => r.server === 's1')).toBe(true);
    const replies = await Promise.all(calls);
    expect(replies.filter((r) => r.server === 's0')).toHaveLength(onA);
    await until(balancer, () => epA?.readiness === 'closed');
    expect(balancer.stats().endpoints.map((e) => e.address)).toEqual([(b as EchoServer).address]);
  });
});

describe.each(TRANSPORTS)('round-trip times, over the %s transport', (transport) => {
  test('a unary call is measured at its completion, a stream at its first response; pending counts until it ends', async () => {
    const [server] = await servers([0]);
    const d: Discovery = new Subject();
    // the server runs in this process, so a pause of this process (a busy
    // machine) delays the server too: measure plain wall time here
    const balancer = p2c(d, { target: TARGET, load: peakEwma(), excludeLoopBlocks: false });
    insertAll(d, [(server as EchoServer).address], { transport });
    const c = client(balancer);
    await until(balancer, (x) => x.counts().ready === 1);

    const stream = c.ServerStream({ message: 's', count: 4, delayMs: 300 });
    const replies: EchoReply[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: EchoReply) => replies.push(r));
      stream.on('error', reject);
      stream.on('end', resolve);
    });
    await until(balancer, () => replies.length === 1);
    const during = balancer.stats().endpoints[0];
    expect(during?.pending).toBe(1); // still streaming
    await ended;
    const afterStream = balancer.stats().endpoints[0]?.ewmaMs as number;
    // the stream lasted four 300 ms delays; its sample was taken at the response headers
    expect(afterStream).toBeLessThan(300);

    await unary(c, { message: 'u', delayMs: 400 });
    expect(balancer.stats().endpoints[0]?.ewmaMs as number).toBeGreaterThanOrEqual(390);
    expect(balancer.stats().endpoints[0]?.pending).toBe(0);
  });
});

describe('client pauses', () => {
  // The server runs in a child process, so blocking this process's event loop
  // delays only the client: the replies arrive on time and wait to be read.
  test("a block of the client's event loop is not charged to the endpoint, unless asked", async () => {
    const [host] = pickHosts(1);
    const server = await spawnEchoServer({ host: host as string, name: 'child', latencyMs: 20 });
    cleanups.push(() => server.stop(100));

    const estimateAfterBlock = async (excludeLoopBlocks: boolean): Promise<number> => {
      const d: Discovery = new Subject();
      const balancer = p2c(d, { target: TARGET, load: peakEwma(), excludeLoopBlocks });
      insertAll(d, [server.address]);
      const c = client(balancer);
      await until(balancer, (x) => x.counts().ready === 1);
      for (let i = 0; i < 5; i++) await unary(c, { message: 'warm' });
      const calls = Array.from({ length: 4 }, () => unary(c, { message: 'x' }));
      // once the calls are on the endpoint, block the event loop for 150 ms
      while (balancer.stats().endpoints[0]?.pending !== 4) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      const start = performance.now();
      while (performance.now() - start < 150) {
        // blocked
      }
      await Promise.all(calls);
      return balancer.stats().endpoints[0]?.ewmaMs as number;
    };

    const raw = await estimateAfterBlock(false);
    const excluded = await estimateAfterBlock(true);
    // measured with the block, the 20 ms server looks like a 150 ms one
    expect(raw).toBeGreaterThanOrEqual(150);
    // without it, it keeps about its own latency (the block is seen from the
    // first 5 ms heartbeat inside it, so a few ms of it may remain)
    expect(excluded).toBeLessThan(60);
  });
});

describe.each(TRANSPORTS)('churn over gRPC, over the %s transport', (transport) => {
  test('150 inserts, replacements and removes while calls run: no call fails', async () => {
    const fleet = await servers([1, 1, 1]);
    const d: Discovery = new Subject();
    const balancer = p2c(d, { target: TARGET, failFastMs: 5000 });
    const c = client(balancer);
    const keys = ['k0', 'k1', 'k2', 'k3'];
    const present = new Set<string>();
    let n = 0;
    const insert = (key: string) => {
      const server = fleet[n++ % fleet.length] as EchoServer;
      d.next({
        type: 'insert',
        key,
        endpoint: grpcEndpoint(server.address, { credentials: insecure, transport }),
      });
      present.add(key);
    };
    insert('k0');
    insert('k1');
    await until(balancer, (x) => x.counts().ready >= 1);
    let running = true;
    const failures: grpc.ServiceError[] = [];
    let ok = 0;
    const loops = Array.from({ length: 4 }, async () => {
      while (running) {
        try {
          await unary(c, { message: 'x', delayMs: 5 });
          ok++;
        } catch (err) {
          failures.push(err as grpc.ServiceError);
        }
      }
    });
    for (let change = 0; change < 150; change++) {
      const key = keys[change % keys.length] as string;
      if (present.has(key) && present.size > 1 && change % 3 === 0) {
        d.next({ type: 'remove', key });
        present.delete(key);
      } else {
        insert(key);
      }
      await new Promise((resolve) => setTimeout(resolve, 8));
    }
    running = false;
    await Promise.all(loops);
    expect(failures.map((f) => `${statusName(f.code)} ${f.details}`)).toEqual([]);
    expect(ok).toBeGreaterThan(50);
    expect(balancer.counts().known).toBe(present.size);
  });
});

describe.each(TRANSPORTS)('replacement through connect, over the %s transport', (transport) => {
  test('a key whose address changes keeps serving from the old server until the new one is ready: no call fails', async () => {
    const [a, b] = await servers([1, 1]);
    const addresses = new Subject<Change<string, DiscoveredAddress>>();
    // the new server's connection is slow to come up: its endpoint connects only after 300 ms
    let slowConnect = false;
    const endpoints = connect(addresses, (addr): Endpoint<GrpcRequest, GrpcResponse> => {
      const endpoint = grpcEndpoint(addr.address, { credentials: insecure, transport });
      if (!slowConnect) return endpoint;
      const up = new BehaviorSubject(false);
      setTimeout(() => up.next(true), 300);
      const gated = (r: Readiness, isUp: boolean): Readiness => (r === 'closed' || isUp ? r : 'connecting');
      return {
        address: endpoint.address,
        get readiness() {
          return gated(endpoint.readiness, up.value);
        },
        readiness$: combineLatest([endpoint.readiness$, up]).pipe(
          map(([r, isUp]) => gated(r, isUp)),
          distinctUntilChanged(),
        ),
        get pending() {
          return endpoint.pending;
        },
        call: (req, ctx) => endpoint.call(req, ctx),
        close: (options) => endpoint.close(options),
      };
    });
    const balancer = p2c(endpoints, { target: TARGET });
    const c = client(balancer);
    addresses.next({ type: 'insert', key: 'svc', endpoint: { address: (a as EchoServer).address } });
    await until(balancer, (x) => x.counts().ready === 1);

    let running = true;
    const failures: grpc.ServiceError[] = [];
    const served = new Map<string, number>();
    const loops = Array.from({ length: 4 }, async () => {
      while (running) {
        try {
          const reply = await unary(c, { message: 'x', delayMs: 2 });
          served.set(reply.server, (served.get(reply.server) ?? 0) + 1);
        } catch (err) {
          failures.push(err as grpc.ServiceError);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    slowConnect = true;
    addresses.next({ type: 'insert', key: 'svc', endpoint: { address: (b as EchoServer).address } });
    await new Promise((resolve) => setTimeout(resolve, 700));
    running = false;
    await Promise.all(loops);
    expect(failures.map((f) => `${statusName(f.code)} ${f.details}`)).toEqual([]);
    // the old server served while the new one connected, then the new one took over
    expect(served.get('s0')).toBeGreaterThan(0);
    expect(served.get('s1')).toBeGreaterThan(0);
    expect(balancer.stats().endpoints.map((e) => e.address)).toEqual([(b as EchoServer).address]);
  });
});
