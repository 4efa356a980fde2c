/**
 * One way for every component (balancer, retry, hedge, health) to publish
 * its events and keep its counters. An {@link EventStream} builds an event
 * only when somebody subscribes: `emit(() => ({ ... }))` costs one property
 * read on the hot path when nobody listens.
 *
 * @internal
 * @module
 */
import { type Observable, Subject } from 'rxjs';

/**
 * A hot stream of events that are built lazily.
 *
 * @internal
 * @example
 * ```ts
 * const events = new EventStream<{ type: 'retry'; attempt: number }>();
 * events.emit(() => ({ type: 'retry', attempt: 2 })); // the object is built only when observed
 * events.events$.subscribe(console.log);
 * ```
 */
export class EventStream<E> {
  readonly #subject = new Subject<E>();
  /** The events as they happen; completes on {@link EventStream.complete}. */
  readonly events$: Observable<E> = this.#subject.asObservable();

  /** Whether anybody is subscribed now. */
  get observed(): boolean {
    return this.#subject.observed;
  }

  /** Publishes the event `make` builds, calling it only when somebody listens. */
  emit(make: () => E): void {
    if (this.#subject.observed) this.#subject.next(make());
  }

  /** Publishes an event that already exists. */
  next(event: E): void {
    if (this.#subject.observed) this.#subject.next(event);
  }

  /** Ends the stream; later emits are dropped. Idempotent. */
  complete(): void {
    if (!this.#subject.closed) this.#subject.complete();
  }
}

/**
 * Named counters that only go up, read as a plain snapshot.
 *
 * @internal
 * @example
 * ```ts
 * const counters = new Counters(['calls', 'retries'] as const);
 * counters.add('calls');
 * counters.snapshot(); // { calls: 1, retries: 0 }
 * ```
 */
export class Counters<N extends string> {
  readonly #values: Record<N, number>;

  constructor(names: readonly N[]) {
    const values = {} as Record<N, number>;
    for (const n of names) values[n] = 0;
    this.#values = values;
  }

  /** Adds `by` (default 1) to counter `name`. */
  add(name: N, by = 1): void {
    this.#values[name] += by;
  }

  /** The current value of `name`. */
  get(name: N): number {
    return this.#values[name];
  }

  /** A copy of every counter. */
  snapshot(): Readonly<Record<N, number>> {
    return { ...this.#values };
  }
}
