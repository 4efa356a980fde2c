/**
 * `connect`: from a `Discover` of addresses to a `Discover` of endpoints.
 * Each insert creates an endpoint through a factory; an insert that changes
 * a known key's value creates the new endpoint, hands it on, and drains the
 * old one once the new one is ready (or after `replaceWaitMs`), so the
 * consumer — a balancer keeps the old endpoint in use until the new one is
 * ready — never holds a key whose only endpoint refuses calls; a remove
 * hands the remove on, then drains the endpoint with `close()`. Draining
 * lets calls in flight finish (the `Endpoint` contract), so a server
 * leaving discovery loses no call. This is the
 * `Discover` → `Service` step of tower's `balance` module, made explicit.
 *
 * @module
 */
import { ConfigError, type Endpoint, toGrpcTowerError } from '@grpc-tower/core';
import { type Observable, Subject, type Subscription, isObservable, merge as mergeObservables } from 'rxjs';
import type { DiscoveredAddress } from './address.js';
import { valueEquals } from './equals.js';
import type { Discover } from './change.js';
import { EndpointCloseError, EndpointCreateError } from './errors.js';
import type { DiscoveryEvent } from './events.js';
import { DiscoverySource } from './source.js';
import { checkNumber } from './timing.js';

/**
 * What {@link connect} needs from an endpoint: a draining `close()`. Every
 * {@link Endpoint} has it.
 *
 * @example
 * ```ts
 * const c: Closable = { close: async () => {} };
 * ```
 */
export type Closable = Pick<Endpoint<unknown, unknown>, 'close'>;

/**
 * Options of {@link connect}.
 *
 * @example
 * ```ts
 * const opts: ConnectOptions = { graceMs: 10_000 };
 * ```
 */
export interface ConnectOptions {
  /** The name in events; default `'connect'`. */
  readonly name?: string;
  /** Passed to `close({ graceMs })` when an endpoint drains; default: the endpoint's own. */
  readonly graceMs?: number;
  /**
   * When a key's value changes, how long the old endpoint stays open while
   * the new one is not ready yet, in ms; default 10 000. The old endpoint
   * drains as soon as the new one reports `ready` (or `closed`), when the
   * key changes again or is removed, or when the subscription ends. An
   * endpoint without `readiness$` replaces the old one at once.
   */
  readonly replaceWaitMs?: number;
}

/**
 * Maps address changes to endpoint changes. The result is cold: each
 * subscription creates its own endpoints and closes every one of them when
 * it ends. A factory that throws, or a `close()` that fails, is reported on
 * `events$` (`create-failed`, `close-failed`) and never reaches the stream.
 * When `discover` has an `events$` stream, its events are forwarded too.
 * An upstream error is reported as a `failed` event; the endpoints stay.
 *
 * @example
 * ```ts
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 * const endpoints = connect(dns('orders.internal', 50051), (a) => grpcEndpoint(a.address));
 * ```
 */
export function connect<E extends Closable, V = DiscoveredAddress>(
  discover: Discover<string, V>,
  makeEndpoint: (value: V, key: string) => E,
  options: ConnectOptions = {},
): DiscoverySource<E> {
  if (!isObservable(discover))
    throw new ConfigError('connect', 'discover', discover, 'an Observable of changes');
  if (typeof makeEndpoint !== 'function') {
    throw new ConfigError('connect', 'makeEndpoint', makeEndpoint, 'a function');
  }
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('connect', 'options', options, 'an object');
  }
  const name = options.name ?? 'connect';
  if (typeof name !== 'string' || name.length === 0) {
    throw new ConfigError('connect', 'name', name, 'a non-empty string');
  }
  const closeOptions =
    options.graceMs === undefined ? {} : { graceMs: checkNumber('connect', 'graceMs', options.graceMs, 0) };
  const replaceWaitMs = checkNumber('connect', 'replaceWaitMs', options.replaceWaitMs ?? 10_000, 0);
  const own = new Subject<DiscoveryEvent>();
  const upstreamEvents =
    typeof discover === 'object' && discover !== null && 'events$' in discover
      ? (discover as { events$: unknown }).events$
      : undefined;
  const events$: Observable<DiscoveryEvent> = isObservable(upstreamEvents)
    ? mergeObservables(upstreamEvents as Observable<DiscoveryEvent>, own)
    : own.asObservable();

  const addressOf = (endpoint: E): string | undefined => {
    const a = (endpoint as { address?: unknown }).address;
    return typeof a === 'string' ? a : undefined;
  };

  const drain = (key: string, endpoint: E): void => {
    const report = (err: unknown): void => {
      own.next({
        type: 'close-failed',
        source: name,
        key,
        error: new EndpointCloseError(key, addressOf(endpoint), err),
      });
    };
    try {
      Promise.resolve(endpoint.close(closeOptions)).catch(report);
    } catch (err) {
      report(err);
    }
  };

  return new DiscoverySource<E>(
    name,
    (subscriber) => {
      const live = new Map<string, { readonly value: V; readonly endpoint: E }>();
      // the replaced endpoint of a key, kept open until its successor is
      // ready: at most one per key, since a new replacement releases it
      const held = new Map<string, () => void>();
      const release = (key: string): void => held.get(key)?.();
      const drainWhenReady = (key: string, old: E, successor: E): void => {
        const readiness$ = (successor as { readiness$?: unknown }).readiness$;
        if (!isObservable(readiness$) || replaceWaitMs === 0) {
          drain(key, old);
          return;
        }
        let done = false;
        let watch: Subscription | undefined;
        const stop = (): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          watch?.unsubscribe();
          if (held.get(key) === stop) held.delete(key);
          drain(key, old);
        };
        const timer = setTimeout(stop, replaceWaitMs);
        timer.unref?.();
        held.set(key, stop);
        watch = readiness$.subscribe({
          next: (r) => {
            if (r === 'ready' || r === 'closed') stop();
          },
          error: stop,
          complete: stop,
        });
        if (done) watch.unsubscribe();
      };
      let failures = 0;
      const subscription = discover.subscribe({
        next: (change) => {
          if (change.type === 'insert') {
            const old = live.get(change.key);
            if (old !== undefined && valueEquals(old.value, change.endpoint)) return;
            let endpoint: E;
            try {
              endpoint = makeEndpoint(change.endpoint, change.key);
            } catch (err) {
              own.next({
                type: 'create-failed',
                source: name,
                key: change.key,
                error: new EndpointCreateError(change.key, err),
              });
              return;
            }
            live.set(change.key, { value: change.endpoint, endpoint });
            subscriber.next({ type: 'insert', key: change.key, endpoint });
            if (old !== undefined) {
              // an endpoint replaced earlier and still held is not needed any more
              release(change.key);
              drainWhenReady(change.key, old.endpoint, endpoint);
            }
          } else {
            const old = live.get(change.key);
            if (old === undefined) return;
            live.delete(change.key);
            subscriber.next({ type: 'remove', key: change.key });
            release(change.key);
            drain(change.key, old.endpoint);
          }
        },
        error: (err: unknown) => {
          failures++;
          own.next({ type: 'failed', source: name, error: toGrpcTowerError(err), failures });
        },
      });
      return () => {
        subscription.unsubscribe();
        for (const key of [...held.keys()]) release(key);
        for (const [key, { endpoint }] of live) drain(key, endpoint);
        live.clear();
      };
    },
    events$,
  );
}
