// Snippets of docs/guides/writing-a-discovery-source.md.
import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { p2c } from '@grpc-tower/balance';
import { grpcEndpoint } from '@grpc-tower/core/grpc';
import {
  type DiscoveredAddress,
  type DiscoverySource,
  ResolveError,
  connect,
  diff,
  poll,
  sharedSource,
  toDiscoveredAddress,
} from '@grpc-tower/discover';
import type { Change } from '@grpc-tower/core';
import { Subject, interval, startWith, switchMap } from 'rxjs';

// #region poll
// Consul's health API, polled: only the instances that pass their checks
interface ConsulEntry {
  readonly Service: { readonly Address: string; readonly Port: number };
}

export function consul(service: string, agent = 'http://127.0.0.1:8500'): DiscoverySource {
  return poll(
    async (signal) => {
      const res = await fetch(`${agent}/v1/health/service/${service}?passing=true`, { signal });
      if (!res.ok) throw new Error(`consul answered ${res.status}`); // a failed round: the last set stays
      const entries = (await res.json()) as ConsulEntry[];
      return entries.map((e) => `${e.Service.Address}:${e.Service.Port}`);
    },
    { name: `consul:${service}`, intervalMs: 5_000 },
  );
}
// #endregion poll

// #region shared
// a file of addresses (one JSON array), read again whenever it changes
export function addressFile(path: string): DiscoverySource {
  const name = `file:${path}`;
  return sharedSource(name, (ctx) => {
    let failures = 0;
    const read = async (): Promise<void> => {
      try {
        const list = JSON.parse(await readFile(path, 'utf8')) as unknown[];
        const next = new Map<string, DiscoveredAddress>();
        for (const entry of list) {
          const addr = toDiscoveredAddress(entry, name); // throws InvalidAddressError on a bad entry
          next.set(addr.address, addr);
        }
        const { inserted, removed } = ctx.replace(next); // emits the minimal changes
        failures = 0;
        ctx.emit({ type: 'resolved', source: name, count: next.size, inserted, removed });
      } catch (err) {
        // keep the last set; say what went wrong
        const error = new ResolveError(name, `cannot read the file: ${String(err)}`, { cause: err });
        ctx.emit({ type: 'failed', source: name, error, failures: ++failures });
      }
    };
    void read();
    const watcher = watch(path, () => void read());
    return () => watcher.close(); // the last subscriber left
  });
}
// #endregion shared

// #region diff
// a stream of full snapshots becomes a stream of changes with diff()
declare function lookupAll(): Promise<Map<string, DiscoveredAddress>>;
export const snapshots = interval(5_000).pipe(
  startWith(0),
  switchMap(() => lookupAll()),
  diff<string, DiscoveredAddress>(),
);
// #endregion diff

export function plugIn(): void {
  // #region plug-in
  // any of them plugs in the same way
  const balancer = p2c(
    connect(consul('orders'), (addr) =>
      grpcEndpoint(addr.address, { credentials: grpc.credentials.createInsecure() }),
    ),
    { target: 'consul:orders' },
  );
  // #endregion plug-in
  void balancer;
}

export function testing(): void {
  // #region test
  // in a test, drive the balancer by hand: a Subject is a source
  const changes = new Subject<Change<string, string>>();
  const balancer = p2c(
    connect(changes, (address) => grpcEndpoint(address, { credentials: grpc.credentials.createInsecure() })),
    { target: 'test', failFastMs: 100 },
  );
  changes.next({ type: 'insert', key: 'a', endpoint: '127.0.0.2:50051' });
  changes.next({ type: 'insert', key: 'a', endpoint: '127.0.0.3:50051' }); // replaces a (the old one drains)
  changes.next({ type: 'remove', key: 'b' }); // unknown: ignored
  // #endregion test
  void balancer;
}
