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
 * import { p2c } from '@grpc-tower/balance';
 * import { createChannel, grpcEndpoint } from '@grpc-tower/core/grpc';
 * import { Subject } from 'rxjs';
 *
 * const changes = new Subject<Change<string, GrpcEndpoint>>();
 * const balancer = p2c(changes, { target: 'echo' });
 * changes.next({ type: 'insert', key: '127.0.0.2:50051', endpoint: grpcEndpoint('127.0.0.2:50051') });
 * const channel = createChannel(balancer, { target: 'echo', readiness: balancer, owns: [balancer] });
 * ```
 * @packageDocumentation
 */
export { p2c, type P2cOptions } from './p2c.js';
export type { SlowStartWeight } from './pick.js';
export { roundRobin } from './round-robin.js';
export {
  Balancer,
  type BalancerOptions,
  type BalancerStats,
  type BalancerEvent,
  type EndpointStats,
  type EndpointRole,
} from './balancer.js';
export {
  peakEwma,
  pendingRequests,
  loadFunction,
  type PeakEwmaOptions,
  type LoadMetric,
  type LoadFunction,
  type EndpointLoad,
  type LoadSubject,
} from './load.js';
export { NoReadyEndpointError, NoReadyEndpointDeadlineError, type EndpointCounts } from './errors.js';
