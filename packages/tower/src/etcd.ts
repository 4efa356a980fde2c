/**
 * The source of an `etcd://` target. `@grpc-tower/discover/etcd` (and the
 * `etcd3` client under it) is imported only when such a channel starts
 * discovering, through a specifier that bundlers leave alone, so that a
 * program that never names an etcd target neither loads nor bundles it.
 *
 * @module
 */
import { ResolveError, type DiscoverySource, sharedSource } from '@grpc-tower/discover';
import type { Subscription } from 'rxjs';
import type { EtcdTarget } from './target.js';

type EtcdModule = typeof import('@grpc-tower/discover/etcd');

/** Kept in a variable: a bundler follows `import('literal')`, not this. */
const ETCD_MODULE: string = '@grpc-tower/discover/etcd';

/**
 * The etcd source of `target`, loaded when the first subscriber arrives.
 * When `etcd3` is not installed, the source reports a `failed` event that
 * says to install it, and calls fail naming it.
 */
export function etcdSource(target: EtcdTarget): DiscoverySource {
  const name = target.canonical;
  return sharedSource(name, (ctx) => {
    let stopped = false;
    let subscription: Subscription | undefined;
    (import(ETCD_MODULE) as Promise<EtcdModule>).then(
      (m) => {
        if (stopped) return;
        const source = m.etcd(target.endpoints, target.prefix, { name });
        subscription = source.events$.subscribe((event) => ctx.emit(event));
        subscription.add(source.subscribe((change) => ctx.apply([change])));
      },
      (err: unknown) => {
        if (stopped) return;
        const reason = err instanceof Error ? err.message : String(err);
        ctx.emit({
          type: 'failed',
          source: name,
          error: new ResolveError(
            name,
            `an etcd target needs the etcd3 package (npm install etcd3): ${reason}`,
            {
              cause: err,
            },
          ),
          failures: 1,
        });
      },
    );
    return () => {
      stopped = true;
      subscription?.unsubscribe();
    };
  });
}
