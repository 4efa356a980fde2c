/**
 * `@grpc-tower/core/http2`: an endpoint for plain `node:http2` requests, so
 * the same layers (discovery, p2c, retry, timeout) serve HTTP/2 clients
 * that are not gRPC. Its `scheme` is required: `'https'` for TLS, or
 * `'http'` to choose cleartext (h2c).
 *
 * @example
 * ```ts
 * import { http2Endpoint } from '@grpc-tower/core/http2';
 * const ep = http2Endpoint('127.0.0.2:8080', { scheme: 'http' }); // cleartext h2c; 'https' for TLS
 * ```
 * @packageDocumentation
 */
export {
  http2Endpoint,
  Http2Endpoint,
  Http2RequestError,
  type Http2EndpointOptions,
  type Http2Request,
  type Http2Response,
} from './endpoint.js';
