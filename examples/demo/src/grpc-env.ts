// grpc-js reads GRPC_NODE_USE_ALTERNATIVE_RESOLVER once, when it loads:
// with it, a `dns://<server>/<name>` target queries that DNS server (c-ares)
// instead of the system resolver, which is how the demo's plain grpc-js
// client reads the demo's own DNS server. Import this module before
// anything that loads @grpc/grpc-js.
process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER ??= 'true';
export {};
