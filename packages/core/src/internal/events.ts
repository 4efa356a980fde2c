/**
 * One way for every component (balancer, retry, hedge, health, discovery) to publish its
 * events. An {@link EventStream} builds an event only when somebody
 * subscribes: `emit(() => ({ ... }))` costs one property
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
