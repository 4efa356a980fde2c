/**
 * Snapshot → changes. A registry that answers with the whole set (a DNS
 * lookup, a `LIST` call) becomes a {@link Discover} by diffing each answer
 * against the previous one: one pass over the new snapshot finds inserts
 * (new keys, and known keys whose value changed), one pass over the old
 * snapshot finds removes, so a round costs O(n) hash lookups. ginepro's
 * DNS probe for tonic works the same way (set differences between probes);
 * here inserts are emitted before removes so that a full replacement never
 * leaves a consumer with an empty set in between.
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';
import { Observable, type OperatorFunction } from 'rxjs';
import { valueEquals } from './equals.js';
import type { Change } from './change.js';

/**
 * The minimal changes that turn `prev` into `next`: inserts (in `next`'s
 * order) for keys that are new or whose value is no longer equal, then
 * removes (in `prev`'s order) for keys that are gone. `equals` defaults to
 * `valueEquals` (structural equality of plain data).
 *
 * @example
 * ```ts
 * diffSnapshots(new Map([['a', 1], ['b', 2]]), new Map([['b', 3], ['c', 4]]));
 * // [insert b=3, insert c=4, remove a]
 * ```
 */
export function diffSnapshots<K, V>(
  prev: ReadonlyMap<K, V>,
  next: ReadonlyMap<K, V>,
  equals: (a: V, b: V) => boolean = valueEquals,
): Change<K, V>[] {
  const changes: Change<K, V>[] = [];
  for (const [key, value] of next) {
    if (!prev.has(key) || !equals(prev.get(key) as V, value)) {
      changes.push({ type: 'insert', key, endpoint: value });
    }
  }
  if (prev.size > 0) {
    for (const key of prev.keys()) {
      if (!next.has(key)) changes.push({ type: 'remove', key });
    }
  }
  return changes;
}

/**
 * Applies changes to a map in place with the `Discover` contract: an insert
 * sets (or replaces) the key, a remove of an unknown key is ignored.
 * Returns the map.
 *
 * @example
 * ```ts
 * applyChanges(new Map([['a', 1]]), [{ type: 'remove', key: 'a' }]); // Map {}
 * ```
 */
export function applyChanges<K, V>(target: Map<K, V>, changes: Iterable<Change<K, V>>): Map<K, V> {
  for (const change of changes) {
    if (change.type === 'insert') target.set(change.key, change.endpoint);
    else target.delete(change.key);
  }
  return target;
}

/**
 * Options of {@link diff}.
 *
 * @example
 * ```ts
 * const opts: DiffOptions<string> = { equals: (a, b) => a === b };
 * ```
 */
export interface DiffOptions<V> {
  /** When two values under one key are the same; default structural equality of plain data. */
  readonly equals?: (a: V, b: V) => boolean;
}

/**
 * An RxJS operator from snapshots (each a full `Map` of the current set) to
 * the minimal {@link Change}s between consecutive snapshots, inserts before
 * removes. The first snapshot yields one insert per entry. Each snapshot is
 * copied, so the producer may reuse or mutate its map.
 *
 * @example
 * ```ts
 * const changes$ = interval(5000).pipe(
 *   switchMap(() => lookup()),          // Promise<Map<string, DiscoveredAddress>>
 *   diff(),
 * );
 * ```
 */
export function diff<K, V>(options: DiffOptions<V> = {}): OperatorFunction<ReadonlyMap<K, V>, Change<K, V>> {
  const check = optionChecks('diff');
  const o = check.object('options', options);
  const equals = check.function<(a: V, b: V) => boolean>(
    'equals',
    o.equals,
    'a function (a, b) => boolean',
    valueEquals,
  );
  return (source) =>
    new Observable<Change<K, V>>((subscriber) => {
      let prev: ReadonlyMap<K, V> = new Map<K, V>();
      return source.subscribe({
        next(snapshot) {
          const changes = diffSnapshots(prev, snapshot, equals);
          prev = new Map(snapshot);
          for (const change of changes) subscriber.next(change);
        },
        error(err: unknown) {
          subscriber.error(err);
        },
        complete() {
          subscriber.complete();
        },
      });
    });
}
