// Quick start: one balanced channel over DNS discovery, used by two kinds of
// grpc-js clients — one built at run time by @grpc/proto-loader, one
// generated ahead of time (ts-proto). Both send their calls through the same
// stack: DNS → p2c (PeakEWMA) → retry → timeout.
//
//   npm start -w @grpc-tower/example-quickstart -- --name echo.internal --port 50051 [--dns-server 10.0.0.2]
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { p2c } from '@grpc-tower/balance';
import { ServiceBuilder, timeout } from '@grpc-tower/core';
import {
  type GrpcRequest,
  type GrpcResponse,
  type TowerChannel,
  createChannel,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import { connect, dns } from '@grpc-tower/discover';
import { retry, retryBudget } from '@grpc-tower/retry';
// The echo service of this repository's tests stands in for your service:
// its .proto file, the proto-loader client's type, and its ts-proto code.
import {
  ECHO_PROTO_PATH,
  type EchoProtoClient,
  GeneratedEchoClient,
  GeneratedEchoRequest,
} from '@grpc-tower/testing';

/** Options of {@link run}. */
export interface QuickstartOptions {
  /** The DNS name with one A (or AAAA) record per server. */
  readonly name: string;
  /** The port every server listens on. */
  readonly port: number;
  /** DNS servers to ask (`ip` or `ip:port`); default: the system's. */
  readonly dnsServers?: readonly string[];
  /** Calls each client sends; default 10. */
  readonly calls?: number;
}

/** Which server answered how many calls, per client. */
export interface QuickstartResult {
  readonly protoLoader: Readonly<Record<string, number>>;
  readonly generated: Readonly<Record<string, number>>;
}

/**
 * The channel: every address behind `name`, re-resolved every 5 s, one
 * endpoint (one HTTP/2 connection) each, P2C over the ready ones, retries
 * on UNAVAILABLE within a budget, and one deadline over all attempts.
 */
export function balancedChannel(
  options: QuickstartOptions,
  services: grpc.ServiceDefinition[],
): TowerChannel {
  const target = `${options.name}:${options.port}`;
  // 1. discovery: a stream of insert/remove changes, one endpoint per address
  const source = dns(options.name, options.port, {
    ...(options.dnsServers === undefined ? {} : { servers: options.dnsServers }),
  });
  const endpoints = connect(source, (addr) => grpcEndpoint(addr.address, { authority: options.name }));
  // 2. balancing: the less loaded of two ready endpoints, per call
  const balancer = p2c(endpoints, { target: `dns:${target}` });
  // 3. layers around it; the first added is the outermost
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: 2_000 }))
    .layer(retry({ maxAttempts: 3, budget: retryBudget() }))
    .service(balancer);
  // 4. a grpc-js ChannelInterface over the stack
  return createChannel(stack, {
    target: `dns:${target}`,
    services, // which methods stream: unary calls stay retryable until their status
  });
}

const count = (tally: Record<string, number>, server: string): void => {
  tally[server] = (tally[server] ?? 0) + 1;
};

/** Sends `calls` unary calls with each client and counts who answered. */
export async function run(options: QuickstartOptions): Promise<QuickstartResult> {
  const calls = options.calls ?? 10;
  const target = `${options.name}:${options.port}`;
  const credentials = grpc.credentials.createInsecure();

  // A client built at run time from the .proto file.
  const definition = protoLoader.loadSync(ECHO_PROTO_PATH, { defaults: true });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpctower: { testing: { Echo: grpc.ServiceClientConstructor } };
  };
  const Echo = loaded.grpctower.testing.Echo;

  // One channel for both clients; it knows the methods' shapes from the definition.
  const channel = balancedChannel(options, [Echo.service]);
  const loaderClient = new Echo(target, credentials, {
    channelOverride: channel,
  }) as unknown as EchoProtoClient;
  // A client generated ahead of time (ts-proto), on the same channel.
  const generatedClient = new GeneratedEchoClient(target, credentials, { channelOverride: channel });

  const protoLoaderTally: Record<string, number> = {};
  const generatedTally: Record<string, number> = {};
  try {
    await Promise.all(
      Array.from(
        { length: calls },
        (_, i) =>
          new Promise<void>((resolve, reject) => {
            loaderClient.Unary(
              { message: `hello ${i}` },
              new grpc.Metadata(),
              { deadline: Date.now() + 5_000 },
              (err, reply) => {
                if (err || reply === undefined) reject(err ?? new Error('no reply'));
                else {
                  count(protoLoaderTally, reply.server);
                  resolve();
                }
              },
            );
          }),
      ),
    );
    await Promise.all(
      Array.from(
        { length: calls },
        (_, i) =>
          new Promise<void>((resolve, reject) => {
            generatedClient.unary(
              GeneratedEchoRequest.fromPartial({ message: `hello ${i}` }),
              new grpc.Metadata(),
              { deadline: Date.now() + 5_000 },
              (err, reply) => {
                if (err) reject(err);
                else {
                  count(generatedTally, reply.server);
                  resolve();
                }
              },
            );
          }),
      ),
    );
  } finally {
    loaderClient.close();
    generatedClient.close();
    await channel.closeAsync();
  }
  return { protoLoader: protoLoaderTally, generated: generatedTally };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      name: { type: 'string' },
      port: { type: 'string' },
      'dns-server': { type: 'string', multiple: true },
      calls: { type: 'string', default: '10' },
    },
  });
  if (values.name === undefined || values.port === undefined) {
    console.error(
      'usage: npm start -- --name <dns name> --port <port> [--dns-server <ip[:port]>] [--calls <n>]',
    );
    process.exit(2);
  }
  run({
    name: values.name,
    port: Number(values.port),
    calls: Number(values.calls),
    ...(values['dns-server'] === undefined ? {} : { dnsServers: values['dns-server'] }),
  }).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
