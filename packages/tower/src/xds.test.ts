// Calls through xDS against real grpc-js servers (on their own 127.0.0.x
// addresses) and the stand-in ADS server of test support (checked against
// @grpc/grpc-js-xds in its own test): the xds:/// target with the bootstrap
// from GRPC_XDS_BOOTSTRAP_CONFIG; a rolling update where each old server
// turns DRAINING and stops (GOAWAY at once) at the same moment; the control
// plane going away under load and coming back; priorities, weighted clusters
// and weights; and the rolling update through @grpc/grpc-js-xds for comparison.
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { pendingRequests } from '@grpc-tower/balance';
import { concurrencyLimit } from '@grpc-tower/core';
import { loadBootstrap, xds, xdsClusterPolicy } from '@grpc-tower/discover/xds';
import {
  type EchoServer,
  activeHandles,
  createEchoClient,
  expectNoLeaks,
  loadEchoPackage,
  pickHosts,
  seededRandom,
  startEchoServer,
  startPods,
} from '@grpc-tower/testing';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import {
  type XdsServer,
  startXdsServer,
  xdsCluster,
  xdsEndpoints,
  xdsRoute,
} from '../../discover/src/test/index.js';
import { towerChannel } from './channel.js';
import { CALL_EVERY_MS, firstPick, load, picks, picksAfter } from './test/load.js';
import { type Health, rollOver } from './test/rolling.js';

const insecure = grpc.credentials.createInsecure();
const { EchoService } = loadEchoPackage();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let pods: EchoServer[] = [];
let control: XdsServer;
let baseline: ReturnType<typeof activeHandles>;

beforeAll(async () => {
  baseline = activeHandles();
  const [controlHost, ...hosts] = pickHosts(7) as [string, ...string[]];
  pods = await startPods(hosts);
  control = await startXdsServer({ host: controlHost });
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = control.bootstrap({ id: 'tower-xds-test', zone: 'a' });
});

