/**
 * The `xds` source: the endpoints of a service from an xDS management
 * server (a service mesh's control plane), as a proxyless gRPC client gets
 * them. One ADS stream (`envoy.service.discovery.v3`, state of the world)
 * follows Listener → RouteConfiguration → Cluster → ClusterLoadAssignment
 * for a target name (to every cluster of a route's `weighted_clusters`, each
 * endpoint then carrying its cluster as its group), or Cluster →
 * ClusterLoadAssignment for a cluster name.
 * Each response is ACKed with its version and nonce, or NACKed with the
 * reason when a resource is unusable (the last good one stays in use).
 * When the stream drops, resources stay cached and the set stays as it
 * was; the stream is opened again with backoff and subscribes to the same
 * names with the versions it holds.
 *
 * @module
 */
import { GrpcTowerError, Status, toGrpcTowerError } from '@grpc-tower/core';
import { ConfigError } from '@grpc-tower/core';
import * as grpc from '@grpc/grpc-js';
import { InvalidRecordError } from '../errors.js';
import type { EndpointState } from '../events.js';
import { type DiscoverySource, type SourceContext, sharedSource } from '../source.js';
import { type BackoffOptions, backoffConfig, backoffDelay, unrefTimer } from '../timing.js';
import { type XdsBootstrap, loadBootstrap } from './bootstrap.js';
import {
  type Cluster,
  type ClusterLoadAssignment,
  type HealthStatus,
  type Listener,
  type ResourceKind,
  type RouteConfiguration,
  TYPE_URL,
  XdsResourceError,
  peekName,
  readAny,
  resourceName,
} from './resources.js';
import { type LoadedCluster, type WeightedCluster, chooseRoute, endpointSet } from './routes.js';
import { Writer, msgs, readFields, str } from './wire.js';

const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const KINDS: readonly ResourceKind[] = ['listener', 'route', 'cluster', 'endpoints'];
const KIND_OF: ReadonlyMap<string, ResourceKind> = new Map(KINDS.map((k) => [TYPE_URL[k], k]));

/**
 * Options of {@link xds}: a `target` (a Listener name, as in `xds:///name`)
 * or a `cluster`, exactly one.
 *
 * @example
 * ```ts
 * const opts: XdsOptions = { target: 'orders.shop.svc.cluster.local:50051' };
 * ```
 */
export interface XdsOptions {
  /** A Listener name: the chain Listener → RouteConfiguration → Cluster → ClusterLoadAssignment. */
  readonly target?: string;
  /** A Cluster name: Cluster → ClusterLoadAssignment, no listener or routes. */
  readonly cluster?: string;
  /** The bootstrap (object or JSON text); by default from `GRPC_XDS_BOOTSTRAP` or `GRPC_XDS_BOOTSTRAP_CONFIG`. */
  readonly bootstrap?: XdsBootstrap | string;
  /** Channel credentials for the management server, instead of the bootstrap's `channel_creds`. */
  readonly credentials?: grpc.ChannelCredentials;
  /** Backoff between attempts to open the ADS stream; default 500 ms doubling to 30 s, ±10 %. */
  readonly backoff?: BackoffOptions;
}

interface TypeState {
  names: string[];
  /** The version last accepted (ACKed). */
  version: string;
  /** The nonce of the last response on the current stream. */
  nonce: string;
  readonly cache: Map<string, unknown>;
}

/** The Node message (envoy.config.core.v3.Node) of the first request on a stream. */
function nodeBytes(node: ReturnType<typeof loadBootstrap>['node']): Uint8Array {
  const w = new Writer().string(1, node.id).string(2, node.cluster ?? '');
  const l = node.locality;
  if (l !== undefined) {
    w.bytes(
      4,
      new Writer()
        .string(1, l.region ?? '')
        .string(2, l.zone ?? '')
        .string(3, l.subZone ?? '')
        .finish(),
    );
  }
  return w.string(6, 'grpc-tower').finish();
}

function checkName(value: unknown, option: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new ConfigError('xds', option, value, 'a non-empty string');
  return value;
}

