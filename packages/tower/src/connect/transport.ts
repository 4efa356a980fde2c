/**
 * `towerTransport`: a Connect-ES `Transport` whose calls go through the
 * grpc-tower stack `towerChannel` builds (the same recipe, target syntax
 * and options), so a `createClient(Service, transport)` client is balanced
 * per call across every server behind a name instead of keeping one
 * HTTP/2 session to one of them.
 *
 * @module
 */
import { isIP } from 'node:net';
import type { Interceptor, Transport } from '@connectrpc/connect';
import type { Compression } from '@connectrpc/connect/protocol';
import { createTransport as createConnectTransport } from '@connectrpc/connect/protocol-connect';
import type { ChannelOptions } from '@grpc/grpc-js';
import {
  type CallContext,
  ClosedError,
  type CloseOptions,
  ConfigError,
  type Lifecycle,
  type Readiness,
  type Service,
  formatAddress,
} from '@grpc-tower/core';
import { type OptionChecks, ReplayBudget, TIMER_RULE, optionChecks } from '@grpc-tower/core/internal';
import {
  type Http2EndpointOptions,
  type Http2Request,
  type Http2Response,
  http2Endpoint,
  httpProtocol,
} from '@grpc-tower/core/http2';
import { type HealthCheckOptions, type HttpHealthCheckOptions, httpHealthChecked } from '@grpc-tower/health';
import { type HttpRetryPolicy, type RetryPolicy, httpRetry } from '@grpc-tower/retry';
import type { Observable } from 'rxjs';
import { type TowerOptions, buildGrpcStack, sourceOf } from '../channel.js';
import { type RecipeOptions, type TowerInstrumentation, buildStack } from '../recipe.js';
import { type Target, parseTarget } from '../target.js';
import { type BinaryOptions, type JsonOptions, grpcOverStack } from './grpc.js';
import { connectUnaryRetry, http2Client } from './http.js';
import { type TowerTransportTls, credentialsOf } from './tls.js';

const WHERE = 'towerTransport';

/**
 * Options of {@link towerTransport}: `towerChannel`'s (discovery, health,
 * outlier detection, balancer, retry with its budget, `timeoutMs`,
 * telemetry, layers…), Connect-ES's own (`interceptors`,
 * `defaultTimeoutMs`, serialization options), and `tls`.
 *
 * @example
 * ```ts
 * const options: TowerTransportOptions = {
 *   tls: { ca: readFileSync('ca.pem') },
 *   interceptors: [logger],
 *   retry: { maxAttempts: 3 },
 * };
 * ```
 */
