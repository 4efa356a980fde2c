// The one-call channel against real peers: grpc-js echo servers on distinct
// 127.0.0.x hosts (in this process, or in child processes where a server
// must crash), a real DNS server (dnsmasq) named in the target's authority,
// TLS with certificates made by openssl, and proto-loader clients.
import * as grpc from '@grpc/grpc-js';
import { ConfigError, type Layer, Status, serviceFn } from '@grpc-tower/core';
import type { GrpcRequest, GrpcResponse } from '@grpc-tower/core/grpc';
import {
  type ChildEchoServer,
  type EchoProtoClient,
  type EchoReply,
  type EchoServer,
  activeHandles,
  createEchoClient,
  expectNoLeaks,
  loadEchoPackage,
  pickHosts,
  spawnEchoServer,
  startEchoServer,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { type Dnsmasq, type EtcdServer, startDnsmasq, startEtcd } from '../../discover/src/test/index.js';
import { makeCerts } from '../../../reliability/src/support/certs.js';
import { overTransport } from './test/transport.js';
import { towerChannel as plainTowerChannel } from './channel.js';
import { InvalidTargetError } from './target.js';

const insecure = grpc.credentials.createInsecure();

const { EchoService } = loadEchoPackage();

/** Reconnect quickly after a server restart, so tests do not wait on grpc-js's 1 s+ backoff. */
const fastReconnect: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let baseline: ReturnType<typeof activeHandles>;
beforeAll(() => {
  baseline = activeHandles();
});
// every server, client, channel, DNS poll, health watch and detector timer is gone at the end
afterAll(async () => {
  await expectNoLeaks(baseline, { settleMs: 5000 });
});

function unary(client: EchoProtoClient, message: string, deadlineMs = 5_000): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    client.Unary({ message }, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, reply) => {
      if (err !== null || reply === undefined) reject(err ?? new Error('no reply'));
      else resolve(reply);
    });
  });
}

/** Runs `total` calls, `concurrency` at a time; counts replies per server and failures by code. */
async function load(
  client: EchoProtoClient,
  total: number,
  concurrency: number,
  onCall?: (i: number) => unknown,
): Promise<{ servers: Record<string, number>; failures: string[] }> {
  const servers: Record<string, number> = {};
  const failures: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        await onCall?.(i);
        try {
          const reply = await unary(client, `call ${i}`);
          servers[reply.server] = (servers[reply.server] ?? 0) + 1;
        } catch (err) {
          failures.push(`${(err as grpc.ServiceError).code}: ${(err as Error).message}`);
        }
      }
    }),
  );
  return { servers, failures };
}

/** Child-process servers on distinct hosts and one port (DNS A records carry no port). */
async function childrenOnOnePort(count: number): Promise<ChildEchoServer[]> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const hosts = pickHosts(count);
    const started: ChildEchoServer[] = [];
    try {
      for (const [i, host] of hosts.entries()) {
        started.push(
          await spawnEchoServer({ host, port: started[0]?.port ?? 0, name: `s${i}`, health: i === 0 }),
        );
      }
      cleanups.push(() => Promise.all(started.map((s) => s.kill())));
      return started;
    } catch {
      await Promise.all(started.map((s) => s.kill()));
    }
  }
  throw new Error('could not start the servers on one port');
}

