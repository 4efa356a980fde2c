// A client built before its servers exist (a NestJS app builds its gRPC
// clients at import time): its endpoints fail at once and wait out grpc-js's
// reconnect backoff (1 s, then 1.6 s…). The first calls then ask every
// endpoint to connect now and wait for that, within the fail-fast time and
// their deadline. Real peers on distinct 127.0.0.x hosts: grpc-js echo
// servers started late, ports nobody listens on (refused), and TCP servers
// that accept and never answer (black holes).
import { type Socket, createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import {
  type EchoProtoClient,
  type EchoServer,
  activeHandles,
  closedPort,
  createEchoClient,
  expectNoLeaks,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import type { Subscription } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startDnsmasq } from '../../discover/src/test/index.js';
import type { TowerOptions, TowerTelemetry } from './channel.js';
import { overTransport } from './test/transport.js';

const insecure = grpc.credentials.createInsecure();
const { EchoService } = loadEchoPackage();

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let baseline: ReturnType<typeof activeHandles>;
beforeAll(() => {
  baseline = activeHandles();
});
// every client, endpoint channel, server and black-hole socket is gone at the end
afterAll(async () => {
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

/** TCP servers that accept connections and never say a word: a grpc-js connection attempt hangs. */
async function blackHoles(hosts: readonly string[], port: number): Promise<void> {
  const sockets = new Set<Socket>();
  const servers = await Promise.all(
    hosts.map(async (host) => {
      const server = createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => server.listen(port, host, resolve));
      return server;
    }),
  );
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });
}

/**
 * Telemetry of the shape `towerChannel` takes that only listens to the
 * balancer: the addresses it asked to reconnect, in order.
 */
function reconnectLog(): { telemetry: TowerTelemetry; reconnects: string[] } {
  const reconnects: string[] = [];
  const subs: Subscription[] = [];
  const telemetry: TowerTelemetry = {
    instrument: () => ({
      calls: (inner) => inner,
      attempts: (inner) => inner,
      endpoint: (endpoint) => endpoint,
      observe: ({ balancer }) => {
        const sub = balancer?.events$.subscribe((e) => {
          if (e.type === 'reconnect') reconnects.push(e.address);
        });
        if (sub !== undefined) subs.push(sub);
      },
      close: () => {
        for (const s of subs) s.unsubscribe();
      },
    }),
  };
  return { telemetry, reconnects };
}

function clientFor(transport: TestTransport, target: string, options: TowerOptions): EchoProtoClient {
  const client = createEchoClient(
    target,
    overTransport(transport).towerClientOptions(target, insecure, { services: [EchoService], ...options }),
  );
  cleanups.push(() => client.close());
  return client;
}

type Outcome = { ok: true; server: string } | { ok: false; code: number; details: string };

