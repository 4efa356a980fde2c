/**
 * `connect`: from a `Discover` of addresses to a `Discover` of endpoints,
 * the `Discover` → `Service` step of tower's `balance` module, made
 * explicit. It only turns addresses into endpoints:
 * - an insert of a new key creates an endpoint through the factory and
 *   hands on an insert of it;
 * - an insert that changes a known key's value creates the new endpoint and
 *   hands on an insert of it (an insert of an equal value is ignored);
 * - a remove of a known key hands on the remove (a remove of an unknown key
 *   is ignored).
 *
 * Each insert it hands on carries what a balancer reads beside the
 * endpoint (`Insert.metadata`: weight, zone, topology hints): the
 * metadata of the insert it came from when that has some, else the
 * value's own `weight`, `zone` and `forZones` (a {@link DiscoveredAddress}
 * has them, from an SRV record, an etcd entry, an EndpointSlice or an xDS
 * assignment). The endpoint is made from the address alone, and a wrapper
 * around it (a health check, outlier detection) has none of it to forward.
 * (A discovered address's own `metadata`, the registry's free-form data, is
 * not read.)
 *
 * It neither holds nor closes an endpoint it has handed on: the consumer
 * owns those. A balancer (`p2c`, `roundRobin` of `@grpc-tower/balance`) is
 * the one component that holds endpoint membership: it keeps a replaced
 * endpoint serving until its successor is ready, drains removed and
 * replaced endpoints (their calls in flight finish), and closes every one
 * when it closes.
 *
 * When a subscription ends, the endpoints it handed on stay open, since
 * they are the consumer's. An endpoint the factory made but that was never
 * handed on (the subscriber went away while the factory ran) is closed at
 * once, so that none leaks.
 *
 * @module
 */
import { type Endpoint, type EndpointMetadata, toGrpcTowerError } from '@grpc-tower/core';
import { EventStream, isEndpoint, optionChecks } from '@grpc-tower/core/internal';
import { type Observable, isObservable, merge as mergeObservables } from 'rxjs';
import type { DiscoveredAddress } from './address.js';
import type { Discover } from './change.js';
import { valueEquals } from './equals.js';
import { EndpointCloseError, EndpointCreateError } from './errors.js';
import type { DiscoveryEvent } from './events.js';
import { DiscoverySource } from './source.js';

/**
 * What {@link connect} needs from an endpoint: a `close()`, to release one
 * it made but could not hand on. Every {@link Endpoint} has it.
 *
 * @example
 * ```ts
 * const c: Closable = { close: async () => {} };
 * ```
 */
export type Closable = Pick<Endpoint<unknown, unknown>, 'close'>;

/** The members of {@link EndpointMetadata}, which a discovered address may carry. */
const METADATA_MEMBERS = ['weight', 'zone', 'forZones', 'priority', 'group', 'groupWeight'] as const;

/**
 * The weight, zone, topology hints, priority and group a value carries (a
 * {@link DiscoveredAddress} does), as an insert's metadata; `undefined`
 * when it has none.
 */
function metadataOf(value: unknown): EndpointMetadata | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const metadata: Record<string, unknown> = {};
  let any = false;
  for (const name of METADATA_MEMBERS) {
    const member = (value as EndpointMetadata)[name];
    if (member === undefined) continue;
    metadata[name] = member;
    any = true;
  }
  return any ? (metadata as EndpointMetadata) : undefined;
}

/**
 * Options of {@link connect}.
 *
 * @example
 * ```ts
 * const opts: ConnectOptions = { name: 'orders' };
 * ```
 */
export interface ConnectOptions {
  /** The name in events; default `'connect'`. */
  readonly name?: string;
}

/**
 * Maps address changes to endpoint changes: an endpoint per inserted
 * address, made by `makeEndpoint`, and a new one when an address's value
 * changes, each handed on with the address's weight, zone and hints as
 * the insert's `metadata` (see the module docs). The result is cold: each subscription makes its own endpoints.
 * The endpoints it hands on are the subscriber's to close (a balancer
 * does); it closes only one it made and could not hand on, because the
 * subscription ended while the factory ran. A factory that throws, or such
 * a `close()` that fails, is reported on `events$` (`create-failed`,
 * `close-failed`) and never reaches the stream. When `discover` has an
 * `events$` stream, its events are forwarded too. An upstream error is
 * reported as a `failed` event; the set stays.
 *
 * @example
 * ```ts
 * import { p2c } from '@grpc-tower/balance';
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 * const endpoints = connect(dns('orders.internal', 50051), (a) =>
 *   grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure() }),
 * ); // each insert carries the SRV weight, when there is one
 * const balancer = p2c(endpoints, { target: 'dns:orders.internal:50051' }); // owns and closes them
 * ```
 */
export function connect<E extends Closable, V = DiscoveredAddress>(
  discover: Discover<string, V>,
  makeEndpoint: (value: V, key: string) => E,
  options: ConnectOptions = {},
): DiscoverySource<E> {
  const check = optionChecks('connect');
  if (!isObservable(discover)) throw check.error('discover', discover, 'an Observable of changes');
  check.function('makeEndpoint', makeEndpoint);
  check.object('options', options);
  const name = check.string('name', options.name, 'connect');
  const own = new EventStream<DiscoveryEvent>();
  const upstreamEvents =
    typeof discover === 'object' && discover !== null && 'events$' in discover
      ? (discover as { events$: unknown }).events$
      : undefined;
  const events$: Observable<DiscoveryEvent> = isObservable(upstreamEvents)
    ? mergeObservables(upstreamEvents as Observable<DiscoveryEvent>, own.events$)
    : own.events$;

  /** Closes an endpoint that was never handed on, reporting (never throwing) a failure. */
  const discard = (key: string, endpoint: E): void => {
    const report = (err: unknown): void => {
      own.emit(() => ({
        type: 'close-failed',
        source: name,
        key,
        error: new EndpointCloseError(key, isEndpoint(endpoint) ? endpoint.address : undefined, err),
      }));
    };
    try {
      Promise.resolve(endpoint.close()).catch(report);
    } catch (err) {
      report(err);
    }
  };

  return new DiscoverySource<E>(
    name,
    (subscriber) => {
      // the value each known key's endpoint was made from
      const live = new Map<string, V>();
      let failures = 0;
      const subscription = discover.subscribe({
        next: (change) => {
          if (subscriber.closed) return;
          if (change.type === 'insert') {
            if (live.has(change.key) && valueEquals(live.get(change.key) as V, change.endpoint)) return;
            let endpoint: E;
            try {
              endpoint = makeEndpoint(change.endpoint, change.key);
            } catch (err) {
              own.emit(() => ({
                type: 'create-failed',
                source: name,
                key: change.key,
                error: new EndpointCreateError(change.key, err),
              }));
              return;
            }
            if (subscriber.closed) {
              // the subscription ended while the factory ran: nobody will own it
              discard(change.key, endpoint);
              return;
            }
            live.set(change.key, change.endpoint);
            const metadata = change.metadata ?? metadataOf(change.endpoint);
            subscriber.next(
              metadata === undefined
                ? { type: 'insert', key: change.key, endpoint }
                : { type: 'insert', key: change.key, endpoint, metadata },
            );
          } else {
            if (!live.delete(change.key)) return;
            subscriber.next({ type: 'remove', key: change.key });
          }
        },
        error: (err: unknown) => {
          failures++;
          own.emit(() => ({ type: 'failed', source: name, error: toGrpcTowerError(err), failures }));
        },
      });
      return () => {
        subscription.unsubscribe();
        live.clear();
      };
    },
    events$,
  );
}
