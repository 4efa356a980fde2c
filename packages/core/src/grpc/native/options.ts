/**
 * The grpc-js channel options the native gRPC transport reads. Each key is
 * honoured, accepted because it only switches off what this transport does
 * not do anyway, or refused with a {@link ConfigError} that names it and
 * says why: grpc-js ignores keys it does not know, and a setting silently
 * lost is a bug found in production.
 *
 * @internal
 * @module
 */
import { ConfigError } from '../../errors.js';
import { MAX_TIMER_MS } from '../../internal/timers.js';
import type { ChannelOptions } from '../grpc-js.js';

/**
 * What the native transport takes from the channel options.
 *
 * @example
 * ```ts
 * const { maxReceiveBytes } = nativeSettings('nativeGrpcEndpoint', {}); // 4 MiB
 * ```
 */
export interface NativeSettings {
  readonly maxReceiveBytes: number;
  readonly maxSendBytes: number;
  readonly authority: string | undefined;
  readonly serverNameOverride: string | undefined;
  readonly userAgent: string;
  readonly initialBackoffMs: number | undefined;
  readonly maxBackoffMs: number | undefined;
  readonly keepaliveTimeMs: number | undefined;
  readonly keepaliveTimeoutMs: number | undefined;
  readonly keepalivePermitWithoutCalls: boolean;
  readonly maxSessionMemory: number | undefined;
  readonly flowControlWindow: number | undefined;
  /** Whether a proxy from the environment is used (`grpc.enable_http_proxy`, default 1). */
  readonly httpProxy: boolean;
  /** How request messages are compressed (`grpc.default_compression_algorithm`: 0, 1 or 2). */
  readonly compression: Compression;
  /**
   * Close the session after this long without a call, and connect again
   * for the next one (`grpc.client_idle_timeout_ms`); `undefined` keeps it.
   */
  readonly idleTimeoutMs: number | undefined;
}

/**
 * A request compression, by its `grpc-encoding` name.
 *
 * @example
 * ```ts
 * const c: Compression = nativeSettings('nativeGrpcEndpoint', { 'grpc.default_compression_algorithm': 2 }).compression; // 'gzip'
 * ```
 */
export type Compression = 'identity' | 'deflate' | 'gzip';

/** grpc-js's `compressionAlgorithms` numbers, by position. */
const COMPRESSIONS: readonly Compression[] = ['identity', 'deflate', 'gzip'];

/** grpc-js's least idle timeout: a smaller one is raised to it. */
const MIN_IDLE_TIMEOUT_MS = 1_000;

/**
 * The user agent the transport sends after any primary one and before any secondary one.
 *
 * @example
 * ```ts
 * headers['user-agent'] = `app/1 ${NATIVE_USER_AGENT}`;
 * ```
 */
export const NATIVE_USER_AGENT = 'grpc-tower-native/0.1';

const DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024;

/** Keys accepted because they only turn off what this transport never does. */
const NO_OPS: Readonly<Record<string, (value: unknown) => boolean>> = {
  'grpc.enable_channelz': () => true,
  'grpc.use_local_subchannel_pool': () => true,
  'grpc.enable_retries': (v) => v === 0,
  'grpc.per_rpc_retry_buffer_size': () => true,
  'grpc.retry_buffer_size': () => true,
};

/** Why a known grpc-js key is refused. */
const REFUSED: Readonly<Record<string, string>> = {
  'grpc.service_config':
    'grpc-tower applies timeouts and retries in its own layers (a service config would be lost)',
  'grpc.lb_policy_name': 'grpc-tower balances across endpoints itself; each endpoint is one connection',
  'grpc.default_compression_level':
    "a compression level is not applied (grpc-js does not apply it either); zlib's default level is used",
  'grpc.max_concurrent_streams': 'a server option',
  'grpc.max_connection_age_ms': 'a server option',
  'grpc.max_connection_age_grace_ms': 'a server option',
  'grpc.max_connection_idle_ms': 'a server option',
};

const integerIn = (value: unknown, min: number, max: number): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;

/**
 * Reads `channelOptions` for `where` (the function the user called).
 *
 * @example
 * ```ts
 * const settings = nativeSettings('nativeGrpcEndpoint', { 'grpc.keepalive_time_ms': 10_000 });
 * ```
 */
