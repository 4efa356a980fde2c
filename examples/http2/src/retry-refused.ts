// A retry layer for HTTP/2 requests. `@grpc-tower/retry` speaks gRPC (A6
// commit points, status codes, pushback); for plain HTTP/2 the rule is the
// classic one: a request the server never processed (REFUSED_STREAM, or
// caught by GOAWAY before it was accepted) is always safe to send again,
// and an idempotent one (GET, HEAD, PUT, DELETE, OPTIONS) is safe to send
// again after any connection failure. Each retry asks the balancer to avoid
// the endpoints that already failed.
import {
  AvoidEndpoints,
  type CallContext,
  ConfigError,
  type Layer,
  type Service,
  sleep,
} from '@grpc-tower/core';
import { type Http2Request, Http2RequestError, type Http2Response } from '@grpc-tower/core/http2';

/** Options of {@link retryRefused}. */
export interface RetryRefusedOptions {
  /** All attempts, the first included; default 3. */
  readonly maxAttempts?: number;
  /** The largest random wait before a retry, in ms; default 25. */
  readonly backoffMs?: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/** Whether `err` allows sending `req` again. */
function retryable(err: unknown, req: Http2Request): err is Http2RequestError {
  if (!(err instanceof Http2RequestError)) return false;
  const method = (req.method ?? (req.body === undefined ? 'GET' : 'POST')).toUpperCase();
  return err.refused || IDEMPOTENT.has(method);
}

/**
 * Retries HTTP/2 requests that are safe to send again, at most
 * `maxAttempts` times in all, each on another endpoint when one is ready.
 */
export function retryRefused(options: RetryRefusedOptions = {}): Layer<Http2Request, Http2Response> {
  const maxAttempts = options.maxAttempts ?? 3;
  const backoffMs = options.backoffMs ?? 25;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new ConfigError('retryRefused', 'maxAttempts', maxAttempts, 'an integer >= 1');
  }
  if (!Number.isFinite(backoffMs) || backoffMs < 0) {
    throw new ConfigError('retryRefused', 'backoffMs', backoffMs, 'a finite number >= 0');
  }
  return (inner: Service<Http2Request, Http2Response>) => ({
    async call(req: Http2Request, ctx: CallContext): Promise<Http2Response> {
      const failed = new Set<string>();
      for (let attempt = 1; ; attempt++) {
        const attemptCtx = failed.size === 0 ? ctx : ctx.withValue(AvoidEndpoints, failed);
        try {
          return await inner.call(req, attemptCtx);
        } catch (err) {
          if (attempt >= maxAttempts || ctx.signal.aborted || !retryable(err, req)) throw err;
          if (err.endpoint !== undefined) failed.add(err.endpoint);
          // a refused request goes again at once; others wait a little (full jitter)
          if (!err.refused) await sleep(Math.random() * backoffMs, ctx.signal);
        }
      }
    },
  });
}
