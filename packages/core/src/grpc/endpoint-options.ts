/**
 * The options of a gRPC endpoint, and the checks both transports make of
 * them alike.
 *
 * @module
 */
import type { ChannelCredentials, ChannelOptions } from './grpc-js.js';
import { refuseMovedMetadata } from '../endpoint.js';
import { ConfigError } from '../errors.js';
import { type HostPort, formatAddress, parseAddress } from './address.js';

/** Options of {@link grpcEndpoint}. */
export interface GrpcEndpointOptions {
  /**
   * Channel credentials, required: `grpc.credentials.createSsl(...)` for
   * TLS, or `grpc.credentials.createInsecure()` to choose plaintext. They
   * are the ones the calls use: grpc-js ignores a client constructor's
   * credentials when `channelOverride` is set.
   */
  readonly credentials: ChannelCredentials;
  /**
   * The logical host name of the service. Used as `:authority` and, with
   * TLS, as the name the server certificate must match (SNI), which is what
   * an endpoint discovered as an IP address needs.
   */
  readonly authority?: string;
  /** Extra grpc-js channel options (message size limits, keepalive…). */
  readonly channelOptions?: ChannelOptions;
  /** How long `close()` waits for calls in flight before cancelling them; default 30 s. */
  readonly closeGraceMs?: number;
  /**
   * How `grpcEndpoint` speaks gRPC: `'native'` (default), over its own
   * HTTP/2 connection (`NativeGrpcEndpoint`), or `'grpc-js'`, through a
   * grpc-js channel of its own (`GrpcEndpoint`), the way back for what the
   * native transport does not do: a grpc-js channel option it refuses (its
   * error names it), grpc-js's own tracing (`GRPC_TRACE`), or behaviour
   * that must match a plain grpc-js client exactly.
   */
  readonly transport?: GrpcTransport | undefined;
}

/**
 * The two ways an endpoint speaks gRPC (see {@link GrpcEndpointOptions.transport}).
 *
 * @example
 * ```ts
 * const transport: GrpcTransport = process.env.GRPC_TRANSPORT === 'grpc-js' ? 'grpc-js' : 'native';
 * ```
 */
export type GrpcTransport = 'native' | 'grpc-js';

/** What a missing or wrong `credentials` option is told to be. */
const CREDENTIALS_EXPECTED =
  'grpc-js ChannelCredentials: grpc.credentials.createSsl(…) for TLS, ' +
  'or grpc.credentials.createInsecure() to choose plaintext';

/**
 * The options both gRPC endpoints check alike, checked for `where` (the
 * function the user called).
 *
 * @internal
 * @example
 * ```ts
 * const { address, secure } = checkEndpointOptions('grpcEndpoint', '127.0.0.2:50051', options, 'grpc-js');
 * ```
 */
export function checkEndpointOptions(
  where: string,
  address: string,
  options: GrpcEndpointOptions,
  transport: GrpcTransport,
): {
  readonly host: HostPort;
  readonly address: string;
  readonly graceMs: number;
  readonly credentials: ChannelCredentials;
  readonly secure: boolean;
  readonly authority: string | undefined;
} {
  // no options at all: what is missing is the credentials
  if (options === undefined) throw new ConfigError(where, 'credentials', undefined, CREDENTIALS_EXPECTED);
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(where, 'options', options, 'an object');
  }
  const host = parseAddress(address, where);
  refuseMovedMetadata(where, options);
  if (options.transport !== undefined && options.transport !== transport) {
    // the class of one transport, asked for the other
    throw new ConfigError(
      where,
      'transport',
      options.transport,
      `'${transport}' or nothing here (grpcEndpoint makes either transport's endpoint)`,
    );
  }
  const graceMs = options.closeGraceMs ?? 30_000;
  if (!Number.isFinite(graceMs) || graceMs < 0) {
    throw new ConfigError(where, 'closeGraceMs', graceMs, 'a finite number >= 0');
  }
  const credentials = options.credentials;
  if (typeof (credentials as { _isSecure?: unknown } | null | undefined)?._isSecure !== 'function') {
    throw new ConfigError(where, 'credentials', credentials, CREDENTIALS_EXPECTED);
  }
  const authority = options.authority;
  if (authority !== undefined && (typeof authority !== 'string' || authority.length === 0)) {
    throw new ConfigError(where, 'authority', authority, 'a non-empty host name');
  }
  return {
    host,
    address: formatAddress(host.host, host.port),
    graceMs,
    credentials,
    secure: credentials._isSecure(),
    authority,
  };
}
