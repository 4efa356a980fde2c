/**
 * The source of an `xds:///name` target. `@grpc-tower/discover/xds` is
 * imported only when such a channel starts discovering, so that a program
 * that never names an xDS target never loads it.
 *
 * @module
 */
import type { DiscoverySource } from '@grpc-tower/discover';
import { lazySource } from './lazy-source.js';
import type { XdsTarget } from './target.js';

type XdsModule = typeof import('@grpc-tower/discover/xds');

/** Kept in a variable: a bundler follows `import('literal')`, not this. */
const XDS_MODULE: string = '@grpc-tower/discover/xds';

/**
 * The xDS source of `target`, loaded when the first subscriber arrives,
 * with the bootstrap from `GRPC_XDS_BOOTSTRAP` or
 * `GRPC_XDS_BOOTSTRAP_CONFIG`. A missing or bad bootstrap is a `failed`
 * event naming it, and calls fail naming it.
 *
 * @example
 * ```ts
 * const source = xdsSource(parseTarget('xds:///orders') as XdsTarget);
 * ```
 */
export function xdsSource(target: XdsTarget): DiscoverySource {
  return lazySource(target.canonical, 'cannot start the xDS source', async () =>
    ((await import(XDS_MODULE)) as XdsModule).xds({ target: target.name }),
  );
}