export interface TowerTransportOptions
  extends Omit<TowerOptions, 'services' | 'health' | 'retry' | 'telemetry'> {
  /**
   * TLS options ({@link TowerTransportTls}; `{}` trusts the system's
   * certificate authorities), or `false` to choose plaintext (h2c).
   * Required: a transport never falls back to plaintext by default.
   */
  readonly tls: TowerTransportTls | false;
  /**
   * The wire protocol. `'grpc'` (the default): gRPC over HTTP/2, as
   * Connect-ES's `createGrpcTransport` speaks it, over grpc-tower's native
   * gRPC endpoints. `'connect'`: the Connect protocol, as
   * `createConnectTransport` speaks it (unary calls as HTTP/2 POST, or GET
   * with `useHttpGet`; streams in envelopes ending with the end-of-stream
   * message), over grpc-tower's HTTP/2 endpoints; the JSON codec with
   * `useBinaryFormat: false`, and the compression options.
   */
  readonly protocol?: 'grpc' | 'connect';
  /**
   * Active health checks. gRPC: `grpc.health.v1` options (on by default,
   * as `towerChannel`'s). Connect: HTTP `GET <path>` checks, off unless
   * given a `path` (`{ path: '/healthz' }`). `false`: none.
   */
  readonly health?: HealthCheckOptions | HttpHealthCheckOptions | false;
  /**
   * The retry policy, or `false`. gRPC: gRPC A6's (`RetryPolicy`; default
   * UNAVAILABLE, at most 5 attempts). Connect: `HttpRetryPolicy` (default
   * at most 3 attempts, on 502/503/504 and lost connections). Either way
   * a call is re-sent only before it committed: a unary call at its end
   * (its status, or the end of its Connect response body), a stream at its
   * response headers; Connect calls count as idempotent, as gRPC calls do
   * under A6. Within a fresh `retryBudget()` unless the policy names one.
   */
  readonly retry?: RetryPolicy | HttpRetryPolicy | false;
  /**
   * Metrics and traces of the whole stack: `telemetry()` from
   * `@grpc-tower/telemetry`, as `towerChannel` takes it (its `instrument`
   * for gRPC, `instrumentHttp` for the Connect protocol). Default: none.
   */
  readonly telemetry?: TowerTransportTelemetry;
  /** Connect: `false` sends JSON (`application/json`, `application/connect+json`). Default `true`, binary. */
  readonly useBinaryFormat?: boolean;
  /** Connect: the compressions to accept in responses (connect-node's `compressionGzip`, `compressionBrotli`). Default none. */
  readonly acceptCompression?: Compression[];
  /** Connect: the compression of requests. Default none. */
  readonly sendCompression?: Compression;
  /** Connect: the smallest message compressed, in bytes. Default 1024. */
  readonly compressMinBytes?: number;
  /** Connect: the largest message read, in bytes. Default 4 GiB - 1. */
  readonly readMaxBytes?: number;
  /** Connect: the largest message written, in bytes. Default 4 GiB - 1. */
  readonly writeMaxBytes?: number;
  /** Connect: unary calls of methods marked side-effect free go as GET. Default `false`. */
  readonly useHttpGet?: boolean;
  /** Connect-ES interceptors, run around every call as Connect-ES runs them (the first given is outermost). */
  readonly interceptors?: Interceptor[];
  /** The timeout of a call that gives none, in ms (Connect-ES's `defaultTimeoutMs`). */
  readonly defaultTimeoutMs?: number;
  /** Options of the binary serialization (Connect-ES's `binaryOptions`). */
  readonly binaryOptions?: BinaryOptions;
  /** Options of the JSON serialization (Connect-ES's `jsonOptions`). */
  readonly jsonOptions?: JsonOptions;
}

/**
 * What {@link TowerTransportOptions.telemetry} takes: `@grpc-tower/telemetry`'s
 * `telemetry()` is one. The gRPC protocol calls `instrument`, the Connect
 * protocol `instrumentHttp`.
 *
 * @example
 * ```ts
 * import { telemetry } from '@grpc-tower/telemetry';
 * const t: TowerTransportTelemetry = telemetry();
 * ```
 */
export interface TowerTransportTelemetry {
  /** The telemetry of a gRPC stack, labelled with its canonical target. */
  instrument(target: string): TowerInstrumentation;
  /** The telemetry of an HTTP/2 stack (the Connect protocol), labelled with its canonical target. */
  instrumentHttp?(target: string): TowerInstrumentation<Http2Request, Http2Response>;
}

/**
 * The transport {@link towerTransport} returns: a Connect-ES `Transport`,
 * and the stack's readiness and graceful close.
 *
 * @example
 * ```ts
 * const transport: TowerTransport = towerTransport('dns:///orders.internal:50051', { tls: {} });
 * const orders = createClient(OrderService, transport);
 * await transport.close();
 * ```
 */
export class TowerTransport implements Transport {
  readonly #stack: Lifecycle;
  readonly #target: string;
  readonly #gate: Gate;
  /** Calls a unary method (Connect-ES's `Transport.unary`; `createClient` calls it). */
  readonly unary: Transport['unary'];
  /** Calls a streaming method of any shape (Connect-ES's `Transport.stream`; `createClient` calls it). */
  readonly stream: Transport['stream'];

  /** @internal made by {@link towerTransport}. */
  constructor(stack: Lifecycle, calls: Transport, target: string, gate: Gate) {
    this.#stack = stack;
    this.#gate = gate;
    this.unary = calls.unary;
    this.stream = calls.stream;
    this.#target = target;
  }

