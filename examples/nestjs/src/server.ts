// A real grpc-js server of the Echo service, for the example and its test:
// each answers with its own name, so the caller sees where a call went.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ECHO_PACKAGE, ECHO_PROTO, type SayReply, type SayRequest } from './echo';

export interface RunningServer {
  readonly name: string;
  /** `host:port`. */
  readonly address: string;
  /** How many calls it has received. */
  readonly received: () => number;
  /** How many calls it has answered. */
  readonly answered: () => number;
  /** Stops at once, cutting what is in flight. */
  readonly stop: () => void;
}

/** The Echo service definition, loaded from the proto file. */
function echoDefinition(): grpc.ServiceDefinition {
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(ECHO_PROTO, { keepCase: false }));
  let node: unknown = loaded;
  for (const part of `${ECHO_PACKAGE}.Echo`.split('.')) node = (node as Record<string, unknown>)[part];
  return (node as grpc.ServiceClientConstructor).service;
}

/** Starts a server named `name` on `host` (a free port); resolves once it listens. */
export function startServer(name: string, host: string): Promise<RunningServer> {
  const server = new grpc.Server();
  let received = 0;
  let answered = 0;
  server.addService(echoDefinition(), {
    say(call: grpc.ServerUnaryCall<SayRequest, SayReply>, callback: grpc.sendUnaryData<SayReply>): void {
      received++;
      setTimeout(() => {
        answered++;
        callback(null, { message: call.request.message, server: name });
      }, call.request.delayMs ?? 0);
    },
  });
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(err);
      else
        resolve({
          name,
          address: `${host}:${port}`,
          received: () => received,
          answered: () => answered,
          stop: () => server.forceShutdown(),
        });
    });
  });
}
