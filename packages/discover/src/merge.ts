/**
 * `merge`: several discovery sources as one, such as two DNS names, or DNS
 * plus a static fallback. The merged set is the union of the inputs' sets.
 * When two inputs name the same address, the earlier input in the list
 * supplies its value and a `duplicate` event is reported; when that input
 * drops the address, the other input's value takes over (an insert), and the
 * address is removed only when no input has it any more.
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';
import { type Observable, Subscription, isObservable } from 'rxjs';
import type { DiscoveredAddress } from './address.js';
import { valueEquals } from './equals.js';
import type { Change, Discover } from './change.js';
import { ClaimTable } from './claims.js';
import { ResolveError } from './errors.js';
import type { DiscoveryEvent } from './events.js';
import { type DiscoverySource, sharedSource } from './source.js';

/**
 * Options of {@link merge}.
 *
 * @example
 * ```ts
 * const opts: MergeOptions = { name: 'orders' };
 * ```
 */
export interface MergeOptions {
  /** The merged source's name in events; default `'merge'`. */
  readonly name?: string;
}

function eventsOf(source: unknown): Observable<DiscoveryEvent> | undefined {
  if (typeof source !== 'object' || source === null || !('events$' in source)) return undefined;
  const events = (source as { events$: unknown }).events$;
  return isObservable(events) ? (events as Observable<DiscoveryEvent>) : undefined;
}

function labelOf(source: unknown, index: number): string {
  const name =
    typeof source === 'object' && source !== null ? (source as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name : `#${index}`;
}

/**
 * Merges sources into one lazy, shared source. The events of inputs that
 * have an `events$` stream are forwarded unchanged (each names its own
 * source). An input that errors or completes keeps its last set; an error
 * is reported as a `failed` event.
 *
 * @example
 * ```ts
 * const all = merge([dns('orders-a.internal', 50051), dns('orders-b.internal', 50051)]);
 * ```
 */
export function merge<V = DiscoveredAddress>(
  sources: readonly Discover<string, V>[],
  options: MergeOptions = {},
): DiscoverySource<V> {
  const check = optionChecks('merge');
  const name = check.string('name', check.object('options', options).name, 'merge');
  if (!Array.isArray(sources)) throw check.error('sources', sources, 'an array of Observables');
  sources.forEach((s, i) => {
    if (!isObservable(s)) throw check.error(`sources[${i}]`, s, 'an Observable of changes');
  });
  const inputs = [...sources];
  return sharedSource<V>(name, (ctx) => {
    const table = new ClaimTable<V>(valueEquals);
    const subscriptions = new Subscription();
    let failures = 0;
    inputs.forEach((source, index) => {
      const owner = String(index);
      const label = labelOf(source, index);
      const events = eventsOf(source);
      if (events !== undefined) subscriptions.add(ctx.forward(events));
      subscriptions.add(
        source.subscribe({
          next: (change: Change<string, V>) => {
            if (change.type === 'insert') {
              const isNew = table.count(change.key) > 0 && !table.owners(change.key).includes(owner);
              const result = table.claim(change.key, owner, index, change.endpoint);
              if (isNew) {
                const owners = table.owners(change.key).map((o) => labelOf(inputs[Number(o)], Number(o)));
                ctx.emit(() => ({ type: 'duplicate', source: name, key: change.key, inputs: owners }));
              }
              if (result !== undefined) ctx.apply([result]);
            } else {
              const result = table.release(change.key, owner);
              if (result !== undefined) ctx.apply([result]);
            }
          },
          error: (err: unknown) => {
            failures++;
            ctx.emit(() => ({
              type: 'failed',
              source: name,
              error: new ResolveError(name, `input ${label} failed; its last set is kept`, { cause: err }),
              failures,
            }));
          },
        }),
      );
    });
    return () => subscriptions.unsubscribe();
  });
}