  /** The target's canonical name. */
  get target(): string {
    return this.#target;
  }

  /** The balancer's readiness: `ready` while some endpoint is. */
  get readiness(): Readiness {
    return this.#stack.readiness;
  }

  /** The readiness as it changes. */
  get readiness$(): Observable<Readiness> {
    return this.#stack.readiness$;
  }

  /**
   * Closes gracefully: new calls fail UNAVAILABLE at once, the calls in
   * flight may go on for `graceMs` (default the `closeGraceMs` option, 30 s),
   * then everything the stack holds (connections, discovery, health watches,
   * timers) is released; resolves when it is.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => void transport.close({ graceMs: 10_000 }));
   * ```
   */
  close(options?: CloseOptions): Promise<void> {
    this.#gate.refusal ??= `towerTransport ${this.#target} is closed`;
    return this.#stack.close(options);
  }
}

/** The authority of the `url` Connect-ES's interceptors see. */
function authorityOf(target: Target, authority: string | undefined): string {
  if (authority !== undefined) return authority;
  switch (target.scheme) {
    case 'dns':
      return formatAddress(target.host, target.port);
    case 'ipv4':
    case 'ipv6':
      return target.addresses[0] ?? target.canonical;
    case 'etcd':
      return encodeURIComponent(target.prefix);
    case 'xds':
      return target.name;
  }
}

/**
 * A Connect-ES `Transport` (2.x) through the grpc-tower stack: the same
 * target names (`dns:///orders.internal:50051`, `ipv4:10.0.0.7:50051,…`,
 * `etcd://…`, `xds:///…`) and options as `towerChannel`, and the same
 * stack: discovery, `grpc.health.v1` health checks, outlier detection, P2C
 * with PeakEWMA, gRPC A6 retries within a budget, the deadline, telemetry.
 * Calls speak gRPC over one HTTP/2 connection per discovered server
 * (grpc-tower's native transport). Connect-ES's semantics are kept:
 * `ConnectError` with its code, metadata and details; `timeoutMs` and
 * `signal`; header and trailer callbacks; interceptors; every streaming
 * shape. Errors of the stack name the endpoint in their metadata
 * (`grpc-tower-endpoint`).
 *
 * Moving from Connect-ES's own transport is one line: the client is
 * created as before.
 *
 * Throws `InvalidTargetError` for a target it cannot use and `ConfigError`
 * for a bad option, naming it.
 *
 * @example
 * ```ts
 * import { createClient } from '@connectrpc/connect';
 * import { towerTransport } from 'grpc-tower/connect';
 *
 * // before: createGrpcTransport({ baseUrl: 'https://orders.internal:50051' })
 * const transport = towerTransport('dns:///orders.internal:50051', { tls: {} });
 * const orders = createClient(OrderService, transport);
 * const order = await orders.getOrder({ id: 7 }, { timeoutMs: 2_000 });
 * ```
 */
