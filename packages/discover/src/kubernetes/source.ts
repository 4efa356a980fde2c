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
import { CoreV1Api, DiscoveryV1Api, KubeConfig, Watch } from '@kubernetes/client-node';
import type { DiscoveredAddress } from '../address.js';
import { ResolveError } from '../errors.js';
import type { EndpointState } from '../events.js';
import { type DiscoverySource, type SourceContext, sharedSource } from '../source.js';
import {
  type Backoff,
  type BackoffOptions,
  DELAY_RULE,
  backoffConfig,
  backoffDelay,
  unrefTimer,
} from '../timing.js';
import {
  type SliceEndpoint,
  type SliceReading,
  mergeSlices,
  readSlice,
  resourceVersionOf,
  sliceName,
} from './slices.js';

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

const SLICES = (namespace: string): string =>
  `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
const SERVICE_LABEL = 'kubernetes.io/service-name';
const PAGE = 500;
/** A watch that ends sooner than this without an event counts as a failure (backoff applies). */
const SHORT_WATCH_MS = 1000;

/** `namespace/service` rules of the API: DNS-1123 labels. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

interface KubeRun {
  readonly name: string;
  readonly namespace: string;
  readonly service: string;
  readonly port: string | number;
  readonly config: KubeConfig;
  readonly requestTimeoutMs: number;
  readonly backoff: Backoff;
  readonly watchBackoff: Backoff;
  readonly watchTimeoutSeconds: number;
}

function defaultConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}

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

/**
 * An error's message, with its cause's when the message alone does not say
 * what failed: the client's fetch fails with "fetch failed", and only its
 * cause names the connection error (`connect ECONNREFUSED 10.0.0.1:6443`).
 */
function message(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  if (!(cause instanceof Error) || cause.message === '' || err.message.includes(cause.message)) {
    return err.message;
  }
  return `${err.message} (${cause.message})`;
}

/** The HTTP status of a failed request of the client, when it has one. */
function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

function reasonFor(ep: SliceEndpoint | undefined, key: string, state: EndpointState): string {
  const who = ep?.pod === undefined ? key : `pod ${ep.pod} (${key})`;
  switch (state) {
    case 'ready':
      return `${who} is ready: it takes calls`;
    case 'terminating':
      return ep?.serving === true
        ? `${who} is terminating: no new calls; its calls in flight finish, then its connection closes`
        : `${who} is terminating and no longer serving: no new calls`;
    case 'not-serving':
      return `${who} is not ready: no new calls until it is`;
    case 'gone':
      return `${who} is no longer listed: no new calls; its calls in flight finish`;
  }
}

function runKubernetes(ctx: SourceContext, run: KubeRun): () => void {
  const { name, namespace } = run;
  const labelSelector = `${SERVICE_LABEL}=${run.service}`;
  const path = SLICES(namespace);
  let stopped = false;
  /** Each slice's reading, by `namespace/name`. */
  let slices = new Map<string, SliceReading>();
  /** The last state published per address, for the `endpoint` events. */
  const states = new Map<string, EndpointState>();
  let resourceVersion: string | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let listFailures = 0;
  let watchFailures = 0;
  let down = false;
  /** The running watch's number; events of an older one are ignored. */
  let watchId = 0;
  let controller: AbortController | undefined;
  const discovery = run.config.makeApiClient(DiscoveryV1Api);
  const watcher = new Watch(run.config);

  const report = (reading: SliceReading): void => {
    for (const error of reading.invalid)
      ctx.emit(() => ({ type: 'invalid', source: name, input: error.input, error }));
    for (const d of reading.duplicates)
      ctx.emit(() => ({ type: 'duplicate', source: name, key: d.key, inputs: d.inputs }));
  };

  /** Publishes the merged set; then one `endpoint` event per address whose state changed. */
  const publish = (always = false): void => {
    const ordered = [...slices.keys()].sort().map((k) => slices.get(k) as SliceReading);
    const merged = mergeSlices(ordered);
    const next = new Map<string, DiscoveredAddress>();
    for (const [key, ep] of merged) if (ep.state === 'ready') next.set(key, ep.value);
    const { inserted, removed } = ctx.replace(next);
    const changed: [string, SliceEndpoint | undefined, EndpointState, EndpointState | undefined][] = [];
    for (const [key, ep] of merged) {
      const previous = states.get(key);
      if (previous !== ep.state) changed.push([key, ep, ep.state, previous]);
    }
    for (const [key, previous] of states) {
      if (!merged.has(key)) changed.push([key, undefined, 'gone', previous]);
    }
    for (const [key, ep, state, previous] of changed) {
      if (state === 'gone') states.delete(key);
      else states.set(key, state);
      ctx.emit(() => ({
        type: 'endpoint',
        source: name,
        key,
        ...(ep?.pod === undefined ? {} : { pod: ep.pod }),
        ...(ep?.zone === undefined ? {} : { zone: ep.zone }),
        state,
        previous,
        reason: reasonFor(ep, key, state),
      }));
    }
    if (always || inserted + removed > 0) {
      ctx.emit(() => ({ type: 'resolved', source: name, count: ctx.current.size, inserted, removed }));
    }
  };

  const later = (fn: () => void, delayMs: number): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = unrefTimer(() => {
      timer = undefined;
      if (!stopped) fn();
    }, delayMs);
  };

  const stopWatch = (): void => {
    watchId++;
    const c = controller;
    controller = undefined;
    c?.abort();
  };

  const onEvent = (id: number, type: string, object: unknown): void => {
    if (id !== watchId || stopped) return;
    const rv = resourceVersionOf(object);
    if (type === 'ADDED' || type === 'MODIFIED') {
      if (rv !== undefined) resourceVersion = rv;
      const reading = readSlice(name, object, run.port);
      report(reading);
      slices.set(sliceName(object), reading);
      publish();
    } else if (type === 'DELETED') {
      if (rv !== undefined) resourceVersion = rv;
      slices.delete(sliceName(object));
      publish();
    } else if (type === 'BOOKMARK') {
      if (rv !== undefined) resourceVersion = rv;
    } else if (type === 'ERROR') {
      const status = object as { code?: unknown; message?: unknown } | null;
      stopWatch();
      if (status?.code === 410) {
        void list('expired');
        return;
      }
      watchFailed(
        new Error(`the watch reported an error: ${String(status?.message ?? JSON.stringify(object))}`),
      );
    }
  };

  const watchFailed = (err: unknown): void => {
    watchFailures++;
    if (!down) {
      down = true;
      ctx.emit(() => ({
        type: 'disconnected',
        source: name,
        error: new ResolveError(name, `watch of ${path} lost its connection: ${message(err)}`, {
          cause: err,
        }),
      }));
    }
    const delayMs = backoffDelay(watchFailures, run.watchBackoff);
    ctx.emit(() => ({ type: 'backoff', source: name, delayMs, failures: watchFailures }));
    later(watch, delayMs);
  };

  const watch = (): void => {
    stopWatch();
    const id = watchId;
    const startedAt = performance.now();
    let events = 0;
    let ended = false;
    const timeoutSeconds = Math.max(1, Math.round(run.watchTimeoutSeconds * (0.9 + Math.random() * 0.2)));
    watcher
      .watch(
        path,
        {
          labelSelector,
          resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
        },
        (type: string, object: unknown) => {
          events++;
          onEvent(id, type, object);
        },
        (err: unknown) => {
          ended = true;
          if (id !== watchId || stopped) return;
          controller = undefined;
          if (statusOf(err) === 410) {
            void list('expired');
          } else if (err !== null && err !== undefined) {
            watchFailed(err);
          } else if (events === 0 && performance.now() - startedAt < SHORT_WATCH_MS) {
            watchFailed(new Error('the server ended the watch at once'));
          } else {
            watch();
          }
        },
      )
      .then(
        (c) => {
          if (id !== watchId || stopped || ended) {
            if (!ended) c.abort();
            return;
          }
          controller = c;
          watchFailures = 0;
          if (down) {
            down = false;
            ctx.emit(() => ({ type: 'reconnected', source: name }));
          }
        },
        (err: unknown) => {
          // no cluster in the configuration: the watch cannot even start
          if (id === watchId && !stopped) watchFailed(err);
        },
      );
  };

  const listOnce = async (): Promise<{ items: unknown[]; resourceVersion: string | undefined }> => {
    const items: unknown[] = [];
    let next: string | undefined;
    let rv: string | undefined;
    do {
      const page = await discovery.listNamespacedEndpointSlice({
        namespace,
        labelSelector,
        limit: PAGE,
        ...(next === undefined ? {} : { _continue: next }),
      });
      items.push(...(page.items ?? []));
      next = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion;
    } while (next !== undefined && !stopped);
    return { items, resourceVersion: rv };
  };

  const list = async (reason: 'start' | 'expired' | 'retry'): Promise<void> => {
    stopWatch();
    let deadline: ReturnType<typeof setTimeout> | undefined;
    let answer: Awaited<ReturnType<typeof listOnce>>;
    try {
      answer = await Promise.race([
        listOnce(),
        new Promise<never>((_, reject) => {
          deadline = unrefTimer(
            () => reject(new Error(`no answer within ${run.requestTimeoutMs} ms`)),
            run.requestTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      if (stopped) return;
      listFailures++;
      const status = statusOf(err);
      const detail = status === undefined ? message(err) : `HTTP ${status} ${message(err)}`;
      ctx.emit(() => ({
        type: 'failed',
        source: name,
        error: new ResolveError(name, `listing ${path}?labelSelector=${labelSelector} failed: ${detail}`, {
          cause: err,
        }),
        failures: listFailures,
      }));
      const delayMs = backoffDelay(listFailures, run.backoff);
      ctx.emit(() => ({ type: 'backoff', source: name, delayMs, failures: listFailures }));
      later(() => void list('retry'), delayMs);
      return;
    } finally {
      if (deadline !== undefined) clearTimeout(deadline);
    }
    if (stopped) return;
    listFailures = 0;
    const read = new Map<string, SliceReading>();
    for (const item of answer.items) {
      const reading = readSlice(name, item, run.port);
      report(reading);
      read.set(sliceName(item), reading);
    }
    slices = read;
    resourceVersion = answer.resourceVersion;
    ctx.emit(() => ({ type: 'resync', source: name, reason, revision: resourceVersion ?? '' }));
    publish(true);
    watch();
  };

  void list('start');

  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    stopWatch();
  };
}

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
