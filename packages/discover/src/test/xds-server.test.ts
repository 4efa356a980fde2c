// The stand-in ADS server checked against a real xDS client, @grpc/grpc-js-xds:
// it resolves xds:///name from the stand-in (Listener → RouteConfiguration →
// Cluster → ClusterLoadAssignment), ACKs each response, follows EDS updates,
// NACKs a broken resource with a message, and comes back after a dropped
// stream, sending its calls to the real grpc-js servers the stand-in names.
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import {
  activeHandles,
  type EchoProtoClient,
  type EchoServer,
  createEchoClient,
  expectNoLeaks,
  pickHosts,
  startEchoServer,
} from '@grpc-tower/testing';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { XDS_TYPE, type XdsServer, startXdsServer, xdsListener } from './xds-server.js';

let xds: XdsServer;
let servers: EchoServer[];
let baseline: ReturnType<typeof activeHandles>;
const clients: EchoProtoClient[] = [];

beforeAll(async () => {
  baseline = activeHandles();
  const [controlHost, ...hosts] = pickHosts(4) as [string, ...string[]];
  xds = await startXdsServer({ host: controlHost });
  servers = await Promise.all(hosts.map((host, i) => startEchoServer({ host, name: `s${i}` })));
  // the bootstrap is read once per process, when the first xds channel is made
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xds.bootstrap({ id: 'grpc-js-xds-check', zone: 'a' });
  const require = createRequire(import.meta.url);
  (require('@grpc/grpc-js-xds') as { register(): void }).register();
});

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
  await xds?.close();
  delete process.env.GRPC_XDS_BOOTSTRAP_CONFIG;
  // grpc-js-xds keeps its xDS client (and its ADS stream) for the process; only
  // the servers and the stand-in are ours to check, so allow its channel
  await expectNoLeaks(baseline, { settleMs: 3000 });
});

const waitFor = (fn: () => void | Promise<void>, timeout = 20_000) =>
  vi.waitFor(fn, { timeout, interval: 20 });

function call(client: EchoProtoClient): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Unary({ message: 'x' }, new grpc.Metadata(), {}, (err, reply) =>
      err ? reject(err) : resolve(reply?.server ?? ''),
    ),
  );
}

/** Which servers answered `n` calls in a row. */
async function spread(client: EchoProtoClient, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const s = await call(client);
    seen.set(s, (seen.get(s) ?? 0) + 1);
  }
  return seen;
}

const at = (i: number) => servers[i]?.address as string;

describe('the xDS stand-in through @grpc/grpc-js-xds', () => {
  test('resolves xds:///name through the four resources, ACKs each, and follows EDS updates', async () => {
    xds.serve('orders', [
      { zone: 'a', endpoints: [{ address: at(0) }, { address: at(1), health: 'HEALTHY' }] },
    ]);
    const client = createEchoClient('xds:///orders');
    clients.push(client);
    const first = await spread(client, 20);
    expect([...first.keys()].sort()).toEqual(['s0', 's1']);
    // every type was asked for by name and ACKed at the version served, by the bootstrap's node
    for (const type of Object.values(XDS_TYPE)) {
      const ack = xds.acks.find((a) => a.typeUrl === type && a.error === undefined && a.version !== '');
      expect(ack, type).toBeDefined();
      expect(ack?.node).toBe('grpc-js-xds-check');
    }
    expect(xds.subscribed('listener')).toEqual(['orders']);
    expect(xds.subscribed('endpoints')).toEqual(['orders-cluster']);

    // EDS: s1 turns DRAINING, s2 joins; grpc-js-xds sends to HEALTHY/UNKNOWN only
    xds.serve('orders', [
      {
        zone: 'a',
        endpoints: [{ address: at(0) }, { address: at(1), health: 'DRAINING' }, { address: at(2) }],
      },
    ]);
    await waitFor(async () => {
      const seen = await spread(client, 20);
      expect([...seen.keys()].sort()).toEqual(['s0', 's2']);
    });
  });

  test('a broken Listener is NACKed with a message and the last good one stays in use', async () => {
    const before = xds.nacks().length;
    xds.set('listener', 'orders', { name: 'orders' }); // no api_listener
    await waitFor(() => expect(xds.nacks().length).toBeGreaterThan(before));
    const nack = xds.nacks().at(-1);
    expect(nack?.typeUrl).toBe(XDS_TYPE.listener);
    expect(nack?.error).toMatch(/api_listener/);
    // a NACK names the version the client still holds: the one before the broken resource
    const good = xds.acks.filter((a) => a.typeUrl === XDS_TYPE.listener && a.error === undefined).at(-1);
    expect(nack?.version).toBe(good?.version);
    const client = clients[0] as EchoProtoClient;
    const seen = await spread(client, 10);
    expect([...seen.keys()].sort()).toEqual(['s0', 's2']);
    xds.set('listener', 'orders', xdsListener('orders', 'orders-route'));
    await waitFor(() => {
      const last = xds.acks.at(-1);
      expect(last?.typeUrl).toBe(XDS_TYPE.listener);
      expect(last?.error).toBeUndefined();
      expect(Number(last?.version)).toBeGreaterThan(Number(nack?.version));
    });
  });

  test('after the stream drops the client comes back, re-subscribes, and gets a change made meanwhile', async () => {
    const opened = xds.streamsOpened;
    await xds.stop();
    xds.serve('orders', [{ zone: 'a', endpoints: [{ address: at(1) }] }]);
    const client = clients[0] as EchoProtoClient;
    // while the control plane is away the client keeps its last endpoints
    const meanwhile = await spread(client, 10);
    expect([...meanwhile.keys()].sort()).toEqual(['s0', 's2']);
    await xds.start();
    await waitFor(() => expect(xds.streamsOpened).toBeGreaterThan(opened));
    await waitFor(async () => {
      const seen = await spread(client, 10);
      expect([...seen.keys()]).toEqual(['s1']);
    });
    expect(xds.subscribed('listener')).toEqual(['orders']);

    // a stream ended by the server (UNAVAILABLE) is opened again, and a change made meanwhile arrives
    const reopened = xds.streamsOpened;
    xds.dropStreams();
    xds.serve('orders', [{ zone: 'a', endpoints: [{ address: at(0) }] }]);
    await waitFor(() => expect(xds.streamsOpened).toBeGreaterThan(reopened));
    await waitFor(async () => {
      const seen = await spread(client, 10);
      expect([...seen.keys()]).toEqual(['s0']);
    });
  });
});
