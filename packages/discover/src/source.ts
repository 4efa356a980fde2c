/**
 * The shape every source in this package has: a {@link DiscoverySource} IS
 * an RxJS Observable of {@link Change}s (so it plugs in wherever a
 * `Discover` is expected) and also carries an `events$` stream of
 * {@link DiscoveryEvent}s.
 *
 * Sources built on {@link sharedSource} are lazy and shared: the first
 * subscriber starts the one underlying poll or watch, later subscribers
 * first receive the current set as inserts and then the live changes, and
 * when the last subscriber leaves every timer and watch stops and the set is
 * forgotten (the next subscriber starts afresh).
 *
 * `events$` is hot: it reports what happens while the source runs and
 * replays nothing; subscribing to it does not start the source. An event
 * is built only while somebody subscribes to it: a driver passes
 * `emit` a function that builds the event, and the events of the sources
 * it reads are forwarded (`forward`) only while somebody listens.
 *
 * @module
 */
import { toGrpcTowerError } from '@grpc-tower/core';
import { EventStream } from '@grpc-tower/core/internal';
import {
  BehaviorSubject,
  Observable,
  type Subscriber,
  type Subscription,
  type TeardownLogic,
  merge as mergeObservables,
} from 'rxjs';
import type { DiscoveredAddress } from './address.js';
import type { Change } from './change.js';
import { diffSnapshots } from './diff.js';
import { valueEquals } from './equals.js';
import type { DiscoveryEvent } from './events.js';

/**
 * A discovery source: an Observable of changes keyed by address, with an
 * events stream. Keys are addresses (`host:port`, IPv6 as `[addr]:port`).
 *
 * @example
 * ```ts
 * const src = dns('orders.internal', 50051);
 * src.events$.subscribe((e) => console.log(e));
 * src.subscribe((c) => console.log(c.type, c.key));
 * ```
 */
export class DiscoverySource<V = DiscoveredAddress> extends Observable<Change<string, V>> {
  /** The name used in events and errors, such as `'dns:orders.internal:50051'`. */
  readonly name: string;
  /** Resolutions, failures, backoffs, rejected inputs: see {@link DiscoveryEvent}. Hot, never completes. */
  readonly events$: Observable<DiscoveryEvent>;

  /**
   * @param name - the source's name in events
   * @param subscribe - what a subscription does (as for `new Observable`)
   * @param events$ - the events stream
   */
  constructor(
    name: string,
    subscribe: (subscriber: Subscriber<Change<string, V>>) => TeardownLogic,
    events$: Observable<DiscoveryEvent>,
  ) {
    super(subscribe);
    this.name = name;
    this.events$ = events$;
  }
}

/**
 * What a running source driver uses to publish its set. Calls made after
 * the driver was stopped are ignored.
 *
 * @example
 * ```ts
 * const start = (ctx: SourceContext) => {
 *   ctx.replace(new Map([['127.0.0.2:50051', { address: '127.0.0.2:50051' }]]));
 *   return () => {};
 * };
 * ```
 */
export interface SourceContext<V = DiscoveredAddress> {
  /** The source's name. */
  readonly name: string;
  /** The current set. */
  readonly current: ReadonlyMap<string, V>;
  /** Whether the driver was stopped (the last subscriber left). */
  readonly stopped: boolean;
  /** Applies changes (inserts of equal values and removes of unknown keys are dropped); returns what changed. */
  apply(changes: readonly Change<string, V>[]): { inserted: number; removed: number };
  /** Replaces the whole set with `next`, emitting the minimal diff; returns what changed. */
  replace(next: ReadonlyMap<string, V>): { inserted: number; removed: number };
  /**
   * Publishes an event. Given a function, calls it to build the event
   * only when somebody subscribes to `events$`, as the built-in sources do.
   */
  emit(event: DiscoveryEvent | (() => DiscoveryEvent)): void;
  /**
   * Forwards the events of a source this one reads, unchanged, while this
   * driver runs and somebody subscribes to `events$` (so the other source
   * builds none for nobody). Returns the function that stops forwarding.
   */
  forward(events$: Observable<DiscoveryEvent>): () => void;
}

/**
 * Builds a lazy, shared {@link DiscoverySource} from a driver. `start` runs
 * when the first subscriber arrives and returns the function that stops the
 * driver when the last one leaves.
 *
 * @example
 * ```ts
 * const fixed = sharedSource('fixed', (ctx) => {
 *   ctx.replace(new Map([['127.0.0.2:50051', { address: '127.0.0.2:50051' }]]));
 *   return () => {};
 * });
 * ```
 */
