// The balancer's side of `Endpoint.reconnect` over counting endpoints (no
// network; see test/counting-endpoint.ts): when a call finds every endpoint
// failed, each is asked once to connect now, the attempt is shared by the
// calls that wait, and counts as connecting until it ends. The same over
// real servers (late, refusing, black-holed) is in the grpc-tower package's
// startup.test.ts.
import { Status, background, type Change } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test } from 'vitest';
import type { Balancer } from './balancer.js';
import { NoReadyEndpointError } from './errors.js';
import type { BalancerEvent } from './events.js';
import type { BalancerOptions } from './options.js';
import { p2c } from './p2c.js';
import { CountingEndpoint } from './test/counting-endpoint.js';
import { seededRandom } from './test/prng.js';

type B = Balancer<string, string, string>;
const open: B[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close({ graceMs: 0 })));
});

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A counting endpoint that can be asked to reconnect; the test ends each attempt. */
class ReconnectingEndpoint extends CountingEndpoint {
  /** Times `reconnect()` started an attempt. */
  attempts = 0;
  /** Whether it has an attempt to start (false: it answers `undefined`). */
  canReconnect = true;
  /** When set, `reconnect()` throws it. */
  throws: unknown;
  #end: (() => void) | undefined;
  #attempt: Promise<void> | undefined;

  constructor(address: string) {
    super(address, 'failed');
    this.lastError = `connect ECONNREFUSED ${address}`;
  }

  reconnect(): Promise<void> | undefined {
    if (this.throws !== undefined) throw this.throws;
    if (this.#attempt !== undefined) return this.#attempt;
    if (!this.canReconnect || this.readiness !== 'failed') return undefined;
    this.attempts++;
    this.#attempt = new Promise<void>((resolve) => {
      this.#end = resolve;
    });
    return this.#attempt;
  }

  /** Ends the attempt: connected, or failed again (then none more, as in one backoff interval). */
  endAttempt(connected: boolean): void {
    if (connected) this.setReadiness('ready');
    else this.canReconnect = false;
    this.#attempt = undefined;
    this.#end?.();
  }
}

function make(options: BalancerOptions = {}) {
  const discover = new Subject<Change<string, CountingEndpoint>>();
  const balancer: B = p2c(discover, {
    random: seededRandom(7),
    target: 'echo.test',
    failFastMs: 10_000,
    panicThresholdPercent: 0,
    ...options,
  });
  open.push(balancer);
  const events: BalancerEvent<string>[] = [];
  balancer.events$.subscribe((e) => events.push(e));
  const insert = (ep: CountingEndpoint) => discover.next({ type: 'insert', key: ep.address, endpoint: ep });
  return { balancer, events, insert };
}

/** A balancer over two failed endpoints, 10.0.0.1 (`a`) and 10.0.0.2 (`b`). */
function twoFailed() {
  const made = make();
  const a = new ReconnectingEndpoint('10.0.0.1:50051');
  const b = new ReconnectingEndpoint('10.0.0.2:50051');
  made.insert(a);
  made.insert(b);
  return { ...made, a, b };
}

const reconnectsIn = (events: BalancerEvent<string>[]) =>
  events.flatMap((e) => (e.type === 'reconnect' ? [e.address] : []));

