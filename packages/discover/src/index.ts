/**
 * `@grpc-tower/discover`: service discovery as a stream of changes (tower's
 * `Discover` model). A source is an RxJS Observable of
 * `{ type: 'insert', key, endpoint } | { type: 'remove', key }` keyed by
 * address (`host:port`, IPv6 as `[addr]:port`), with values
 * `{ address, weight?, metadata? }`; every source in this package is a
 * {@link DiscoverySource}: that Observable plus an `events$` stream that
 * reports resolutions, failures, backoffs and rejected inputs.
 *
 * Sources: {@link staticList}, {@link poll} over any async resolve function,
 * and {@link dns} (A/AAAA) and {@link dnsSrv} (SRV) on that loop; the etcd
 * source (list, then watch from that revision) is in the subpath
 * `@grpc-tower/discover/etcd`, so that only its users load `etcd3`.
 * Operators: {@link diff} (snapshots → minimal changes), {@link merge}
 * (several sources as one) and {@link connect} (addresses → endpoints, which
 * the balancer consuming them owns, drains and closes). Sources are lazy and
 * shared, keep their last set through registry failures, and never error or
 * complete on a transient failure.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { connect, dns } from '@grpc-tower/discover';
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 *
 * const orders = dns('orders.internal', 50051, { intervalMs: 5000 });
 * orders.events$.subscribe((e) => e.type === 'failed' && console.warn(e.error.message));
 * const endpoints = connect(orders, (a) => grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure() }));
 * ```
 * @packageDocumentation
 */
export { type DiscoveredAddress, toDiscoveredAddress } from './address.js';
export {
  InvalidAddressError,
  InvalidRecordError,
  ResolveError,
  DnsResolveError,
  EndpointCloseError,
  EndpointCreateError,
} from './errors.js';
export type { DiscoveryEvent, EndpointState } from './events.js';
export { DiscoverySource, sharedSource, type SourceContext } from './source.js';
export { diff, diffSnapshots, type DiffOptions } from './diff.js';
export { connect, type Closable, type ConnectOptions } from './connect.js';
export { merge, type MergeOptions } from './merge.js';
export {
  subset,
  subsetAssignment,
  type SubsetOptions,
  type SubsetAssignmentOptions,
} from './subset/index.js';
export { staticList, type StaticListOptions } from './static.js';
export {
  poll,
  type PollOptions,
  type PollAnswer,
  type PollResult,
  type ResolveFn,
  type InvalidInput,
} from './poll.js';
export type { BackoffOptions } from './timing.js';
export { dns, dnsSrv, type DnsOptions } from './dns.js';
