/**
 * `kubernetes`: a watch-based source over the EndpointSlices
 * (`discovery.k8s.io/v1`) of one Kubernetes Service, through
 * `@kubernetes/client-node`.
 *
 * The algorithm is the Kubernetes API's list-then-watch, as client-go's
 * reflector runs it: list the service's slices (label
 * `kubernetes.io/service-name`, in pages of 500), which returns the
 * collection's resourceVersion R, then watch from R with bookmarks, so
 * every change after the list arrives and none is missed. Each event moves
 * the last resourceVersion seen, bookmarks included. When the watch ends
 * (the server's watch timeout) or its connection drops, the source watches
 * again from that resourceVersion, with backoff after a failure, so the
 * changes made meanwhile are replayed. When the server answers `410 Gone`
 * (the resourceVersion is too old: history was compacted), the source
 * lists again, publishes only the difference with what it had, and watches
 * from the new resourceVersion. A failed list keeps the last set and
 * retries with backoff.
 *
 * The slices of the service are merged (an address listed by two slices,
 * as while the controller moves endpoints between them, counts once, in
 * its most usable state), and each endpoint's conditions decide its place:
 * `ready` (and not terminating) puts it in the set; `terminating` takes it
 * out at once, so the balancer sends it no new call while the calls in
 * flight finish and the connection then closes (the drain a removal
 * starts); `serving: false` takes it out; an endpoint no slice lists any
 * more is taken out the same way. Each such change is an `endpoint` event
 * naming the pod and the reason, published after the set changed.
 *
 * Bad objects never break the stream: a slice without the port, an
 * endpoint without an address or with a condition that is not a boolean is
 * an `invalid` event naming the slice and the endpoint; an address listed
 * twice in one slice is a `duplicate` event (the first is used).
 *
 * @module
 */
import { optionChecks } from '@grpc-tower/core/internal';
import { KubeConfig } from '@kubernetes/client-node';
import { type DiscoverySource, sharedSource } from '../source.js';
import { type BackoffOptions, DELAY_RULE, backoffConfig } from '../timing.js';
import { defaultConfig, runKubernetes } from './watch.js';

export { kubernetesZone, type KubernetesZoneOptions } from './zone.js';

/**
 * Options of {@link kubernetes}.
 *
 * @example
 * ```ts
 * const opts: KubernetesOptions = { service: 'orders', namespace: 'shop', port: 'grpc' };
 * ```
 */
export interface KubernetesOptions {
  /** The Service's name. */
  readonly service: string;
  /**
   * Its namespace; default: the namespace of the kubeconfig's current
   * context (in a pod: the service account's namespace), else `'default'`.
   */
  readonly namespace?: string;
  /**
   * The port: the name of the Service's port (`'grpc'`), or the endpoint's
   * port number (the pods' `targetPort`, not the Service's `port`).
   */
  readonly port: string | number;
  /**
   * The client configuration; default `loadFromDefault()`: `$KUBECONFIG`
   * or `~/.kube/config`, else the pod's service account (in-cluster).
   */
  readonly kubeConfig?: KubeConfig;
  /** The source's name in events; default `'kubernetes:<namespace>/<service>:<port>'`. */
  readonly name?: string;
  /** Deadline of each list request, in ms; default 10 000. */
  readonly requestTimeoutMs?: number;
  /** Backoff between failed lists; default 1 s doubling to 30 s, ±10 %. */
  readonly backoff?: BackoffOptions;
  /** Backoff between failed watch attempts; default 100 ms doubling to 5 s, ±10 %. */
  readonly watchBackoff?: BackoffOptions;
  /**
   * How long the server keeps one watch open before ending it (the source
   * then watches again from where it was), in seconds; default 300 ± 10 %.
   */
  readonly watchTimeoutSeconds?: number;
}

/** `namespace/service` rules of the API: DNS-1123 labels. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function namespaceOf(config: KubeConfig): string {
  const ns = config.getContextObject(config.getCurrentContext())?.namespace;
  return typeof ns === 'string' && ns.trim() !== '' ? ns.trim() : 'default';
}

/**
 * A source over the EndpointSlices of a Kubernetes Service: the addresses
 * of its ready endpoints on `port`, each with its `zone`, topology hints
 * (`forZones`) and `metadata: { pod, node }`. Lazy and shared; never errors
 * or completes. The client needs `get`, `list` and `watch` on
 * `endpointslices` (`discovery.k8s.io`) in the namespace.
 *
 * @example
 * ```ts
 * import * as grpc from '@grpc/grpc-js';
 * import { connect } from '@grpc-tower/discover';
 * import { kubernetes } from '@grpc-tower/discover/kubernetes';
 * import { grpcEndpoint } from '@grpc-tower/core/grpc';
 *
 * const orders = kubernetes({ service: 'orders', namespace: 'shop', port: 'grpc' });
 * orders.events$.subscribe((e) => e.type === 'endpoint' && console.log(e.reason));
 * const endpoints = connect(orders, (a) =>
 *   grpcEndpoint(a.address, { credentials: grpc.credentials.createInsecure(), zone: a.zone }),
 * );
 * ```
 */
export function kubernetes(options: KubernetesOptions): DiscoverySource {
  const check = optionChecks('kubernetes');
  check.object('options', options);
  const service = options.service;
  if (typeof service !== 'string' || !DNS_LABEL.test(service)) {
    throw check.error('service', service, 'a Service name (a DNS-1123 label such as "orders")');
  }
  const port = options.port;
  const portOk =
    (typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535) ||
    (typeof port === 'string' && port.length > 0);
  if (!portOk) throw check.error('port', port, 'a port name such as "grpc", or a port number 1..65535');
  if (options.kubeConfig !== undefined && !(options.kubeConfig instanceof KubeConfig)) {
    throw check.error('kubeConfig', options.kubeConfig, 'a KubeConfig from @kubernetes/client-node');
  }
  if (
    options.namespace !== undefined &&
    (typeof options.namespace !== 'string' || !DNS_LABEL.test(options.namespace))
  ) {
    throw check.error('namespace', options.namespace, 'a namespace name (a DNS-1123 label)');
  }
  const requestTimeoutMs = check.number('requestTimeoutMs', options.requestTimeoutMs, DELAY_RULE, 10_000);
  const watchTimeoutSeconds = check.number(
    'watchTimeoutSeconds',
    options.watchTimeoutSeconds,
    { min: 1, max: 86_400, integer: true },
    300,
  );
  const backoff = backoffConfig('kubernetes', options.backoff);
  const watchBackoff = backoffConfig(
    'kubernetes',
    options.watchBackoff,
    { initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.1 },
    'watchBackoff',
  );
  // the configuration is read when the name is needed (now), not per subscription
  const config = options.kubeConfig ?? defaultConfig();
  const namespace = options.namespace ?? namespaceOf(config);
  const name = check.string('name', options.name, `kubernetes:${namespace}/${service}:${String(port)}`);
  return sharedSource(name, (ctx) =>
    runKubernetes(ctx, {
      name,
      namespace,
      service,
      port,
      config,
      requestTimeoutMs,
      backoff,
      watchBackoff,
      watchTimeoutSeconds,
    }),
  );
}
