/**
 * What a retry layer asks of an HTTP/2 request before sending it again:
 * whether its body can be sent again ({@link isReplayable}) and whether
 * sending it twice is safe ({@link isIdempotent}, RFC 9110 §9.2.2).
 *
 * @module
 */
import { Http2Body, wasSent } from './body.js';
import type { Http2Request } from './types.js';

/** The methods RFC 9110 §9.2.2 defines as idempotent (TRACE aside). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** The method the endpoint sends `req` with: its own, else GET, or POST with a body. */
export function methodOf(req: Http2Request): string {
  return req.method ?? (req.body === undefined ? 'GET' : 'POST');
}

/**
 * Whether `req` can be sent again: no body, a Buffer or string body, or an
 * {@link Http2Body} that is still replayable; false for a plain stream body
 * (a `Readable` or an `AsyncIterable`) once a call started sending it.
 *
 * @example
 * ```ts
 * if (isReplayable(req) && (err.refused || isIdempotent(req))) return inner.call(req, ctx);
 * ```
 */
export function isReplayable(req: Http2Request): boolean {
  const body = req.body;
  if (body === undefined || typeof body === 'string' || body instanceof Uint8Array) return true;
  if (body instanceof Http2Body) return body.replayable;
  return !wasSent(body);
}

/**
 * Whether `req` is idempotent, so sending it twice has the effect of
 * sending it once: `idempotent: true`, or a method among GET, HEAD,
 * OPTIONS, PUT and DELETE (case-insensitive; without a method, GET, or
 * POST with a body, as the endpoint picks it).
 *
 * @example
 * ```ts
 * isIdempotent({ path: '/items/7' }); // true: GET
 * isIdempotent({ path: '/items', body: '{}' }); // false: POST
 * isIdempotent({ path: '/items', body: '{}', idempotent: true }); // true: marked so
 * ```
 */
export function isIdempotent(req: Http2Request): boolean {
  return req.idempotent === true || IDEMPOTENT.has(methodOf(req).toUpperCase());
}