function unary(client: EchoProtoClient, message: string, deadlineMs = 5_000): Promise<Outcome> {
  return new Promise((resolve) => {
    client.Unary({ message }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, reply) => {
      if (err !== null || reply === undefined) {
        resolve({ ok: false, code: err?.code ?? -1, details: err?.details ?? 'no reply' });
      } else {
        resolve({ ok: true, server: reply.server });
      }
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits (at most 5 s) until every endpoint failed: the channel reports TRANSIENT_FAILURE. */
async function allFailed(client: EchoProtoClient): Promise<void> {
  const channel = client.getChannel();
  for (let i = 0; i < 500; i++) {
    if (channel.getConnectivityState(false) === grpc.connectivityState.TRANSIENT_FAILURE) return;
    await sleep(10);
  }
  throw new Error('the endpoints did not all fail within 5 s');
}

async function addresses(count: number): Promise<{ hosts: string[]; port: number; target: string }> {
  const hosts = pickHosts(count);
  const port = await closedPort(hosts);
  return { hosts, port, target: `ipv4:${hosts.map((h) => `${h}:${port}`).join(',')}` };
}

/** A `dns:` target naming `hosts` through a real DNS server (dnsmasq) named in its authority. */
async function dnsTarget(hosts: readonly string[], port: number): Promise<string> {
  const name = 'late.tower.test';
  const dnsmasq = await startDnsmasq({ hosts: { [name]: [...hosts] } });
  cleanups.push(() => dnsmasq.close());
  return `dns://${dnsmasq.address}/${name}:${port}`;
}

describe.each(TRANSPORTS)('a client built before its servers, over the %s transport', (transport) => {
  test.each(['ipv4', 'dns'] as const)(
    '%s: target: the servers come up while the endpoints wait out their backoff; the first calls all succeed, one reconnect per endpoint',
    async (scheme) => {
      const addressed = await addresses(3);
      const { hosts, port } = addressed;
      const target = scheme === 'dns' ? await dnsTarget(hosts, port) : addressed.target;
      const { telemetry, reconnects } = reconnectLog();
      const built = performance.now();
      const client = clientFor(transport, target, { telemetry });
      await allFailed(client);
      // as in an app whose servers come up 1.5 s after it: past grpc-js's first
      // retry (about 1 s), into its second wait (about 1.6 s)
      await sleep(Math.max(0, 1_500 - (performance.now() - built)));
      const servers: EchoServer[] = await Promise.all(
        hosts.map((host, i) => startEchoServer({ host, port, name: `s${i}`, health: true })),
      );
      cleanups.push(() => Promise.all(servers.map((s) => s.stop(100))));
      const up = performance.now();
      let firstOkMs: number | undefined;
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          unary(client, `first ${i}`).then((o) => {
            if (o.ok) firstOkMs ??= performance.now() - up;
            return o;
          }),
        ),
      );
      console.log(
        `${scheme}: servers up ${Math.round(up - built)} ms after the client; first call OK ${firstOkMs?.toFixed(1)} ms after`,
      );
      expect(outcomes.filter((o) => !o.ok)).toEqual([]);
      // one attempt per endpoint, shared by the 20 calls
      expect([...reconnects].sort()).toEqual(hosts.map((h) => `${h}:${port}`).sort());
    },
  );

  test('servers refusing connections: the call fails at once with the connection errors, after one attempt per endpoint', async () => {
    const { hosts, port, target } = await addresses(3);
    const { telemetry, reconnects } = reconnectLog();
    // a fail-fast time far beyond the test's bound: settling proves the call did not wait for it
    const client = clientFor(transport, target, { telemetry, balancer: { failFastMs: 20_000 } });
    await allFailed(client);
    const first = await unary(client, 'refused', 30_000);
    expect(first.ok).toBe(false);
    if (first.ok) return;
    expect(first.code).toBe(grpc.status.UNAVAILABLE);
    expect(first.details).toMatch(
      /no ready endpoint for target ".*" .*\(3 known: 0 ready, 0 connecting, 3 failed/,
    );
    for (const host of hosts) expect(first.details).toContain(`${host}:${port}: connect ECONNREFUSED`);
    expect([...reconnects].sort()).toEqual(hosts.map((h) => `${h}:${port}`).sort());
    // the attempt was made: the next call, within the backoff interval, fails at once without another
    const second = await unary(client, 'refused again', 30_000);
    expect(second.ok).toBe(false);
    if (!second.ok) expect(second.details).toContain('ECONNREFUSED');
    expect(reconnects).toHaveLength(3);
  }, 15_000);

  test('every address black-holed: the calls wait for the fail-fast time, then fail naming the endpoints, before their deadline', async () => {
    const { hosts, port, target } = await addresses(3);
    const { telemetry, reconnects } = reconnectLog();
    const client = clientFor(transport, target, { telemetry, balancer: { failFastMs: 300 } });
    await allFailed(client);
    // now the port accepts and never answers: each reconnect hangs
    await blackHoles(hosts, port);
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => unary(client, `black hole ${i}`, 5_000)),
    );
    for (const o of outcomes) {
      expect(o.ok).toBe(false);
      if (o.ok) continue;
      // the fail-fast error (UNAVAILABLE), not the deadline's
      expect(o.code).toBe(grpc.status.UNAVAILABLE);
      expect(o.details).toMatch(
        /no ready endpoint for target ".*" after \d+ ms \(3 known: 0 ready, 3 connecting/,
      );
      for (const host of hosts) expect(o.details).toContain(`${host}:${port}`);
    }
    // one attempt per endpoint, shared by the 10 calls
    expect([...reconnects].sort()).toEqual(hosts.map((h) => `${h}:${port}`).sort());
  }, 15_000);
});
