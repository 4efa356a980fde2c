/**
 * The channel credentials of the tests' endpoints: the echo servers listen
 * in plaintext on loopback addresses.
 *
 * @module
 */
import * as grpc from '@grpc/grpc-js';

/**
 * Insecure (plaintext) grpc-js channel credentials, for endpoints of the
 * test servers.
 *
 * @example
 * ```ts
 * const ep = grpcEndpoint(server.address, { credentials: insecure });
 * ```
 */
export const insecure: grpc.ChannelCredentials = grpc.credentials.createInsecure();
