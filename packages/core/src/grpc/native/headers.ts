/**
 * The request headers of one native attempt's stream: the call's metadata,
 * gRPC's pseudo-headers and its own (content type, `te`, user agent, the
 * encodings), the deadline as `grpc-timeout` and the attempt's number.
 *
 * @internal
 * @module
 */
import type * as http2 from 'node:http2';
import { PREVIOUS_ATTEMPTS_HEADER, timeoutHeader } from '../endpoint.js';
import type { GrpcRequest } from '../types.js';
import type { NativeGrpcEndpoint } from './endpoint.js';
import { ACCEPT_ENCODING } from './wire.js';

/**
 * The headers of `req` on `endpoint`, whose deadline is `deadline` (ms
 * since the epoch, or infinite) and whose messages go compressed with
 * `compression` when it is set.
 */
export function requestHeaders(
  endpoint: NativeGrpcEndpoint,
  req: GrpcRequest,
  deadline: number,
  compression: 'gzip' | 'deflate' | undefined,
): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = req.metadata.toHttp2Headers();
  headers[':method'] = 'POST';
  headers[':scheme'] = endpoint.secure ? 'https' : 'http';
  headers[':path'] = req.method;
  headers[':authority'] = req.host ?? endpoint.authority;
  headers['content-type'] = 'application/grpc';
  headers.te = 'trailers';
  headers['user-agent'] = endpoint.settings.userAgent;
  headers['grpc-accept-encoding'] = ACCEPT_ENCODING;
  if (compression !== undefined) headers['grpc-encoding'] = compression;
  if (deadline !== Number.POSITIVE_INFINITY) headers['grpc-timeout'] = timeoutHeader(deadline - Date.now());
  if (req.attempt > 0) headers[PREVIOUS_ATTEMPTS_HEADER] = String(req.attempt);
  return headers;
}
