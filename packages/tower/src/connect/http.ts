/**
 * The Connect protocol over a grpc-tower HTTP/2 stack: Connect-ES's own
 * Connect transport (`createTransport` of `@connectrpc/connect/protocol-connect`:
 * unary POST or GET, streaming envelopes and the end-of-stream message,
 * the JSON and binary codecs, compression) sends each request through
 * {@link http2Client}, which hands it to the stack as an `Http2Request`
 * (so discovery, health, outlier detection, P2C and HTTP retries see it)
 * and gives back the response with its body as it arrives.
 *
 * @module
 */
import type * as http2 from 'node:http2';
import type { Readable } from 'node:stream';
import type { UniversalClientFn } from '@connectrpc/connect/protocol';
import { type CallContext, newContext } from '@grpc-tower/core';
import { type Http2Request, Http2RequestError, type Http2Response, http2Body } from '@grpc-tower/core/http2';
import type { RetryPredicate } from '@grpc-tower/retry';
import { connectErrorOf } from './headers.js';

/** Headers of a node:http2 header block as Fetch `Headers`, without the pseudo-headers. */
function headersOf(block: http2.IncomingHttpHeaders, target = new Headers()): Headers {
  for (const [key, value] of Object.entries(block)) {
    if (key.startsWith(':') || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) target.append(key, v);
    else target.append(key, String(value));
  }
  return target;
}

/**
 * Whether `req` is a unary call of the Connect protocol (a GET, or a POST
 * of `application/proto` or `application/json`; streams are
 * `application/connect+…`): its response is read whole before the call
 * returns.
 */
export function isConnectUnary(req: Http2Request): boolean {
  if (req.method === 'GET') return true;
  const type = req.headers?.['content-type'];
  return typeof type === 'string' && !type.startsWith('application/connect+');
}

/**
 * The Connect protocol's addition to HTTP's retry rules: a unary call whose
 * response broke after its headers (the server gone before the body's end)
 * is re-sent, since nothing of it reached the caller, as a gRPC unary call
 * is before its status; any other failure keeps HTTP's verdict.
 *
 * @example
 * ```ts
 * const layer = httpRetry({ shouldRetry: connectUnaryRetry });
 * ```
 */
export const connectUnaryRetry: RetryPredicate<Http2Request> = ({ error, request }) =>
  error instanceof Http2RequestError && error.afterHeaders && isConnectUnary(request) ? true : undefined;

/** A unary response, read whole: its body as one chunk, its trailers into `trailer`. */
async function* wholeBodyOf(res: Http2Response, trailer: Headers): AsyncGenerator<Uint8Array> {
  if (res.body.length > 0) yield res.body;
  headersOf(await res.trailers, trailer);
}

/** The body as it arrives, then the trailers into `trailer`; the context released at the end. */
async function* bodyOf(
  res: Http2Response,
  trailer: Headers,
  release: () => void,
): AsyncGenerator<Uint8Array> {
  try {
    const stream = res.stream as Readable;
    for await (const chunk of stream) yield chunk as Buffer;
    headersOf(await res.trailers, trailer);
  } catch (err) {
    throw connectErrorOf(err);
  } finally {
    res.cancel?.();
    release();
  }
}

/**
 * A Connect-ES `UniversalClientFn` over `call`: each request goes to the
 * stack with its body replayable up to `replayBytes` and marked
 * idempotent, so the retry layer re-sends it, as gRPC's A6 does a gRPC
 * call, when it failed before it committed (a lost connection, a 503
 * UNAVAILABLE); a unary call commits when its response has ended (read
 * whole, with {@link connectUnaryRetry} in the retry policy), a stream at
 * its response headers. Connect-ES's `signal` (cancel, deadline, the
 * call's end) ends it.
 *
 * @example
 * ```ts
 * const transport = createTransport({ httpClient: http2Client((r, c) => stack.call(r, c), 1 << 20), ... });
 * ```
 */
export function http2Client(
  call: (req: Http2Request, ctx: CallContext) => Promise<Http2Response>,
  replayBytes: number,
): UniversalClientFn {
  return async (request) => {
    const url = new URL(request.url);
    const headers: http2.OutgoingHttpHeaders = {};
    request.header.forEach((value, key) => {
      headers[key] = value;
    });
    const scope = newContext(request.signal === undefined ? {} : { signal: request.signal });
    const req: Http2Request = {
      method: request.method,
      path: `${url.pathname}${url.search}`,
      headers,
      ...(request.body === undefined ? {} : { body: http2Body(request.body, { replayBytes }) }),
      idempotent: true,
    };
    const unary = isConnectUnary(req);
    let res: Http2Response;
    try {
      res = await call({ ...req, response: unary ? 'buffer' : 'stream' }, scope.context);
    } catch (err) {
      scope.release();
      throw connectErrorOf(err);
    }
    const trailer = new Headers();
    if (unary) scope.release();
    return {
      status: res.status,
      header: headersOf(res.headers),
      body: unary ? wholeBodyOf(res, trailer) : bodyOf(res, trailer, () => scope.release()),
      trailer,
    };
  };
}
