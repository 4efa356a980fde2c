/**
 * Label sets and span settings per method, made once and reused by every
 * call: recording a metric with an attribute object built per call would
 * cost an allocation and a hash of its keys each time.
 *
 * @module
 */
import { type StatusCode, statusName, tryParseAddress } from '@grpc-tower/core';
import type { GrpcRequest } from '@grpc-tower/core/grpc';
import { type Attributes, SpanKind, type SpanOptions } from '@opentelemetry/api';
import { Labels } from './names.js';

/** The `grpc.method` of a method the client did not register (gRFC A66). */
export const OTHER_METHOD = 'other';

/** Methods beyond this many are labelled and named afresh per call instead of kept. */
const MAX_CACHED = 1024;

/** The labels and span settings of one method of one target. */
export class MethodLabels {
  /** `grpc.method` and `grpc.target`. */
  readonly base: Attributes;
  /** The span name, `pkg.Service/Method` (OpenTelemetry's RPC conventions). */
  readonly spanName: string;
  /** The attempt span's name, `Attempt.pkg.Service/Method` (as gRPC's own tracing names it). */
  readonly attemptName: string;
  /** The call span's kind and its `rpc.*` attributes. */
  readonly callSpan: SpanOptions;
  readonly #byStatus: Attributes[] = [];
  readonly #rpc: Attributes;
  /** Attempt span settings by the number of attempts before (the first few, kept). */
  readonly #attempts: SpanOptions[] = [];

  /** `name`: the method's path without its leading slash, `pkg.Service/Method`. */
  constructor(name: string, methodLabel: string, target: string) {
    this.base = { [Labels.method]: methodLabel, [Labels.target]: target };
    const slash = name.lastIndexOf('/');
    this.spanName = name;
    this.attemptName = `Attempt.${name}`;
    this.#rpc = {
      'rpc.system': 'grpc',
      'rpc.service': slash < 0 ? name : name.slice(0, slash),
      'rpc.method': slash < 0 ? '' : name.slice(slash + 1),
    };
    this.callSpan = { kind: SpanKind.CLIENT, attributes: this.#rpc };
  }

  /** `base` with `grpc.status` (the code's name, such as `UNAVAILABLE`). */
  status(code: StatusCode): Attributes {
    let attrs = this.#byStatus[code];
    if (attrs === undefined) {
      attrs = { ...this.base, [Labels.status]: statusName(code) };
      this.#byStatus[code] = attrs;
    }
    return attrs;
  }

  /** An attempt span's settings: the `rpc.*` attributes and how many attempts came before. */
  attemptSpan(previous: number): SpanOptions {
    let options = this.#attempts[previous];
    if (options === undefined) {
      options = {
        kind: SpanKind.CLIENT,
        attributes: { ...this.#rpc, 'grpc.previous_rpc_attempts': previous },
      };
      if (previous < 8) this.#attempts[previous] = options;
    }
    return options;
  }
}

/** The labels of every method of one target. */
export class LabelCache {
  readonly #target: string;
  readonly #allMethods: boolean;
  readonly #methods = new Map<string, MethodLabels>();
  readonly #servers = new Map<string, Attributes>();

  constructor(target: string, allMethods: boolean) {
    this.#target = target;
    this.#allMethods = allMethods;
  }

  /**
   * The labels of `req`'s method. A method is registered when the channel
   * knows its shape (it was given the service definitions); any other is
   * `other` unless every method is to be named.
   */
  of(req: GrpcRequest): MethodLabels {
    const path = req.method;
    let labels = this.#methods.get(path);
    if (labels === undefined) {
      const registered = req.kind !== undefined || this.#allMethods;
      const name = path.startsWith('/') ? path.slice(1) : path;
      labels = new MethodLabels(name, registered ? name : OTHER_METHOD, this.#target);
      if (this.#methods.size < MAX_CACHED) this.#methods.set(path, labels);
    }
    return labels;
  }

  /** `server.address` and `server.port` of an endpoint's `host:port`. */
  server(endpoint: string): Attributes {
    let attrs = this.#servers.get(endpoint);
    if (attrs === undefined) {
      const parsed = tryParseAddress(endpoint);
      attrs = parsed.ok
        ? { 'server.address': parsed.address.host, 'server.port': parsed.address.port }
        : { 'server.address': endpoint };
      if (this.#servers.size < MAX_CACHED) this.#servers.set(endpoint, attrs);
    }
    return attrs;
  }
}
