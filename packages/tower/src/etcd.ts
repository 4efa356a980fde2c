/**
 * The source of an `etcd://` target. `@grpc-tower/discover/etcd` (and the
 * `etcd3` client under it) is imported only when such a channel starts
 * discovering, through a specifier that bundlers leave alone, so that a
 * program that never names an etcd target neither loads nor bundles it.
 *
 * @module
 */
import type { DiscoverySource } from '@grpc-tower/discover';
import { lazySource } from './lazy-source.js';
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
  return lazySource(name, 'an etcd target needs the etcd3 package (npm install etcd3)', async () =>
    ((await import(ETCD_MODULE)) as EtcdModule).etcd(target.endpoints, target.prefix, { name }),
  );
}
