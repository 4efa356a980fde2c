/**
 * The events a balancer reports on `events$`: membership (insert, replace,
 * remove), endpoint readiness, reconnects asked for and closing, discovery failures, panic
 * mode, zone-aware routing, priority failover and the split across groups. They are built only while somebody
 * subscribes.
 *
 * @module
 */
import type { Readiness } from '@grpc-tower/core';
import type { ZoneRouting } from './stats.js';

/**
 * What happened inside a balancer, for logs and metrics. Failures that are
 * not a call's (an endpoint that failed to close, a discovery stream that
 * errored) are reported here and never thrown.
 *
 * @example
 * ```ts
 * balancer.events$.subscribe((e) => { if (e.type === 'close-error') log.warn(e.address, e.error); });
 * ```
 */
export type BalancerEvent<K> =
  | {
      readonly type: 'insert';
      readonly key: K;
      readonly address: string;
      readonly replacing: string | undefined;
    }
  | { readonly type: 'replace'; readonly key: K; readonly address: string; readonly previous: string }
  | { readonly type: 'remove'; readonly key: K; readonly address: string }
  | { readonly type: 'readiness'; readonly key: K; readonly address: string; readonly readiness: Readiness }
  /** A call found every endpoint failed: this one was asked to connect now (`Endpoint.reconnect`). */
  | { readonly type: 'reconnect'; readonly key: K; readonly address: string }
  | { readonly type: 'closed'; readonly key: K; readonly address: string }
  | { readonly type: 'close-error'; readonly key: K; readonly address: string; readonly error: unknown }
  | { readonly type: 'endpoint-error'; readonly key: K; readonly address: string; readonly error: unknown }
  | { readonly type: 'discovery-error'; readonly error: unknown }
  | { readonly type: 'discovery-complete' }
  | { readonly type: 'panic'; readonly active: boolean; readonly known: number; readonly ready: number }
  | ({ readonly type: 'zones' } & ZoneRouting)
  /**
   * Calls now go to another priority level (`undefined`: the endpoints
   * span one level, or none is ready): a failover or a failback.
   */
  | {
      readonly type: 'priority';
      readonly priority: number | undefined;
      readonly previous: number | undefined;
      readonly known: number;
      readonly ready: number;
    }
  /**
   * The split across groups changed (`EndpointMetadata.group`): each group's share
   * of the calls, the groups with no ready endpoint left out; `undefined`
   * when the endpoints no longer span more than one group.
   */
  | { readonly type: 'groups'; readonly shares: Readonly<Record<string, number>> | undefined };
