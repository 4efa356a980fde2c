/**
 * Discovery as a stream of changes, tower's `Discover` model: a source emits
 * `insert` when an endpoint appears (or is replaced) and `remove` when it
 * goes away. Any RxJS `Observable<Change<K, E>>` is a valid source. The
 * types live in core so that a consumer (a balancer) can take a `Discover`
 * without depending on the discovery sources of `@grpc-tower/discover`.
 *
 * Contract for consumers: an insert of a known key replaces the old value
 * (which drains once the new one is ready); a remove of an unknown key is
 * ignored. Contract for sources: never complete or error on a transient
 * failure; keep the last known set and report the failure on an events
 * stream.
 *
 * @module
 */
import type { Observable } from 'rxjs';

/**
 * An endpoint appeared, or replaced the one under the same key.
 *
 * @example
 * ```ts
 * const c: Insert<string, string> = { type: 'insert', key: '10.0.0.1:80', endpoint: '10.0.0.1:80' };
 * ```
 */
export interface Insert<K, E> {
  readonly type: 'insert';
  readonly key: K;
  readonly endpoint: E;
}

/**
 * The endpoint under `key` went away.
 *
 * @example
 * ```ts
 * const c: Remove<string> = { type: 'remove', key: '10.0.0.1:80' };
 * ```
 */
export interface Remove<K> {
  readonly type: 'remove';
  readonly key: K;
}

/**
 * One discovery change.
 *
 * @example
 * ```ts
 * const changes: Change<string, string>[] = [
 *   { type: 'insert', key: 'a', endpoint: '127.0.0.2:50051' },
 *   { type: 'remove', key: 'a' },
 * ];
 * ```
 */
export type Change<K, E> = Insert<K, E> | Remove<K>;

/**
 * A discovery source: an Observable of changes.
 *
 * @example
 * ```ts
 * const src: Discover<string, string> = of({ type: 'insert', key: 'a', endpoint: '127.0.0.2:50051' });
 * ```
 */
export type Discover<K, E> = Observable<Change<K, E>>;
