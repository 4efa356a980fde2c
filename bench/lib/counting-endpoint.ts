/**
 * An endpoint with no network: it is ready at once, answers every call at
 * once with the request, and counts its calls. The scale scenario puts
 * thousands of them behind a balancer to measure the balancer's own cost
 * per call and per endpoint, which a real connection would drown.
 *
 * @module
 */
import type { CallContext, Endpoint, Readiness } from '@grpc-tower/core';
import { BehaviorSubject, type Observable } from 'rxjs';

/**
 * A ready, answering, counting endpoint.
 *
 * @example
 * ```ts
 * const ep = new CountingEndpoint('10.0.0.1:50051');
 * await ep.call('x', background); // 'x'
 * ep.calls; // 1
 * ```
 */
export class CountingEndpoint implements Endpoint<string, string> {
  readonly address: string;
  /** Calls answered. */
  calls = 0;
  readonly #readiness = new BehaviorSubject<Readiness>('ready');

  constructor(address: string) {
    this.address = address;
  }

  get readiness(): Readiness {
    return this.#readiness.value;
  }

  get readiness$(): Observable<Readiness> {
    return this.#readiness;
  }

  /** Always 0: calls settle at once. */
  get pending(): number {
    return 0;
  }

  call(req: string, _ctx: CallContext): Promise<string> {
    this.calls++;
    return Promise.resolve(req);
  }

  async close(): Promise<void> {
    if (this.#readiness.value === 'closed') return;
    this.#readiness.next('closed');
    this.#readiness.complete();
  }
}

/**
 * The address of the `i`-th endpoint of a synthetic set (10.x.y.z:50051).
 *
 * @example
 * ```ts
 * syntheticAddress(257); // '10.0.1.1:50051'
 * ```
 */
export function syntheticAddress(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:50051`;
}
