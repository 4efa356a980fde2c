/**
 * A stand-in xDS management server for tests. It is NOT a control plane
 * (no Envoy, Istio or go-control-plane can run on this machine): it is
 * written from the xDS protocol documentation
 * (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol: the
 * aggregated discovery service, state-of-the-world variant; ACK and NACK by
 * `version_info`, `response_nonce` and `error_detail`) and gRPC's proposal
 * A27 (which resources a proxyless client asks for, and in which order), and
 * checked against a real xDS client, `@grpc/grpc-js-xds`
 * (`xds-server.test.ts`).
 *
 * What it implements:
 * - `envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources`
 *   on grpc-js, with the Envoy API protos that `@grpc/grpc-js-xds` ships
 *   (its `deps/` folder: the only npm package that carries the .proto files
 *   of the Envoy API, which `@grpc/proto-loader` loads as they are).
 * - Listener, RouteConfiguration, Cluster and ClusterLoadAssignment
 *   resources, stored as plain objects (proto-loader's JSON form, snake
 *   case) that a test sets, replaces and removes; builders for the common
 *   shapes ({@link xdsListener}, {@link xdsRoute}, {@link xdsCluster},
 *   {@link xdsEndpoints}) and {@link XdsServer.serve} for the whole chain of
 *   one name.
 * - State of the world: every response carries all the requested resources
 *   of its type that exist (the resources a client names, or every one of
 *   the type when it names none, a wildcard). One version counter per type,
 *   bumped by each change of that type; a fresh nonce per response.
 * - A response is sent on a stream when the names a client asks for change
 *   or the type's version moves past what the stream was last sent. A
 *   request that carries the nonce of the last response is an ACK, or a NACK
 *   when it has `error_detail`; both are recorded ({@link XdsServer.acks}).
 *   A NACK is not answered with the same version again.
 * - Failures a test provokes: {@link XdsServer.dropStreams} (streams end
 *   with UNAVAILABLE), {@link XdsServer.stop} and {@link XdsServer.start}
 *   (the server goes away and comes back on the same address).
 *
 * What it does not do: the incremental (delta) protocol, separate
 * per-type services (LDS, RDS, CDS, EDS each on its own stream), load
 * reporting (LRS), validation of the resources it serves (they are sent
 * verbatim, so a test can serve a broken one), resource TTLs, and
 * authentication: it listens with insecure credentials.
 *
 * @example
 * ```ts
 * const xds = await startXdsServer({ host: '127.0.0.5' });
 * xds.serve('orders', [{ zone: 'a', endpoints: [{ address: '127.0.0.6:50051' }] }]);
 * process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xds.bootstrap();
 * await xds.close();
 * ```
 * @module
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { type ResourceKind, TYPE_URL } from '../xds/resources.js';

/** The type URLs of the four resources a proxyless client asks for (the xDS source's own table). */
export const XDS_TYPE = TYPE_URL;

/** One of the four resource kinds. */
export type XdsKind = ResourceKind;

const HCM_TYPE =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** A resource in proto-loader's object form (snake-case field names). */
export type XdsResource = Record<string, unknown>;

/** The folders that hold the Envoy API protos and the ones they import. */
export function envoyProtoDirs(): string[] {
  const require = createRequire(import.meta.url);
  const root = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(root, d));
}

/** The .proto files the stand-in loads: the service and every resource it serves inside an Any. */
export const ENVOY_PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];

/** proto-loader's options for the Envoy protos: snake case, enums as names, Any in JSON form. */
export const ENVOY_PROTO_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  json: true,
};

/** One endpoint in {@link xdsEndpoints}. */
export interface XdsEndpointInput {
  /** `host:port`. */
  readonly address: string;
  /** `health_status`; unset leaves the field out (UNKNOWN). */
  readonly health?: 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';
  /** `load_balancing_weight`. */
  readonly weight?: number;
}

/** One locality in {@link xdsEndpoints}. */
export interface XdsLocalityInput {
  readonly region?: string;
  readonly zone?: string;
  readonly subZone?: string;
  /** The locality's `load_balancing_weight`. */
  readonly weight?: number;
  readonly priority?: number;
  readonly endpoints: readonly XdsEndpointInput[];
}

