/**
 * The per-request layers of an HTTP/2 stack (`towerDispatcher`, or a stack
 * of `http2Endpoint`s), after OpenTelemetry's semantic conventions for
 * HTTP clients: each attempt (the first, each retry, each hedge, each
 * re-send of a refused stream) is one HTTP request sent, so it records one
 * point of `http.client.request.duration` and one client span named after
 * its method, whose context goes to the server in the `traceparent` header.
 * The attempt ends when its response does: at its body's end for a
 * streamed response, when the call resolves for a buffered one.
 *
 * The `calls` layer keeps, per request, the OpenTelemetry context it
 * started in and the retry layer's counts, so that every attempt's span is
 * a child of that context and carries `http.request.resend_count`.
 *
 * gRPC's per-call metrics (A66, A96) have no HTTP counterpart in the
 * conventions and are not recorded here; the metrics of the other parts
 * (connections, balancer, health, outlier detection, discovery, retry
 * budget) are the same for both protocols.
 *
 * @module
 */
import type { CallContext, Layer } from '@grpc-tower/core';
import { CallRetries, type RetryTally } from '@grpc-tower/retry';
import type { Http2Request, Http2Response } from '@grpc-tower/core/http2';
import { splitHostPort } from '@grpc-tower/core/internal';
import {
  type Attributes,
  type Context,
  type Histogram,
  type Meter,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapSetter,
  context,
  trace,
} from '@opentelemetry/api';
import { type Tracing, telemetryFailed } from './calls.js';
import { HTTP_DURATION_BUCKETS_S, HttpLabels, MetricNames } from './names.js';

type HttpLayer = Layer<Http2Request, Http2Response>;

/** The methods the conventions name; any other is `_OTHER` (a bounded label set). */
const KNOWN_METHODS = new Set([
  'CONNECT',
  'DELETE',
  'GET',
  'HEAD',
  'OPTIONS',
  'PATCH',
  'POST',
  'PUT',
  'TRACE',
]);

const headerSetter: TextMapSetter<Record<string, string | string[] | number | undefined>> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};

/** One request as the layers follow it: the retry counts, and the context its attempts are children of. */
class RequestRecord implements RetryTally {
  retries = 0;
  transparentRetries = 0;
  hedges = 0;
  delayMs = 0;
  readonly parent: Context;

  constructor(parent: Context) {
    this.parent = parent;
  }
}

/** The origin's parts that label every request: `server.address`, `server.port`, `url.scheme`. */
interface OriginLabels {
  readonly origin: string;
  readonly base: Attributes;
}

function originLabels(origin: string): OriginLabels {
  const url = URL.canParse(origin) ? new URL(origin) : undefined;
  if (url === undefined) return { origin, base: { [HttpLabels.serverAddress]: origin } };
  const scheme = url.protocol.replace(/:$/, '');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port);
  return {
    origin: url.origin,
    base: { [HttpLabels.serverAddress]: host, [HttpLabels.serverPort]: port, [HttpLabels.urlScheme]: scheme },
  };
}

/** Label sets made once per method and outcome and reused, as the gRPC layers' are. */
class HttpLabelCache {
  readonly #base: Attributes;
  readonly #sets = new Map<string, Attributes>();

  constructor(base: Attributes) {
    this.#base = base;
  }

  /** The method's label value: its name when the conventions know it, else `_OTHER`. */
  method(req: Http2Request): string {
    const m = (req.method ?? (req.body === undefined ? 'GET' : 'POST')).toUpperCase();
    return KNOWN_METHODS.has(m) ? m : '_OTHER';
  }

