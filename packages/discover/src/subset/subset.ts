/**
 * `subset`: each client keeps a subset of `size` servers instead of all of
 * them, so that with many clients and many servers the connections (and
 * the health checks on them) grow with clients × `size`, not with
 * clients × servers. It is a discovery operator: it sits between a source
 * and `connect`, so that an endpoint is never made for a server outside the
 * subset.
 *
 * Two algorithms (see `assign.ts`):
 * - with `clientIndex` and `clientCount`, deterministic subsetting: every
 *   server is in as even a number of subsets as whole numbers allow
 *   (consistent hashing with bounded loads over rendezvous scores; the aim
 *   of Google's deterministic subsetting and Finagle's deterministic
 *   aperture);
 * - with a `clientId` (or a random one), random subsetting with rendezvous
 *   hashing, gRPC's proposal A68: no coordination, fewest moves, but load
 *   per server spread like a binomial.
 *
 * With no more servers than `size`, every server passes. A server that
 * leaves discovery leaves the subset, which takes another one to stay at
 * `size`. Changes that arrive together (a DNS answer, a watch batch) are
 * applied at once, one microtask later, as the minimal inserts and removes
 * (inserts first). The result is lazy and shared, as every source of this
 * package: the input is subscribed to while somebody listens, and
 * unsubscribed from when the last listener leaves.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { optionChecks } from '@grpc-tower/core/internal';
import { type Observable, Subscription, isObservable } from 'rxjs';
import type { DiscoveredAddress } from '../address.js';
import type { Discover } from '../change.js';
import { valueEquals } from '../equals.js';
import { ResolveError } from '../errors.js';
import type { DiscoveryEvent } from '../events.js';
import { type DiscoverySource, sharedSource } from '../source.js';
import { rendezvousSubset, subsetAssignment } from './assign.js';

/**
 * Options of {@link subset}. Give `clientIndex`
 * and `clientCount` together (deterministic subsetting, even load), or a
 * `clientId` (rendezvous hashing), or neither (rendezvous hashing with a
 * random id, a new subset on every restart).
 *
 * @example
 * ```ts
 * // the 4th of 100 replicas, from a StatefulSet ordinal or a job index
 * const even: SubsetOptions = { size: 12, clientIndex: 3, clientCount: 100, seed: 'orders' };
 * // no index to hand: a stable id, such as the pod name
 * const stable: SubsetOptions = { size: 12, clientId: 'web-7f9c4', seed: 'orders' };
 * ```
 */
export interface SubsetOptions {
  /** Servers per client: an integer >= 1. */
  readonly size: number;
  /** This client's index, from 0 to `clientCount - 1`; unique among the clients. */
  readonly clientIndex?: number;
  /** How many clients share the servers (with `clientIndex`). */
  readonly clientCount?: number;
  /** This client's identity for rendezvous hashing (without `clientIndex`); default: a random id. */
  readonly clientId?: string;
  /**
   * Gives another subset for the same clients and servers: use the service's
   * name, so that clients of two services do not favour the same servers.
   * All clients of one service must use the same seed. Default `''`.
   */
  readonly seed?: string | number;
  /** The name in events; default `'subset'`. */
  readonly name?: string;
}

/** Checked options: the function that picks a subset from the keys, and the name. */
interface Chooser {
  readonly name: string;
  readonly choose: (keys: Iterable<string>) => string[];
}

function chooser(options: SubsetOptions): Chooser {
  const check = optionChecks('subset');
  const o = check.object('options', options);
  const size = check.number('size', o.size, { min: 1, integer: true });
  const name = check.string('name', o.name, 'subset');
  const seed = o.seed ?? '';
  if (typeof seed !== 'string' && !Number.isSafeInteger(seed)) {
    throw check.error('seed', seed, 'a string or a safe integer');
  }
  if (o.clientIndex !== undefined || o.clientCount !== undefined) {
    if (o.clientId !== undefined) {
      throw check.error('clientId', o.clientId, 'absent when clientIndex and clientCount are given');
    }
    if (o.clientCount === undefined) {
      throw check.error('clientCount', o.clientCount, 'an integer >= 1 when clientIndex is given');
    }
    const clientCount = check.number('clientCount', o.clientCount, { min: 1, integer: true });
    const clientIndex = check.number('clientIndex', o.clientIndex, {
      min: 0,
      max: clientCount - 1,
      integer: true,
    });
    return {
      name,
      choose: (keys) => subsetAssignment(keys, { size, clientCount, seed })[clientIndex] ?? [],
    };
  }
  const clientId = check.string('clientId', o.clientId, randomUUID());
  return { name, choose: (keys) => rendezvousSubset(keys, { size, clientId, seed }) };
}

