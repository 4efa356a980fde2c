/**
 * The native gRPC endpoint: gRPC spoken straight over one
 * {@link Http2Connection}, without a grpc-js `Channel` underneath. It keeps
 * the contract of `grpcEndpoint` (the same `GrpcRequest` in, the same
 * `GrpcResponse` out, the same commit points, deadlines through the call's
 * context and the `grpc-timeout` header, the replay buffer read once per
 * attempt), and adds what a grpc-js channel cannot say: every failure below
 * gRPC carries its {@link Delivery} (not sent, refused, beyond a GOAWAY,
 * lost after sending), and the connection's state changes and GOAWAYs are
 * events.
 *
 * A stream that never reached the server application (not sent, refused,
 * beyond a GOAWAY) is opened again at once on this endpoint's connection, up
 * to three times, as grpc-js does for a stream it could not start; after
 * that the failure goes up with its delivery, and the retry layer may send
 * it elsewhere.
 *
 * An HTTP CONNECT proxy named by the environment is used as grpc-js uses
 * it (`grpc_proxy`, `https_proxy`, `http_proxy`, `no_grpc_proxy`,
 * `no_proxy`; `grpc.enable_http_proxy: 0` turns it off).
 *
 * Requests are compressed as `grpc.default_compression_algorithm` says
 * (gzip or deflate; `grpc-encoding` on the request, the compressed flag on
 * each message but one written with grpc-js's `NoCompress` flag), until a
 * response's `grpc-accept-encoding` shows the server does not take that
 * encoding. Responses in gzip or deflate are inflated on zlib's thread
 * pool (never on the event loop's thread), each held to the receive limit
 * once inflated, the messages behind one waiting for it, and the status
 * for the last of them.
 *
 * With `grpc.client_idle_timeout_ms` (at least 1 s, as grpc-js), a
 * connection without a call for that long closes its session; the endpoint
 * stays `ready` (a call connects again, and waits for it). Without it the
 * connection stays open: grpc-js's channels idle after 30 minutes by
 * default, but a grpc-js endpoint reconnects at once when they do.
 *
 * @module
 */
import type { Observable } from 'rxjs';
import type { CallContext } from '../../context/index.js';
import type { Readiness } from '../../endpoint.js';
import { ConfigError, GrpcTowerError } from '../../errors.js';
import { Status } from '../../status.js';
import type { ConnectionEvent, ConnectionState, SecureUpgrade } from '../../transport/connection.js';
import { Http2Connection } from '../../transport/connection.js';
import { proxyFor } from '../../transport/proxy.js';
import { secureUpgrade } from '../../transport/tls.js';
import { type GrpcEndpointOptions, checkEndpointOptions } from '../endpoint.js';
import { GrpcEndpointBase } from '../endpoint-base.js';
import type { CallCredentials, ChannelCredentials, Metadata } from '../grpc-js.js';
import { channelCallCredentials } from './call-credentials.js';
import type { GrpcRequest, GrpcResponse } from '../types.js';
import { NativeAttempt } from './attempt.js';
import { type NativeSettings, nativeSettings } from './options.js';
import { RESERVED_HEADERS } from './wire.js';

/**
 * Options of {@link nativeGrpcEndpoint}: those of `grpcEndpoint`; its
 * `channelOptions` are checked against what this transport honours.
 *
 * @example
 * ```ts
 * const options: NativeGrpcEndpointOptions = {
 *   credentials: grpc.credentials.createSsl(ca),
 *   authority: 'orders.internal',
 *   channelOptions: { 'grpc.keepalive_time_ms': 30_000 },
 * };
 * ```
 */
export type NativeGrpcEndpointOptions = GrpcEndpointOptions;

/** An idle connection takes calls (the first one connects again): `ready`. */
const readinessOf = (state: ConnectionState): Readiness => (state === 'idle' ? 'ready' : state);

/**
 * Creates an endpoint that speaks gRPC over its own HTTP/2 connection
 * (see the module documentation): what `grpcEndpoint` makes by default.
 *
 * @example
 * ```ts
 * const endpoint = nativeGrpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * const channel = createChannel(endpoint, { target: 'echo' });
 * ```
 */
export function nativeGrpcEndpoint(address: string, options: NativeGrpcEndpointOptions): NativeGrpcEndpoint {
  return new NativeGrpcEndpoint(address, options);
}

/**
 * The endpoint class behind {@link nativeGrpcEndpoint}.
 *
 * @example
 * ```ts
 * const endpoint = new NativeGrpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * endpoint.events$.subscribe((e) => console.log(e.kind));
 * ```
 */
export class NativeGrpcEndpoint extends GrpcEndpointBase<NativeAttempt> {
  /** @internal */
  readonly settings: NativeSettings;
  /** @internal The `:authority` of its calls. */
  readonly authority: string;
  /** @internal The call credentials composed into its channel credentials, if any. */
  readonly callCredentials: CallCredentials | undefined;
  readonly #connection: Http2Connection;
  /** The compression of its requests: the configured one until the server says it does not take it. */
  #compression: 'gzip' | 'deflate' | undefined;