  /** The labels of an attempt of `method` that ended with `status` (a number) or an error type (a string). */
  of(method: string, outcome: number | string): Attributes {
    const key = `${method} ${outcome}`;
    let attrs = this.#sets.get(key);
    if (attrs === undefined) {
      attrs = { ...this.#base, [HttpLabels.method]: method };
      if (typeof outcome === 'number') {
        attrs[HttpLabels.statusCode] = outcome;
        if (outcome >= 400) attrs[HttpLabels.errorType] = String(outcome);
      } else {
        attrs[HttpLabels.errorType] = outcome;
      }
      if (this.#sets.size < 1024) this.#sets.set(key, attrs);
    }
    return attrs;
  }
}

/** The error type of a failed attempt: the error's class name (`Http2RequestError`, `DeadlineExceededError`…). */
const errorTypeOf = (err: unknown): string =>
  err instanceof Error && err.name !== '' ? err.name : typeof err === 'object' ? 'Error' : '_OTHER';

/** The endpoint an error names, when it names one. */
const endpointOf = (err: unknown): string | undefined => {
  const e = (err as { endpoint?: unknown } | null)?.endpoint;
  return typeof e === 'string' ? e : undefined;
};

/** `network.peer.address` and `network.peer.port` of the server that took the attempt. */
function peerAttributes(endpoint: string): Attributes {
  const split = splitHostPort(endpoint);
  return split?.port !== undefined && /^\d{1,5}$/.test(split.port)
    ? { [HttpLabels.peerAddress]: split.host, [HttpLabels.peerPort]: Number(split.port) }
    : { [HttpLabels.peerAddress]: endpoint };
}

/** The two layers of an HTTP/2 stack, for {@link Telemetry.instrumentHttp}. */
export function httpLayers(
  origin: string,
  meter: Meter | undefined,
  tracing: Tracing | undefined,
): { calls: HttpLayer; attempts: HttpLayer } {
  const { origin: canonical, base } = originLabels(origin);
  const labels = new HttpLabelCache(base);
  const duration: Pick<Histogram, 'record'> | undefined = meter?.createHistogram(
    MetricNames.httpRequestDuration,
    {
      description: 'Duration of HTTP client requests: one per attempt, until the end of its response.',
      unit: 's',
      advice: { explicitBucketBoundaries: [...HTTP_DURATION_BUCKETS_S] },
    },
  );
  const finish = (
    method: string,
    start: number,
    span: Span | undefined,
    outcome: number | string,
    endpoint: string | undefined,
    message: string | undefined,
  ): void => {
    try {
      const attrs = labels.of(method, outcome);
      duration?.record((performance.now() - start) / 1000, attrs);
      if (span !== undefined) {
        span.setAttributes(attrs);
        if (endpoint !== undefined) span.setAttributes(peerAttributes(endpoint));
        if (typeof outcome === 'string' || outcome >= 400) {
          span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) });
        }
        span.end();
      }
    } catch (err) {
      telemetryFailed('recording an HTTP request', err);
    }
  };

  const calls: HttpLayer =
    tracing === undefined
      ? (inner) => inner
      : (inner) => ({
          call(req: Http2Request, ctx: CallContext): Promise<Http2Response> {
            return inner.call(req, ctx.withValue(CallRetries, new RequestRecord(context.active())));
          },
        });

  const attempts: HttpLayer = (inner) => ({
    call(req: Http2Request, ctx: CallContext): Promise<Http2Response> {
      const method = labels.method(req);
      const start = performance.now();
      let span: Span | undefined;
      let sent = req;
      if (tracing !== undefined) {
        try {
          const found = ctx.get(CallRetries);
          const rec = found instanceof RequestRecord ? found : undefined;
          const parent = rec?.parent ?? context.active();
          const resends = rec === undefined ? 0 : rec.retries + rec.transparentRetries + rec.hedges;
          const s = tracing.tracer.startSpan(
            method === '_OTHER' ? 'HTTP' : method,
            {
              kind: SpanKind.CLIENT,
              attributes: {
                ...base,
                [HttpLabels.method]: method,
                [HttpLabels.urlFull]: `${canonical}${req.path}`,
                ...(resends > 0 ? { [HttpLabels.resendCount]: resends } : {}),
              },
            },
            parent,
          );
          if (s.isRecording()) span = s;
          const headers = { ...req.headers };
          tracing.propagator.inject(trace.setSpan(parent, s), headers, headerSetter);
          sent = { ...req, headers };
        } catch (err) {
          span?.end();
          span = undefined;
          sent = req;
          telemetryFailed('starting an HTTP request', err);
        }
      }
      return inner.call(sent, ctx).then(
        (res) => {
          if (res.whenOver === undefined) finish(method, start, span, res.status, res.endpoint, undefined);
          else res.whenOver(() => finish(method, start, span, res.status, res.endpoint, undefined));
          return res;
        },
        (err: unknown) => {
          finish(method, start, span, errorTypeOf(err), endpointOf(err), (err as Error | undefined)?.message);
          throw err;
        },
      );
    },
  });
  return { calls, attempts };
}
