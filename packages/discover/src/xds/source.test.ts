// The xds() source against the stand-in ADS server of test support (state of
// the world over one stream, ACK/NACK recorded, streams dropped, the server
// stopped and started; checked against @grpc/grpc-js-xds in its own test).
import { ConfigError } from '@grpc-tower/core';
import { activeHandles, expectNoLeaks, pickHosts } from '@grpc-tower/testing';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { type Recording, record } from '../test/record.js';
import {
  XDS_TYPE,
  type XdsLocalityInput,
  type XdsServer,
  startXdsServer,
  xdsCluster,
  xdsEndpoints,
  xdsListener,
  xdsRoute,
} from '../test/xds-server.js';
import { loadBootstrap } from './bootstrap.js';
import { xdsClusterPolicy } from './policy.js';
import { type XdsOptions, xds } from './source.js';

let server: XdsServer;
let hosts: string[];
let baseline: ReturnType<typeof activeHandles>;

beforeAll(async () => {
  baseline = activeHandles();
  const [control, ...rest] = pickHosts(5) as [string, ...string[]];
  hosts = rest;
  server = await startXdsServer({ host: control });
});
// the ADS channel, its stream and every backoff timer are gone once the sources stopped
afterAll(async () => {
  await server?.close();
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

const open: Recording<unknown>[] = [];
afterEach(() => {
  for (const r of open.splice(0)) r.stop();
});

let services = 0;
/** A fresh service name per test, so tests do not see each other's resources. */
const svc = () => `orders-${++services}`;
const at = (i: number, port = 50051) => `${hosts[i]}:${port}`;
/** Keys as `Recording.keys()` lists them: sorted as strings. */
const sorted = (...keys: string[]) => [...keys].sort();

function source(extra: Partial<XdsOptions> & ({ target: string } | { cluster: string })) {
  const r = record(
    xds({
      bootstrap: server.bootstrap({ id: 'tower-test', zone: 'a' }),
      backoff: { initialMs: 20, maxMs: 100, jitter: 0 },
      ...extra,
    }),
  );
  open.push(r as Recording<unknown>);
  return r;
}

const waitFor = (fn: () => void, timeout = 10_000) => vi.waitFor(fn, { timeout, interval: 5 });

const twoZones = (): XdsLocalityInput[] => [
  {
    zone: 'a',
    weight: 3,
    endpoints: [
      { address: at(0), weight: 2 },
      { address: at(1), health: 'HEALTHY' },
    ],
  },
  {
    zone: 'b',
    weight: 1,
    endpoints: [
      { address: at(2), health: 'DRAINING' },
      { address: at(3), health: 'UNHEALTHY' },
    ],
  },
];

describe('xds(): the chain for a target name', () => {
  test('follows Listener → RouteConfiguration → Cluster → ClusterLoadAssignment and ACKs each', async () => {
    const name = svc();
    server.serve(name, twoZones());
    const r = source({ target: name });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0), at(1))));
    // zone from the locality, weight = locality weight × endpoint weight; DRAINING and UNHEALTHY left out
    expect(r.set.get(at(0))).toEqual({ address: at(0), zone: 'a', weight: 6 });
    expect(r.set.get(at(1))).toEqual({ address: at(1), zone: 'a', weight: 3 });
    await waitFor(() => {
      for (const type of Object.values(XDS_TYPE)) {
        const acks = server.acks.filter(
          (a) => a.node === 'tower-test' && a.typeUrl === type && a.version !== '',
        );
        expect(acks.length, type).toBeGreaterThan(0);
        expect(acks.every((a) => a.error === undefined)).toBe(true);
      }
    });
    const states = r.of('endpoint').map((e) => [e.key, e.state]);
    expect(states).toEqual(
      expect.arrayContaining([
        [at(0), 'ready'],
        [at(1), 'ready'],
        [at(2), 'terminating'],
        [at(3), 'not-serving'],
      ]),
    );
    expect(r.problems).toEqual([]);
  });

  test('an EDS update moves the set: DRAINING leaves it, a new endpoint joins', async () => {
    const name = svc();
    server.serve(name, [{ zone: 'a', endpoints: [{ address: at(0) }, { address: at(1) }] }]);
    const r = source({ target: name });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0), at(1))));
    server.serve(name, [
      {
        zone: 'a',
        endpoints: [{ address: at(0), health: 'DRAINING' }, { address: at(1) }, { address: at(2) }],
      },
    ]);
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(1), at(2))));
    const draining = r.of('endpoint').find((e) => e.key === at(0) && e.state === 'terminating');
    expect(draining?.previous).toBe('ready');
  });

  test('a cluster name directly: Cluster → ClusterLoadAssignment, no Listener asked for', async () => {
    const name = svc();
    server.set('cluster', `${name}-c`, xdsCluster(`${name}-c`, `${name}-eds`));
    server.set(
      'endpoints',
      `${name}-eds`,
      xdsEndpoints(`${name}-eds`, [{ endpoints: [{ address: at(2) }] }]),
    );
    const r = source({ cluster: `${name}-c` });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(2))));
    expect(server.subscribed('listener')).not.toContain(`${name}-c`);
    expect(server.subscribed('endpoints')).toContain(`${name}-eds`);
  });

  test('priorities: every priority is in the set, each endpoint with its priority, for the balancer to choose', async () => {
    const name = svc();
    server.serve(name, [
      { zone: 'a', priority: 0, endpoints: [{ address: at(0), health: 'UNHEALTHY' }] },
      { zone: 'b', priority: 1, endpoints: [{ address: at(1) }, { address: at(2) }] },
    ]);
    const r = source({ target: name });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(1), at(2))));
    expect(r.set.get(at(1))).toEqual({ address: at(1), zone: 'b', weight: 1, priority: 1 });
    server.serve(name, [
      { zone: 'a', priority: 0, endpoints: [{ address: at(0) }] },
      // listed at two priorities: it counts once, at the higher one
      { zone: 'b', priority: 1, endpoints: [{ address: at(1) }, { address: at(0) }] },
    ]);
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0), at(1))));
    expect(r.set.get(at(0))).toEqual({ address: at(0), zone: 'a', weight: 1 });
    expect(r.of('duplicate').map((d) => d.key)).toContain(at(0));
  });

  test('weighted_clusters: the endpoints of every cluster, each with its cluster as its group and the weight of the cluster; route matchers reported as ignored', async () => {
    const name = svc();
    server.serve(name, [{ endpoints: [{ address: at(0) }] }]);
    server.set('cluster', `${name}-green`, xdsCluster(`${name}-green`));
    server.set(
      'endpoints',
      `${name}-green`,
      xdsEndpoints(`${name}-green`, [{ endpoints: [{ address: at(1) }] }]),
    );
    const route = xdsRoute(`${name}-route`, { [`${name}-cluster`]: 10, [`${name}-green`]: 90 });
    const vh = (route.virtual_hosts as { routes: unknown[] }[])[0] as { routes: unknown[] };
    vh.routes.unshift({
      match: { prefix: '/canary', headers: [{ name: 'x-canary', present_match: true }] },
      route: { cluster: `${name}-cluster` },
    });
    server.set('route', `${name}-route`, route);
    const r = source({ target: name });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0), at(1))));
    expect(r.set.get(at(0))).toEqual({
      address: at(0),
      weight: 1,
      group: `${name}-cluster`,
      groupWeight: 10,
    });
    expect(r.set.get(at(1))).toEqual({ address: at(1), weight: 1, group: `${name}-green`, groupWeight: 90 });
    expect(server.subscribed('cluster')).toEqual(
      expect.arrayContaining([`${name}-cluster`, `${name}-green`]),
    );
    const reasons = r.of('ignored').map((e) => e.reason);
    expect(reasons.some((x) => x.includes('headers'))).toBe(true);
    expect(reasons.some((x) => x.includes('weighted_clusters'))).toBe(false);

    // back to one cluster: its endpoints lose the group, the other cluster's leave
    server.set('route', `${name}-route`, xdsRoute(`${name}-route`, `${name}-green`));
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(1))));
    expect(r.set.get(at(1))).toEqual({ address: at(1), weight: 1 });
  });
});

