/**
 * `@grpc-tower/discover/xds`: the {@link xds} source, the endpoints of a
 * service from an xDS management server (a service mesh's control plane)
 * over one ADS stream, as a proxyless gRPC client gets them. A subpath of
 * its own, so that programs that never use xDS never load it; it needs
 * only `@grpc/grpc-js`, which grpc-tower already uses.
 *
 * @example
 * ```ts
 * import { xds } from '@grpc-tower/discover/xds';
 *
 * // the bootstrap from GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG, as grpc-js-xds reads it
 * const orders = xds({ target: 'orders' });
 * ```
 * @packageDocumentation
 */
export { xds, type XdsOptions } from './source.js';
export {
  xdsClusterPolicy,
  type XdsClusterPolicy,
  type XdsOutlierDetection,
} from './policy.js';
export { loadBootstrap, type XdsBootstrap, type XdsNode, type ResolvedBootstrap } from './bootstrap.js';