afterAll(async () => {
  delete process.env.GRPC_XDS_BOOTSTRAP_CONFIG;
  await Promise.all(pods.map((p) => p.stop(0)));
  await control?.close();
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

/** Serves `name`'s endpoints: the pods in `states`, in zone a. */
function publish(name: string, states: ReadonlyMap<EchoServer, Health>) {
  control.serve(name, [
    { zone: 'a', endpoints: [...states].map(([p, health]) => ({ address: p.address, health })) },
  ]);
}

test('xds:///name: the target resolves through the control plane and follows its updates', async () => {
  const name = 'orders-target';
  publish(name, new Map([[pods[0] as EchoServer, 'HEALTHY']]));
  const target = `xds:///${name}`;
  const channel = towerChannel(target, insecure, { services: [EchoService] });
  const client = createEchoClient(target, { channelOverride: channel });
  const servedBy = (): Promise<string> =>
    new Promise((resolve, reject) =>
      client.Unary({ message: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, reply) =>
        err ? reject(err) : resolve(reply?.server ?? ''),
      ),
    );
  try {
    expect(await servedBy()).toBe(pods[0]?.name);
    publish(name, new Map([[pods[1] as EchoServer, 'HEALTHY']]));
    await vi.waitFor(async () => expect(await servedBy()).toBe(pods[1]?.name), {
      timeout: 10_000,
      interval: 20,
    });
    expect(control.subscribed('listener')).toContain(name);
  } finally {
    client.close();
    await channel.close();
  }
});

test('a rolling update through xDS where each old server turns DRAINING and stops at the same moment: no call fails', async () => {
  const name = 'orders-rolling';
  const states = new Map<EchoServer, Health>();
  for (const pod of pods.slice(0, 3)) states.set(pod, 'HEALTHY');
  publish(name, states);

  const source = xds({ target: name });
  const heard = new Map<string, number>();
  const inFlight = new Map<string, number>();
  const inFlightAtDraining = new Map<string, number>();
  const events = source.events$.subscribe((e) => {
    if (e.type !== 'endpoint') return;
    heard.set(`${e.state} ${e.key}`, performance.now());
    if (e.state === 'terminating') inFlightAtDraining.set(e.key, inFlight.get(e.key) ?? 0);
  });
  const log: { address: string; at: number }[] = [];
  const target = `xds:///${name}`;
  const channel = towerChannel(target, insecure, {
    services: [EchoService],
    discovery: source,
    layers: { inner: [picks(log, inFlight)] },
  });
  const client = createEchoClient(target, { channelOverride: channel });
  // each call takes a while, so an old server has calls in flight when it turns DRAINING
  for (const pod of pods) pod.setLatency(15);
  try {
    const running = load(client, CALL_EVERY_MS);
    await sleep(500);
    await rollOver(pods.slice(0, 3), pods.slice(3, 6), states, (s) => publish(name, s));
    await running.stop();

    const report: Record<string, unknown> = { calls: running.calls, failed: running.failures.length };
    for (const old of pods.slice(0, 3)) {
      const draining = heard.get(`terminating ${old.address}`);
      expect(draining, `the client heard ${old.name} turn DRAINING`).toBeDefined();
      const after = picksAfter(log, old.address, draining as number);
      report[`${old.name} picks after DRAINING reached the client`] = after;
      report[`${old.name} calls in flight then`] = inFlightAtDraining.get(old.address);
      expect(after).toBe(0);
    }
    for (const next of pods.slice(3, 6)) {
      const ready = heard.get(`ready ${next.address}`);
      expect(ready, `the client heard ${next.name} join`).toBeDefined();
      const first = firstPick(log, next.address, ready as number);
      expect(first, `${next.name} got a call`).toBeDefined();
      const between = first?.before ?? Number.POSITIVE_INFINITY;
      report[`${next.name} first call after the EDS update reached the client (ms)`] = Math.round(
        (first?.at ?? 0) - (ready as number),
      );
      report[`${next.name} calls placed before its first`] = between;
      // at one call every 4 ms, 50 calls are 200 ms: a new endpoint is in use within a few dozen calls
      expect(between).toBeLessThanOrEqual(50);
    }
    console.log(
      `rolling update through xDS, one call every ${CALL_EVERY_MS} ms:\n${JSON.stringify(report, null, 2)}`,
    );
    expect([...inFlightAtDraining.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(running.failures).toEqual([]);
  } finally {
    for (const pod of pods) pod.setLatency(0);
    events.unsubscribe();
    client.close();
    await channel.close();
  }
});

test('the control plane goes away under load: the last set stays, no call fails, its return is picked up', async () => {
  const name = 'orders-outage';
  const live = pods.slice(3, 6);
  const states = new Map<EchoServer, Health>([[live[0] as EchoServer, 'HEALTHY']]);
  publish(name, states);
  const source = xds({ target: name, backoff: { initialMs: 50, maxMs: 200 } });
  const types: string[] = [];
  const events = source.events$.subscribe((e) => types.push(e.type));
  const log: { address: string; at: number }[] = [];
  const target = `xds:///${name}`;
  const channel = towerChannel(target, insecure, {
    services: [EchoService],
    discovery: source,
    layers: { inner: [picks(log)] },
  });
  const client = createEchoClient(target, { channelOverride: channel });
  try {
    const running = load(client, CALL_EVERY_MS);
    await vi.waitFor(() => expect(log.length).toBeGreaterThan(20), { timeout: 10_000, interval: 10 });
    await control.stop();
    const downAt = log.length;
    await vi.waitFor(() => expect(types.filter((t) => t === 'backoff').length).toBeGreaterThanOrEqual(2), {
      timeout: 10_000,
      interval: 10,
    });
    await sleep(300);
    // calls went on to the last endpoints while the control plane was away
    expect(log.length).toBeGreaterThan(downAt + 20);
    states.set(live[1] as EchoServer, 'HEALTHY');
    publish(name, states);
    await control.start();
    await vi.waitFor(() => expect(log.some((p) => p.address === live[1]?.address)).toBe(true), {
      timeout: 10_000,
      interval: 10,
    });
    await running.stop();
    expect(types).toContain('disconnected');
    expect(types).toContain('reconnected');
    expect(running.failures).toEqual([]);
  } finally {
    events.unsubscribe();
    client.close();
    await channel.close();
  }
});

test("zone-aware routing from localities: with the bootstrap's node zone as the local one, calls stay in it", async () => {
  const name = 'orders-zones';
  const [a1, a2, b1] = pods.slice(3, 6) as [EchoServer, EchoServer, EchoServer];
  control.serve(name, [
    { zone: 'a', endpoints: [{ address: a1.address }, { address: a2.address }] },
    { zone: 'b', endpoints: [{ address: b1.address }] },
  ]);
  // the client's zone, as the bootstrap of this process names it (node.locality.zone)
  const local = loadBootstrap(undefined).node.locality?.zone;
  expect(local).toBe('a');
  const log: { address: string; at: number }[] = [];
  const target = `xds:///${name}`;
  const channel = towerChannel(target, insecure, {
    services: [EchoService],
    balancer: { zones: { local: local as string, minEndpoints: 3 } },
    layers: { inner: [picks(log)] },
  });
  const client = createEchoClient(target, { channelOverride: channel });
  try {
    const running = load(client, CALL_EVERY_MS);
    // both zones known and connected, then count
    await vi.waitFor(() => expect(log.length).toBeGreaterThan(50), { timeout: 10_000, interval: 10 });
    const from = log.length;
    await sleep(800);
    await running.stop();
    const counted = log.slice(from);
    const inZoneB = counted.filter((p) => p.address === b1.address).length;
    console.log(`zone-aware through xDS localities: ${counted.length} calls, ${inZoneB} to zone b`);
    expect(counted.length).toBeGreaterThan(100);
    expect(inZoneB).toBe(0);
    expect(new Set(counted.map((p) => p.address))).toEqual(new Set([a1.address, a2.address]));
    expect(running.failures).toEqual([]);
  } finally {
    client.close();
    await channel.close();
  }
});

test('priorities through xDS: priority 0 servers stop while EDS still lists them HEALTHY; calls fail over to priority 1 and back', async () => {
  const name = 'orders-priorities';
  const [h0] = pickHosts(1) as [string];
  const primary = await startEchoServer({ host: h0, name: 'primary' });
  const standby = pods[5] as EchoServer;
  control.serve(name, [
    { zone: 'a', priority: 0, endpoints: [{ address: primary.address }] },
    { zone: 'b', priority: 1, endpoints: [{ address: standby.address }] },
  ]);
  const log: { address: string; at: number }[] = [];
  const target = `xds:///${name}`;
  const channel = towerChannel(target, insecure, {
    services: [EchoService],
    layers: { inner: [picks(log)] },
  });
  const client = createEchoClient(target, { channelOverride: channel });
  let back: EchoServer | undefined;
  try {
    const running = load(client, CALL_EVERY_MS);
    await vi.waitFor(
      () => expect(log.filter((p) => p.address === primary.address).length).toBeGreaterThan(20),
      {
        timeout: 10_000,
        interval: 10,
      },
    );
    const before = log.length;
    // the control plane still says HEALTHY: only the balancer sees that priority 0 is not ready
    await primary.stop(100);
    await vi.waitFor(
      () => expect(log.slice(before).filter((p) => p.address === standby.address).length).toBeGreaterThan(20),
      {
        timeout: 10_000,
        interval: 10,
      },
    );
    back = await startEchoServer({ host: primary.host, port: primary.port, name: 'primary' });
    const returned = log.length;
    await vi.waitFor(
      () =>
        expect(log.slice(returned).filter((p) => p.address === primary.address).length).toBeGreaterThan(20),
      {
        timeout: 20_000,
        interval: 10,
      },
    );
    // once back, priority 0 takes every call again
    const settled = log.length;
    await sleep(300);
    const after = log.slice(settled);
    await running.stop();
    console.log(
      `priorities through xDS: ${after.length} calls after failback, ${after.filter((p) => p.address === standby.address).length} to priority 1; ${running.failures.length} failed of ${running.calls}`,
    );
    expect(after.length).toBeGreaterThan(20);
    expect(after.every((p) => p.address === primary.address)).toBe(true);
  } finally {
    client.close();
    await channel.close();
    await back?.stop(0);
  }
});

/**
 * `total` unary calls, one after the other; each reply's server name. One
 * at a time, every endpoint has no call in flight when a call is placed, so
 * with the pending-requests load p2c's choice is its weighted turn-taking
 * alone and the shares measured are the weights' (a load-aware metric over
 * concurrent calls would move them by the servers' latencies, by design).
 */
async function repliesFrom(client: ReturnType<typeof createEchoClient>, total: number): Promise<string[]> {
  const names: string[] = [];
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: 1 }, async () => {
      for (let i = 0; i < total; i++) {
        await new Promise<void>((resolve) =>
          client.Unary(
            { message: 'x' },
            new grpc.Metadata(),
            { deadline: Date.now() + 5000 },
            (err, reply) => {
              if (err) failures.push(`${grpc.status[err.code]}: ${err.details}`);
              else names.push(reply?.server ?? '');
              resolve();
            },
          ),
        );
      }
    }),
  );
  expect(failures).toEqual([]);
  return names;
}

/** The shares of `names` per server, against `expected` (by server name), each within ±2 pp. */
function expectShares(what: string, names: readonly string[], expected: Readonly<Record<string, number>>) {
  const measured = Object.fromEntries(
    Object.keys(expected).map((n) => [n, names.filter((x) => x === n).length / names.length]),
  );
  const fmt = (r: Readonly<Record<string, number>>) =>
    Object.entries(r)
      .map(([n, v]) => `${n} ${(v * 100).toFixed(1)} %`)
      .join(', ');
  console.log(`${what}, ${names.length} calls: expected ${fmt(expected)}; measured ${fmt(measured)}`);
  for (const [n, want] of Object.entries(expected)) {
    expect(Math.abs((measured[n] as number) - want), n).toBeLessThanOrEqual(0.02);
  }
}

/** Through `xds:///name` with seeded draws: once every server answers, 3,000 calls against `expected`. */
async function measureShares(name: string, seed: number, what: string, expected: Record<string, number>) {
  const target = `xds:///${name}`;
  const channel = towerChannel(target, insecure, {
    services: [EchoService],
    balancer: { random: seededRandom(seed), load: pendingRequests() },
  });
  const client = createEchoClient(target, { channelOverride: channel });
  try {
    const servers = Object.keys(expected).length;
    await vi.waitFor(async () => expect(new Set(await repliesFrom(client, 60)).size).toBe(servers), {
      timeout: 10_000,
      interval: 20,
    });
    expectShares(what, await repliesFrom(client, 3000), expected);
  } finally {
    client.close();
    await channel.close();
  }
}

test('weighted_clusters over real servers: 3,000 calls split by cluster weight within ±2 pp, p2c within each', async () => {
  const name = 'orders-canary';
  const [s3, s4, s5] = pods.slice(3, 6) as [EchoServer, EchoServer, EchoServer];
  // stable: two servers in the route's cluster; canary: one, in a second cluster at 20 %
  control.serve(name, [{ zone: 'a', endpoints: [{ address: s3.address }, { address: s4.address }] }]);
  control.set('cluster', `${name}-canary`, xdsCluster(`${name}-canary`));
  control.set(
    'endpoints',
    `${name}-canary`,
    xdsEndpoints(`${name}-canary`, [{ zone: 'a', endpoints: [{ address: s5.address }] }]),
  );
  control.set(
    'route',
    `${name}-route`,
    xdsRoute(`${name}-route`, { [`${name}-cluster`]: 80, [`${name}-canary`]: 20 }),
  );
  await measureShares(name, 23, 'weighted clusters 80/20', {
    [s3.name]: 0.4,
    [s4.name]: 0.4,
    [s5.name]: 0.2,
  });
});

test('locality weights × endpoint weights over real servers: 3,000 calls within ±2 pp', async () => {
  const name = 'orders-weights';
  const [s3, s4, s5] = pods.slice(3, 6) as [EchoServer, EchoServer, EchoServer];
  // locality a weighs 3 (endpoints 1 and 2: 3 and 6), locality b weighs 1 (endpoint 3: 3): 25 %, 50 %, 25 %
  control.serve(name, [
    {
      zone: 'a',
      weight: 3,
      endpoints: [
        { address: s3.address, weight: 1 },
        { address: s4.address, weight: 2 },
      ],
    },
    { zone: 'b', weight: 1, endpoints: [{ address: s5.address, weight: 3 }] },
  ]);
  await measureShares(name, 29, 'locality × endpoint weights 3×1, 3×2, 1×3', {
    [s3.name]: 0.25,
    [s4.name]: 0.5,
    [s5.name]: 0.25,
  });
});

/** The rolling update of `pods` (three old, three new) under `name`, with `client` calling at a fixed rate. */
async function rolling(
  name: string,
  pods: readonly EchoServer[],
  client: ReturnType<typeof createEchoClient>,
) {
  const states = new Map<EchoServer, Health>(pods.slice(0, 3).map((p) => [p, 'HEALTHY']));
  const publish = (s: ReadonlyMap<EchoServer, Health>) =>
    control.serve(name, [
      { zone: 'a', endpoints: [...s].map(([p, health]) => ({ address: p.address, health })) },
    ]);
  publish(states);
  // each call takes a while, so an old server has calls in flight when it turns DRAINING
  for (const pod of pods) pod.setLatency(15);
  // the first call waits for the xDS resources and a connection
  await new Promise<void>((resolve, reject) =>
    client.Unary({ message: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  const running = load(client, CALL_EVERY_MS);
  await new Promise((resolve) => setTimeout(resolve, 500));
  await rollOver(pods.slice(0, 3), pods.slice(3, 6), states, publish);
  await running.stop();
  return { calls: running.calls, failures: running.failures };
}

test('the rolling update through towerChannel and through @grpc/grpc-js-xds, side by side: grpc-tower 0 failed calls', async () => {
  const hosts = pickHosts(12);
  const towerPods = await startPods(hosts.slice(0, 6));
  const grpcJsPods = await startPods(hosts.slice(6, 12));
  // grpc-js's own xds: resolver, reading the bootstrap this file set (once per process)
  (createRequire(import.meta.url)('@grpc/grpc-js-xds') as { register(): void }).register();
  const towerTarget = 'xds:///rolling-tower';
  const channel = towerChannel(towerTarget, grpc.credentials.createInsecure(), { services: [EchoService] });
  const towerClient = createEchoClient(towerTarget, { channelOverride: channel });
  let tower: Awaited<ReturnType<typeof rolling>>;
  try {
    tower = await rolling('rolling-tower', towerPods, towerClient);
  } finally {
    towerClient.close();
    await channel.close();
  }

  // the same run through grpc-js's own xDS resolver and balancer
  const grpcJsClient = createEchoClient('xds:///rolling-grpc-js');
  let grpcJs: Awaited<ReturnType<typeof rolling>>;
  try {
    grpcJs = await rolling('rolling-grpc-js', grpcJsPods, grpcJsClient);
  } finally {
    grpcJsClient.close();
  }
  const kinds = (f: readonly string[]) => [...new Set(f.map((x) => x.split(':')[0]))].join(', ') || 'none';
  console.log(
    `rolling update through xDS, one call every ${CALL_EVERY_MS} ms:\n` +
      `  grpc-tower (xds:/// target): ${tower.failures.length} failed of ${tower.calls}\n` +
      `  @grpc/grpc-js-xds:           ${grpcJs.failures.length} failed of ${grpcJs.calls} (${kinds(grpcJs.failures)})`,
  );
  expect(tower.calls).toBeGreaterThan(200);
  expect(grpcJs.calls).toBeGreaterThan(200);
  expect(tower.failures).toEqual([]);
  await Promise.all([...towerPods, ...grpcJsPods].map((p) => p.stop(0)));
});

test("the Cluster's policy on a channel: max_requests 2 lets two calls run and refuses a third at once; consecutive_5xx 2 ejects a failing server", async () => {
  const name = 'orders-policy';
  const [good, bad] = pods.slice(3, 5) as [EchoServer, EchoServer];
  control.serve(name, [{ zone: 'a', endpoints: [{ address: good.address }, { address: bad.address }] }]);
  control.set('cluster', `${name}-cluster`, {
    ...xdsCluster(`${name}-cluster`),
    outlier_detection: { consecutive_5xx: { value: 2 }, base_ejection_time: { seconds: 30 } },
    circuit_breakers: { thresholds: [{ priority: 'DEFAULT', max_requests: { value: 2 } }] },
  });
  const policy = await xdsClusterPolicy({ target: name });
  expect(policy.maxRequests).toBe(2);
  const target = `xds:///${name}`;
  const channel = towerChannel(target, insecure, {
    services: [EchoService],
    outlierDetection: policy.outlierDetection ?? {},
    retry: false,
    layers: { outer: [concurrencyLimit({ max: policy.maxRequests as number, queue: 0 })] },
  });
  const client = createEchoClient(target, { channelOverride: channel });
  const unary = (): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) =>
      client.Unary({ message: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) =>
        resolve(err),
      ),
    );
  try {
    await vi.waitFor(async () => expect(await unary()).toBeNull(), { timeout: 10_000, interval: 20 });
    // the server fails its calls: after 2 in a row it is ejected and the good one takes every call
    bad.failNext(1000, grpc.status.UNAVAILABLE);
    const outcomes: (grpc.ServiceError | null)[] = [];
    for (let i = 0; i < 40; i++) outcomes.push(await unary());
    const failed = outcomes.filter((e) => e !== null).length;
    console.log(`consecutive_5xx 2: ${failed} of 40 calls failed before the failing server was ejected`);
    expect(failed).toBeLessThanOrEqual(2);
    expect(outcomes.slice(-20).every((e) => e === null)).toBe(true);
    bad.failNext(0, grpc.status.OK);

    // two slow calls hold both slots: a third fails at once
    good.setLatency(300);
    const slow = [unary(), unary()];
    await sleep(50);
    const third = await unary();
    expect(third?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect((await Promise.all(slow)).every((e) => e === null)).toBe(true);
  } finally {
    good.setLatency(0);
    client.close();
    await channel.close();
  }
});