export function towerTransport(target: string, options: TowerTransportOptions): TowerTransport {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(
      WHERE,
      'options',
      options,
      'an object with tls (TLS options, or false for plaintext)',
    );
  }
  const {
    tls: tlsOptions,
    protocol,
    interceptors,
    defaultTimeoutMs,
    binaryOptions,
    jsonOptions,
    ...tower
  } = options;
  const check = optionChecks(WHERE);
  if (tlsOptions === undefined) {
    throw check.error(
      'tls',
      tlsOptions,
      "Node's TLS options ({ ca, cert, key, servername… }; {} for the system's CAs), or false to choose plaintext",
    );
  }
  if (
    interceptors !== undefined &&
    (!Array.isArray(interceptors) || interceptors.some((i) => typeof i !== 'function'))
  ) {
    throw check.error('interceptors', interceptors, 'an array of Connect-ES interceptors (functions)');
  }
  if (defaultTimeoutMs !== undefined) check.number('defaultTimeoutMs', defaultTimeoutMs, TIMER_RULE);
  if (protocol === 'connect') {
    const { useBinaryFormat, acceptCompression, sendCompression, useHttpGet } = tower;
    const { compressMinBytes, readMaxBytes, writeMaxBytes } = tower;
    return connectProtocol(check, target, tlsOptions, {
      ...tower,
      baseUrl: '',
      httpClient: undefined as never,
      interceptors: interceptors ?? [],
      useBinaryFormat: useBinaryFormat ?? true,
      acceptCompression: acceptCompression ?? [],
      sendCompression: sendCompression ?? null,
      compressMinBytes: check.number('compressMinBytes', compressMinBytes, { min: 0 }, 1024),
      readMaxBytes: check.number('readMaxBytes', readMaxBytes, { min: 1 }, 0xffffffff),
      writeMaxBytes: check.number('writeMaxBytes', writeMaxBytes, { min: 1 }, 0xffffffff),
      useHttpGet: useHttpGet ?? false,
      ...(binaryOptions === undefined ? {} : { binaryOptions }),
      ...(jsonOptions === undefined ? {} : { jsonOptions }),
      ...((defaultTimeoutMs ?? tower.timeoutMs) === undefined
        ? {}
        : { defaultTimeoutMs: defaultTimeoutMs ?? tower.timeoutMs }),
    });
  }
  if (protocol !== undefined && protocol !== 'grpc')
    throw check.error('protocol', protocol, "'grpc' or 'connect'");
  for (const name of CONNECT_ONLY) {
    const value = options[name];
    if (value !== undefined && !(name === 'useBinaryFormat' && value === true)) {
      throw check.error(
        name,
        value,
        "no such option with protocol 'grpc' (the Connect protocol's; gRPC messages are binary, and the gRPC " +
          "endpoints compress as channelOptions['grpc.default_compression_algorithm'] says)",
      );
    }
  }
  const creds = credentialsOf(WHERE, tlsOptions);
  const servername = tlsOptions === false ? undefined : tlsOptions.servername;
  const channelOptions: ChannelOptions | undefined =
    servername === undefined
      ? tower.channelOptions
      : { ...tower.channelOptions, 'grpc.ssl_target_name_override': servername };
  const perCallBytes = tower.replay?.perCallBytes ?? 1024 * 1024;
  const budget = new ReplayBudget(tower.replay?.perChannelBytes ?? 16 * 1024 * 1024);
  const gate: Gate = { refusal: undefined };
  return buildGrpcStack(
    WHERE,
    target,
    creds,
    {
      ...(tower as TowerOptions),
      ...(channelOptions === undefined ? {} : { channelOptions }),
    } as TowerOptions,
    ({ stack }, parsed) => {
      const calls = grpcOverStack({
        call: gated(gate, stack),
        replay: { perCallBytes, budget },
        interceptors: interceptors ?? [],
        baseUrl: baseUrlOf(tlsOptions, parsed, tower.authority),
        defaultTimeoutMs,
        binaryOptions,
        jsonOptions,
      });
      return new TowerTransport(stack, calls, parsed.canonical, gate);
    },
  );
}

/** Set by `close()`: new calls are refused with it, naming the transport. */
interface Gate {
  refusal: string | undefined;
}

/** The stack's call, refused once the transport is closed (UNAVAILABLE, as the channel's). */
function gated<Req, Res>(gate: Gate, stack: Service<Req, Res>): (req: Req, ctx: CallContext) => Promise<Res> {
  return (req, ctx) =>
    gate.refusal === undefined ? stack.call(req, ctx) : Promise.reject(new ClosedError(gate.refusal));
}

/** The `url` Connect-ES's interceptors see: the scheme and the target's authority. */
function baseUrlOf(
  tlsOptions: TowerTransportTls | false,
  parsed: Target,
  authority: string | undefined,
): string {
  return `${tlsOptions === false ? 'http' : 'https'}://${authorityOf(parsed, authority)}`;
}

