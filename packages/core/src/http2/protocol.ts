/**
 * HTTP's answers to the {@link Protocol} seam, for plain HTTP/2 requests
 * (`http2Endpoint`), next to the endpoint that speaks it:
 *
 * - A request the server never processed (REFUSED_STREAM, a GOAWAY before
 *   the stream was accepted, no connection, an endpoint that was draining:
 *   the endpoint's `delivery`) may always be sent again, whatever its
 *   method (RFC 9113 §8.7).
 * - A 502, 503 or 504 answer (`retryableStatuses`), and a connection lost
 *   while the request was in flight, are retried only for idempotent
 *   requests (GET, HEAD, OPTIONS, PUT, DELETE, or one marked
 *   `idempotent: true`; RFC 9110 §9.2.2): a POST may already have taken
 *   effect. Only idempotent requests are hedged.
 * - The commit point is the response headers: once they arrived, a failure
 *   (a body cut short) reaches the caller as it is.
 * - `Retry-After` (seconds, or an HTTP date; RFC 9110 §10.2.3) on the
 *   answer is the server's pushback; one longer than `maxRetryAfterMs`
 *   says stop.
 * - A request body is sent again only while it is held: a Buffer or a
 *   string, or an `Http2Body` that has not passed its replay buffer.
 * - An answer's outcome, in gRPC's codes: 502, 503 and 504 (the gateway
 *   failures) are `UNAVAILABLE`, every other 5xx and a status outside
 *   100–599 (a broken server) `INTERNAL`; 1xx–4xx are successes, since a
 *   4xx is about the request, not the server. gRPC's own HTTP-to-status
 *   mapping turns other statuses into UNKNOWN; 500 says the server broke,
 *   which is INTERNAL's meaning.
 *
 * @module
 */
import type { GrpcTowerError } from '../errors.js';
import { failureOrigin } from '../internal/failure.js';
import { type OptionChecks, optionChecks } from '../internal/options.js';
import { MAX_TIMER_MS } from '../internal/timers.js';
import {
  FailedResponseError,
  type Protocol,
  type Pushback,
  type ResponseStatus,
  neverReachedServer,
} from '../protocol.js';
import { type Http2Request, Http2RequestError, type Http2Response } from './endpoint.js';
import { isIdempotent, isReplayable } from './request.js';
import { Status, type StatusCode } from '../status.js';

/**
 * The options of {@link httpProtocol}.
 *
 * @example
 * ```ts
 * const options: HttpProtocolOptions = { retryableStatuses: [503], maxRetryAfterMs: 2_000 };
 * ```
 */
export interface HttpProtocolOptions {
  /** The answers that count as failed attempts, retried for idempotent requests; default `[502, 503, 504]`. */
  readonly retryableStatuses?: readonly number[];
  /** The longest `Retry-After` honoured, in ms; a longer one says stop. Default: no limit but a timer's. */
  readonly maxRetryAfterMs?: number;
}

/** The status code that stands for an HTTP answer of status `status` in errors and metrics. */
function codeOf(status: number): StatusCode {
  if (status === 502 || status === 503 || status === 504) return Status.UNAVAILABLE;
  if (status === 429) return Status.RESOURCE_EXHAUSTED;
  return Status.INTERNAL;
}

/**
 * `Retry-After` as a delay from `now`: seconds, or an HTTP date; `undefined` when absent or not valid.
 *
 * @example
 * ```ts
 * parseRetryAfter('2'); // 2000
 * ```
 */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text !== 'string') return undefined;
  const trimmed = text.trim();
  if (/^\d{1,10}$/.test(trimmed)) return Number(trimmed) * 1000;
  // an HTTP date (IMF-fixdate, or the obsolete forms Date.parse also reads)
  if (!/^[A-Za-z]{3},? /.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const NONE: Pushback = Object.freeze({ kind: 'none' });
const OK_STATUS: ResponseStatus = Object.freeze({ code: Status.OK, details: '' });

/** One frozen status per 5xx answer, made when first seen: a failing server costs no allocation per call. */
const failures = new Map<number, ResponseStatus>();

/**
 * The outcome of an HTTP answer of status `status` (see the module
 * documentation): `undefined` for a success, else the status it maps to.
 *
 * @example
 * ```ts
 * httpOutcome(503); // { code: Status.UNAVAILABLE, details: 'HTTP 503' }
 * httpOutcome(404); // undefined: a success
 * ```
 */
export function httpOutcome(status: number): ResponseStatus | undefined {
  if (status >= 100 && status < 500) return undefined;
  let failure = failures.get(status);
  if (failure === undefined) {
    const code = status === 502 || status === 503 || status === 504 ? Status.UNAVAILABLE : Status.INTERNAL;
    failure = Object.freeze({ code, details: `HTTP ${status}` });
    if (status >= 500 && status <= 599) failures.set(status, failure);
  }
  return failure;
}

const statusOf = (res: Http2Response): ResponseStatus => httpOutcome(res.status) ?? OK_STATUS;

function checkStatuses(check: OptionChecks, value: readonly number[] | undefined): ReadonlySet<number> {
  if (value === undefined) return new Set([502, 503, 504]);
  const ok =
    Array.isArray(value) &&
    value.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 400 && v <= 599);
  if (!ok) throw check.error('retryableStatuses', value, 'a list of HTTP status codes from 400 to 599');
  return new Set(value);
}

