import { newContext, type Change } from '@grpc-tower/core';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { Balancer } from './balancer.js';
import { peakEwma } from './load/peak-ewma.js';
import { pendingRequests } from './load/pending.js';
import { BEAT_MS, LOST_MS, LoopClock, TOLERANCE_MS, loopClock } from './loop-clock.js';
import { p2c } from './p2c.js';
import { roundRobin } from './round-robin.js';
import { CountingEndpoint } from './test/counting-endpoint.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('the loop clock, step by step', () => {
  // a wall clock the test moves by hand, and fake timers that fire only when told:
  // moving the wall without firing the heartbeat is exactly an event loop that is blocked
  function harness() {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let wall = 1000;
    const clock = new LoopClock(() => wall);
    return {
      clock,
      set: (t: number) => {
        wall = t;
      },
      beat: () => vi.advanceTimersToNextTimer(),
    };
  }

  test('runs with the wall while the heartbeat is on time', () => {
    const { clock, set, beat } = harness();
    clock.enter();
    const start = clock.now();
    for (let t = 1000 + BEAT_MS; t <= 1100; t += BEAT_MS) {
      set(t);
      beat();
    }
    expect(clock.now() - start).toBe(100);
    expect(clock.blockedMs()).toBe(0);
  });

  test('stops during a block, from the first due time inside it, and resumes after', () => {
    const { clock, set, beat } = harness();
    clock.enter();
    const start = clock.now(); // wall 1000, heartbeat due at 1005
    set(1003);
    expect(clock.now() - start).toBe(3);
    set(1040); // blocked since before the heartbeat was due
    const blocked = 1040 - (1000 + BEAT_MS + TOLERANCE_MS);
    expect(clock.now() - start).toBe(40 - blocked); // a block still going on is left out
    beat(); // the heartbeat finally runs, 35 ms late
    expect(clock.blockedMs()).toBe(blocked);
    expect(clock.now() - start).toBe(40 - blocked);
    set(1040 + BEAT_MS);
    beat();
    expect(clock.now() - start).toBe(40 + BEAT_MS - blocked);
  });

  test('a call that starts inside a block is charged only the part after its start', () => {
    const { clock, set, beat } = harness();
    clock.enter(); // heartbeat due at 1005
    set(1020); // a block is going on
    const start = clock.now();
    set(1030);
    beat(); // the block ends at 1030
    set(1032);
    // 12 ms of wall time, 10 of them blocked
    expect(clock.now() - start).toBe(2);
  });

  test('never runs backwards', () => {
    const { clock, set, beat } = harness();
    clock.enter();
    let wall = 1000;
    let last = clock.now();
    // a deterministic mix of small steps, blocks and heartbeats
    for (let i = 0; i < 500; i++) {
      wall += i % 17 === 0 ? 30 : (i % 5) + 0.5;
      set(wall);
      if (i % 3 === 0) beat();
      const now = clock.now();
      expect(now).toBeGreaterThanOrEqual(last);
      last = now;
    }
  });

  test('the heartbeat stops one beat after the last call ends, and starts with the next', () => {
    const { clock, set, beat } = harness();
    expect(clock.beating).toBe(false);
    clock.enter();
    clock.enter();
    expect(clock.beating).toBe(true);
    clock.leave();
    set(1000 + BEAT_MS);
    beat();
    expect(clock.beating).toBe(true); // one call is still in flight
    clock.leave();
    set(1000 + 2 * BEAT_MS);
    beat();
    expect(clock.beating).toBe(false);
    // idle time is not a block
    set(5000);
    expect(clock.blockedMs()).toBe(0);
    clock.enter();
    expect(clock.beating).toBe(true);
    clock.leave();
  });
});

