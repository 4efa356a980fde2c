// The same one-line change for a client that @grpc/proto-loader builds at
// run time from the .proto file. Its service definition (`Echo.service`)
// tells the channel which methods stream.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ECHO_PROTO_PATH, type EchoProtoClient } from '@grpc-tower/testing';
import { towerClientOptions } from 'grpc-tower';
import type { Tally } from './main.js';

/** Sends `calls` unary calls to `target` with a proto-loader client and counts who answered. */
export async function runProtoLoader(target: string, calls = 10): Promise<Tally> {
  const definition = protoLoader.loadSync(ECHO_PROTO_PATH, { defaults: true });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpctower: { testing: { Echo: grpc.ServiceClientConstructor } };
  };
  const { Echo } = loaded.grpctower.testing;
  const credentials = grpc.credentials.createInsecure();
  // before: new Echo(target, credentials)
  const client = new Echo(
    target,
    credentials,
    towerClientOptions(target, credentials, { services: [Echo.service] }),
  ) as unknown as EchoProtoClient;

  const tally: Record<string, number> = {};
  try {
    for (let i = 0; i < calls; i++) {
      const reply = await new Promise<{ server: string }>((resolve, reject) => {
        client.Unary(
          { message: `hello ${i}` },
          new grpc.Metadata(),
          { deadline: Date.now() + 5_000 },
          (err, r) => (err || r === undefined ? reject(err ?? new Error('no reply')) : resolve(r)),
        );
      });
      tally[reply.server] = (tally[reply.server] ?? 0) + 1;
    }
  } finally {
    client.close();
  }
  return tally;
}
