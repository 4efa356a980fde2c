/**
 * Between Connect-ES's `Headers` and the grpc-js `Metadata` the gRPC
 * stack carries, and from a gRPC status to the `ConnectError` Connect-ES's
 * own gRPC transport would raise for it.
 *
 * @module
 */
import { Metadata, type StatusObject } from '@grpc/grpc-js';
import { Code, ConnectError } from '@connectrpc/connect';
import { findTrailerError } from '@connectrpc/connect/protocol-grpc';
import { type GrpcTowerError, toGrpcTowerError } from '@grpc-tower/core';
import { ENDPOINT_METADATA_KEY, GrpcStatusError } from '@grpc-tower/core/grpc';

/**
 * The request headers of the gRPC protocol that the native endpoint sets
 * itself (Connect-ES puts them in the request its interceptors see): they
 * are not sent as metadata.
 */
const PROTOCOL_HEADERS: ReadonlySet<string> = new Set([
  'content-type',
  'te',
  'user-agent',
  'grpc-timeout',
  'grpc-encoding',
  'grpc-accept-encoding',
]);

/** A `-bin` header's values: base64, comma-separated when there are several. */
const binaryValues = (value: string): Buffer[] =>
  value.split(',').map((part) => Buffer.from(part.trim(), 'base64'));

/**
 * The request's metadata: every header an interceptor or the caller set,
 * but the protocol's own; a `-bin` header decoded from base64.
 */
export function metadataOf(header: Headers): Metadata {
  const metadata = new Metadata();
  header.forEach((value, key) => {
    if (PROTOCOL_HEADERS.has(key)) return;
    if (key.endsWith('-bin')) {
      for (const bytes of binaryValues(value)) metadata.add(key, bytes);
    } else {
      metadata.add(key, value);
    }
  });
  return metadata;
}

/** Adds `metadata` to `target`: a binary value base64-encoded, as Connect-ES writes one. */
export function addMetadata(target: Headers, metadata: Metadata): Headers {
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) {
      target.append(key, typeof value === 'string' ? value : Buffer.from(value).toString('base64'));
    }
  }
  return target;
}

/** The trailer of a status: its metadata, `grpc-status` and `grpc-message`, as Connect-ES's transport shows it. */
export function statusTrailer(target: Headers, status: StatusObject): Headers {
  addMetadata(target, status.metadata);
  target.set('grpc-status', String(status.code));
  if (status.code !== 0) target.set('grpc-message', encodeURIComponent(status.details));
  return target;
}

/**
 * The `ConnectError` of a failed status: read from a trailer rebuilt from
 * it by Connect-ES's own reader (`findTrailerError`), so code, message,
 * metadata and the details of `grpc-status-details-bin` are what
 * `createGrpcTransport` gives; the response headers are added to its
 * metadata, as Connect-ES adds them.
 */
export function statusError(
  status: StatusObject,
  header: Headers | undefined,
  endpoint: string | undefined,
): ConnectError {
  const trailer = statusTrailer(new Headers(), status);
  if (endpoint !== undefined && !trailer.has(ENDPOINT_METADATA_KEY))
    trailer.set(ENDPOINT_METADATA_KEY, endpoint);
  const err =
    findTrailerError(trailer) ?? new ConnectError('protocol error: missing status', Code.Internal, trailer);
  header?.forEach((value, key) => {
    err.metadata.append(key, value);
  });
  return err;
}

/**
 * A failure of the stack as a `ConnectError`: a server's status as
 * {@link statusError} reads it, any other grpc-tower error (no endpoint
 * ready, a connection lost, the channel closing) with its code and
 * message; either way the metadata names the endpoint
 * (`grpc-tower-endpoint`) when one was involved.
 */
export function connectErrorOf(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const e: GrpcTowerError = toGrpcTowerError(err);
  const out =
    e instanceof GrpcStatusError
      ? statusError({ code: e.code, details: e.details, metadata: e.metadata }, undefined, e.endpoint)
      : new ConnectError(e.message, e.code as number as Code, undefined, undefined, e);
  if (e.endpoint !== undefined && !out.metadata.has(ENDPOINT_METADATA_KEY)) {
    out.metadata.set(ENDPOINT_METADATA_KEY, e.endpoint);
  }
  return out;
}