describe('xds(): NACKs', () => {
  test('a bad ClusterLoadAssignment is NACKed with the reason and the last good set stays', async () => {
    const name = svc();
    server.serve(name, [{ endpoints: [{ address: at(0) }] }]);
    const r = source({ target: name });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0))));
    // this source's ACK of its endpoints (the set can change before the ACK reaches the server)
    const ackOf = () =>
      server.acks.find(
        (a) =>
          a.typeUrl === XDS_TYPE.endpoints &&
          a.error === undefined &&
          a.resourceNames.includes(`${name}-cluster`) &&
          a.version !== '',
      );
    await waitFor(() => expect(ackOf()).toBeDefined());
    const good = ackOf();
    const before = server.nacks().length;
    server.set(
      'endpoints',
      `${name}-cluster`,
      xdsEndpoints(`${name}-cluster`, [{ endpoints: [{ address: `${hosts[1]}:0` }] }]),
    );
    await waitFor(() => expect(server.nacks().length).toBeGreaterThan(before));
    const nack = server.nacks().at(-1);
    expect(nack?.typeUrl).toBe(XDS_TYPE.endpoints);
    expect(nack?.error).toContain('port 0');
    // the NACK names the version still held: the last one ACKed
    expect(nack?.version).toBe(good?.version);
    expect(r.keys()).toEqual(sorted(at(0)));
    const invalid = r.of('invalid').at(-1);
    expect(invalid?.error.message).toContain('port 0');
    // a good one after it is taken
    server.serve(name, [{ endpoints: [{ address: at(1) }] }]);
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(1))));
  });

  test('a Cluster that is not EDS and a Listener with no api_listener are NACKed', async () => {
    const name = svc();
    server.serve(name, [{ endpoints: [{ address: at(0) }] }]);
    const r = source({ target: name });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0))));
    server.set('cluster', `${name}-cluster`, { ...xdsCluster(`${name}-cluster`), type: 'STATIC' });
    await waitFor(() =>
      expect(server.nacks().some((n) => n.error?.includes('type STATIC is not supported'))).toBe(true),
    );
    server.set('listener', name, { name });
    await waitFor(() =>
      expect(server.nacks().some((n) => n.error?.includes(`Listener ${name}: no api_listener`))).toBe(true),
    );
    expect(r.keys()).toEqual(sorted(at(0)));
    server.set('listener', name, xdsListener(name, `${name}-route`));
  });
});

