/**
 * `grpc-tower/undici`: `fetch` through a grpc-tower stack. An undici
 * `Dispatcher` ({@link towerDispatcher}) sends the requests to one logical
 * origin (`http://orders.internal:8080`) through discovery, health checks,
 * outlier detection, P2C with PeakEWMA, HTTP retries and a deadline, over
 * one HTTP/2 session per discovered server, so that `fetch(url, {
 * dispatcher })` and undici's `request()` are balanced per request across
 * every server behind the name.
 *
 * undici is the HTTP client Node's own `fetch` is built on, and its
 * `Dispatcher` is the documented place to plug a transport in. It is an
 * optional peer dependency, loaded only by this entry point: install
 * `undici` (7.x) to use it.
 *
 * @example
 * ```ts
 * import { fetch } from 'undici';
 * import { towerDispatcher } from 'grpc-tower/undici';
 *
 * const dispatcher = towerDispatcher('http://orders.internal:8080');
 * const order = await (await fetch('http://orders.internal:8080/orders/7', { dispatcher })).json();
 * await dispatcher.close();
 * ```
 * @packageDocumentation
 */
export {
  towerDispatcher,
  TowerDispatcher,
  type TowerDispatcherOptions,
  type TowerHttpTelemetry,
  type TowerDispatcherStats,
  type TowerDispatcherEvents,
} from './dispatcher.js';
export type { ExchangeContext as TowerDispatchContext } from './exchange.js';