function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  if (at <= 0)
    throw new Error(`xds stand-in: endpoint address must be host:port, got ${JSON.stringify(address)}`);
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  return { host, port: Number(address.slice(at + 1)) };
}

/**
 * A Listener for `name` whose HttpConnectionManager gets its routes by RDS
 * (over ADS) from the RouteConfiguration `routeName`.
 *
 * @example
 * ```ts
 * xds.set('listener', 'orders', xdsListener('orders', 'orders-routes'));
 * ```
 */
export function xdsListener(name: string, routeName: string): XdsResource {
  return {
    name,
    api_listener: {
      api_listener: {
        '@type': HCM_TYPE,
        rds: { route_config_name: routeName, config_source: { ads: {}, resource_api_version: 'V3' } },
        http_filters: [{ name: 'router', typed_config: { '@type': ROUTER_TYPE } }],
      },
    },
  };
}

/**
 * A RouteConfiguration `name` with one virtual host for every domain and
 * one route (prefix `""`) to `cluster`, or split by weight across clusters.
 *
 * @example
 * ```ts
 * xds.set('route', 'orders-routes', xdsRoute('orders-routes', 'orders-cluster'));
 * xds.set('route', 'orders-routes', xdsRoute('orders-routes', { blue: 90, green: 10 }));
 * ```
 */
export function xdsRoute(name: string, cluster: string | Readonly<Record<string, number>>): XdsResource {
  const action =
    typeof cluster === 'string'
      ? { cluster }
      : {
          weighted_clusters: {
            clusters: Object.entries(cluster).map(([c, w]) => ({ name: c, weight: { value: w } })),
          },
        };
  return {
    name,
    virtual_hosts: [
      { name: `${name}-vh`, domains: ['*'], routes: [{ match: { prefix: '' }, route: action }] },
    ],
  };
}

/**
 * A Cluster `name` of type EDS whose endpoints come over ADS under
 * `serviceName` (the cluster's own name when unset), round robin.
 *
 * @example
 * ```ts
 * xds.set('cluster', 'orders-cluster', xdsCluster('orders-cluster'));
 * ```
 */
export function xdsCluster(name: string, serviceName?: string): XdsResource {
  return {
    name,
    type: 'EDS',
    eds_cluster_config: {
      eds_config: { ads: {}, resource_api_version: 'V3' },
      ...(serviceName === undefined ? {} : { service_name: serviceName }),
    },
    lb_policy: 'ROUND_ROBIN',
  };
}

/**
 * A ClusterLoadAssignment `name` with the given localities.
 *
 * @example
 * ```ts
 * xds.set('endpoints', 'orders-cluster', xdsEndpoints('orders-cluster', [
 *   { zone: 'a', weight: 1, endpoints: [{ address: '127.0.0.6:50051', health: 'HEALTHY' }] },
 * ]));
 * ```
 */
export function xdsEndpoints(name: string, localities: readonly XdsLocalityInput[]): XdsResource {
  return {
    cluster_name: name,
    endpoints: localities.map((l) => ({
      locality: {
        ...(l.region === undefined ? {} : { region: l.region }),
        ...(l.zone === undefined ? {} : { zone: l.zone }),
        ...(l.subZone === undefined ? {} : { sub_zone: l.subZone }),
      },
      load_balancing_weight: { value: l.weight ?? 1 },
      ...(l.priority === undefined ? {} : { priority: l.priority }),
      lb_endpoints: l.endpoints.map((e) => {
        const { host, port } = splitHostPort(e.address);
        return {
          endpoint: { address: { socket_address: { address: host, port_value: port } } },
          ...(e.health === undefined ? {} : { health_status: e.health }),
          ...(e.weight === undefined ? {} : { load_balancing_weight: { value: e.weight } }),
        };
      }),
    })),
  };
}

/** A request the stand-in received that acknowledged or rejected a response. */
export interface XdsAck {
  readonly typeUrl: string;
  /** The version the client now holds (the last it accepted, on a NACK). */
  readonly version: string;
  readonly nonce: string;
  readonly resourceNames: readonly string[];
  /** The NACK's `error_detail.message`; undefined on an ACK. */
  readonly error?: string;
  /** The node id the stream's first request named. */
  readonly node: string;
}

/** The decoded fields of a DiscoveryRequest the stand-in reads. */
interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