describe('the loop clock, on the real event loop', () => {
  test('a 60 ms synchronous block while a call is in flight is left out of its time', async () => {
    const clock = new LoopClock();
    clock.enter();
    const wall0 = performance.now();
    const loop0 = clock.now();
    await new Promise((resolve) => setTimeout(resolve, 3 * BEAT_MS));
    const blockStart = performance.now();
    while (performance.now() - blockStart < 60) {
      // the event loop is blocked: no timer runs
    }
    const ongoing = clock.now() - loop0; // read before the heartbeat had a chance to run
    await new Promise((resolve) => setTimeout(resolve, 3 * BEAT_MS));
    const wall = performance.now() - wall0;
    const loop = clock.now() - loop0;
    clock.leave();
    // the block is seen from the first heartbeat due inside it
    expect(wall - loop).toBeGreaterThanOrEqual(60 - BEAT_MS - TOLERANCE_MS);
    // a block still going on is left out too: read right after the block, the
    // clock had advanced at most until the heartbeat fell due inside it
    expect(ongoing).toBeLessThanOrEqual(blockStart - wall0 + BEAT_MS + TOLERANCE_MS);
    expect(loop).toBeGreaterThanOrEqual(ongoing);
    await new Promise((resolve) => setTimeout(resolve, 2 * BEAT_MS));
    expect(clock.beating).toBe(false);
  });
});

describe('which balancers run the heartbeat', () => {
  test('p2c with PeakEWMA does while calls are in flight; least-request, round robin and opting out do not', async () => {
    const cases: [string, () => Balancer<string, string, string>, boolean][] = [
      ['p2c + PeakEWMA', () => p2c(discover(), { load: peakEwma() }), true],
      ['p2c + PeakEWMA, opted out', () => p2c(discover(), { excludeLoopBlocks: false }), false],
      ['p2c + pending', () => p2c(discover(), { load: pendingRequests() }), false],
      ['roundRobin', () => roundRobin(discover()), false],
    ];
    let endpoint = new CountingEndpoint('127.0.0.1:1');
    function discover(): Subject<Change<string, CountingEndpoint>> {
      const d = new Subject<Change<string, CountingEndpoint>>();
      endpoint = new CountingEndpoint('127.0.0.1:1');
      endpoint.hold = true;
      queueMicrotask(() => d.next({ type: 'insert', key: endpoint.address, endpoint }));
      return d;
    }
    for (const [name, make, beats] of cases) {
      const balancer = make();
      const scope = newContext({});
      const call = balancer.call('x', scope.context);
      await new Promise((resolve) => setTimeout(resolve, 3 * BEAT_MS));
      expect(endpoint.inFlight, name).toBe(1);
      expect(loopClock.beating, name).toBe(beats);
      endpoint.release();
      await call;
      scope.release();
      await new Promise((resolve) => setTimeout(resolve, 3 * BEAT_MS));
      expect(loopClock.beating, `${name}, after the call`).toBe(false);
      await balancer.close();
    }
  });
});

describe('a lost heartbeat', () => {
  test('is replaced when the next call starts, so the clock keeps running', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let wall = 1000;
    const clock = new LoopClock(() => wall);
    clock.enter(); // heartbeat due at 1000 + BEAT_MS, and it never runs
    const start = clock.now();
    wall = 1000 + LOST_MS + 500;
    clock.leave();
    const stalled = clock.now();
    expect(stalled - start).toBeLessThanOrEqual(BEAT_MS + TOLERANCE_MS);
    clock.enter(); // sees the heartbeat overdue by more than LOST_MS: a new one
    const resumed = clock.now();
    expect(resumed).toBe(stalled);
    wall += BEAT_MS;
    vi.advanceTimersToNextTimer(); // the stale heartbeat runs first and is ignored
    vi.advanceTimersToNextTimer();
    for (let i = 0; i < 5; i++) {
      wall += BEAT_MS;
      vi.advanceTimersToNextTimer();
    }
    // on time from then on: the clock runs with the wall again
    expect(clock.now() - resumed).toBe(6 * BEAT_MS);
    expect(clock.beating).toBe(true);
    clock.leave();
  });
});