describe('xds(): the control plane goes away', () => {
  test('a dropped stream is opened again, re-subscribes, and a change made meanwhile arrives', async () => {
    const name = svc();
    server.serve(name, [{ endpoints: [{ address: at(0) }] }]);
    const r = source({ target: name, backoff: { initialMs: 300, maxMs: 300, jitter: 0 } });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0))));
    const opened = server.streamsOpened;
    server.dropStreams();
    // made while the source waits out its backoff: it arrives on the new stream
    server.serve(name, [{ endpoints: [{ address: at(0) }, { address: at(1) }] }]);
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0), at(1))));
    expect(server.streamsOpened).toBeGreaterThan(opened);
    expect(r.of('disconnected').length).toBe(1);
    expect(r.of('reconnected').length).toBe(1);
  });

  test('while the server is down the set stays, the failures are said, and its return is picked up', async () => {
    const name = svc();
    server.serve(name, [{ endpoints: [{ address: at(0) }] }]);
    const r = source({ target: name });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0))));
    await server.stop();
    await waitFor(() => expect(r.of('backoff').length).toBeGreaterThanOrEqual(3));
    expect(r.keys()).toEqual(sorted(at(0)));
    expect(r.of('disconnected').length).toBe(1);
    server.serve(name, [{ endpoints: [{ address: at(2) }] }]);
    await server.start();
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(2))));
    expect(r.of('reconnected').length).toBe(1);
    expect(r.problems).toEqual([]);
  });
});

describe('xds(): a resource the control plane stops serving', () => {
  test('a Listener missing from the answer leaves the set as it was, said as empty-kept; its return is followed', async () => {
    const name = svc();
    server.serve(name, [{ endpoints: [{ address: at(0) }] }]);
    const r = source({ target: name });
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(0))));
    server.remove('listener', name);
    await waitFor(() =>
      expect(r.of('empty-kept')).toEqual([{ type: 'empty-kept', source: `xds:///${name}`, kept: 1 }]),
    );
    expect(r.keys()).toEqual(sorted(at(0)));
    server.serve(name, [{ endpoints: [{ address: at(1) }] }]);
    await waitFor(() => expect(r.keys()).toEqual(sorted(at(1))));
  });
});

describe('xds(): options and bootstrap', () => {
  test('bad options and bootstraps throw ConfigError naming what is wrong', () => {
    const bootstrap = server.bootstrap();
    expect(() => xds({ bootstrap } as never)).toThrow(ConfigError);
    expect(() => xds({ target: 'a', cluster: 'b', bootstrap })).toThrow(/target/);
    expect(() => xds({ target: '', bootstrap })).toThrow(/non-empty/);
    expect(() => xds({ target: 'a', bootstrap: '{' })).toThrow(/JSON/);
    expect(() => xds({ target: 'a', bootstrap: { xds_servers: [] } })).toThrow(/xds_servers/);
    expect(() =>
      xds({
        target: 'a',
        bootstrap: { xds_servers: [{ server_uri: 'x:1', channel_creds: [{ type: 'google_default' }] }] },
      }),
    ).toThrow(/channel_creds/);
    expect(() => loadBootstrap(undefined, {})).toThrow(/GRPC_XDS_BOOTSTRAP/);
    expect(() => loadBootstrap(undefined, { GRPC_XDS_BOOTSTRAP: '/nonexistent/bootstrap.json' })).toThrow(
      /readable file/,
    );
  });

  test('the bootstrap comes from GRPC_XDS_BOOTSTRAP_CONFIG, node locality included', () => {
    const b = loadBootstrap(undefined, {
      GRPC_XDS_BOOTSTRAP_CONFIG: server.bootstrap({ id: 'n1', zone: 'z' }),
    });
    expect(b).toEqual({
      serverUri: server.address,
      credentials: 'insecure',
      node: { id: 'n1', locality: { zone: 'z' } },
    });
  });
});