export function sharedSource<V = DiscoveredAddress>(
  name: string,
  start: (ctx: SourceContext<V>) => () => void,
  equals: (a: V, b: V) => boolean = valueEquals,
): DiscoverySource<V> {
  const events = new EventStream<DiscoveryEvent>();
  // what the running driver forwards (one entry per forward call): each
  // listener subscribes to each entry's events$ once, for as long as both last
  const forwarded = new BehaviorSubject<readonly { readonly events$: Observable<DiscoveryEvent> }[]>([]);
  const fromForwarded = new Observable<DiscoveryEvent>((listener) => {
    const reading = new Map<{ readonly events$: Observable<DiscoveryEvent> }, Subscription>();
    const watch = forwarded.subscribe((list) => {
      for (const [entry, subscription] of reading) {
        if (list.includes(entry)) continue;
        subscription.unsubscribe();
        reading.delete(entry);
      }
      for (const entry of list) {
        if (!reading.has(entry))
          reading.set(
            entry,
            entry.events$.subscribe((e) => listener.next(e)),
          );
      }
    });
    return () => {
      watch.unsubscribe();
      for (const subscription of reading.values()) subscription.unsubscribe();
    };
  });
  const events$ = mergeObservables(events.events$, fromForwarded);
  let subscribers: readonly Subscriber<Change<string, V>>[] = [];
  let current = new Map<string, V>();
  let generation = 0;
  let running = false;
  let stopDriver: (() => void) | undefined;

  const broadcast = (changes: readonly Change<string, V>[]): void => {
    if (changes.length === 0) return;
    for (const subscriber of subscribers) {
      for (const change of changes) subscriber.next(change);
    }
  };

  const contextFor = (gen: number): SourceContext<V> => {
    const live = (): boolean => gen === generation && running;
    return {
      name,
      get current() {
        return live() ? current : new Map<string, V>();
      },
      get stopped() {
        return !live();
      },
      apply(changes) {
        if (!live()) return { inserted: 0, removed: 0 };
        const effective: Change<string, V>[] = [];
        let inserted = 0;
        let removed = 0;
        for (const change of changes) {
          if (change.type === 'insert') {
            if (current.has(change.key) && equals(current.get(change.key) as V, change.endpoint)) continue;
            current.set(change.key, change.endpoint);
            inserted++;
          } else {
            if (!current.delete(change.key)) continue;
            removed++;
          }
          effective.push(change);
        }
        broadcast(effective);
        return { inserted, removed };
      },
      replace(next) {
        if (!live()) return { inserted: 0, removed: 0 };
        const changes = diffSnapshots(current, next, equals);
        current = new Map(next);
        let inserted = 0;
        for (const c of changes) if (c.type === 'insert') inserted++;
        broadcast(changes);
        return { inserted, removed: changes.length - inserted };
      },
      emit(event) {
        if (live()) events.emit(typeof event === 'function' ? event : () => event);
      },
      forward(upstream) {
        if (!live()) return () => {};
        const entry = { events$: upstream };
        forwarded.next([...forwarded.value, entry]);
        return () => {
          if (forwarded.value.includes(entry)) forwarded.next(forwarded.value.filter((e) => e !== entry));
        };
      },
    };
  };

  const stop = (): void => {
    if (!running) return;
    running = false;
    generation++;
    current = new Map<string, V>();
    if (forwarded.value.length > 0) forwarded.next([]);
    const fn = stopDriver;
    stopDriver = undefined;
    fn?.();
  };

  return new DiscoverySource<V>(
    name,
    (subscriber) => {
      subscribers = [...subscribers, subscriber];
      for (const [key, endpoint] of current) subscriber.next({ type: 'insert', key, endpoint });
      if (!running) {
        running = true;
        const gen = ++generation;
        let fn: () => void;
        try {
          fn = start(contextFor(gen));
        } catch (err) {
          // A driver that throws while starting is a bug; report it and keep the stream open.
          events.emit(() => ({ type: 'failed', source: name, error: toGrpcTowerError(err), failures: 1 }));
          fn = () => {};
        }
        if (gen === generation && running) stopDriver = fn;
        else fn();
      }
      return () => {
        subscribers = subscribers.filter((s) => s !== subscriber);
        if (subscribers.length === 0) stop();
      };
    },
    events$,
  );
}
