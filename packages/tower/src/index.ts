/**
 * `grpc-tower`: one call from a gRPC target name to a production channel —
 * discovery, health checks, outlier detection, P2C with PeakEWMA, retries
 * within a budget and the call's deadline, each with its documented
 * default and each overridable ({@link TowerOptions}). The result is a
 * grpc-js `ChannelInterface`; {@link towerClientOptions} makes adopting it a
 * one-line change where a grpc-js client is built.
 *
 * To compose a stack of your own, use the packages underneath:
 * `@grpc-tower/core`, `@grpc-tower/discover`, `@grpc-tower/balance`,
 * `@grpc-tower/retry` and `@grpc-tower/health`. An `etcd://` target loads
 * `@grpc-tower/discover/etcd` (and `etcd3`, which you then install) only
 * when such a channel starts.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { towerClientOptions } from 'grpc-tower';
 *
 * const target = 'dns:///orders.internal:50051';
 * const creds = grpc.credentials.createInsecure();
 * const client = new OrdersClient(target, creds, towerClientOptions(target, creds));
 * ```
 * @packageDocumentation
 */
export {
  towerChannel,
  towerClientOptions,
  asGrpcChannel,
  type TowerOptions,
  type TowerTelemetry,
} from './channel.js';
export type { StackOptions, TowerInstrumentation } from './recipe.js';
export {
  parseTarget,
  InvalidTargetError,
  type Target,
  type DnsTarget,
  type AddressListTarget,
  type EtcdTarget,
  type XdsTarget,
  type TargetPart,
} from './target.js';
