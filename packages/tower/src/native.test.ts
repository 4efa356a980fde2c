// towerChannel with the native transport (opt-in) against real grpc-js
// servers: connection churn by max_connection_age (GOAWAY after GOAWAY), a
// server killed under load, streams through the whole stack, and the
// options it refuses.
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '@grpc-tower/core';
import type { NativeGrpcEndpoint } from '@grpc-tower/core/grpc';
import {
  type EchoReply,
  createEchoClient,
  loadEchoPackage,
  pickHosts,
  spawnEchoServer,
  startEchoServer,
} from '@grpc-tower/testing';
import { describe, expect, test } from 'vitest';
import { load, trackCleanups } from '../../balance/src/test/grpc-calls.js';
import { type TowerTelemetry, towerChannel } from './channel.js';

const insecure = grpc.credentials.createInsecure();
const { EchoService } = loadEchoPackage();

const cleanups = trackCleanups();

function channelFor(addresses: string[], options: Parameters<typeof towerChannel>[2] = {}) {
  const target = `ipv4:${addresses.join(',')}`;
  const channel = towerChannel(target, insecure, {
    services: [EchoService],
    transport: 'native',
    channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 },
    ...options,
  });
  const client = createEchoClient(target, { channelOverride: channel });
  cleanups.push(async () => {
    client.close();
    await channel.closeAsync();
  });
  return { channel, client };
}

describe('towerChannel over the native transport', () => {
  test('servers that end every connection after 50 ms (GOAWAY churn): 1,024 calls, none lost', async () => {
    const hosts = pickHosts(2);
    const servers = await Promise.all(
      hosts.map((host, i) =>
        startEchoServer({
          host,
          name: `churn${i}`,
          serverOptions: { 'grpc.max_connection_age_ms': 50, 'grpc.max_connection_age_grace_ms': 5_000 },
        }),
      ),
    );
    cleanups.push(() => Promise.all(servers.map((s) => s.stop(0))));
    // the endpoints' GOAWAY events, seen through the telemetry hook every endpoint passes
    let goaways = 0;
    const subscriptions: { unsubscribe(): void }[] = [];
    const telemetry: TowerTelemetry = {
      instrument: () => ({
        calls: (inner) => inner,
        attempts: (inner) => inner,
        endpoint: (ep) => {
          const events = (ep as unknown as NativeGrpcEndpoint).events$;
          subscriptions.push(events.subscribe((e) => (e.kind === 'goaway' ? goaways++ : undefined)));
          return ep;
        },
        observe: () => {},
        close: () => {
          for (const s of subscriptions) s.unsubscribe();
        },
      }),
    };
    const { client } = channelFor(
      servers.map((s) => s.address),
      { telemetry },
    );
    const started = Date.now();
    const result = await load(client, 32, 32);
    console.log(`churn: 1,024 calls in ${Date.now() - started} ms, ${goaways} GOAWAYs`);
    expect(goaways).toBeGreaterThan(2);
    expect(result.failures.map((f) => f.err.message)).toEqual([]);
    expect(result.servers.length).toBe(1_024);
  });

  test('a server SIGKILLed under load costs no failed call; all four call shapes work', async () => {
    const hosts = pickHosts(2);
    const children = await Promise.all(hosts.map((host, i) => spawnEchoServer({ host, name: `k${i}` })));
    cleanups.push(() => Promise.all(children.map((c) => c.kill())));
    const { client } = channelFor(children.map((c) => c.address));
    const warm = await load(client, 6, 10);
    expect(warm.failures).toEqual([]);
    const victim = children[1] as (typeof children)[number];
    // calls of 5 ms each, 4 at a time, for about 300 ms; the kill comes after 50
    const running = load(client, 4, 60, { message: 'x', delayMs: 5 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await victim.kill();
    const crashed = await running;
    expect(crashed.failures.map((f) => f.err.message)).toEqual([]);
    expect(crashed.servers.length).toBe(240);
    expect(crashed.servers.filter((s) => s === 'k0').length).toBeGreaterThan(120);

    // server streaming, client streaming and bidi through the whole stack
    const streamed = await new Promise<EchoReply[]>((resolve, reject) => {
      const out: EchoReply[] = [];
      const call = client.ServerStream({ message: 's', count: 5 } as never);
      call.on('data', (r: EchoReply) => out.push(r));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });
    expect(streamed.length).toBe(5);
    const collected = await new Promise<EchoReply>((resolve, reject) => {
      const call = client.ClientStream(
        new grpc.Metadata(),
        {},
        (err: grpc.ServiceError | null, reply?: EchoReply) =>
          err === null && reply !== undefined ? resolve(reply) : reject(err),
      );
      for (const m of ['a', 'b', 'c']) call.write({ message: m });
      call.end();
    });
    expect(collected.message).toContain('a');
    const echoed = await new Promise<string[]>((resolve, reject) => {
      const out: string[] = [];
      const call = client.Bidi();
      call.on('data', (r: EchoReply) => out.push(r.message));
      call.on('error', reject);
      call.on('end', () => resolve(out));
      for (const m of ['x', 'y']) call.write({ message: m });
      call.end();
    });
    expect(echoed).toEqual(['x', 'y']);
  });

  test('a channel option the native transport does not honour is refused when the channel is made', () => {
    for (const [key, value] of [
      ['grpc.service_config', '{}'],
      ['grpc.default_compression_algorithm', 3],
      ['grpc.default_compression_level', 2],
      ['grpc.not_an_option', 1],
    ] as const) {
      let err: unknown;
      try {
        towerChannel('ipv4:127.0.0.1:1', insecure, { transport: 'native', channelOptions: { [key]: value } });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).option).toBe(`channelOptions.${key}`);
    }
    expect(() => towerChannel('ipv4:127.0.0.1:1', insecure, { transport: 'quic' as never })).toThrow(
      /transport.*'grpc-js' or 'native'/,
    );
  });
});
