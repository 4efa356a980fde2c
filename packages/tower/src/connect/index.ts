/**
 * `grpc-tower/connect`: Connect-ES clients through a grpc-tower stack. A
 * Connect-ES `Transport` ({@link towerTransport}) sends the calls of
 * `createClient(Service, transport)` through discovery, health checks,
 * outlier detection, P2C with PeakEWMA, gRPC retries within a budget and
 * the deadline, over one HTTP/2 connection per discovered server, with the
 * target names and options of `towerChannel`.
 *
 * `@connectrpc/connect` (2.x) and `@bufbuild/protobuf` are optional peer
 * dependencies, loaded only by this entry point.
 *
 * @example
 * ```ts
 * import { createClient } from '@connectrpc/connect';
 * import { towerTransport } from 'grpc-tower/connect';
 *
 * const transport = towerTransport('dns:///orders.internal:50051', { tls: {} });
 * const orders = createClient(OrderService, transport);
 * ```
 * @packageDocumentation
 */
export {
  towerTransport,
  TowerTransport,
  type TowerTransportOptions,
  type TowerTransportTelemetry,
} from './transport.js';
export type { TowerTransportTls } from './tls.js';
