/**
 * grpc-js reads its environment once, when it loads. Its DNS resolver
 * honours the DNS server named in a `dns://server/name:port` target only
 * when `GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true` (it then queries with
 * c-ares instead of `getaddrinfo`); the churn scenario points grpc-js at the
 * benchmark's own DNS server that way. This module must be imported before
 * anything that imports `@grpc/grpc-js`.
 *
 * @module
 */
process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER ??= 'true';

/** Whether grpc-js will use the DNS server named in a `dns://` target. */
export const grpcJsHonoursDnsAuthority: boolean = process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER === 'true';
