/**
 * `@grpc-tower/discover/kubernetes`: the {@link kubernetes} source, a
 * list-then-watch over the EndpointSlices of a Kubernetes Service, and
 * {@link kubernetesZone}, this client's zone from its node's labels. It is
 * a subpath of its own so that `@kubernetes/client-node` (an optional peer
 * dependency: install it to use this source) is loaded only by the programs
 * that import it; `@grpc-tower/discover` itself never loads it.
 *
 * @example
 * ```ts
 * import { kubernetes, kubernetesZone } from '@grpc-tower/discover/kubernetes';
 *
 * const orders = kubernetes({ service: 'orders', namespace: 'shop', port: 'grpc' });
 * const zone = await kubernetesZone(); // from $NODE_NAME's topology.kubernetes.io/zone
 * ```
 * @packageDocumentation
 */
export {
  kubernetes,
  kubernetesZone,
  type KubernetesOptions,
  type KubernetesZoneOptions,
} from './source.js';
