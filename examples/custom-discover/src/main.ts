// Two discovery sources behind the same balancer code:
//
// 1. a hand-written Observable over your own registry (registry-source.ts);
// 2. the etcd source: servers register under a key prefix with a lease, so a
//    server that dies without deregistering disappears when its lease ends.
//
// Each part sends calls, takes one server out of discovery, waits until the
// balancer has drained it, and sends calls again: they all go to the other.
//
//   npm start -w @grpc-tower/example-custom-discover -- --etcd http://127.0.0.1:2379 \
//     --server 127.0.0.2:50051 --server 127.0.0.3:50051
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { type Balancer, p2c } from '@grpc-tower/balance';
import type { Endpoint, Discover } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { connect } from '@grpc-tower/discover';
import { etcd } from '@grpc-tower/discover/etcd';
import { createEchoClient, loadEchoPackage } from '@grpc-tower/testing';
import { Etcd3, type Lease } from 'etcd3';
import { ToyRegistry, registrySource } from './registry-source.js';

/** Options of {@link run}. */
export interface CustomDiscoverOptions {
  /** Two running echo servers, `host:port`. */
  readonly servers: readonly [string, string];
  /** etcd client URLs, such as `http://127.0.0.1:2379`. */
  readonly etcd: string | readonly string[];
  /** The key prefix servers register under; default `/services/echo/`. */
  readonly prefix?: string;
  /** Calls per step; default 20. */
  readonly calls?: number;
}

/** Which server answered how many calls, before and after the first server left. */
export interface Tally {
  readonly before: Readonly<Record<string, number>>;
  readonly after: Readonly<Record<string, number>>;
}

/** What {@link run} saw, per source. */
export interface CustomDiscoverResult {
  readonly handWritten: Tally;
  readonly etcd: Tally;
}

type GrpcEndpoints = Discover<string, Endpoint<GrpcRequest, GrpcResponse>>;

/** A balanced echo client over a Discover of endpoints. */
function balancedClient(endpoints: GrpcEndpoints, target: string) {
  const balancer = p2c(endpoints, { target });
  const channel = createChannel(balancer, {
    target,
    services: [loadEchoPackage().EchoService],
  });
  const client = createEchoClient(target, { channelOverride: channel });
  return {
    balancer,
    /** Sends `n` calls at once; counts the servers that answered (by address). */
    async calls(n: number): Promise<Record<string, number>> {
      const tally: Record<string, number> = {};
      await Promise.all(
        Array.from(
          { length: n },
          () =>
            new Promise<void>((resolve, reject) => {
              client.Unary(
                { message: 'hi' },
                new grpc.Metadata(),
                { deadline: Date.now() + 5_000 },
                (err, reply) => {
                  if (err || reply === undefined) return reject(err ?? new Error('no reply'));
                  tally[reply.server] = (tally[reply.server] ?? 0) + 1;
                  resolve();
                },
              );
            }),
        ),
      );
      return tally;
    },
    async close(): Promise<void> {
      client.close();
      await channel.closeAsync();
    },
  };
}

/** Resolves once the balancer knows `address` and it is ready, or once it no longer knows it. */
async function until(
  balancer: Balancer<GrpcRequest, GrpcResponse, string>,
  address: string,
  state: 'ready' | 'gone',
): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const known = balancer.stats().endpoints.filter((e) => e.address === address);
    if (state === 'gone' ? known.length === 0 : known.some((e) => e.state === 'ready')) return;
    if (Date.now() > deadline) throw new Error(`${address} did not become ${state} within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Part 1: the hand-written source. */
async function handWritten(options: CustomDiscoverOptions, calls: number): Promise<Tally> {
  const [first, second] = options.servers;
  const registry = new ToyRegistry();
  registry.register('echo-1', first);
  registry.register('echo-2', second);
  const endpoints = connect(registrySource(registry), (address) =>
    grpcEndpoint(address, { credentials: grpc.credentials.createInsecure() }),
  );
  const client = balancedClient(endpoints, 'registry:echo');
  try {
    await until(client.balancer, first, 'ready');
    await until(client.balancer, second, 'ready');
    const before = await client.calls(calls);
    registry.deregister('echo-1');
    await until(client.balancer, first, 'gone'); // drained: its calls finished, its connection closed
    const after = await client.calls(calls);
    return { before, after };
  } finally {
    await client.close();
  }
}

// #region etcd-register
/**
 * What a server does at start: put its address under the prefix, attached
 * to a lease that the etcd client keeps alive. If the process dies, the
 * keep-alives stop and etcd deletes the key when the TTL runs out.
 */
export async function registerInEtcd(
  client: Etcd3,
  key: string,
  address: string,
  ttlSeconds = 10,
): Promise<Lease> {
  const lease = client.lease(ttlSeconds);
  await lease.put(key).value(address);
  return lease;
}
// #endregion etcd-register

/** Part 2: the etcd source. */
async function fromEtcd(options: CustomDiscoverOptions, calls: number): Promise<Tally> {
  const [first, second] = options.servers;
  const prefix = options.prefix ?? '/services/echo/';
  const hosts = typeof options.etcd === 'string' ? [options.etcd] : [...options.etcd];
  // in real life each server registers itself; here one process plays both
  const registrar = new Etcd3({ hosts });
  const leases = [
    await registerInEtcd(registrar, `${prefix}echo-1`, first),
    await registerInEtcd(registrar, `${prefix}echo-2`, second),
  ];
  // #region etcd-source
  // the client side: every key under the prefix is one server
  const source = etcd(hosts, prefix);
  source.events$.subscribe((e) => {
    if (e.type === 'failed') console.warn(`etcd discovery: ${e.error.message}`);
  });
  const endpoints = connect(source, (addr) =>
    grpcEndpoint(addr.address, { credentials: grpc.credentials.createInsecure() }),
  );
  // #endregion etcd-source
  const client = balancedClient(endpoints, `etcd:${prefix}`);
  try {
    await until(client.balancer, first, 'ready');
    await until(client.balancer, second, 'ready');
    const before = await client.calls(calls);
    await leases[0]?.revoke(); // server 1 leaves: its key is deleted with its lease
    await until(client.balancer, first, 'gone');
    const after = await client.calls(calls);
    return { before, after };
  } finally {
    await client.close();
    await Promise.all(leases.map((l) => (l.revoked() ? undefined : l.revoke().catch(() => undefined))));
    registrar.close();
  }
}

/** Runs both parts. */
export async function run(options: CustomDiscoverOptions): Promise<CustomDiscoverResult> {
  const calls = options.calls ?? 20;
  return { handWritten: await handWritten(options, calls), etcd: await fromEtcd(options, calls) };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      etcd: { type: 'string', default: 'http://127.0.0.1:2379' },
      server: { type: 'string', multiple: true },
    },
  });
  const [a, b] = values.server ?? [];
  if (a === undefined || b === undefined) {
    console.error('usage: npm start -- --etcd <url> --server <host:port> --server <host:port>');
    process.exit(2);
  }
  run({ servers: [a, b], etcd: values.etcd }).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
