// The example's server: the echo service's Unary method behind a bearer
// token check, as an API gateway or an auth interceptor would do it. Tokens
// can be revoked, which makes the client's auth layer fetch a new one.
import * as grpc from '@grpc/grpc-js';
import { type EchoReply, type EchoRequest, loadEchoPackage } from '@grpc-tower/testing';

/** A running auth-checking echo server. */
export interface AuthServer {
  readonly address: string;
  /** Accepts `token` from now on. */
  allow(token: string): void;
  /** Refuses `token` from now on (UNAUTHENTICATED). */
  revoke(token: string): void;
  /** The tokens calls presented, in order. */
  readonly seen: readonly string[];
  close(): Promise<void>;
}

/** Starts the server on `host` and a free port. */
export async function startAuthServer(host: string): Promise<AuthServer> {
  const valid = new Set<string>();
  const seen: string[] = [];
  const server = new grpc.Server();
  server.addService(loadEchoPackage().EchoService, {
    Unary(
      call: grpc.ServerUnaryCall<EchoRequest, EchoReply>,
      callback: grpc.sendUnaryData<Partial<EchoReply>>,
    ) {
      const header = String(call.metadata.get('authorization')[0] ?? '');
      const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
      seen.push(token);
      if (!valid.has(token)) {
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'missing, expired or revoked token' });
        return;
      }
      callback(null, { message: `hello ${call.request.message ?? ''}`, server: host });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    address: `${host}:${port}`,
    allow: (token) => void valid.add(token),
    revoke: (token) => void valid.delete(token),
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      }),
  };
}
