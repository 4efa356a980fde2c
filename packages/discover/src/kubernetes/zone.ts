/**
 * The zone of the node this client runs on, read from the Kubernetes API
 * (`kubernetesZone`), for a balancer's `zones: { local }`.
 *
 * @module
 */
import { defaultConfig, message } from './watch.js';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { ResolveError } from '../errors.js';

/**
 * Options of {@link kubernetesZone}.
 *
 * @example
 * ```ts
 * const opts: KubernetesZoneOptions = { nodeName: process.env.NODE_NAME };
 * ```
 */
export interface KubernetesZoneOptions {
  /** The node this pod runs on (give it with the downward API: `spec.nodeName`); default `$NODE_NAME`. */
  readonly nodeName?: string | undefined;
  /** The client configuration; default `loadFromDefault()`. */
  readonly kubeConfig?: KubeConfig;
}

/**
 * This client's zone: the `topology.kubernetes.io/zone` label of the node
 * it runs on, for a balancer's `zones: { local }`. Resolves `undefined`
 * when the node is not known or has no zone label; rejects with a
 * `ResolveError` naming the node when the API cannot be read. Needs `get`
 * on `nodes` (a ClusterRole).
 *
 * @example
 * ```ts
 * const local = await kubernetesZone(); // 'europe-west1-b'
 * ```
 */
export async function kubernetesZone(options: KubernetesZoneOptions = {}): Promise<string | undefined> {
  const nodeName = options.nodeName ?? process.env.NODE_NAME;
  if (nodeName === undefined || nodeName === '') return undefined;
  const config = options.kubeConfig ?? defaultConfig();
  const core = config.makeApiClient(CoreV1Api);
  let labels: Record<string, string> | undefined;
  try {
    labels = (await core.readNode({ name: nodeName })).metadata?.labels;
  } catch (err) {
    throw new ResolveError(`kubernetes:node/${nodeName}`, `reading the node failed: ${message(err)}`, {
      cause: err,
    });
  }
  return labels?.['topology.kubernetes.io/zone'] ?? labels?.['failure-domain.beta.kubernetes.io/zone'];
}