/** The options of Connect-ES's Connect transport, with the stack's. */
type ConnectProtocolOptions = Omit<TowerTransportOptions, 'tls' | 'protocol' | keyof ConnectOnly> &
  Parameters<typeof createConnectTransport>[0];

/** The options only the Connect protocol takes. */
const CONNECT_ONLY = [
  'useBinaryFormat',
  'acceptCompression',
  'sendCompression',
  'compressMinBytes',
  'readMaxBytes',
  'writeMaxBytes',
  'useHttpGet',
] as const;

type ConnectOnly = Pick<TowerTransportOptions, (typeof CONNECT_ONLY)[number]>;

/**
 * The Connect protocol: Connect-ES's own Connect transport over an HTTP/2
 * stack built by the recipe (HTTP/2 endpoints with Node's TLS options,
 * HTTP health checks when given a path, HTTP outcomes for outlier
 * detection, `httpRetry`).
 */
function connectProtocol(
  check: OptionChecks,
  target: string,
  tlsOptions: TowerTransportTls | false,
  options: ConnectProtocolOptions,
): TowerTransport {
  const parsed = parseTarget(target);
  for (const name of ['channelOptions', 'transport', 'replay'] as const) {
    if (options[name] !== undefined) {
      throw check.error(name, options[name], "no such option with protocol 'connect' (gRPC endpoints' only)");
    }
  }
  const health: unknown = options.health;
  if (health !== undefined && health !== false && typeof (health as { path?: unknown })?.path !== 'string') {
    throw check.error(
      'health',
      health,
      "with protocol 'connect', HTTP health check options with a path ({ path: '/healthz' }), or false",
    );
  }
  // checked as for gRPC: Node's TLS options, or false
  credentialsOf(WHERE, tlsOptions);
  if (options.closeGraceMs !== undefined) check.number('closeGraceMs', options.closeGraceMs, TIMER_RULE);
  const authority =
    options.authority ?? (parsed.scheme === 'dns' && isIP(parsed.host) === 0 ? parsed.host : undefined);
  const base: Http2EndpointOptions = {
    scheme: tlsOptions === false ? 'http' : 'https',
    ...(authority === undefined ? {} : { authority }),
    ...(tlsOptions === false ? {} : { connectOptions: tlsOptions }),
    ...(options.closeGraceMs === undefined ? {} : { closeGraceMs: options.closeGraceMs }),
  };
  const { baseUrl: _baseUrl, httpClient: _httpClient, ...connect } = options;
  const gate: Gate = { refusal: undefined };
  return buildStack(
    {
      where: WHERE,
      target: parsed.canonical,
      // the address's weight, zone and hints travel on the insert `connect` hands on
      endpoint: (a) => http2Endpoint(a.address, base),
      // HTTP has no standard health path: checked only when given one
      health: { make: httpHealthChecked, byDefault: undefined },
      // Connect-ES's own deadline (defaultTimeoutMs, timeoutMs) covers each call with its body
      timeoutMs: undefined,
      protocol: httpProtocol(),
      retry: (policy: HttpRetryPolicy, protocol) => {
        const own = policy.shouldRetry;
        // the caller's hook first; where it says nothing, a broken unary response is re-sent
        return httpRetry(
          {
            ...policy,
            shouldRetry: (input) => own?.(input) ?? connectUnaryRetry(input),
          },
          protocol,
        );
      },
      instrument: 'instrumentHttp',
    },
    () => sourceOf(parsed, options),
    // layers, health and retry are the HTTP/2 stack's here (the options' types name the gRPC stack's too)
    options as unknown as RecipeOptions<Http2Request, Http2Response, HttpHealthCheckOptions, HttpRetryPolicy>,
    ({ stack }) => {
      const calls = createConnectTransport({
        ...connect,
        baseUrl: baseUrlOf(tlsOptions, parsed, options.authority),
        httpClient: http2Client(gated(gate, stack), 1024 * 1024),
      });
      return new TowerTransport(stack, calls, parsed.canonical, gate);
    },
  );
}
