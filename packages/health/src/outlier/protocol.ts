/**
 * How an outlier detector reads the responses its endpoints resolve with:
 * through the protocol of the endpoint kind (core's `Protocol`:
 * `grpcProtocol`, the default, or `httpProtocol()`), whose `statusOf` and
 * `whenStatus` give a response's final status and whose `origin` says who
 * produced a failure; or through a policy of the user's own
 * ({@link OutlierProtocol}), which says which responses are failures and
 * maps them into gRPC's status codes so that `failureCodes` judges them as
 * it judges gRPC statuses.
 *
 * Rejected calls are judged the same way for every protocol: a failed
 * connection or stream (the transport's `delivery` `unconnected` or
 * `lost`, UNAVAILABLE) is a failure, a call the caller cancelled or one
 * refused in this process or by the server before its application saw it
 * counts as neither, a deadline counts when the endpoint had a fair chance.
 *
 * @module
 */
import type { Protocol, ResponseStatus } from '@grpc-tower/core';
import { grpcProtocol } from '@grpc-tower/core/grpc';
import { httpOutcome } from '@grpc-tower/core/http2';
import { failureOrigin } from '@grpc-tower/core/internal';

/**
 * What a failed response maps to: a gRPC status code and details for the
 * ejection's reason (`UNAVAILABLE (HTTP 503)`).
 *
 * @example
 * ```ts
 * const failure: ResponseFailure = { code: Status.UNAVAILABLE, details: 'HTTP 503' };
 * ```
 */
export type ResponseFailure = ResponseStatus;

/**
 * A protocol policy of `outlierDetection` (its `protocol` option) of the
 * user's own: reads the responses an endpoint resolves with.
 *
 * @example
 * ```ts
 * // JSON answers that carry their own error flag
 * const jsonRpc: OutlierProtocol = {
 *   name: 'json-rpc',
 *   classify: (res) =>
 *     (res as Http2Response).status >= 500 || (res as Http2Response).headers['x-error'] === 'internal'
 *       ? { code: Status.INTERNAL, details: 'server error' }
 *       : undefined,
 * };
 * const detector = outlierDetection({ protocol: jsonRpc });
 * ```
 */
export interface OutlierProtocol {
  /** The protocol's name, such as `'http'`. */
  readonly name: string;
  /**
   * The outcome of one response: `undefined` for a success (also a sample
   * of the endpoint's typical latency), else the status it maps to, which
   * the detector judges as a status a gRPC server sent: a code in
   * `failureCodes` is a failure, any other a success that is not a latency
   * sample. Called once per response, when the call resolves; an exception
   * makes the response count as neither.
   */
  classify(response: unknown): ResponseFailure | undefined;
}

/**
 * What the detector reads of a protocol: a response's final status (now,
 * or once it is over) and who produced a failure. Core's `Protocol` is
 * one; an {@link OutlierProtocol} becomes one once, when the options are
 * read.
 *
 * @internal
 * @example
 * ```ts
 * const reader: OutcomeReader = outcomeReader(httpOutcomes);
 * ```
 */
export type OutcomeReader = Pick<Protocol<unknown, unknown>, 'statusOf' | 'whenStatus' | 'origin'>;

/**
 * The default: gRPC statuses (a response made elsewhere, without a status, is a success).
 *
 * @internal
 * @example
 * ```ts
 * GRPC_OUTCOMES.statusOf(res); // a unary response's status, or undefined while a stream runs
 * ```
 */
export const GRPC_OUTCOMES: OutcomeReader = grpcProtocol as unknown as OutcomeReader;

const OK_STATUS: ResponseStatus = Object.freeze({ code: 0, details: '' }) as ResponseStatus;

/**
 * The reader of a protocol given as `outlierDetection`'s `protocol`
 * option: core's `Protocol` as it is, a policy's `classify` as the final
 * status of every response when it resolves.
 *
 * @internal
 * @example
 * ```ts
 * outcomeReader(httpProtocol()).statusOf(res); // { code: Status.UNAVAILABLE, details: 'HTTP 503' } for a 503
 * ```
 */
export function outcomeReader(protocol: OutlierProtocol | Protocol<unknown, unknown>): OutcomeReader {
  if (typeof (protocol as Partial<OutcomeReader>).statusOf === 'function') {
    return protocol as unknown as OutcomeReader;
  }
  const classify = (protocol as OutlierProtocol).classify;
  const statusOf = (res: unknown): ResponseStatus => classify(res) ?? OK_STATUS;
  return Object.freeze({
    statusOf,
    whenStatus: (res: unknown, fn: (status: ResponseStatus) => void) => fn(statusOf(res)),
    origin: failureOrigin,
  });
}

/**
 * The HTTP policy of outlier detection, for `http2Endpoint` (any response
 * with a numeric `status`): 5xx responses are failures, every other
 * answer (1xx–4xx) a success, since a 4xx is about the request, not the
 * server; the mapping is `httpOutcome`'s (`@grpc-tower/core/http2`), the
 * one `httpProtocol()` reads answers by. A failed connection or stream is
 * a failure, as for gRPC.
 *
 * The mapping, in gRPC's codes (what `failureCodes` and the ejection's
 * reason see):
 * - 502, 503, 504 (the gateway failures) → `UNAVAILABLE`;
 * - 500, 501 and every other 5xx → `INTERNAL`;
 * - a status outside 100–599 (a broken server) → `INTERNAL`.
 *
 * With the default `failureCodes` (which hold both) every 5xx counts, as
 * in Envoy's `consecutive_5xx`; `failureCodes: ['UNAVAILABLE']` counts only
 * the gateway failures and failed connections, as Envoy's
 * `consecutive_gateway_failure`.
 *
 * @example
 * ```ts
 * import { http2Endpoint } from '@grpc-tower/core/http2';
 *
 * const detector = outlierDetection({ protocol: httpOutcomes, consecutiveFailures: 5 });
 * const ep = detector.wrap(http2Endpoint('127.0.0.2:8080', { scheme: 'http' }));
 * httpOutcomes.classify({ status: 503 }); // { code: Status.UNAVAILABLE, details: 'HTTP 503' }
 * httpOutcomes.classify({ status: 404 }); // undefined: a success
 * ```
 */
export const httpOutcomes: OutlierProtocol = Object.freeze({
  name: 'http',
  classify(response: unknown): ResponseFailure | undefined {
    if (typeof response !== 'object' || response === null) return undefined;
    const status = (response as { status?: unknown }).status;
    return typeof status === 'number' ? httpOutcome(status) : undefined;
  },
});