export function nativeSettings(where: string, options: ChannelOptions | undefined): NativeSettings {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new ConfigError(where, 'channelOptions', options, 'an object of grpc-js channel options');
  }
  const o: Record<string, unknown> = options ?? {};
  const bad = (key: string, expected: string): never => {
    throw new ConfigError(where, `channelOptions.${key}`, o[key], expected);
  };
  const ms = (key: string, min = 0): number | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (!integerIn(v, min, MAX_TIMER_MS)) bad(key, `a whole number of ms from ${min} to ${MAX_TIMER_MS}`);
    return v as number;
  };
  const str = (key: string): string | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length === 0) bad(key, 'a non-empty string');
    return v as string;
  };
  const limit = (key: string, fallback: number): number => {
    const v = o[key];
    if (v === undefined || v === -1) return v === -1 ? Number.POSITIVE_INFINITY : fallback;
    if (!integerIn(v, 0, Number.MAX_SAFE_INTEGER)) bad(key, 'a whole number of bytes, or -1 for no limit');
    return v as number;
  };
  const known = new Set([
    'grpc.max_receive_message_length',
    'grpc.max_send_message_length',
    'grpc.default_authority',
    'grpc.ssl_target_name_override',
    'grpc.primary_user_agent',
    'grpc.secondary_user_agent',
    'grpc.initial_reconnect_backoff_ms',
    'grpc.max_reconnect_backoff_ms',
    'grpc.keepalive_time_ms',
    'grpc.keepalive_timeout_ms',
    'grpc.keepalive_permit_without_calls',
    'grpc-node.max_session_memory',
    'grpc-node.flow_control_window',
    'grpc.enable_http_proxy',
    'grpc.default_compression_algorithm',
    'grpc.client_idle_timeout_ms',
  ]);
  for (const [key, value] of Object.entries(o)) {
    if (known.has(key)) continue;
    const noOp = NO_OPS[key];
    if (noOp !== undefined) {
      if (!noOp(value))
        bad(key, '0 (grpc-tower does the retries; grpc-js-style retries cannot be turned on here)');
      continue;
    }
    const why = REFUSED[key];
    bad(
      key,
      `left out: ${why ?? 'not an option the native transport knows (grpc-js would ignore it silently; this transport does not)'}`,
    );
  }
  const primary = str('grpc.primary_user_agent');
  const secondary = str('grpc.secondary_user_agent');
  const userAgent = [primary, NATIVE_USER_AGENT, secondary].filter((p) => p !== undefined).join(' ');
  const keepaliveTime = ms('grpc.keepalive_time_ms', 1);
  const permit = o['grpc.keepalive_permit_without_calls'];
  if (permit !== undefined && permit !== 0 && permit !== 1)
    bad('grpc.keepalive_permit_without_calls', '0 or 1');
  const proxy = o['grpc.enable_http_proxy'];
  if (proxy !== undefined && proxy !== 0 && proxy !== 1) bad('grpc.enable_http_proxy', '0 or 1');
  const memory = o['grpc-node.max_session_memory'];
  if (memory !== undefined && !integerIn(memory, 1, 1 << 20))
    bad('grpc-node.max_session_memory', 'a whole number of MB from 1');
  const window = o['grpc-node.flow_control_window'];
  if (window !== undefined && !integerIn(window, 65_535, 2 ** 31 - 1))
    bad('grpc-node.flow_control_window', 'a whole number of bytes from 65535 to 2147483647');
  const algorithm = o['grpc.default_compression_algorithm'];
  if (algorithm !== undefined && !integerIn(algorithm, 0, COMPRESSIONS.length - 1))
    bad('grpc.default_compression_algorithm', '0 (identity), 1 (deflate) or 2 (gzip)');
  const idle = ms('grpc.client_idle_timeout_ms', 0);
  return {
    compression: COMPRESSIONS[(algorithm as number | undefined) ?? 0] as Compression,
    idleTimeoutMs: idle === undefined ? undefined : Math.max(idle, MIN_IDLE_TIMEOUT_MS),
    maxReceiveBytes: limit('grpc.max_receive_message_length', DEFAULT_MAX_RECEIVE),
    maxSendBytes: limit('grpc.max_send_message_length', Number.POSITIVE_INFINITY),
    authority: str('grpc.default_authority'),
    serverNameOverride: str('grpc.ssl_target_name_override'),
    userAgent,
    initialBackoffMs: ms('grpc.initial_reconnect_backoff_ms', 1),
    maxBackoffMs: ms('grpc.max_reconnect_backoff_ms', 1),
    // grpc-js's "off" for keepalive is its largest value; keep it off
    keepaliveTimeMs: keepaliveTime === MAX_TIMER_MS ? undefined : keepaliveTime,
    keepaliveTimeoutMs: ms('grpc.keepalive_timeout_ms', 1),
    keepalivePermitWithoutCalls: permit === 1,
    maxSessionMemory: memory as number | undefined,
    flowControlWindow: window as number | undefined,
    httpProxy: proxy !== 0,
  };
}
