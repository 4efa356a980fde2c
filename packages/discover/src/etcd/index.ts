/**
 * `@grpc-tower/discover/etcd`: the {@link etcd} source, a list-then-watch
 * over an etcd v3 key prefix. It is a subpath of its own so that `etcd3`
 * (an optional peer dependency: install it to use this source) is loaded
 * only by the programs that import it; `@grpc-tower/discover` itself never
 * loads it.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { connect } from '@grpc-tower/discover';
 * import { etcd } from '@grpc-tower/discover/etcd';
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 *
 * const orders = etcd(['http://etcd-0:2379'], '/services/orders/');
 * const endpoints = connect(orders, (a) => grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure() }));
 * ```
 * @packageDocumentation
 */
export { etcd, type EtcdSourceOptions } from './source.js';
