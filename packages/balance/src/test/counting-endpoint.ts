// A counting endpoint: it implements the Endpoint contract with no network
// at all, because the tests that use it are about the balancer's own
// arithmetic and bookkeeping (which endpoint a pick lands on, when an
// endpoint becomes eligible, how removal drains), not about gRPC. The test
// sets its readiness, and its load is either a fixed `pending` set by the
// test or its real calls in flight. The real-server tests use grpcEndpoint.
import { type CallContext, ClosedError, type Endpoint, type Readiness, abortReason } from '@grpc-tower/core';
import type { Change } from '@grpc-tower/discover';
import { BehaviorSubject, type Observable, Subject } from 'rxjs';

interface InFlight {
  readonly resolve: (v: string) => void;
  readonly reject: (e: unknown) => void;
  readonly cleanup: () => void;
  readonly req: string;
}

export class CountingEndpoint implements Endpoint<string, string> {
  readonly address: string;
  /** Calls received. */
  calls = 0;
  /** When set, `pending` reports this instead of the calls in flight. */
  fixedPending: number | undefined;
  /** When true, calls stay in flight until `release()`. */
  hold = false;
  /** When > 0, calls settle after this many ms. */
  latencyMs = 0;
  /** When set, calls fail with it. */
  failWith: unknown;
  /** When set, `close()` rejects with it (after draining). */
  closeError: unknown;
  closeCalls = 0;
  /** When set, reported as `connected` (a health check holding it out while it is up). */
  connectedOverride: boolean | undefined;
  /** Reported as the endpoint's `lastError`. */
  lastError: string | undefined;
  /** Reported as the endpoint's `weight` (read when the balancer first sees it). */
  weight: number | undefined;
  /** Reported as the endpoint's `zone` (read when the balancer first sees it). */
  zone: string | undefined;
  /** Reported as the endpoint's `forZones` (read when the balancer first sees it). */
  forZones: readonly string[] | undefined;
  /** Reported as the endpoint's `priority` (read when the balancer first sees it). */
  priority: number | undefined;
  /** Reported as the endpoint's `group` and `groupWeight` (read when the balancer first sees it). */
  group: string | undefined;
  groupWeight: number | undefined;
  /** Reads of `readiness` and `pending`, to show what a pick looks at. */
  reads = 0;
  readonly #inFlight = new Set<InFlight>();
  readonly #readiness: BehaviorSubject<Readiness>;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;

  constructor(address: string, readiness: Readiness = 'ready') {
    this.address = address;
    this.#readiness = new BehaviorSubject<Readiness>(readiness);
  }

  get connected(): boolean {
    return this.connectedOverride ?? this.#readiness.value === 'ready';
  }

  get readiness(): Readiness {
    this.reads++;
    return this.#readiness.value;
  }

  get readiness$(): Observable<Readiness> {
    return this.#readiness.asObservable();
  }

  get pending(): number {
    this.reads++;
    return this.fixedPending ?? this.#inFlight.size;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /** Subscribers to `readiness$` right now. */
  get watchers(): number {
    return this.#readiness.observed ? 1 : 0;
  }

  setReadiness(r: Readiness): void {
    if (r !== this.#readiness.value) this.#readiness.next(r);
  }

  call(req: string, ctx: CallContext): Promise<string> {
    if (this.#closing !== undefined) {
      return Promise.reject(
        new ClosedError(`endpoint ${this.address} is closed`, { endpoint: this.address }),
      );
    }
    this.calls++;
    if (ctx.signal.aborted) return Promise.reject(abortReason(ctx.signal));
    if (this.failWith !== undefined) return Promise.reject(this.failWith);
    if (!this.hold && this.latencyMs <= 0) return Promise.resolve(`${this.address}:${req}`);
    return new Promise<string>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => {
        finish();
        reject(abortReason(ctx.signal));
      };
      const finish = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        ctx.signal.removeEventListener('abort', onAbort);
        this.#inFlight.delete(entry);
        if (this.#inFlight.size === 0) this.#drained?.();
      };
      const entry: InFlight = {
        req,
        resolve: (v) => {
          finish();
          resolve(v);
        },
        reject: (e) => {
          finish();
          reject(e);
        },
        cleanup: finish,
      };
      this.#inFlight.add(entry);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      if (!this.hold) timer = setTimeout(() => entry.resolve(`${this.address}:${req}`), this.latencyMs);
    });
  }

  /** Settles up to `n` held calls successfully (all by default). */
  release(n = Number.POSITIVE_INFINITY): number {
    let done = 0;
    for (const c of [...this.#inFlight]) {
      if (done >= n) break;
      c.resolve(`${this.address}:${c.req}`);
      done++;
    }
    return done;
  }

  /** Fails every call in flight with `err`. */
  failInFlight(err: unknown): void {
    for (const c of [...this.#inFlight]) c.reject(err);
  }

  close(): Promise<void> {
    this.closeCalls++;
    if (this.#closing !== undefined) return this.#closing;
    this.#closing = (async () => {
      if (this.#inFlight.size > 0) {
        await new Promise<void>((resolve) => {
          this.#drained = resolve;
        });
      }
      this.setReadiness('closed');
      this.#readiness.complete();
      if (this.closeError !== undefined) throw this.closeError;
    })();
    return this.#closing;
  }
}

/** A discovery stream the test drives by hand. */
export class ManualDiscover<E> {
  readonly changes = new Subject<Change<string, E>>();

  insert(key: string, endpoint: E): void {
    this.changes.next({ type: 'insert', key, endpoint });
  }

  remove(key: string): void {
    this.changes.next({ type: 'remove', key });
  }
}