  /** `where` names the function the user called, for the errors of bad options. */
  constructor(address: string, options: NativeGrpcEndpointOptions, where = 'nativeGrpcEndpoint') {
    const checked = checkEndpointOptions(where, address, options, 'native');
    super(checked, 'connecting');
    const { host: hp, credentials: creds } = checked;
    this.settings = nativeSettings(where, options.channelOptions);
    const compression = this.settings.compression;
    this.#compression = compression === 'identity' ? undefined : compression;
    this.callCredentials = this.secure ? channelCallCredentials(creds) : undefined;
    this.authority = checked.authority ?? this.settings.authority ?? this.address;
    const serverName = checked.authority ?? this.settings.serverNameOverride;
    const s = this.settings;
    this.#connection = new Http2Connection({
      host: hp.host,
      port: hp.port,
      address: this.address,
      secure: this.secure ? upgradeOf(where, creds, hp.host, serverName) : undefined,
      proxy: s.httpProxy ? proxyFor(hp.host) : undefined,
      backoff: {
        ...(s.initialBackoffMs === undefined ? {} : { initialMs: s.initialBackoffMs }),
        ...(s.maxBackoffMs === undefined ? {} : { maxMs: s.maxBackoffMs }),
      },
      keepaliveTimeMs: s.keepaliveTimeMs,
      keepaliveTimeoutMs: s.keepaliveTimeoutMs,
      keepalivePermitWithoutCalls: s.keepalivePermitWithoutCalls,
      maxSessionMemory: s.maxSessionMemory,
      flowControlWindow: s.flowControlWindow,
      idleTimeoutMs: s.idleTimeoutMs,
    });
    this.setReadiness(readinessOf(this.#connection.state));
    this.events$ = this.#connection.events$;
    this.#connection.onState = (state) => this.setReadiness(readinessOf(state));
  }

  /**
   * The connection's state changes (with the reason of a failure), its
   * GOAWAYs and its keepalive timeouts; completes on close.
   */
  readonly events$: Observable<ConnectionEvent>;

  /** Whether the connection is up (a health check may still hold the endpoint out). */
  get connected(): boolean {
    return this.#connection.state === 'ready';
  }

  /** The last connection error, such as `connect ECONNREFUSED 127.0.0.9:50051`; kept after recovery. */
  get lastError(): string | undefined {
    return this.#connection.lastError;
  }

  /** @internal The connection its calls go over. */
  get connection(): Http2Connection {
    return this.#connection;
  }

  /**
   * Starts a connection attempt now, when the endpoint's connection failed
   * and it is waiting out its reconnect backoff (see `Endpoint.reconnect`):
   * resolves when that attempt ends; `undefined` when there is nothing to
   * start (not failed, closing, or an attempt already made in this backoff
   * interval). While the attempt runs, returns its promise.
   */
  reconnect(): Promise<void> | undefined {
    if (this.closing) return undefined;
    return this.#connection.connectNow();
  }

  call(req: GrpcRequest, ctx: CallContext): Promise<GrpcResponse> {
    const refused = this.refusal(req, ctx);
    if (refused !== undefined) return Promise.reject(refused);
    const reserved = reservedKey(req.metadata);
    if (reserved !== undefined) {
      return Promise.reject(
        new GrpcTowerError(
          Status.INTERNAL,
          `metadata "${reserved}" is a header the transport sets itself and cannot be sent as metadata`,
          { endpoint: this.address, delivery: 'not-sent' },
        ),
      );
    }
    return new Promise<GrpcResponse>((resolve, reject) => {
      const attempt = new NativeAttempt(this, req, ctx, resolve, reject);
      this.attempts.add(attempt);
      attempt.begin();
    });
  }

  /** @internal How its requests are compressed (`grpc-encoding`), if they are. */
  get compression(): 'gzip' | 'deflate' | undefined {
    return this.#compression;
  }

  /**
   * @internal A response named the encodings its server takes
   * (`grpc-accept-encoding`): requests go uncompressed from now on when the
   * configured one is not among them, as grpc-js does.
   */
  serverAccepts(header: string): void {
    const compression = this.#compression;
    if (compression === undefined) return;
    if (!header.split(',').some((e) => e.trim() === compression)) this.#compression = undefined;
  }

  /** @internal Closes the connection, once the calls have drained. */
  protected override release(): void {
    this.#connection.close(true);
  }
}

/** The TLS upgrade of `creds`, or a ConfigError naming what grpc-js lacks. */
function upgradeOf(
  where: string,
  creds: ChannelCredentials,
  host: string,
  serverName: string | undefined,
): SecureUpgrade {
  try {
    return secureUpgrade(creds, host, serverName);
  } catch (err) {
    throw new ConfigError(
      where,
      'credentials',
      creds,
      `TLS credentials grpc-js can hand over (${(err as Error).message})`,
    );
  }
}

/** The first metadata key the transport reserves for itself, if any. */
function reservedKey(metadata: Metadata): string | undefined {
  const map = metadata.getMap();
  for (const key in map) if (RESERVED_HEADERS.has(key)) return key;
  return undefined;
}