/**
 * A discovery source of the endpoints an xDS management server gives for
 * `target` (a Listener name) or `cluster`. Endpoints whose `health_status`
 * is HEALTHY or UNKNOWN are in the set; DRAINING, UNHEALTHY and the rest
 * are not (a removed endpoint drains: its calls in flight finish). Each
 * carries its locality's zone and the weight locality weight × endpoint
 * weight, and its locality's priority when it is not 0: the balancer
 * sends calls to the highest priority that has ready endpoints.
 * Throws `ConfigError` for bad options or a bad bootstrap.
 *
 * @example
 * ```ts
 * import { xds } from '@grpc-tower/discover/xds';
 *
 * // GRPC_XDS_BOOTSTRAP names the bootstrap file, as for any proxyless gRPC client
 * const orders = xds({ target: 'orders.shop.svc.cluster.local:50051' });
 * orders.events$.subscribe((e) => console.log(e.type));
 * ```
 */
export function xds(options: XdsOptions): DiscoverySource {
  return xdsWith(options);
}

/**
 * @internal What a run tells about the route's clusters as they load: each
 * one loaded so far with its weight, and whether every one has.
 */
export type ClustersHook = (
  loaded: readonly { readonly weight: number; readonly cluster: Cluster }[],
  complete: boolean,
) => void;

/**
 * @internal {@link xds}, with a hook told of the route's clusters as they
 * load (`xdsClusterPolicy` reads their policies through it).
 *
 * @example
 * ```ts
 * const source = xdsWith({ target: 'orders' }, (loaded, complete) => complete && console.log(loaded));
 * ```
 */
export function xdsWith(options: XdsOptions, onClusters?: ClustersHook): DiscoverySource {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('xds', 'options', options, 'an object with target or cluster');
  }
  if ((options.target === undefined) === (options.cluster === undefined)) {
    throw new ConfigError('xds', 'target', options.target, 'given, or cluster given, but not both');
  }
  const target = options.target === undefined ? undefined : checkName(options.target, 'target');
  const clusterOption = options.cluster === undefined ? undefined : checkName(options.cluster, 'cluster');
  const boot = loadBootstrap(options.bootstrap);
  const backoff = backoffConfig('xds', options.backoff, {
    initialMs: 500,
    maxMs: 30_000,
    multiplier: 2,
    jitter: 0.1,
  });
  const credentials =
    options.credentials ??
    (boot.credentials === 'tls' ? grpc.credentials.createSsl() : grpc.credentials.createInsecure());
  const node = nodeBytes(boot.node);
  const name = target === undefined ? `xds:cluster/${clusterOption}` : `xds:///${target}`;
  return sharedSource(name, (ctx) =>
    run(ctx, { target, cluster: clusterOption, boot, backoff, credentials, node, onClusters }),
  );
}

interface RunConfig {
  readonly target: string | undefined;
  readonly cluster: string | undefined;
  readonly boot: ReturnType<typeof loadBootstrap>;
  readonly backoff: ReturnType<typeof backoffConfig>;
  readonly credentials: grpc.ChannelCredentials;
  readonly node: Uint8Array;
  readonly onClusters: ClustersHook | undefined;
}

