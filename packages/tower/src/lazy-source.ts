/**
 * A discovery source whose module is imported only when the first
 * subscriber arrives, so that a program that never names its scheme
 * neither loads nor bundles it (`etcd://` and `xds:///` targets).
 *
 * @module
 */
import { type DiscoverySource, ResolveError, sharedSource } from '@grpc-tower/discover';
import type { Subscription } from 'rxjs';

/**
 * A source named `name` that runs the one `load` gives. When `load` fails
 * (a package not installed, a bad bootstrap), the source reports a `failed`
 * event whose message starts with `hint`, and calls fail naming it.
 *
 * @example
 * ```ts
 * const src = lazySource('etcd://10.0.0.5:2379/services/orders/', 'an etcd target needs etcd3', async () =>
 *   (await import(ETCD_MODULE)).etcd(['http://10.0.0.5:2379'], '/services/orders/'),
 * );
 * ```
 */
export function lazySource(
  name: string,
  hint: string,
  load: () => Promise<DiscoverySource>,
): DiscoverySource {
  return sharedSource(name, (ctx) => {
    let stopped = false;
    let subscription: Subscription | undefined;
    load().then(
      (source) => {
        if (stopped) return;
        const stopForwarding = ctx.forward(source.events$);
        subscription = source.subscribe((change) => ctx.apply([change]));
        subscription.add(stopForwarding);
      },
      (err: unknown) => {
        if (stopped) return;
        const reason = err instanceof Error ? err.message : String(err);
        ctx.emit(() => ({
          type: 'failed',
          source: name,
          error: new ResolveError(name, `${hint}: ${reason}`, { cause: err }),
          failures: 1,
        }));
      },
    );
    return () => {
      stopped = true;
      subscription?.unsubscribe();
    };
  });
}
