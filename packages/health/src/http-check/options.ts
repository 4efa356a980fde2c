/**
 * The options of {@link httpHealthChecked}, their defaults and their
 * checks. They follow Envoy's HTTP health checker
 * (`config.core.v3.HealthCheck` with `http_health_check`); where Envoy
 * requires a value or defaults to something else, the field says why this
 * default was chosen.
 *
 * @module
 */
import type { OutgoingHttpHeaders } from 'node:http2';
import { POSITIVE_TIMER_RULE, TIMER_RULE, optionChecks } from '@grpc-tower/core/internal';

/**
 * HTTP statuses that count as healthy: one status (`204`), or an
 * inclusive range (`[200, 399]`), each from 100 to 599. Both ends of a
 * range count, unlike Envoy's half-open `Int64Range`.
 *
 * @example
 * ```ts
 * const okOrNoContent: HttpStatusRange[] = [200, 204];
 * const anyAnswer: HttpStatusRange[] = [[200, 499]];
 * ```
 */
export type HttpStatusRange = number | readonly [from: number, to: number];

/**
 * Options of {@link httpHealthChecked}.
 *
 * @example
 * ```ts
 * const opts: HttpHealthCheckOptions = {
 *   path: '/healthz',
 *   expectedStatuses: [[200, 299]],
 *   intervalMs: 2_000,
 *   unhealthyThreshold: 3,
 *   headers: { ':authority': 'orders.internal' },
 * };
 * ```
 */
