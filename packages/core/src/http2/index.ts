/**
 * `@grpc-tower/core/http2`: an endpoint for plain `node:http2` requests, so
 * the same layers (discovery, p2c, retry, timeout) serve HTTP/2 clients
 * that are not gRPC. Its `scheme` is required: `'https'` for TLS, or
 * `'http'` to choose cleartext (h2c).
 *
 * Bodies are buffered whole by default, or streamed both ways: a request
 * body can be a stream (sent once) or an {@link Http2Body} (a stream with a
 * replay buffer, so a retry layer can send it again), and
 * `response: 'stream'` resolves at the response headers with the body as a
 * Readable. {@link isReplayable} and {@link isIdempotent} tell a retry layer
 * whether a request may be sent again.
 *
 * @example
 * ```ts
 * import { http2Body, http2Endpoint } from '@grpc-tower/core/http2';
 * const ep = http2Endpoint('127.0.0.2:8080', { scheme: 'http' }); // cleartext h2c; 'https' for TLS
 * const res = await ep.call({ path: '/files/a.bin', response: 'stream' }, background);
 * await ep.call({ method: 'PUT', path: '/files/b.bin', body: http2Body(fs.createReadStream('b.bin')) }, background);
 * ```
 * @packageDocumentation
 */
export { http2Body, Http2Body } from './body.js';
export {
  http2Endpoint,
  Http2Endpoint,
  Http2RequestError,
  type Http2EndpointOptions,
  type Http2Request,
  type Http2Response,
  type Http2BodySink,
} from './endpoint.js';
export { isIdempotent, isReplayable } from './request.js';
export { httpProtocol, httpOutcome, type HttpProtocolOptions } from './protocol.js';