// every behaviour below is meant to be the same over both transports
describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  const { towerChannel, towerClientOptions } = overTransport(transport);

  /** A client built as a grpc-js user builds one, plus `towerClientOptions`. */
  function clientFor(
    target: string,
    options: Parameters<typeof towerClientOptions>[2] = {},
  ): EchoProtoClient {
    const client = createEchoClient(
      target,
      towerClientOptions(target, insecure, { services: [EchoService], ...options }),
    );
    cleanups.push(() => client.close());
    return client;
  }

  describe('a dns: target with the DNS server in its authority', () => {
    let dnsmasq: Dnsmasq;
    let children: ChildEchoServer[];
    const NAME = 'echo.tower.test';

    beforeAll(async () => {
      children = await childrenOnOnePort(3);
      dnsmasq = await startDnsmasq({ hosts: { [NAME]: children.map((c) => c.host) } });
    });
    afterAll(async () => {
      await Promise.all(children.map((c) => c.kill()));
      await dnsmasq.close();
    });

    test('calls reach the servers behind the name; a killed server costs no failed call; close() ends it all', async () => {
      const port = children[0]?.port as number;
      const target = `dns://${dnsmasq.address}/${NAME}:${port}`;
      const channel = towerChannel(target, insecure, {
        services: [EchoService],
        channelOptions: fastReconnect,
      });
      const client = createEchoClient(target, { channelOverride: channel });
      expect(channel.getTarget()).toBe(`dns://${dnsmasq.address}/${NAME}:${port}`);

      const warm = await load(client, 90, 6);
      expect(warm.failures).toEqual([]);
      expect(Object.values(warm.servers).reduce((a, b) => a + b, 0)).toBe(90);
      // the name's three addresses were all discovered and connected: each is a known endpoint
      expect(Object.keys(warm.servers).length).toBeGreaterThanOrEqual(2);
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.READY);

      // SIGKILL one server while calls run: in-flight calls on it are retried elsewhere
      const victim = children[1] as ChildEchoServer;
      const crashed = await load(client, 200, 4, (i) => (i === 40 ? victim.kill() : undefined));
      expect(crashed.failures).toEqual([]);
      expect(Object.values(crashed.servers).reduce((a, b) => a + b, 0)).toBe(200);

      client.close();
      await channel.closeAsync();
      expect(channel.getConnectivityState(false)).toBe(grpc.connectivityState.SHUTDOWN);
    });
  });

  describe('ipv4: and ipv6: targets list the servers, no lookup', () => {
    let servers: EchoServer[];
    let v6: EchoServer;
    beforeAll(async () => {
      const hosts = pickHosts(2);
      servers = await Promise.all(hosts.map((host, i) => startEchoServer({ host, name: `v4-${i}` })));
      v6 = await startEchoServer({ host: '::1', name: 'v6' });
    });
    afterAll(async () => {
      await Promise.all([...servers, v6].map((s) => s.stop(0)));
    });

    test('ipv4: both addresses are endpoints of the channel', async () => {
      const target = `ipv4:${servers.map((s) => s.address).join(',')}`;
      const client = clientFor(target);
      const first = await load(client, 40, 4);
      expect(first.failures).toEqual([]);
      for (const name of Object.keys(first.servers)) expect(['v4-0', 'v4-1']).toContain(name);
      // stop whichever server answered most; the other address takes every call
      const busiest = Object.entries(first.servers).sort((a, b) => b[1] - a[1])[0]?.[0];
      const stopped = servers.find((s) => s.name === busiest) as EchoServer;
      await stopped.stop(0);
      const after = await load(client, 20, 2);
      expect(after.failures).toEqual([]);
      expect(Object.keys(after.servers)).toEqual(servers.filter((s) => s !== stopped).map((s) => s.name));
    });

    test('ipv6: the server on [::1] answers', async () => {
      const client = clientFor(`ipv6:[::1]:${v6.port}`);
      expect((await unary(client, 'hi')).server).toBe('v6');
    });

    test('a bare host:port with an IP answers the same', async () => {
      const bare = await startEchoServer({ host: pickHosts(1)[0] as string, name: 'bare' });
      cleanups.push(() => bare.stop(0));
      const client = clientFor(bare.address);
      expect((await unary(client, 'hi')).server).toBe('bare');
    });
  });

  describe('an etcd: target', () => {
    let etcd: EtcdServer;
    let servers: EchoServer[];
    beforeAll(async () => {
      etcd = await startEtcd();
      servers = await Promise.all(pickHosts(2).map((host, i) => startEchoServer({ host, name: `e${i}` })));
    });
    afterAll(async () => {
      await Promise.all(servers.map((s) => s.stop(0)));
      await etcd.close();
    });

    test('follows the addresses registered under the prefix', async () => {
      const [a, b] = servers as [EchoServer, EchoServer];
      await etcd.put('/services/echo/a', a.address);
      const client = clientFor(`etcd://${etcd.endpoint}/services/echo/`);
      expect((await unary(client, 'first')).server).toBe('e0');
      // a deploy: b registers, a leaves; calls follow without a failure
      await etcd.put('/services/echo/b', JSON.stringify({ address: b.address }));
      await etcd.del('/services/echo/a');
      const deadline = Date.now() + 10_000;
      let last = '';
      while (last !== 'e1' && Date.now() < deadline) last = (await unary(client, 'next')).server;
      expect(last).toBe('e1');
      const after = await load(client, 10, 2);
      expect(after).toEqual({ servers: { e1: 10 }, failures: [] });
    });
  });

  describe('credentials', () => {
    const certs = makeCerts();
    const NAME = 'orders.tls.test';
    let dnsmasq: Dnsmasq;
    let tls: EchoServer;
    let plain: EchoServer;
    beforeAll(async () => {
      const [tlsHost, plainHost] = pickHosts(2) as [string, string];
      const { key, cert } = certs.server(NAME);
      tls = await startEchoServer({
        host: tlsHost,
        name: 'tls',
        credentials: grpc.ServerCredentials.createSsl(certs.ca, [{ private_key: key, cert_chain: cert }]),
      });
      plain = await startEchoServer({ host: plainHost, name: 'plain' });
      dnsmasq = await startDnsmasq({ hosts: { [NAME]: [tlsHost], 'plain.tls.test': [plainHost] } });
    });
    afterAll(async () => {
      await Promise.all([tls.stop(0), plain.stop(0)]);
      await dnsmasq.close();
      certs.remove();
    });

    test('TLS credentials go to every endpoint, with the host name of the target as server name', async () => {
      // the endpoint dials the IP DNS gave; the certificate names only the host name
      const target = `dns://${dnsmasq.address}/${NAME}:${tls.port}`;
      const creds = grpc.credentials.createSsl(certs.ca);
      const client = createEchoClient(
        target,
        towerClientOptions(target, creds, { services: [EchoService] }),
        creds,
      );
      cleanups.push(() => client.close());
      expect((await unary(client, 'secure')).server).toBe('tls');
    });

    test('TLS credentials against a plaintext server fail with the TLS error, never fall back to plaintext', async () => {
      const target = `dns://${dnsmasq.address}/plain.tls.test:${plain.port}`;
      const creds = grpc.credentials.createSsl(certs.ca);
      const client = createEchoClient(target, towerClientOptions(target, creds, { retry: false }), creds);
      cleanups.push(() => client.close());
      const err = (await unary(client, 'x', 3_000).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(Status.UNAVAILABLE);
      expect(err.details).toMatch(/TLS|SSL|ssl/);
      expect(plain.calls.total).toBe(0);
    });

    test('credentials are required, and must be grpc-js ChannelCredentials', () => {
      for (const bad of [undefined, null, {}, 'insecure']) {
        expect(() => towerChannel('ipv4:127.0.0.1:1', bad as unknown as grpc.ChannelCredentials)).toThrow(
          /towerChannel: option "credentials" must be grpc-js ChannelCredentials: grpc.credentials.createSsl\(…\) for TLS, or grpc.credentials.createInsecure\(\) to choose plaintext/,
        );
      }
    });
  });

  describe('options change one part each', () => {
    let server: EchoServer;
    beforeAll(async () => {
      server = await startEchoServer({ host: pickHosts(1)[0] as string, name: 'only' });
    });
    afterAll(() => server.stop(0));

    /** A layer that records each call it sees under `name`. */
    const recorder =
      (seen: string[], name: string): Layer<GrpcRequest, GrpcResponse> =>
      (inner) =>
        serviceFn((req, ctx) => {
          seen.push(name);
          return inner.call(req, ctx);
        });

    test('outer layers run once per call, inner layers once per attempt, retries between them', async () => {
      const seen: string[] = [];
      const client = clientFor(server.address, {
        layers: {
          outer: [recorder(seen, 'outer')],
          inner: [recorder(seen, 'inner-1'), recorder(seen, 'inner-2')],
        },
      });
      server.failNext(2, Status.UNAVAILABLE, 'try again');
      expect((await unary(client, 'x')).server).toBe('only');
      expect(seen).toEqual(['outer', 'inner-1', 'inner-2', 'inner-1', 'inner-2', 'inner-1', 'inner-2']);
    });

    test('retry: false sends one attempt; a policy replaces the default', async () => {
      const once = clientFor(server.address, { retry: false });
      server.failNext(1, Status.UNAVAILABLE, 'down');
      const err = (await unary(once, 'x').catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(Status.UNAVAILABLE);
      expect(err.details).toBe('down');

      const wider = clientFor(server.address, { retry: { retryableStatusCodes: ['RESOURCE_EXHAUSTED'] } });
      server.failNext(1, Status.RESOURCE_EXHAUSTED, 'busy');
      expect((await unary(wider, 'x')).server).toBe('only');
    });

    test('timeoutMs bounds a call that sets no deadline', async () => {
      const client = clientFor(server.address, { timeoutMs: 100 });
      server.setLatency(1_000);
      try {
        const err = await new Promise<grpc.ServiceError | null>((resolve) => {
          client.Unary({ message: 'slow' }, new grpc.Metadata(), {}, (e) => resolve(e));
        });
        expect(err?.code).toBe(Status.DEADLINE_EXCEEDED);
      } finally {
        server.setLatency(0);
      }
    });

    test('health checks are on by default, and can be turned off', async () => {
      const sick = await startEchoServer({ host: pickHosts(1)[0] as string, name: 'sick', health: true });
      cleanups.push(() => sick.stop(0));
      sick.setServing('NOT_SERVING');
      // by default the only endpoint is not ready: the call fails at once, saying why
      const checked = clientFor(sick.address);
      const err = (await unary(checked, 'x', 2_000).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(Status.UNAVAILABLE);
      expect(err.details).toMatch(/health check: NOT_SERVING/);
      expect(sick.calls.total).toBe(0);
      // with health: false the server's verdict is not asked for
      const unchecked = clientFor(sick.address, { health: false, outlierDetection: false });
      expect((await unary(unchecked, 'x')).server).toBe('sick');
    });

    test('a bad option names itself, and building nothing leaves nothing running', () => {
      const cases: [unknown, RegExp][] = [
        [{ layers: { outer: 'x' } }, /towerChannel: option "layers.outer" must be an array of layers/],
        [{ layers: { inner: [1] } }, /towerChannel: option "layers.inner\[0\]" must be a layer/],
        [{ timeoutMs: -1 }, /timeout: option "ms"/],
        [{ balancer: { failFastMs: -5 } }, /failFastMs/],
        [{ health: { mode: 'sometimes' } }, /healthChecked: option "mode"/],
        [{ retry: { maxAttempts: 0 } }, /maxAttempts/],
        [{ closeGraceMs: Number.NaN }, /towerChannel: option "closeGraceMs"/],
        [{ authority: 'not a host' }, /towerChannel: option "authority" must be a host name/],
        [{ channelOptions: 5 }, /towerChannel: option "channelOptions"/],
        [null, /towerChannel: option "options" must be an object/],
      ];
      for (const [options, message] of cases) {
        let error: unknown;
        try {
          towerChannel(server.address, insecure, options as never);
        } catch (err) {
          error = err;
        }
        expect(error, JSON.stringify(options)).toBeInstanceOf(Error);
        expect((error as Error).message).toMatch(message);
      }
      expect(() => towerChannel('unix:///tmp/orders.sock', insecure)).toThrow(InvalidTargetError);
      expect(() => towerChannel(server.address, insecure, { layers: { outer: [1 as never] } })).toThrow(
        ConfigError,
      );
    });
  });
});

// the native transport refuses what grpc-js silently ignores: this differs by design
test('over the native transport, a channel option grpc-js would ignore is refused', () => {
  expect(() =>
    plainTowerChannel('ipv4:127.0.0.1:1', insecure, {
      transport: 'native',
      channelOptions: { 'grpc.not_an_option': 1 },
    }),
  ).toThrow(ConfigError);
});
