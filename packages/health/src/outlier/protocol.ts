/**
 * How an outlier detector reads the responses of a protocol other than
 * gRPC. By default the detector reads gRPC statuses (a unary response's
 * `unary.status`, a stream's `done`) and takes any other response as a
 * success; an {@link OutlierProtocol} says instead which responses are
 * failures, and maps them into gRPC's status codes so that
 * `failureCodes` judges them as it judges gRPC statuses.
 *
 * Rejected calls are judged the same way for every protocol: a failed
 * connection or stream (`Http2RequestError`, UNAVAILABLE) is a failure, a
 * call the caller cancelled or one refused in this process counts as
 * neither, a deadline counts when the endpoint had a fair chance.
 *
 * @module
 */
import { Status, type StatusCode } from '@grpc-tower/core';

/**
 * What a failed response maps to: a gRPC status code and details for the
 * ejection's reason (`UNAVAILABLE (HTTP 503)`).
 *
 * @example
 * ```ts
 * const failure: ResponseFailure = { code: Status.UNAVAILABLE, details: 'HTTP 503' };
 * ```
 */
export interface ResponseFailure {
  readonly code: StatusCode;
  readonly details: string;
}

/**
 * A protocol policy of `outlierDetection` (its `protocol` option): reads
 * the responses an endpoint resolves with.
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

/** One frozen failure per 5xx status, made when first seen: a failing server costs no allocation per call. */
const failures = new Map<number, ResponseFailure>();

const failureOf = (status: number): ResponseFailure => {
  let failure = failures.get(status);
  if (failure === undefined) {
    const code = status === 502 || status === 503 || status === 504 ? Status.UNAVAILABLE : Status.INTERNAL;
    failure = Object.freeze({ code, details: `HTTP ${status}` });
    if (status >= 500 && status <= 599) failures.set(status, failure);
  }
  return failure;
};

/**
 * The HTTP policy of outlier detection, for `http2Endpoint` (any response
 * with a numeric `status`): 5xx responses are failures, every other
 * answer (1xx–4xx) a success, since a 4xx is about the request, not the
 * server. A failed connection or stream is a failure, as for gRPC.
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
 * `consecutive_gateway_failure`. Deviation from gRPC's own HTTP-to-status
 * mapping, which turns other statuses into UNKNOWN: 500 says the server
 * broke, which is INTERNAL's meaning.
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
    if (typeof status !== 'number' || (status >= 100 && status < 500)) return undefined;
    return failureOf(status);
  },
});
