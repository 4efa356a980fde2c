/**
 * `@grpc-tower/balance`: client-side load balancing over a discovered set
 * of endpoints. {@link p2c} is the power-of-two-choices balancer
 * (Mitzenmacher) with PeakEWMA load (Finagle, Linkerd, tower) by default;
 * {@link roundRobin} is the baseline with the same contract. Both are
 * core `Service`s, readiness sources for
 * `createChannel`, and drain what they close.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { p2c } from '@grpc-tower/balance';
 * import { createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
 * import { Subject } from 'rxjs';
 *
 * const changes = new Subject<Change<string, GrpcEndpoint>>();
 * const balancer = p2c(changes, { target: 'echo' });
 * const endpoint = grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * changes.next({ type: 'insert', key: '127.0.0.2:50051', endpoint });
 * const channel = createChannel(balancer, { target: 'echo' });
 * ```
 * @packageDocumentation
 */
export { p2c, type P2cOptions } from './p2c.js';
export type { SlowStartWeight } from './pick/picker.js';
export { roundRobin } from './round-robin.js';
export { Balancer } from './balancer.js';
export { AvoidEndpoints, EndpointPicked } from './hints.js';
export type { BalancerOptions, ZoneRoutingOptions } from './options.js';
export type {
  BalancerStats,
  EndpointStats,
  ZoneRouting,
  ZoneRoutingMode,
  ZoneRoutingReason,
} from './stats.js';
export type { BalancerEvent } from './events.js';
export type { EndpointRole } from './slot.js';
export { peakEwma, type PeakEwmaOptions } from './load/peak-ewma.js';
export { pendingRequests } from './load/pending.js';
export { loadFunction } from './load/load-function.js';
export type { LoadMetric, LoadFunction, EndpointLoad, LoadSubject } from './load/metric.js';
export { NoReadyEndpointError, NoReadyEndpointDeadlineError, type EndpointCounts } from './errors.js';
