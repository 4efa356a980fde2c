/**
 * An {@link Endpoint} is a service for one address that also tells whether
 * it can take calls now (its readiness), how loaded it is, and that drains
 * on `close()`. Balancers choose among endpoints; health checks and outlier
 * detection wrap endpoints and gate their readiness.
 *
 * @module
 */
import type { Observable } from 'rxjs';
import type { CallContext } from './context/index.js';
import { ConfigError } from './errors.js';
import { isEndpoint } from './internal/endpoint.js';
import type { Service } from './service.js';

/**
 * Whether an endpoint can take calls:
 * - `ready`: connected, calls go out now;
 * - `connecting`: connecting or reconnecting (with backoff); not picked;
 * - `failed`: the last connection attempt failed, or a health check or
 *   outlier detection holds it out; it keeps trying and may return;
 * - `closed`: closed for good.
 */
export type Readiness = 'ready' | 'connecting' | 'failed' | 'closed';

/**
 * A service for one address, with readiness and load.
 *
 * @example
 * ```ts
 * const ep = grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() });
 * ep.readiness$.subscribe((r) => console.log(ep.address, r));
 * ```
 */
export interface Endpoint<Req, Res> extends Service<Req, Res> {
  /** The address calls go to, as `host:port` (IPv6 as `[::1]:50051`). */
  readonly address: string;
  /** The current readiness, synchronously. */
  readonly readiness: Readiness;
  /** The readiness: emits the current value on subscribe, then each change; completes on close. */
  readonly readiness$: Observable<Readiness>;
  /** Calls started and not yet settled. */
  readonly pending: number;
  /**
   * Whether the connection is up, even when a health check or outlier
   * detection holds the endpoint out (then `readiness` is `'failed'`).
   * Optional: when absent, `readiness === 'ready'` is the answer. A
   * balancer in panic mode sends to connected endpoints.
   */
  readonly connected?: boolean;
  /**
   * Why the endpoint is not ready, when it knows: the last connection error
   * (`connect ECONNREFUSED 10.0.0.7:50051`, a TLS handshake failure), or the
   * verdict that holds it out (`health check: NOT_SERVING`). Optional. A
   * balancer that cannot place a call names it in its error.
   */
  readonly lastError?: string | undefined;
  /**
   * Starts a connection attempt now, when the endpoint's connection failed
   * and it is waiting out its reconnect backoff. Optional. Returns a
   * promise that resolves (never rejects) when that attempt ends, connected
   * or failed, or `undefined` when there is nothing to start: the endpoint
   * is not failed (ready, connecting, closed), is held out with its
   * connection up (a health check, outlier detection), or already made
   * such an attempt within its current backoff interval, so that a stream
   * of calls to a dead server does not become a stream of connections.
   * Idempotent: while the attempt runs it returns that attempt's promise.
   * The backoff schedule resumes after the attempt.
   *
   * A balancer calls it when a call finds every endpoint failed (a client
   * built before its servers were up, whose endpoints sit in backoff), and
   * counts the endpoint as connecting until the promise resolves.
   *
   * @example
   * ```ts
   * const attempt = endpoint.reconnect?.();
   * if (attempt !== undefined) await attempt; // then read endpoint.readiness
   * ```
   */
  reconnect?(): Promise<void> | undefined;
  /**
   * Stops taking new calls, waits for the calls in flight (at most
   * `graceMs`, then cancels them), then releases every resource.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/**
 * An endpoint that passes everything to the endpoint it wraps: the base of
 * a wrapper that changes one or two things about an endpoint and forwards
 * the rest. A health check extends it and overrides the readiness (and
 * `pending`, `lastError`, `close`); outlier detection overrides `call` to
 * observe outcomes, and the readiness to hold an ejected endpoint out.
 *
 * What it forwards costs one method call each: `call`, `readiness`,
 * `pending`, `lastError` and `reconnect` read the inner endpoint when
 * asked; `address` is read once, when wrapped. `connected` is the inner
 * connection's (its `connected`, else whether it is `ready`), which stays
 * true when a subclass holds a connected endpoint out. Discovery metadata
 * (weight, zone, hints) is no member of an endpoint: it travels on the
 * insert change beside it (`Insert.metadata`), so a wrapper has nothing of
 * it to forward.
 *
 * A subclass that publishes a readiness of its own declares `readiness$`
 * again and sets it in its constructor.
 *
 * @example
 * ```ts
 * // an endpoint that refuses calls while a flag is off, and is otherwise its inner endpoint
 * class Switchable<Req, Res> extends DelegatingEndpoint<Req, Res> {
 *   on = true;
 *   override call(req: Req, ctx: CallContext): Promise<Res> {
 *     return this.on ? this.inner.call(req, ctx) : Promise.reject(new Error('switched off'));
 *   }
 * }
 * const ep = new Switchable(grpcEndpoint('127.0.0.2:50051', { credentials: grpc.credentials.createInsecure() }));
 * ```
 */
export class DelegatingEndpoint<Req, Res> implements Endpoint<Req, Res> {
  /** The wrapped endpoint. */
  readonly inner: Endpoint<Req, Res>;
  /** The inner endpoint's address. */
  readonly address: string;
  /** The inner endpoint's readiness stream (a subclass that gates readiness declares its own). */
  readonly readiness$: Observable<Readiness>;