interface StreamState {
  readonly call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>;
  node: string;
  /** Per type URL: the names subscribed, the version and nonce last sent. */
  readonly types: Map<string, { names: string[]; sentVersion: number; nonce: string }>;
}

/** Options of {@link startXdsServer}. */
export interface XdsServerOptions {
  /** The loopback address to listen on; 127.0.0.1 by default. */
  readonly host?: string;
}

/** The handle of a running stand-in; see {@link startXdsServer}. */
export interface XdsServer {
  /** `host:port` the server listens on. */
  readonly address: string;
  /** Sets (adds or replaces) a resource and pushes the change to subscribed streams. */
  set(kind: XdsKind, name: string, resource: XdsResource): void;
  /** Removes a resource and pushes the change. */
  remove(kind: XdsKind, name: string): void;
  /**
   * The whole chain for `name`: a Listener `name` → RouteConfiguration
   * `name-route` → Cluster `name-cluster` (EDS) → ClusterLoadAssignment
   * `name-cluster` with `localities`. Calling it again replaces the
   * endpoints (and the rest, unchanged, without a version bump of their types).
   */
  serve(name: string, localities: readonly XdsLocalityInput[]): void;
  /** The resource names subscribed by the open streams, per kind. */
  subscribed(kind: XdsKind): string[];
  /** Every ACK and NACK received so far, in order. */
  readonly acks: readonly XdsAck[];
  /** The NACKs among {@link XdsServer.acks}. */
  nacks(): XdsAck[];
  /** The number of ADS streams opened so far. */
  readonly streamsOpened: number;
  /** The number of ADS streams open now. */
  readonly streamsOpen: number;
  /** Ends every open stream with UNAVAILABLE; clients reconnect. */
  dropStreams(): void;
  /** Stops listening and drops every stream; resources are kept. */
  stop(): Promise<void>;
  /** Listens again on the same address after {@link XdsServer.stop}. */
  start(): Promise<void>;
  /** A bootstrap (JSON text) naming this server, for `GRPC_XDS_BOOTSTRAP_CONFIG` or an option. */
  bootstrap(node?: { id?: string; zone?: string }): string;
  /** Stops the server for good. */
  close(): Promise<void>;
}

let loaded: grpc.ServiceDefinition | undefined;
/** The ADS service definition, loaded once per process (the protos take a while to parse). */
function adsService(): grpc.ServiceDefinition {
  loaded ??= protoLoader.loadSync(ENVOY_PROTO_FILES, {
    ...ENVOY_PROTO_OPTIONS,
    includeDirs: envoyProtoDirs(),
  })['envoy.service.discovery.v3.AggregatedDiscoveryService'] as grpc.ServiceDefinition;
  return loaded;
}

/**
 * Starts a stand-in ADS management server on loopback.
 *
 * @example
 * ```ts
 * const xds = await startXdsServer({ host: '127.0.0.5' });
 * xds.serve('orders', [{ endpoints: [{ address: '127.0.0.6:50051' }] }]);
 * ```
 */
