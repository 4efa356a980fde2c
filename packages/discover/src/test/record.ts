/**
 * Records what a discovery source emits (changes, events, the set they add
 * up to, contract violations) so a test can assert on it.
 *
 * @module
 */
import type { Observable, Subscription } from 'rxjs';
import type { DiscoveredAddress } from '../address.js';
import type { Change } from '../change.js';
import { applyChanges } from '../diff.js';
import type { DiscoveryEvent } from '../events.js';

/**
 * Everything a source emitted, and the set its changes add up to.
 *
 * @example
 * ```ts
 * const rec: Recording<DiscoveredAddress> = record(staticList(['127.0.0.2:1']));
 * ```
 */
export interface Recording<V> {
  readonly changes: Change<string, V>[];
  readonly events: DiscoveryEvent[];
  readonly set: Map<string, V>;
  /** Problems that break the Discover contract (a remove of an unknown key). */
  readonly problems: string[];
  errored: unknown;
  completed: boolean;
  /** Events of one type. */
  of<T extends DiscoveryEvent['type']>(type: T): Extract<DiscoveryEvent, { type: T }>[];
  /** The keys of the set, sorted. */
  keys(): string[];
  stop(): void;
}

/**
 * Subscribes to `events$` (when the source has one) and then to the changes;
 * `stop()` unsubscribes both.
 *
 * @example
 * ```ts
 * const rec = record(dns('svc.test', 50051, { servers: [server.address] }));
 * await vi.waitFor(() => expect(rec.keys()).toEqual(['127.0.0.11:50051']));
 * rec.stop();
 * ```
 */
export function record<V>(
  source: Observable<Change<string, V>> & { events$?: Observable<DiscoveryEvent> },
): Recording<V> {
  const subs: Subscription[] = [];
  const rec: Recording<V> = {
    changes: [],
    events: [],
    set: new Map(),
    problems: [],
    errored: undefined,
    completed: false,
    of: (type) => rec.events.filter((e) => e.type === type) as never,
    keys: () => [...rec.set.keys()].sort(),
    stop: () => {
      for (const s of subs) s.unsubscribe();
    },
  };
  if (source.events$ !== undefined) subs.push(source.events$.subscribe((e) => rec.events.push(e)));
  subs.push(
    source.subscribe({
      next: (c) => {
        if (c.type === 'remove' && !rec.set.has(c.key)) rec.problems.push(`remove of unknown key ${c.key}`);
        rec.changes.push(c);
        applyChanges(rec.set, [c]);
      },
      error: (e: unknown) => {
        rec.errored = e;
      },
      complete: () => {
        rec.completed = true;
      },
    }),
  );
  return rec;
}

/**
 * The insert of `address` (with `weight` when given), as sources emit it.
 *
 * @example
 * ```ts
 * src.next(insertOf('10.0.0.1:80', 5));
 * ```
 */
export function insertOf(address: string, weight?: number): Change<string, DiscoveredAddress> {
  return { type: 'insert', key: address, endpoint: weight === undefined ? { address } : { address, weight } };
}

/**
 * The remove of `address`.
 *
 * @example
 * ```ts
 * src.next(removeOf('10.0.0.1:80'));
 * ```
 */
export function removeOf(address: string): Change<string, DiscoveredAddress> {
  return { type: 'remove', key: address };
}