  /**
   * Wraps `inner`. Throws `ConfigError` naming `where` (the function the
   * user called) when `inner` is not an endpoint.
   */
  constructor(inner: Endpoint<Req, Res>, where = 'DelegatingEndpoint') {
    if (!isEndpoint(inner)) {
      throw new ConfigError(where, 'endpoint', inner, 'an Endpoint (address, call, close, readiness$)');
    }
    this.inner = inner;
    this.address = inner.address;
    this.readiness$ = inner.readiness$;
  }

  /** The inner endpoint's readiness. */
  get readiness(): Readiness {
    return this.inner.readiness;
  }

  /** The inner endpoint's calls in flight. */
  get pending(): number {
    return this.inner.pending;
  }

  /** Whether the inner endpoint's connection is up: its `connected`, else whether it is `ready`. */
  get connected(): boolean {
    const inner = this.inner;
    return inner.connected ?? inner.readiness === 'ready';
  }

  /** Why the inner endpoint is not ready, when it knows. */
  get lastError(): string | undefined {
    return this.inner.lastError;
  }

  /** The inner endpoint's `reconnect()`, or `undefined` when it has none (see {@link Endpoint.reconnect}). */
  reconnect(): Promise<void> | undefined {
    return this.inner.reconnect?.();
  }

  /** Sends the call to the inner endpoint. */
  call(req: Req, ctx: CallContext): Promise<Res> {
    return this.inner.call(req, ctx);
  }

  /** Closes the inner endpoint (which drains its calls). */
  close(options?: { graceMs?: number }): Promise<void> {
    return this.inner.close(options);
  }
}

/** The options that moved from an endpoint to the insert change's `metadata`. */
const MOVED_TO_METADATA = ['weight', 'zone', 'forZones', 'priority', 'group', 'groupWeight'] as const;

/**
 * @internal Refuses the options an endpoint no longer takes: `weight`,
 * `zone`, `forZones`, `priority`, `group` and `groupWeight` travel on the insert change that hands the
 * endpoint to a balancer (`{ type: 'insert', key, endpoint, metadata }`).
 * Throws `ConfigError` naming `where` and the option, so that code written
 * for an earlier build fails loudly instead of losing its weights.
 *
 * @example
 * ```ts
 * refuseMovedMetadata('grpcEndpoint', options);
 * ```
 */
export function refuseMovedMetadata(where: string, options: object): void {
  for (const name of MOVED_TO_METADATA) {
    const value = (options as Record<string, unknown>)[name];
    if (value === undefined) continue;
    throw new ConfigError(
      where,
      name,
      value,
      `absent: an endpoint's ${name} travels on the insert change that hands it to the balancer ` +
        `({ type: 'insert', key, endpoint, metadata: { ${name} } }; connect() puts a discovered address's there)`,
    );
  }
}