function run(ctx: SourceContext, config: RunConfig): () => void {
  const source = ctx.name;
  const types = new Map<ResourceKind, TypeState>(
    KINDS.map((k) => [k, { names: [], version: '', nonce: '', cache: new Map<string, unknown>() }]),
  );
  const state = (kind: ResourceKind) => types.get(kind) as TypeState;
  const client = new grpc.Client(config.boot.serverUri, config.credentials);
  let stream: grpc.ClientDuplexStream<Uint8Array, Buffer> | undefined;
  let sentNode = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let disconnected = false;
  let lastNotes = '';
  let states = new Map<string, { state: EndpointState; zone: string; health: HealthStatus }>();

  const send = (
    typeUrl: string,
    names: readonly string[],
    version: string,
    nonce: string,
    error?: string,
  ) => {
    if (stream === undefined) return;
    const w = new Writer().string(1, version);
    if (!sentNode) {
      w.bytes(2, config.node);
      sentNode = true;
    }
    for (const n of names) w.string(3, n);
    w.string(4, typeUrl).string(5, nonce);
    if (error !== undefined)
      w.bytes(6, new Writer().uint(1, Status.INVALID_ARGUMENT).string(2, error).finish());
    stream.write(w.finish());
  };
  const request = (kind: ResourceKind, error?: string) => {
    const st = state(kind);
    send(TYPE_URL[kind], st.names, st.version, st.nonce, error);
  };

  /** Subscribes `kind` to exactly `names` (an empty list would mean every resource of LDS and CDS). */
  const want = (kind: ResourceKind, ...names: string[]) => {
    const st = state(kind);
    const wanted = [...new Set(names)].sort();
    if (st.names.length === wanted.length && st.names.every((n, i) => n === wanted[i])) return;
    st.names = wanted;
    for (const k of st.cache.keys()) if (!wanted.includes(k)) st.cache.delete(k);
    request(kind);
  };

  const publish = (loaded: readonly LoadedCluster[], split: boolean) => {
    const next = endpointSet(loaded, split);
    const clusters = loaded.map((l) => l.cla.clusterName).join(', ');
    for (const [key, count] of next.duplicates) {
      ctx.emit(() => ({
        type: 'duplicate',
        source,
        key,
        inputs: Array.from({ length: count }, () => clusters),
      }));
    }
    const { inserted, removed } = ctx.replace(next.set);
    for (const [key, now] of next.states) {
      const before = states.get(key)?.state;
      if (before === now.state) continue;
      ctx.emit(() => ({
        type: 'endpoint',
        source,
        key,
        ...(now.zone === '' ? {} : { zone: now.zone }),
        state: now.state,
        previous: before,
        reason: `health_status ${now.health}`,
      }));
    }
    for (const [key, was] of states) {
      if (next.states.has(key)) continue;
      ctx.emit(() => ({
        type: 'endpoint',
        source,
        key,
        state: 'gone',
        previous: was.state,
        reason: 'no longer listed',
      }));
    }
    states = next.states;
    ctx.emit(() => ({ type: 'resolved', source, count: next.set.size, inserted, removed }));
  };

  /** Follows the chain as far as the cache reaches, subscribing to what comes next. */
  const resolve = () => {
    let clusters: readonly WeightedCluster[] | undefined =
      config.cluster === undefined ? undefined : [{ name: config.cluster, weight: 1 }];
    if (config.target !== undefined) {
      want('listener', config.target);
      const listener = state('listener').cache.get(config.target) as Listener | undefined;
      if (listener === undefined) return;
      let rc = listener.inlineRoute;
      if (listener.routeConfigName !== undefined) {
        want('route', listener.routeConfigName);
        rc = state('route').cache.get(listener.routeConfigName) as RouteConfiguration | undefined;
      }
      if (rc === undefined) return;
      const choice = chooseRoute(rc, config.target);
      const notes = JSON.stringify(choice.notes);
      if (notes !== lastNotes) {
        lastNotes = notes;
        for (const n of choice.notes)
          ctx.emit(() => ({ type: 'ignored', source, input: n.input, reason: n.reason }));
      }
      clusters = choice.clusters;
    }
    if (clusters === undefined || clusters.length === 0) return;
    want('cluster', ...clusters.map((c) => c.name));
    // each cluster's endpoints as they arrive: a split starts with the clusters loaded so far
    const known = clusters.flatMap((c) => {
      const cluster = state('cluster').cache.get(c.name) as Cluster | undefined;
      return cluster === undefined ? [] : [{ cluster: c, eds: cluster.edsServiceName, value: cluster }];
    });
    config.onClusters?.(
      known.map((k) => ({ weight: k.cluster.weight, cluster: k.value })),
      known.length === clusters.length,
    );
    if (known.length === 0) return;
    want('endpoints', ...known.map((k) => k.eds));
    const loaded = known.flatMap((k) => {
      const cla = state('endpoints').cache.get(k.eds) as ClusterLoadAssignment | undefined;
      return cla === undefined ? [] : [{ cluster: k.cluster, cla }];
    });
    if (loaded.length > 0) publish(loaded, clusters.length > 1);
  };

  const reject = (input: string, reason: string) =>
    ctx.emit(() => ({
      type: 'invalid',
      source,
      input,
      error: new InvalidRecordError(source, input, reason),
    }));

  const onResponse = (bytes: Uint8Array) => {
    let version: string;
    let typeUrl: string;
    let nonce: string;
    let resources: Uint8Array[];
    try {
      const fields = readFields(bytes);
      version = str(fields, 1);
      typeUrl = str(fields, 4);
      nonce = str(fields, 5);
      resources = msgs(fields, 2);
    } catch (err) {
      // no nonce to answer: the response is dropped, and said
      reject('DiscoveryResponse', (err as Error).message);
      return;
    }
    const kind = KIND_OF.get(typeUrl);
    if (kind === undefined) {
      const reason = `resource type ${typeUrl || '(none)'} is not one this client asked for`;
      reject(`DiscoveryResponse ${typeUrl}`, reason);
      send(typeUrl, [], '', nonce, reason);
      return;
    }
    const st = state(kind);
    st.nonce = nonce;
    const errors: string[] = [];
    const seen = new Set<string>();
    for (const anyBytes of resources) {
      let any: ReturnType<typeof readAny>;
      try {
        any = readAny(anyBytes);
      } catch (err) {
        const reason = `a resource that is not a google.protobuf.Any: ${(err as Error).message}`;
        errors.push(reason);
        reject(`${kind} (unreadable)`, reason);
        continue;
      }
      if (any.typeUrl !== typeUrl) {
        const reason = `a resource of type ${any.typeUrl} in a ${typeUrl} response`;
        errors.push(reason);
        reject(`${kind} ${peekName(kind, any.value)}`, reason);
        continue;
      }
      try {
        const { name: resource, value } = resourceName(kind, any.value);
        seen.add(resource);
        if (st.names.includes(resource)) st.cache.set(resource, value);
      } catch (err) {
        const resource = peekName(kind, any.value);
        seen.add(resource);
        const reason =
          err instanceof XdsResourceError ? err.message : `${kind} ${resource}: ${(err as Error).message}`;
        errors.push(reason);
        reject(`${kind} ${resource}`, reason);
      }
    }
    // state of the world: a Listener or Cluster missing from its response was deleted; the set stays
    if (kind === 'listener' || kind === 'cluster') {
      for (const n of st.names) {
        if (!seen.has(n) && st.cache.delete(n))
          ctx.emit(() => ({ type: 'empty-kept', source, kept: ctx.current.size }));
      }
    }
    if (errors.length === 0) {
      st.version = version;
      request(kind);
    } else {
      request(kind, errors.join('; '));
    }
    resolve();
  };

  const open = () => {
    timer = undefined;
    if (ctx.stopped) return;
    sentNode = false;
    for (const st of types.values()) st.nonce = '';
    const call = client.makeBidiStreamRequest(
      ADS_METHOD,
      (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      (b: Buffer) => b,
    );
    stream = call;
    let answered = false;
    call.on('data', (bytes: Buffer) => {
      if (stream !== call) return;
      if (!answered) {
        answered = true;
        failures = 0;
        if (disconnected) {
          disconnected = false;
          ctx.emit(() => ({ type: 'reconnected', source }));
        }
      }
      onResponse(bytes);
    });
    // grpc-js reports the end of the call as 'status' (every end) and 'error' (not OK): 'status' drives the retry
    call.on('error', () => {});
    call.on('status', (s: grpc.StatusObject) => {
      if (stream !== call) return;
      stream = undefined;
      if (ctx.stopped) return;
      failures = answered ? 1 : failures + 1;
      if (!disconnected) {
        disconnected = true;
        const error =
          s.code === Status.OK
            ? new GrpcTowerError(Status.UNAVAILABLE, `${source}: the management server ended the ADS stream`)
            : toGrpcTowerError(
                Object.assign(new Error(`${source}: ADS stream: ${s.details}`), { code: s.code }),
              );
        ctx.emit(() => ({ type: 'disconnected', source, error }));
      }
      const delayMs = backoffDelay(failures, config.backoff);
      ctx.emit(() => ({ type: 'backoff', source, delayMs, failures }));
      timer = unrefTimer(open, delayMs);
    });
    for (const kind of KINDS) if (state(kind).names.length > 0) request(kind);
    resolve();
  };

  open();
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const s = stream;
    stream = undefined;
    s?.cancel();
    client.close();
  };
}