export async function startXdsServer(options: XdsServerOptions = {}): Promise<XdsServer> {
  const host = options.host ?? '127.0.0.1';
  const resources = new Map<string, Map<string, XdsResource>>(
    Object.values(XDS_TYPE).map((t) => [t, new Map<string, XdsResource>()]),
  );
  const versions = new Map<string, number>(Object.values(XDS_TYPE).map((t) => [t, 0]));
  const streams = new Set<StreamState>();
  const acks: XdsAck[] = [];
  let nonces = 0;
  let opened = 0;
  let server: grpc.Server | undefined;
  let port = 0;

  const respond = (s: StreamState, typeUrl: string) => {
    const sub = s.types.get(typeUrl);
    if (sub === undefined) return;
    const store = resources.get(typeUrl);
    if (store === undefined) return; // a type the stand-in does not serve: no answer
    const version = versions.get(typeUrl) ?? 0;
    const chosen =
      sub.names.length === 0
        ? [...store.values()]
        : sub.names.flatMap((n) => (store.has(n) ? [store.get(n)] : []));
    sub.sentVersion = version;
    sub.nonce = String(++nonces);
    s.call.write({
      version_info: String(version),
      type_url: typeUrl,
      nonce: sub.nonce,
      resources: chosen.map((r) => ({ '@type': typeUrl, ...r })),
    });
  };

  const changed = (typeUrl: string) => {
    versions.set(typeUrl, (versions.get(typeUrl) ?? 0) + 1);
    for (const s of streams) if (s.types.has(typeUrl)) respond(s, typeUrl);
  };

  const handler = (call: grpc.ServerDuplexStream<DiscoveryRequest, unknown>) => {
    opened++;
    const s: StreamState = { call, node: '', types: new Map() };
    streams.add(s);
    const gone = () => streams.delete(s);
    call.on('error', gone);
    call.on('close', gone);
    call.on('end', () => {
      gone();
      call.end();
    });
    call.on('data', (req: DiscoveryRequest) => {
      if (req.node?.id !== undefined && s.node === '') s.node = req.node.id;
      const typeUrl = req.type_url ?? '';
      const names = [...(req.resource_names ?? [])].sort();
      const prev = s.types.get(typeUrl);
      if (prev !== undefined && req.response_nonce !== undefined && req.response_nonce !== '') {
        if (req.response_nonce !== prev.nonce) return; // stale: answers an older response
        acks.push({
          typeUrl,
          version: req.version_info ?? '',
          nonce: req.response_nonce,
          resourceNames: names,
          node: s.node,
          ...(req.error_detail === undefined || req.error_detail === null
            ? {}
            : { error: req.error_detail.message ?? '' }),
        });
      }
      const sameNames = prev !== undefined && prev.names.join('\n') === names.join('\n');
      const entry = prev ?? { names, sentVersion: -1, nonce: '' };
      entry.names = names;
      s.types.set(typeUrl, entry);
      if (!sameNames || entry.sentVersion !== (versions.get(typeUrl) ?? 0)) respond(s, typeUrl);
    });
  };

  const listen = async () => {
    const srv = new grpc.Server();
    srv.addService(adsService(), { StreamAggregatedResources: handler });
    port = await new Promise<number>((resolve, reject) =>
      srv.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    server = srv;
  };

  const dropAll = () => {
    for (const s of [...streams]) {
      streams.delete(s);
      // grpc-js answers an 'error' on a server stream with that error's code as the call's status
      s.call.emit(
        'error',
        Object.assign(new Error('the stand-in dropped the stream'), { code: grpc.status.UNAVAILABLE }),
      );
    }
  };

  const stop = async () => {
    const srv = server;
    server = undefined;
    dropAll();
    if (srv !== undefined) srv.forceShutdown();
  };

  await listen();

  const store = (kind: XdsKind) => resources.get(XDS_TYPE[kind]) as Map<string, XdsResource>;
  const hostPort = () => `${host.includes(':') ? `[${host}]` : host}:${port}`;

  const api: XdsServer = {
    get address() {
      return hostPort();
    },
    set(kind, name, resource) {
      const m = store(kind);
      if (JSON.stringify(m.get(name)) === JSON.stringify(resource)) return;
      m.set(name, resource);
      changed(XDS_TYPE[kind]);
    },
    remove(kind, name) {
      if (store(kind).delete(name)) changed(XDS_TYPE[kind]);
    },
    serve(name, localities) {
      const cluster = `${name}-cluster`;
      api.set('listener', name, xdsListener(name, `${name}-route`));
      api.set('route', `${name}-route`, xdsRoute(`${name}-route`, cluster));
      api.set('cluster', cluster, xdsCluster(cluster));
      api.set('endpoints', cluster, xdsEndpoints(cluster, localities));
    },
    subscribed(kind) {
      const names = new Set<string>();
      for (const s of streams) for (const n of s.types.get(XDS_TYPE[kind])?.names ?? []) names.add(n);
      return [...names].sort();
    },
    acks,
    nacks: () => acks.filter((a) => a.error !== undefined),
    get streamsOpened() {
      return opened;
    },
    get streamsOpen() {
      return streams.size;
    },
    dropStreams: dropAll,
    stop,
    async start() {
      if (server === undefined) await listen();
    },
    bootstrap(node = {}) {
      return JSON.stringify({
        xds_servers: [
          { server_uri: hostPort(), channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
        ],
        node: {
          id: node.id ?? 'grpc-tower-test',
          ...(node.zone === undefined ? {} : { locality: { zone: node.zone } }),
        },
      });
    },
    close: stop,
  };
  return api;
}
