/**
 * Discovery as a stream of changes, tower's `Discover` model: a source emits
 * `insert` when an endpoint appears (or is replaced) and `remove` when it
 * goes away. Any RxJS `Observable<Change<K, E>>` is a valid source.
 *
 * The types are defined in `@grpc-tower/core` (so that a balancer can take
 * a `Discover` without depending on this package) and re-exported here
 * unchanged.
 *
 * Contract for consumers: an insert of a known key replaces the old value
 * (which drains); a remove of an unknown key is ignored. Contract for
 * sources: never complete or error on a transient failure; keep the last
 * known set and report the failure on an events stream.
 *
 * @module
 */
export type { Change, Discover, Insert, Remove } from '@grpc-tower/core';
