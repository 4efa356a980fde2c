import { ConfigError } from '@grpc-tower/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidAddressError, ResolveError, ResolveTimeoutError } from './errors.js';
import { type PollOptions, type PollResult, poll } from './poll.js';
import { type Recording, record } from './test/record.js';

// These tests drive `poll` with in-process resolve functions: the registry
// here is the function itself. Timings are small so that rounds are quick;
// nothing asserts on wall-clock time, only on what was emitted in what order.
const fast: PollOptions = {
  intervalMs: 20,
  jitter: 0,
  backoff: { initialMs: 10, maxMs: 40, jitter: 0 },
};

const open: Recording<unknown>[] = [];
function rec<V>(r: Recording<V>): Recording<V> {
  open.push(r as Recording<unknown>);
  return r;
}
afterEach(() => {
  for (const r of open.splice(0)) r.stop();
});

const waitFor = (fn: () => void, timeout = 5000) => vi.waitFor(fn, { timeout, interval: 5 });

describe('poll', () => {
  it('emits the first answer as inserts and then only the differences', async () => {
    const answers: string[][] = [
      ['10.0.0.1:80', '10.0.0.2:80'],
      ['10.0.0.2:80', '10.0.0.3:80'],
    ];
    let round = 0;
    const src = poll(async () => answers[Math.min(round++, answers.length - 1)] ?? [], fast);
    const r = rec(record(src));
    await waitFor(() => expect(r.keys()).toEqual(['10.0.0.2:80', '10.0.0.3:80']));
    expect(r.changes).toEqual([
      { type: 'insert', key: '10.0.0.1:80', endpoint: { address: '10.0.0.1:80' } },
      { type: 'insert', key: '10.0.0.2:80', endpoint: { address: '10.0.0.2:80' } },
      { type: 'insert', key: '10.0.0.3:80', endpoint: { address: '10.0.0.3:80' } },
      { type: 'remove', key: '10.0.0.1:80' },
    ]);
    // Later rounds repeat the same answer: no more changes, only `resolved` events.
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThanOrEqual(4));
    expect(r.changes).toHaveLength(4);
    expect(r.of('resolved')[0]).toMatchObject({ count: 2, inserted: 2, removed: 0, nextPollMs: 20 });
    expect(r.problems).toEqual([]);
  });

  it('shares one poll among subscribers and replays the current set to a late one', async () => {
    let calls = 0;
    const src = poll(async () => {
      calls++;
      return ['10.0.0.1:80'];
    }, fast);
    const a = rec(record(src));
    await waitFor(() => expect(a.keys()).toEqual(['10.0.0.1:80']));
    const b = rec(record(src));
    expect(b.changes).toEqual([{ type: 'insert', key: '10.0.0.1:80', endpoint: { address: '10.0.0.1:80' } }]);
    await waitFor(() => expect(a.of('resolved').length).toBeGreaterThanOrEqual(3));
    // Each round calls resolve once whatever the number of subscribers.
    expect(calls).toBeLessThanOrEqual(a.of('resolved').length + 1);
    expect(b.of('resolved').length).toBeGreaterThan(0);
  });

  it('stops every timer and aborts the round in flight when the last subscriber leaves', async () => {
    let calls = 0;
    let lastSignal: AbortSignal | undefined;
    const src = poll(
      (signal) => {
        calls++;
        lastSignal = signal;
        return calls === 2 ? new Promise<PollResult>(() => {}) : ['10.0.0.1:80'];
      },
      { ...fast, resolveTimeoutMs: 60_000 },
    );
    const r = record(src);
    await waitFor(() => expect(calls).toBe(2));
    r.stop();
    expect(lastSignal?.aborted).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls).toBe(2);
    // A new subscriber starts afresh.
    const again = rec(record(src));
    await waitFor(() => expect(again.keys()).toEqual(['10.0.0.1:80']));
    expect(calls).toBeGreaterThanOrEqual(3);
  });

  it('keeps the last set while resolve throws, backs off exponentially, and resets on success', async () => {
    let mode: 'ok' | 'fail' = 'ok';
    const src = poll(async () => {
      if (mode === 'fail') throw new Error('registry down');
      return ['10.0.0.1:80', '10.0.0.2:80'];
    }, fast);
    const r = rec(record(src));
    await waitFor(() => expect(r.set.size).toBe(2));
    mode = 'fail';
    await waitFor(() => expect(r.of('backoff').length).toBeGreaterThanOrEqual(4));
    expect(r.set.size).toBe(2);
    expect(r.changes.filter((c) => c.type === 'remove')).toEqual([]);
    expect(
      r
        .of('backoff')
        .slice(0, 4)
        .map((e) => e.delayMs),
    ).toEqual([10, 20, 40, 40]);
    const failed = r.of('failed');
    expect(failed[0]?.error).toBeInstanceOf(ResolveError);
    expect(failed[0]?.error.message).toContain('registry down');
    expect(failed.slice(0, 3).map((e) => e.failures)).toEqual([1, 2, 3]);
    mode = 'ok';
    const resolvedBefore = r.of('resolved').length;
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(resolvedBefore));
    mode = 'fail';
    const backoffsBefore = r.of('backoff').length;
    await waitFor(() => expect(r.of('backoff').length).toBeGreaterThan(backoffsBefore));
    expect(r.of('backoff')[backoffsBefore]).toMatchObject({ delayMs: 10, failures: 1 });
    expect(r.errored).toBeUndefined();
    expect(r.completed).toBe(false);
  });

  it('gives up on a round after resolveTimeoutMs, aborts its signal and ignores its late answer', async () => {
    let calls = 0;
    const signals: AbortSignal[] = [];
    let release: ((r: PollResult) => void) | undefined;
    const src = poll(
      (signal) => {
        calls++;
        signals.push(signal);
        if (calls === 1) return ['10.0.0.1:80'];
        if (calls === 2) return new Promise<PollResult>((resolve) => (release = resolve));
        return ['10.0.0.1:80'];
      },
      { ...fast, resolveTimeoutMs: 30 },
    );
    const r = rec(record(src));
    await waitFor(() => expect(r.of('failed').length).toBe(1));
    const failure = r.of('failed')[0]!;
    expect(failure.error).toBeInstanceOf(ResolveTimeoutError);
    expect((failure.error as ResolveTimeoutError).timeoutMs).toBe(30);
    expect(signals[1]?.aborted).toBe(true);
    expect(r.keys()).toEqual(['10.0.0.1:80']);
    release?.(['10.9.9.9:80']);
    await waitFor(() => expect(calls).toBeGreaterThanOrEqual(4));
    expect(r.keys()).toEqual(['10.0.0.1:80']);
  });

  it('keeps the last set on an empty answer and says so, unless keepLastOnEmpty is false', async () => {
    for (const keepLastOnEmpty of [true, false]) {
      let empty = false;
      const src = poll(async () => (empty ? [] : ['10.0.0.1:80']), { ...fast, keepLastOnEmpty });
      const r = rec(record(src));
      await waitFor(() => expect(r.set.size).toBe(1));
      empty = true;
      if (keepLastOnEmpty) {
        await waitFor(() => expect(r.of('empty-kept').length).toBeGreaterThanOrEqual(2));
        expect(r.of('empty-kept')[0]).toMatchObject({ kept: 1, source: 'poll' });
        expect(r.set.size).toBe(1);
      } else {
        await waitFor(() => expect(r.set.size).toBe(0));
        expect(r.of('empty-kept')).toEqual([]);
      }
      r.stop();
    }
  });

  it('reports each invalid entry and duplicate by name and uses the rest', async () => {
    const src = poll(
      async () => [
        '10.0.0.1:80',
        'no-port.example',
        '10.0.0.2:99999',
        { address: '10.0.0.3:80', weight: 2 },
        '10.0.0.1:80',
        '[::1]:80',
        42 as unknown as string,
      ],
      { ...fast, name: 'registry' },
    );
    const r = rec(record(src));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThan(0));
    expect(r.keys()).toEqual(['10.0.0.1:80', '10.0.0.3:80', '[::1]:80']);
    expect(r.set.get('10.0.0.3:80')).toEqual({ address: '10.0.0.3:80', weight: 2 });
    const invalid = r.of('invalid');
    expect(invalid.map((e) => e.input).slice(0, 3)).toEqual(['"no-port.example"', '"10.0.0.2:99999"', '42']);
    expect(invalid[0]?.error).toBeInstanceOf(InvalidAddressError);
    expect(invalid[0]?.source).toBe('registry');
    expect(r.of('duplicate')[0]).toMatchObject({
      key: '10.0.0.1:80',
      inputs: ['"10.0.0.1:80"', '"10.0.0.1:80"'],
    });
  });

  it('turns a synchronous throw or a non-list answer into a failed round, never a stream error', async () => {
    let n = 0;
    const src = poll(() => {
      n++;
      if (n === 1) throw new Error('sync boom');
      if (n === 2) return 7 as unknown as PollResult;
      if (n === 3) return Promise.reject('a string');
      return ['10.0.0.1:80'];
    }, fast);
    const r = rec(record(src));
    await waitFor(() => expect(r.set.size).toBe(1));
    expect(r.of('failed').map((e) => e.error.message)).toEqual([
      'poll: resolve failed: sync boom',
      'poll: resolve returned 7, expected a list of addresses',
      'poll: resolve failed: "a string"',
    ]);
    expect(r.errored).toBeUndefined();
  });

  it('waits at least validForMs when the answer says so', async () => {
    const src = poll(async () => ({ addresses: ['10.0.0.1:80'], validForMs: 60_000 }), fast);
    const r = rec(record(src));
    await waitFor(() => expect(r.of('resolved').length).toBe(1));
    expect(r.of('resolved')[0]?.nextPollMs).toBe(60_000);
  });

  it('spreads the interval by the jitter', async () => {
    const src = poll(async () => ['10.0.0.1:80'], { ...fast, intervalMs: 30, jitter: 0.5 });
    const r = rec(record(src));
    await waitFor(() => expect(r.of('resolved').length).toBeGreaterThanOrEqual(8));
    const delays = r.of('resolved').map((e) => e.nextPollMs ?? -1);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(15);
      expect(d).toBeLessThanOrEqual(45);
    }
    expect(new Set(delays).size).toBeGreaterThan(1);
  });

  it('rejects bad options at construction with ConfigError', () => {
    const ok = async () => [];
    expect(() => poll('x' as never)).toThrow(ConfigError);
    expect(() => poll(ok, { intervalMs: 0 })).toThrow(/intervalMs/);
    expect(() => poll(ok, { jitter: 2 })).toThrow(/jitter/);
    expect(() => poll(ok, { resolveTimeoutMs: -1 })).toThrow(/resolveTimeoutMs/);
    expect(() => poll(ok, { backoff: { initialMs: 100, maxMs: 10 } })).toThrow(/backoff.maxMs/);
    expect(() => poll(ok, { keepLastOnEmpty: 'yes' as never })).toThrow(/keepLastOnEmpty/);
    expect(() => poll(ok, { name: '' })).toThrow(/name/);
  });
});