/**
 * {@link httpProtocol} with its options checked by `check` (a retry
 * layer's, so that a bad value is that layer's error).
 *
 * @internal
 * @example
 * ```ts
 * const protocol = checkedHttpProtocol(policyChecks('httpRetry'), { retryableStatuses: [503] });
 * ```
 */
export function checkedHttpProtocol(
  check: OptionChecks,
  options: HttpProtocolOptions = {},
): Protocol<Http2Request, Http2Response> {
  if (typeof options !== 'object' || options === null) throw check.error('options', options, 'an object');
  const statuses = checkStatuses(check, options.retryableStatuses);
  const maxRetryAfterMs =
    options.maxRetryAfterMs === undefined
      ? MAX_TIMER_MS
      : check.number('maxRetryAfterMs', options.maxRetryAfterMs, { min: 0, max: MAX_TIMER_MS });
  return Object.freeze({
    name: 'http',
    method: (req: Http2Request) => `${req.method ?? (req.body === undefined ? 'GET' : 'POST')} ${req.path}`,
    attemptOf: () => 0,
    attempt: (req: Http2Request) => req,
    replayable: isReplayable,
    hedgeable: isIdempotent,
    wholeResponse: (req: Http2Request) => req.response !== 'stream',
    statusOf,
    whenStatus: (res: Http2Response, fn: (status: ResponseStatus) => void) => fn(statusOf(res)),
    failureOf(res: Http2Response): FailedResponseError<Http2Response> | undefined {
      if (!statuses.has(res.status)) return undefined;
      return new FailedResponseError(codeOf(res.status), `HTTP ${res.status} from ${res.endpoint}`, res, {
        endpoint: res.endpoint,
      });
    },
    whenDone(res: Http2Response, done: (ok: boolean) => void): void {
      if (res.whenOver !== undefined) {
        res.whenOver(done);
        return;
      }
      const stream = res.stream;
      if (stream === undefined || stream.destroyed || stream.readableEnded) {
        done(res.status < 500 && stream?.errored == null);
        return;
      }
      stream.once('close', () => done(res.status < 500 && stream.errored == null));
    },
    abandon(res: Http2Response): void {
      if (res.cancel !== undefined) res.cancel();
      else res.stream?.destroy();
    },
    endpointOf: (res: Http2Response) => res.endpoint,
    origin: failureOrigin,
    neverReachedServer,
    retryable(error: GrpcTowerError, req: Http2Request, _rules: unknown, timedOut: boolean): boolean {
      if (neverReachedServer(error)) return true;
      // past the commit point: the caller has the response headers already
      if (error instanceof Http2RequestError && error.afterHeaders) return false;
      const idempotent = isIdempotent(req);
      if (error instanceof FailedResponseError) return idempotent;
      if (timedOut) return idempotent;
      // the connection was lost with the request in flight: it may have run
      if (error instanceof Http2RequestError) return idempotent;
      // no endpoint could take it (the balancer's wait ran out): it went nowhere
      return error.code === Status.UNAVAILABLE && error.endpoint === undefined;
    },
    pushback(error: GrpcTowerError): Pushback {
      if (!(error instanceof FailedResponseError)) return NONE;
      const ms = parseRetryAfter((error.response as Http2Response).headers['retry-after']);
      if (ms === undefined) return NONE;
      if (ms > maxRetryAfterMs) return { kind: 'stop', value: String(ms) };
      return { kind: 'delay', ms };
    },
  });
}

/**
 * The HTTP protocol (see the module documentation), for the layers over
 * `http2Endpoint`s: `httpRetry`, `httpHedge`, outlier detection and the
 * stack recipe read HTTP answers by it.
 *
 * @throws ConfigError naming a bad option.
 *
 * @example
 * ```ts
 * const protocol = httpProtocol({ retryableStatuses: [503] });
 * protocol.statusOf(res); // { code: Status.UNAVAILABLE, details: 'HTTP 503' } for a 503
 * const detector = outlierDetection({ protocol });
 * ```
 */
export function httpProtocol(options: HttpProtocolOptions = {}): Protocol<Http2Request, Http2Response> {
  return checkedHttpProtocol(optionChecks('httpProtocol'), options);
}
