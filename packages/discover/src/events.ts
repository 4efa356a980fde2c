/**
 * What a discovery source reports besides its changes: each resolution, each
 * failure and backoff, answers it chose not to trust, inputs it rejected.
 * Users log these and alert on them; nothing here ever ends a change stream.
 *
 * @module
 */
import type { GrpcTowerError } from '@grpc-tower/core';
import type { DnsResolveError, InvalidAddressError, InvalidRecordError } from './errors.js';

/**
 * One event of a source's `events$` stream. Every event names its
 * `source` (such as `'dns:orders.internal:50051'` or `'etcd:/services/orders/'`).
 *
 * - `resolved`: a round (or a watch update batch) succeeded; `count` is the
 *   size of the set now, `inserted`/`removed` what changed, `nextPollMs`
 *   when the next round is due (polling sources only).
 * - `failed`: a round failed or a watch was cancelled; the last set is kept.
 *   `failures` counts consecutive failures.
 * - `backoff`: the next attempt waits `delayMs` because of failures.
 * - `empty-kept`: the registry answered with no address and the last set of
 *   `kept` addresses was kept (see `keepLastOnEmpty`).
 * - `partial`: one address family of a DNS name (`hostname`, an SRV target
 *   for `dnsSrv`) failed (`error`: refused, SERVFAIL, timeout, no server)
 *   while the other answered; the round went on with the family that
 *   answered and the `kept` addresses the failed `family` (4: A, 6: AAAA)
 *   had in its last good answer (0 before it ever answered).
 * - `invalid`: one input (an address, an SRV record, an etcd value) was
 *   skipped; `input` names it.
 * - `duplicate`: one address came from several inputs (`inputs`); the first
 *   in order is used.
 * - `disconnected` / `reconnected`: a watch lost or regained its connection.
 * - `resync`: a watch source re-read the full set (`reason`: `'start'`,
 *   `'watch-cancelled'` after compaction or a cancelled watch, `'expired'`
 *   after a Kubernetes `410 Gone`, or `'retry'` after a failed read).
 * - `endpoint`: a watch source saw one server change state (`state`:
 *   `'ready'` (inserted), `'terminating'` (shutting down: no new calls, its
 *   calls in flight finish), `'not-serving'` (failing its readiness), or
 *   `'gone'` (no longer listed)); `key` is its address, `pod` the pod
 *   that runs it when the registry names one, `previous` its state before
 *   (`undefined` when it is new), `reason` a sentence for logs.
 * - `ignored`: part of the registry's configuration that the source does
 *   not implement (an xDS route matcher, `weighted_clusters`); `input`
 *   names it, `reason` says what was done instead.
 * - `create-failed` / `close-failed`: {@link connect} could not create the
 *   endpoint for `key`, or could not close one it made but never handed on.
 *
 * @example
 * ```ts
 * source.events$.subscribe((e) => {
 *   if (e.type === 'failed') log.warn(`${e.source}: ${e.error.message} (${e.failures} in a row)`);
 *   if (e.type === 'empty-kept') log.warn(`${e.source}: empty answer, kept ${e.kept}`);
 *   if (e.type === 'partial') log.warn(`${e.source}: ${e.error.message}, kept ${e.kept} IPv${e.family}`);
 * });
 * ```
 */
export type DiscoveryEvent =
  | {
      readonly type: 'resolved';
      readonly source: string;
      readonly count: number;
      readonly inserted: number;
      readonly removed: number;
      readonly nextPollMs?: number;
    }
  | {
      readonly type: 'failed';
      readonly source: string;
      readonly error: GrpcTowerError;
      readonly failures: number;
    }
  | { readonly type: 'backoff'; readonly source: string; readonly delayMs: number; readonly failures: number }
  | { readonly type: 'empty-kept'; readonly source: string; readonly kept: number }
  | {
      readonly type: 'partial';
      readonly source: string;
      readonly hostname: string;
      readonly family: 4 | 6;
      readonly error: DnsResolveError;
      readonly kept: number;
    }
  | {
      readonly type: 'invalid';
      readonly source: string;
      readonly input: string;
      readonly error: InvalidAddressError | InvalidRecordError;
    }
  | {
      readonly type: 'duplicate';
      readonly source: string;
      readonly key: string;
      readonly inputs: readonly string[];
    }
  | { readonly type: 'disconnected'; readonly source: string; readonly error: GrpcTowerError }
  | { readonly type: 'reconnected'; readonly source: string }
  | {
      readonly type: 'resync';
      readonly source: string;
      readonly reason: 'start' | 'watch-cancelled' | 'expired' | 'retry';
      readonly revision: string;
    }
  | {
      readonly type: 'endpoint';
      readonly source: string;
      readonly key: string;
      readonly pod?: string;
      readonly zone?: string;
      readonly state: EndpointState;
      readonly previous: EndpointState | undefined;
      readonly reason: string;
    }
  | { readonly type: 'ignored'; readonly source: string; readonly input: string; readonly reason: string }
  | {
      readonly type: 'create-failed';
      readonly source: string;
      readonly key: string;
      readonly error: GrpcTowerError;
    }
  | {
      readonly type: 'close-failed';
      readonly source: string;
      readonly key: string;
      readonly error: GrpcTowerError;
    };

/**
 * What a watch source knows of one server: `'ready'` (in the set),
 * `'terminating'` (shutting down; out of the set, so it drains),
 * `'not-serving'` (failing its readiness; out of the set) or `'gone'`.
 *
 * @example
 * ```ts
 * const leaving = (s: EndpointState) => s === 'terminating' || s === 'gone';
 * ```
 */
export type EndpointState = 'ready' | 'terminating' | 'not-serving' | 'gone';

/**
 * The `type` of a {@link DiscoveryEvent}.
 *
 * @example
 * ```ts
 * const alerting: ReadonlySet<DiscoveryEventType> = new Set(['failed', 'empty-kept']);
 * ```
 */
export type DiscoveryEventType = DiscoveryEvent['type'];
