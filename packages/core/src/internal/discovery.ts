/**
 * How a consumer of a `Discover` learns that its source cannot refresh the
 * set. A source may carry an `events$` Observable (every source of
 * `@grpc-tower/discover` does, and `connect` forwards its upstream's); of
 * its events, a `failed` or `disconnected` one with an `error` means the
 * source is failing now, and a `resolved` or `reconnected` one means it
 * works again. Other events say nothing about that.
 *
 * @internal
 * @module
 */
import { type Observable, isObservable } from 'rxjs';

/** An event of a source's `events$`, as far as failing and recovering go. */
export interface DiscoveryStatusEvent {
  readonly type: string;
  readonly error?: unknown;
}

/** The source's `events$`, when it has one. */
export function discoveryEventsOf(discover: unknown): Observable<DiscoveryStatusEvent> | undefined {
  if (typeof discover !== 'object' || discover === null || !('events$' in discover)) return undefined;
  const events = (discover as { events$: unknown }).events$;
  return isObservable(events) ? (events as Observable<DiscoveryStatusEvent>) : undefined;
}

/**
 * What `event` says of the source: `'failing'` with its error, `'working'`,
 * or `undefined` when it says neither.
 */
export function discoveryStatusOf(
  event: DiscoveryStatusEvent,
): { readonly state: 'failing'; readonly error: unknown } | { readonly state: 'working' } | undefined {
  if (typeof event !== 'object' || event === null) return undefined;
  if ((event.type === 'failed' || event.type === 'disconnected') && event.error !== undefined) {
    return { state: 'failing', error: event.error };
  }
  if (event.type === 'resolved' || event.type === 'reconnected') return { state: 'working' };
  return undefined;
}
