// Writing layers and composing them: `bearerAuth` adds a token to every
// call and refreshes it when the server answers UNAUTHENTICATED;
// `logAttempts` reports every attempt. Their place in the stack decides
// what they see:
//
//   timeout → bearerAuth → retry → logAttempts → endpoint
//
// the timeout bounds everything, auth wraps the retries (a retried attempt
// keeps the token; a rejected token is refreshed once), and the log below
// retry sees each attempt with its number and the server that answered.
//
//   npm start -w @grpc-tower/example-custom-layer      (starts a local server)
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { ServiceBuilder, timeout } from '@grpc-tower/core';
import { type GrpcRequest, type GrpcResponse, createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
import { retry } from '@grpc-tower/retry';
import { createEchoClient, loadEchoPackage } from '@grpc-tower/testing';
import { type AttemptLog, type TokenSource, bearerAuth, logAttempts } from './layers.js';
import { startAuthServer } from './server.js';

/** Options of {@link run}. */
export interface CustomLayerOptions {
  /** The server, `host:port`. */
  readonly address: string;
  /** Where tokens come from. */
  readonly fetchToken: TokenSource;
  /** Calls per round; default 10. */
  readonly calls?: number;
  /** Runs between the two rounds (the test revokes the token here). */
  readonly between?: () => void | Promise<void>;
}

/** The replies of both rounds and every attempt the log layer saw. */
export interface CustomLayerResult {
  readonly replies: readonly string[];
  readonly failed: number;
  readonly attempts: readonly AttemptLog[];
}

export async function run(options: CustomLayerOptions): Promise<CustomLayerResult> {
  const attempts: AttemptLog[] = [];
  // #region compose
  // the local server is plaintext; grpc.credentials.createSsl(...) for TLS
  const endpoint = grpcEndpoint(options.address, { credentials: grpc.credentials.createInsecure() });
  const stack = new ServiceBuilder<GrpcRequest, GrpcResponse>()
    .layer(timeout({ ms: 2_000 }))
    .layer(bearerAuth(options.fetchToken))
    .layer(retry({ maxAttempts: 3 }))
    .layer(logAttempts((entry) => attempts.push(entry)))
    .service(endpoint);
  const channel = createChannel(stack, {
    target: options.address,
    services: [loadEchoPackage().EchoService],
  });
  // #endregion compose
  const client = createEchoClient(options.address, { channelOverride: channel });
  const replies: string[] = [];
  let failed = 0;
  const round = (n: number) =>
    Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<void>((resolve) => {
            client.Unary(
              { message: `#${i}` },
              new grpc.Metadata(),
              { deadline: Date.now() + 5_000 },
              (err, reply) => {
                if (err || reply === undefined) failed++;
                else replies.push(reply.message);
                resolve();
              },
            );
          }),
      ),
    );
  try {
    await round(options.calls ?? 10);
    await options.between?.();
    await round(options.calls ?? 10);
  } finally {
    client.close();
    await channel.closeAsync();
  }
  return { replies, failed, attempts };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const main = async (): Promise<void> => {
    const server = await startAuthServer('127.0.0.1');
    let issued = 0;
    // stands in for an identity provider: each fetch issues a new token the server accepts
    const fetchToken: TokenSource = async () => {
      const token = `token-${++issued}`;
      server.allow(token);
      return token;
    };
    try {
      const result = await run({
        address: server.address,
        fetchToken,
        calls: 3,
        between: () => server.revoke('token-1'),
      });
      for (const a of result.attempts) console.log(a);
      console.log(`${result.replies.length} replies, ${result.failed} failed, ${issued} tokens fetched`);
    } finally {
      await server.close();
    }
  };
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