export interface HttpHealthCheckOptions {
  /** Required: the path the check asks with `GET`, from `/` (such as `'/healthz'` or `'/ready?full=1'`). */
  readonly path: string;
  /**
   * The statuses that mean healthy. Default `[[200, 399]]`: what a
   * Kubernetes HTTP probe accepts, so a `/healthz` written for the kubelet
   * gets the same verdict here (Envoy's default is 200 alone; a server
   * answering 204 or a redirect would be unhealthy to it). Redirects are not
   * followed.
   */
  readonly expectedStatuses?: readonly HttpStatusRange[];
  /**
   * Time between the end of one check and the start of the next, in ms
   * (> 0). Default 5000 (Envoy requires a value): with the default
   * `unhealthyThreshold` of 2, a server that turns unhealthy is out after
   * about 10 s, as with the gRPC `check` mode's 10 s and one failure; a
   * check costs one small request on the connection that is already open.
   */
  readonly intervalMs?: number;
  /** How long one check may take before it counts as a failure, in ms (> 0). Default 1000 (a Kubernetes probe's default). */
  readonly timeoutMs?: number;
  /**
   * Failed checks in a row that make a healthy endpoint unhealthy (an
   * integer ≥ 1). Default 2 (Envoy requires a value): one lost check (a
   * pause, a dropped packet) does not take a server out, a second in a row
   * does. The first answer on a connection decides at once, either way.
   */
  readonly unhealthyThreshold?: number;
  /**
   * Successful checks in a row that make an unhealthy endpoint healthy
   * again (an integer ≥ 1). Default 2 (Envoy requires a value; a Kubernetes
   * readiness probe's default is 1): a server that recovers for one answer
   * only does not flap back into rotation. The first answer on a connection
   * decides at once, as Envoy's first check does at startup.
   */
  readonly healthyThreshold?: number;
  /**
   * Wait a random time from 0 to this many ms before the first check
   * (Envoy's `initial_jitter`), so that many clients started together do
   * not check in step; the endpoint is held at `connecting` meanwhile.
   * From 0 (the default: check at once) to about 24.8 days.
   */
  readonly initialJitterMs?: number;
  /**
   * Headers sent with every check, such as `{ ':authority': 'orders.internal' }`
   * (HTTP/2's Host) or a token. Not `:method`, `:path` or `:scheme`, nor
   * the connection-specific headers HTTP/2 forbids.
   */
  readonly headers?: OutgoingHttpHeaders;
  /** The random source for `initialJitterMs`, uniform in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/**
 * {@link HttpHealthCheckOptions} with every default filled in; the
 * expected statuses as inclusive ranges.
 *
 * @example
 * ```ts
 * httpHealthChecked({ path: '/healthz' }).options.expectedStatuses; // [[200, 399]]
 * ```
 */
export interface ResolvedHttpHealthCheckOptions {
  readonly path: string;
  readonly expectedStatuses: readonly (readonly [from: number, to: number])[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  readonly initialJitterMs: number;
  readonly headers: Readonly<OutgoingHttpHeaders> | undefined;
  readonly random: () => number;
}

const WHERE = 'httpHealthChecked';

/** A path from `/`, without spaces or control characters. */
const isPath = (p: unknown): p is string =>
  typeof p === 'string' &&
  p.startsWith('/') &&
  [...p].every((c) => {
    const code = c.codePointAt(0) as number;
    return code > 0x20 && code !== 0x7f;
  });

/** What the request line fixes, and what HTTP/2 forbids (RFC 9113 §8.2.2). */
const FORBIDDEN_HEADERS = new Set([
  ':method',
  ':path',
  ':scheme',
  ':status',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

const check = optionChecks(WHERE);
const threshold = { min: 1, integer: true };

/** Checks `options` and fills in the defaults; throws `ConfigError` naming the first bad option. */
export function resolveHttpHealthCheckOptions(
  options: HttpHealthCheckOptions | undefined,
): ResolvedHttpHealthCheckOptions {
  const o = check.object<HttpHealthCheckOptions>('options', options);
  const path: unknown = o.path;
  if (!isPath(path)) {
    throw check.error('path', path, 'a path from "/" without spaces, such as "/healthz"');
  }
  return {
    path,
    expectedStatuses: resolveStatuses(o.expectedStatuses),
    intervalMs: check.number('intervalMs', o.intervalMs, POSITIVE_TIMER_RULE, 5_000),
    timeoutMs: check.number('timeoutMs', o.timeoutMs, POSITIVE_TIMER_RULE, 1_000),
    unhealthyThreshold: check.number('unhealthyThreshold', o.unhealthyThreshold, threshold, 2),
    healthyThreshold: check.number('healthyThreshold', o.healthyThreshold, threshold, 2),
    initialJitterMs: check.number('initialJitterMs', o.initialJitterMs, TIMER_RULE, 0),
    headers: resolveHeaders(o.headers),
    random: check.function('random', o.random, 'a function returning [0, 1)', Math.random),
  };
}

const DEFAULT_STATUSES: readonly (readonly [number, number])[] = Object.freeze([
  Object.freeze([200, 399] as const),
]);

const isStatus = (s: unknown): s is number =>
  Number.isInteger(s) && (s as number) >= 100 && (s as number) <= 599;

function resolveStatuses(
  value: readonly HttpStatusRange[] | undefined,
): readonly (readonly [number, number])[] {
  if (value === undefined) return DEFAULT_STATUSES;
  if (!Array.isArray(value) || value.length === 0) {
    throw check.error('expectedStatuses', value, 'a non-empty list of statuses and [from, to] ranges');
  }
  return Object.freeze(
    value.map((item: unknown, i: number) => {
      if (isStatus(item)) return Object.freeze([item, item] as const);
      if (
        Array.isArray(item) &&
        item.length === 2 &&
        isStatus(item[0]) &&
        isStatus(item[1]) &&
        item[0] <= item[1]
      ) {
        return Object.freeze([item[0], item[1]] as const);
      }
      throw check.error(
        `expectedStatuses[${i}]`,
        item,
        'an HTTP status from 100 to 599, or an inclusive range [from, to] of them',
      );
    }),
  );
}

function resolveHeaders(value: OutgoingHttpHeaders | undefined): Readonly<OutgoingHttpHeaders> | undefined {
  if (value === undefined) return undefined;
  const headers = check.object<OutgoingHttpHeaders>('headers', value);
  const copy: OutgoingHttpHeaders = {};
  for (const [name, v] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (FORBIDDEN_HEADERS.has(lower) || (lower === 'te' && v !== 'trailers')) {
      throw check.error(`headers.${name}`, v, 'a header HTTP/2 allows a request to set (the path is `path`)');
    }
    const ok =
      typeof v === 'string' ||
      typeof v === 'number' ||
      (Array.isArray(v) && v.every((x: unknown) => typeof x === 'string'));
    if (!ok) throw check.error(`headers.${name}`, v, 'a string, a number or a list of strings');
    copy[name] = v;
  }
  return Object.freeze(copy);
}