/**
 * This client's subset of `keys` (sorted), as {@link subset} would choose
 * it: a pure function, for tooling, dashboards and tests. Throws
 * `ConfigError` for bad options.
 *
 * @example
 * ```ts
 * selectSubset(['10.0.0.1:50051', '10.0.0.2:50051', '10.0.0.3:50051'], {
 *   size: 2, clientIndex: 0, clientCount: 3,
 * }); // two of the three addresses
 * ```
 */
export function selectSubset(keys: Iterable<string>, options: SubsetOptions): string[] {
  return chooser(options).choose(keys);
}

function eventsOf(source: unknown): Observable<DiscoveryEvent> | undefined {
  if (typeof source !== 'object' || source === null || !('events$' in source)) return undefined;
  const events = (source as { events$: unknown }).events$;
  return isObservable(events) ? (events as Observable<DiscoveryEvent>) : undefined;
}

/**
 * Passes on the changes of `source` that concern this client's subset of
 * `size` servers: the subset's members as inserts, a member's new value as
 * an insert, a member that leaves (from discovery, or from the subset
 * because the set changed) as a remove, and the server that takes its
 * place as an insert. Throws `ConfigError` for bad options: `size` not an
 * integer >= 1, `clientIndex` without `clientCount` or out of its range,
 * `clientId` together with `clientIndex`.
 *
 * Lazy and shared: the input is subscribed to with the first subscriber and
 * unsubscribed from when the last one leaves; a later subscriber first
 * receives the current subset. The input's `events$` are forwarded; after
 * each change of the subset a `resolved` event gives its size and what
 * changed. An input that errors is reported as `failed` and its last set is
 * kept. No timer is used: a burst of changes is applied after one microtask.
 *
 * @example
 * ```ts
 * import { p2c } from '@grpc-tower/balance';
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 *
 * const ordinal = Number(process.env.POD_ORDINAL); // 0 … 99, from a StatefulSet
 * const servers = subset(dns('orders.internal', 50051), {
 *   size: 12, clientIndex: ordinal, clientCount: 100, seed: 'orders',
 * });
 * const endpoints = connect(servers, (a) =>
 *   grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure() }),
 * );
 * const balancer = p2c(endpoints, { target: 'dns:orders.internal:50051' });
 * ```
 */
export function subset<V = DiscoveredAddress>(
  source: Discover<string, V>,
  options: SubsetOptions,
): DiscoverySource<V> {
  if (!isObservable(source)) {
    throw optionChecks('subset').error('source', source, 'an Observable of changes');
  }
  const { name, choose } = chooser(options);
  const upstreamEvents = eventsOf(source);
  return sharedSource<V>(name, (ctx) => {
    const known = new Map<string, V>();
    let members: readonly string[] = [];
    let membershipChanged = false;
    let scheduled = false;
    let stopped = false;
    let failures = 0;

    const apply = (): void => {
      scheduled = false;
      if (stopped || ctx.stopped) return;
      if (membershipChanged) {
        membershipChanged = false;
        members = choose(known.keys());
      }
      const next = new Map<string, V>();
      for (const key of members) next.set(key, known.get(key) as V);
      const { inserted, removed } = ctx.replace(next);
      if (inserted + removed > 0)
        ctx.emit(() => ({ type: 'resolved', source: name, count: next.size, inserted, removed }));
    };
    const schedule = (): void => {
      if (scheduled) return;
      scheduled = true;
      queueMicrotask(apply);
    };

    const subscriptions = new Subscription();
    if (upstreamEvents !== undefined) subscriptions.add(ctx.forward(upstreamEvents));
    subscriptions.add(
      source.subscribe({
        next: (change) => {
          if (change.type === 'insert') {
            const had = known.has(change.key);
            if (had && valueEquals(known.get(change.key) as V, change.endpoint)) return;
            known.set(change.key, change.endpoint);
            if (!had) membershipChanged = true;
          } else {
            if (!known.delete(change.key)) return;
            membershipChanged = true;
          }
          schedule();
        },
        error: (err: unknown) => {
          failures++;
          ctx.emit(() => ({
            type: 'failed',
            source: name,
            error: new ResolveError(name, 'the input failed; its last set is kept', { cause: err }),
            failures,
          }));
        },
      }),
    );
    return () => {
      stopped = true;
      subscriptions.unsubscribe();
      known.clear();
    };
  });
}
