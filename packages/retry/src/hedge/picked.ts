/**
 * The context key through which a balancer reports its pick lives in core
 * (balancers cannot depend on this package); it is re-exported here for
 * hedging users.
 *
 * @module
 */
export { EndpointPicked } from '@grpc-tower/core';
