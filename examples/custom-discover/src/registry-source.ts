// A discovery source written by hand. Any RxJS Observable of insert/remove
// changes is a source: this one turns a registry's "list, then watch" API
// into that stream. ToyRegistry stands in for yours (Consul, ZooKeeper, a
// config service, a file you watch…).
import { EventEmitter } from 'node:events';
import type { Change, Discover } from '@grpc-tower/core';
import { Observable } from 'rxjs';

/** What the registry reports when a member comes or goes. */
export type RegistryEvent =
  | { readonly type: 'up'; readonly id: string; readonly address: string }
  | { readonly type: 'down'; readonly id: string };

/** An in-process registry with a list-and-watch API. */
export class ToyRegistry {
  readonly #members = new Map<string, string>();
  readonly #events = new EventEmitter();

  /** Adds (or moves) member `id` at `address`. */
  register(id: string, address: string): void {
    this.#members.set(id, address);
    this.#events.emit('event', { type: 'up', id, address } satisfies RegistryEvent);
  }

  /** Removes member `id`. */
  deregister(id: string): void {
    if (this.#members.delete(id)) this.#events.emit('event', { type: 'down', id } satisfies RegistryEvent);
  }

  /** The members now, as `[id, address]` pairs. */
  list(): [string, string][] {
    return [...this.#members];
  }

  /** Calls `listener` on every change until the returned function is called. */
  watch(listener: (event: RegistryEvent) => void): () => void {
    this.#events.on('event', listener);
    return () => this.#events.off('event', listener);
  }
}

// #region source
/**
 * The registry as a `Discover` of addresses keyed by member id. Each
 * subscriber first gets the current members as inserts, then every change;
 * unsubscribing stops the watch. An insert of a known id with a new address
 * replaces that member (the balancer drains the old connection); a remove
 * of an unknown id is ignored downstream, so the source need not track it.
 */
export function registrySource(registry: ToyRegistry): Discover<string, string> {
  return new Observable<Change<string, string>>((subscriber) => {
    // watch first, then list: a change between the two is not lost (at worst
    // it arrives twice, and a repeated insert of an equal value is dropped)
    const stop = registry.watch((event) => {
      subscriber.next(
        event.type === 'up'
          ? { type: 'insert', key: event.id, endpoint: event.address }
          : { type: 'remove', key: event.id },
      );
    });
    for (const [id, address] of registry.list()) {
      subscriber.next({ type: 'insert', key: id, endpoint: address });
    }
    return stop; // the teardown: runs when the balancer unsubscribes (on close)
  });
}
// #endregion source