describe('xdsClusterPolicy(): the Cluster outlier detection and circuit breakers in grpc-tower terms', () => {
  test('mapped fields become outlierDetection and maxRequests; the rest is listed as ignored', async () => {
    const name = svc();
    server.serve(name, [{ endpoints: [{ address: at(0) }] }]);
    server.set('cluster', `${name}-cluster`, {
      ...xdsCluster(`${name}-cluster`),
      outlier_detection: {
        consecutive_5xx: { value: 3 },
        interval: { seconds: 2, nanos: 500_000_000 },
        base_ejection_time: { seconds: 10 },
        max_ejection_time: { seconds: 60 },
        max_ejection_percent: { value: 30 },
        enforcing_success_rate: { value: 0 },
        enforcing_failure_percentage: { value: 80 },
        failure_percentage_threshold: { value: 50 },
        failure_percentage_request_volume: { value: 20 },
        consecutive_gateway_failure: { value: 2 },
        split_external_local_origin_errors: true,
      },
      circuit_breakers: {
        thresholds: [
          { priority: 'DEFAULT', max_requests: { value: 2 }, max_pending_requests: { value: 5 } },
          { priority: 'HIGH', max_requests: { value: 9 } },
        ],
      },
    });
    const policy = await xdsClusterPolicy({
      target: name,
      bootstrap: server.bootstrap({ id: 'tower-policy', zone: 'a' }),
    });
    expect(policy).toEqual({
      cluster: `${name}-cluster`,
      outlierDetection: {
        consecutiveFailures: 3,
        intervalMs: 2500,
        baseEjectionTimeMs: 10_000,
        maxEjectionTimeMs: 60_000,
        maxEjectionPercent: 30,
        successRateEjection: false,
        failurePercentageEjection: { enforcementPercentage: 80, threshold: 50, requestVolume: 20 },
      },
      maxRequests: 2,
      ignored: expect.arrayContaining([
        'thresholds of priority HIGH',
        'max_pending_requests',
        'consecutive_gateway_failure',
        'split_external_local_origin_errors',
      ]),
    });
    expect(policy.ignored).toHaveLength(4);
  });

  test('a Cluster without them: no outlier detection, no limit; A50 defaults when only some fields are set', async () => {
    const plain = svc();
    server.serve(plain, [{ endpoints: [{ address: at(0) }] }]);
    const bootstrap = server.bootstrap({ id: 'tower-policy', zone: 'a' });
    expect(await xdsClusterPolicy({ cluster: `${plain}-cluster`, bootstrap })).toEqual({
      cluster: `${plain}-cluster`,
      outlierDetection: undefined,
      maxRequests: undefined,
      ignored: [],
    });
    const some = svc();
    server.serve(some, [{ endpoints: [{ address: at(0) }] }]);
    server.set('cluster', `${some}-cluster`, { ...xdsCluster(`${some}-cluster`), outlier_detection: {} });
    const policy = await xdsClusterPolicy({ target: some, bootstrap });
    // success-rate ejection is on unless its enforcement is 0, failure percentage off unless set (A50)
    expect(policy.outlierDetection).toEqual({
      consecutiveFailures: 5,
      successRateEjection: { enforcementPercentage: 100 },
      failurePercentageEjection: false,
    });
  });

  test('no Cluster in time: a named error; a bad timeout: ConfigError', async () => {
    const bootstrap = server.bootstrap({ id: 'tower-policy', zone: 'a' });
    await expect(xdsClusterPolicy({ cluster: 'nowhere', bootstrap, timeoutMs: 300 })).rejects.toThrow(
      /no Cluster for cluster nowhere arrived within 300 ms/,
    );
    expect(() => xdsClusterPolicy({ cluster: 'x', bootstrap, timeoutMs: 0 })).toThrow(ConfigError);
  });
});