describe('every endpoint failed: a call asks each to connect now', () => {
  test('one attempt per endpoint, shared by every waiting call; they go out once one connects', async () => {
    const { balancer, events, a, b } = twoFailed();
    const calls = Array.from({ length: 10 }, (_, i) => balancer.call(`c${i}`, background));
    await tick();
    expect([a.attempts, b.attempts]).toEqual([1, 1]);
    expect(reconnectsIn(events)).toEqual(['10.0.0.1:50051', '10.0.0.2:50051']);
    expect(balancer.stats().waiting).toBe(10);
    // counted as connecting while the attempts run
    expect(balancer.counts()).toMatchObject({ known: 2, connecting: 2, failed: 0 });
    b.endAttempt(true);
    const replies = await Promise.all(calls);
    expect(replies.every((r) => r.startsWith('10.0.0.2:50051:'))).toBe(true);
    a.endAttempt(false);
    await tick();
    expect(balancer.counts()).toMatchObject({ ready: 1, connecting: 0, failed: 1 });
    expect([a.attempts, b.attempts]).toEqual([1, 1]);
  });

  test('the attempts fail: the waiting calls fail at once naming the connection errors; the next call makes none', async () => {
    const { balancer, events, a, b } = twoFailed();
    const calls = [balancer.call('x', background), balancer.call('y', background)].map((p) =>
      p.catch((e: unknown) => e),
    );
    await tick();
    a.endAttempt(false);
    await tick();
    // b's attempt still runs: the calls wait for it
    expect(balancer.stats().waiting).toBe(2);
    b.endAttempt(false);
    for (const err of await Promise.all(calls)) {
      expect(err).toBeInstanceOf(NoReadyEndpointError);
      const e = err as NoReadyEndpointError;
      expect(e.code).toBe(Status.UNAVAILABLE);
      expect(e.retryable).toBe(false);
      expect(e.message).toContain('2 known: 0 ready, 0 connecting, 2 failed');
      expect(e.message).toContain('10.0.0.1:50051: connect ECONNREFUSED 10.0.0.1:50051');
      expect(e.message).toContain('10.0.0.2:50051: connect ECONNREFUSED 10.0.0.2:50051');
    }
    // within the endpoints' backoff interval: no attempt to start, the call fails at once
    const next = await balancer.call('z', background).catch((e: unknown) => e);
    expect(next).toBeInstanceOf(NoReadyEndpointError);
    expect((next as NoReadyEndpointError).waitedMs).toBe(0);
    expect(reconnectsIn(events)).toHaveLength(2);
  });

  test('not while one endpoint is ready or connecting', async () => {
    const { balancer, insert } = make();
    const failed = new ReconnectingEndpoint('10.0.0.1:50051');
    const connecting = new CountingEndpoint('10.0.0.2:50051', 'connecting');
    insert(failed);
    insert(connecting);
    const call = balancer.call('x', background);
    await tick();
    expect(failed.attempts).toBe(0);
    connecting.setReadiness('ready');
    await expect(call).resolves.toBe('10.0.0.2:50051:x');
    expect(await balancer.call('y', background)).toBe('10.0.0.2:50051:y');
    expect(failed.attempts).toBe(0);
  });

  test('endpoints without reconnect, or with nothing to start, fail the call at once as before', async () => {
    const { balancer, insert } = make();
    const plain = new CountingEndpoint('10.0.0.1:50051', 'failed');
    const spent = new ReconnectingEndpoint('10.0.0.2:50051');
    spent.canReconnect = false;
    insert(plain);
    insert(spent);
    const err = await balancer.call('x', background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoReadyEndpointError);
    expect((err as NoReadyEndpointError).waitedMs).toBe(0);
  });

  test('a reconnect that throws is reported as an endpoint error and the call fails at once', async () => {
    const { balancer, events, insert } = make();
    const broken = new ReconnectingEndpoint('10.0.0.1:50051');
    broken.throws = new Error('boom');
    insert(broken);
    const err = await balancer.call('x', background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoReadyEndpointError);
    const reported = events.find((e) => e.type === 'endpoint-error');
    expect(reported).toMatchObject({ address: '10.0.0.1:50051', error: broken.throws });
  });

  test('with waitForReady too, and the wait goes on after a failed attempt', async () => {
    const { balancer, insert } = make({ waitForReady: true });
    const ep = new ReconnectingEndpoint('10.0.0.1:50051');
    insert(ep);
    const call = balancer.call('x', background);
    await tick();
    expect(ep.attempts).toBe(1);
    ep.endAttempt(false);
    await tick();
    expect(balancer.stats().waiting).toBe(1);
    ep.setReadiness('ready');
    await expect(call).resolves.toBe('10.0.0.1:50051:x');
  });

  test('a failFastMs wait ends a call while the attempt still runs (an address that does not answer)', async () => {
    const { balancer, insert } = make({ failFastMs: 30 });
    const ep = new ReconnectingEndpoint('10.0.0.1:50051');
    insert(ep);
    const err = await balancer.call('x', background).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoReadyEndpointError);
    const e = err as NoReadyEndpointError;
    expect(e.waitedMs).toBeGreaterThan(0);
    expect(e.message).toContain('1 known: 0 ready, 1 connecting, 0 failed');
    expect(e.message).toContain('10.0.0.1:50051: connect ECONNREFUSED');
    expect(ep.attempts).toBe(1);
    ep.endAttempt(false);
  });
});
