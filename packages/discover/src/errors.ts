/**
 * Named errors of the discovery package. Each one is a
 * {@link GrpcTowerError}: it has a gRPC status code, the source that failed
 * and the input that was wrong, so a log line says what broke and where.
 * None of them is ever thrown into a change stream: sources report them on
 * their `events$` stream and keep going.
 *
 * @module
 */
import { GrpcTowerError, Status, type StatusCode } from '@grpc-tower/core';

/**
 * An address that is not `host:port` with a valid host (RFC 1123 name or an
 * IP literal) and a port from 1 to 65535.
 *
 * @example
 * ```ts
 * src.events$.subscribe((e) => {
 *   if (e.type === 'invalid' && e.error instanceof InvalidAddressError) console.warn(e.input);
 * });
 * ```
 */
export class InvalidAddressError extends GrpcTowerError {
  /** The input that was rejected, as given. */
  readonly input: unknown;
  /** The source that saw it, when there is one. */
  readonly source: string | undefined;

  constructor(
    input: unknown,
    reason: string,
    options: { source?: string | undefined; cause?: unknown } = {},
  ) {
    super(
      Status.INVALID_ARGUMENT,
      `${options.source === undefined ? '' : `${options.source}: `}invalid address ${describe(input)}: ${reason}`,
      { cause: options.cause },
    );
    this.input = input;
    this.source = options.source;
  }
}

/**
 * A registry record that cannot be used: a malformed DNS SRV record, an etcd
 * value that is neither an address nor JSON with an `address`.
 *
 * @example
 * ```ts
 * new InvalidRecordError('etcd:/svc/', '/svc/a = "oops"', 'not an address');
 * ```
 */
export class InvalidRecordError extends GrpcTowerError {
  /** The record, as text. */
  readonly input: string;
  /** The source that read it. */
  readonly source: string;

  constructor(source: string, input: string, reason: string, options: { cause?: unknown } = {}) {
    super(Status.INVALID_ARGUMENT, `${source}: invalid record ${input}: ${reason}`, { cause: options.cause });
    this.input = input;
    this.source = source;
  }
}

/**
 * A resolution round failed: the registry could not be reached, or
 * answered with an error. The source keeps its last set and backs off.
 *
 * @example
 * ```ts
 * if (e.type === 'failed' && e.error instanceof ResolveError) metrics.inc(e.error.source);
 * ```
 */
export class ResolveError extends GrpcTowerError {
  /** The source whose round failed. */
  readonly source: string;

  constructor(source: string, message: string, options: { cause?: unknown; code?: StatusCode } = {}) {
    super(options.code ?? Status.UNAVAILABLE, `${source}: ${message}`, { cause: options.cause });
    this.source = source;
  }
}

/**
 * A resolution round took longer than `resolveTimeoutMs`; its answer, if it
 * comes later, is ignored.
 *
 * @example
 * ```ts
 * if (e.type === 'failed' && e.error instanceof ResolveTimeoutError) console.warn(e.error.timeoutMs);
 * ```
 */
export class ResolveTimeoutError extends ResolveError {
  /** The limit that passed. */
  readonly timeoutMs: number;

  constructor(source: string, timeoutMs: number) {
    super(source, `resolve did not finish within ${timeoutMs} ms`, { code: Status.DEADLINE_EXCEEDED });
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A DNS query failed, with node's error code (`ECONNREFUSED`, `ETIMEOUT`,
 * `ESERVFAIL`, `ENOTFOUND`, …), the name and the record type.
 *
 * @example
 * ```ts
 * if (err instanceof DnsResolveError && err.dnsCode === 'ENOTFOUND') console.warn(`${err.hostname} has no records`);
 * ```
 */
export class DnsResolveError extends ResolveError {
  /** The name that was queried. */
  readonly hostname: string;
  /** The record types that were asked for, such as `'A/AAAA'` or `'SRV'`. */
  readonly rrtype: string;
  /** node's DNS error code, such as `'ECONNREFUSED'`. */
  readonly dnsCode: string;

  constructor(source: string, hostname: string, rrtype: string, dnsCode: string, cause?: unknown) {
    super(source, `DNS ${rrtype} query for ${hostname} failed: ${dnsCode}`, {
      cause,
      code: dnsCode === 'ENOTFOUND' || dnsCode === 'ENODATA' ? Status.NOT_FOUND : Status.UNAVAILABLE,
    });
    this.hostname = hostname;
    this.rrtype = rrtype;
    this.dnsCode = dnsCode;
  }
}

/**
 * Closing an endpoint failed: one that {@link connect} made but could not
 * hand on, because the subscription ended while the factory ran. Reported
 * as a `close-failed` event; the endpoint is forgotten either way.
 *
 * @example
 * ```ts
 * if (e.type === 'close-failed') console.warn(e.error.endpoint, e.error.cause);
 * ```
 */
export class EndpointCloseError extends GrpcTowerError {
  /** The discovery key of the endpoint. */
  readonly key: string;

  constructor(key: string, address: string | undefined, cause: unknown) {
    super(Status.INTERNAL, `closing the endpoint for ${key} failed: ${messageOf(cause)}`, {
      endpoint: address,
      cause,
    });
    this.key = key;
  }
}

/**
 * The endpoint factory given to {@link connect} threw for an address; the
 * address is skipped (or, for a replacement, the previous endpoint is kept).
 *
 * @example
 * ```ts
 * if (e.type === 'create-failed') console.warn(e.key, e.error.cause);
 * ```
 */
export class EndpointCreateError extends GrpcTowerError {
  /** The discovery key the endpoint was for. */
  readonly key: string;

  constructor(key: string, cause: unknown) {
    super(Status.INVALID_ARGUMENT, `creating the endpoint for ${key} failed: ${messageOf(cause)}`, {
      endpoint: key,
      cause,
    });
    this.key = key;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Short, printable form of any input, for messages. @internal */
export function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);
  if (value === null || typeof value !== 'object') return String(value);
  try {
    const json = JSON.stringify(value);
    return json.length > 100 ? `${json.slice(0, 100)}…` : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
