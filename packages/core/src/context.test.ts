// The per-call context helpers: keys and values, deadlines, signals, and the
// promise helpers built on them. Timers are faked where a deadline must pass.
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, test, vi } from 'vitest';
import {
  CallControl,
  abortReason,
  background,
  callPart,
  contextKey,
  linkedScope,
  lowerDeadline,
  newContext,
  noteCall,
  ownedContext,
  raceSignal,
  sleep,
  withDeadline,
  withTimeout,
} from './context/index.js';
import { CancelledError, DeadlineExceededError, UnavailableError } from './errors.js';

afterEach(() => {
  vi.useRealTimers();
});

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

describe('context keys and values', () => {
  test('keys compare by identity and carry a description', () => {
    const a = contextKey<string>('tenant');
    const b = contextKey<string>('tenant');
    expect(a.description).toBe('tenant');
    expect(Object.isFrozen(a)).toBe(true);
    const ctx = background.withValue(a, 'acme');
    expect(ctx.get(a)).toBe('acme');
    expect(ctx.get(b)).toBeUndefined();
  });

  test('withValue makes a child and leaves the parent as it was', () => {
    const k = contextKey<number>('n');
    const parent = background.withValue(k, 1);
    const child = parent.withValue(k, 2);
    expect(parent.get(k)).toBe(1);
    expect(child.get(k)).toBe(2);
    expect(background.get(k)).toBeUndefined();
    expect(child.signal).toBe(parent.signal);
    expect(child.deadline).toBe(parent.deadline);
  });

  test('withSignal keeps the deadline and the values', () => {
    vi.useFakeTimers();
    const k = contextKey<string>('k');
    const scope = withTimeout(background.withValue(k, 'v'), 100);
    const controller = new AbortController();
    const child = scope.context.withSignal(controller.signal);
    expect(child.signal).toBe(controller.signal);
    expect(child.deadline).toBe(scope.context.deadline);
    expect(child.get(k)).toBe('v');
    scope.release();
  });
});

describe('background', () => {
  test('never aborts and has no deadline', () => {
    expect(background.signal.aborted).toBe(false);
    expect(background.deadline).toBe(Number.POSITIVE_INFINITY);
    expect(background.remainingMs()).toBe(Number.POSITIVE_INFINITY);
    expect(() => background.throwIfAborted()).not.toThrow();
  });
});

describe('remainingMs and throwIfAborted', () => {
  test('remainingMs counts down to 0 and stays there', () => {
    vi.useFakeTimers();
    const scope = withTimeout(background, 100);
    const start = Date.now();
    expect(scope.context.remainingMs()).toBe(100);
    expect(scope.context.remainingMs(start + 40)).toBe(60);
    expect(scope.context.remainingMs(start + 500)).toBe(0);
    scope.release();
  });

  test('throwIfAborted throws the abort reason as an error', () => {
    const controller = new AbortController();
    const ctx = background.withSignal(controller.signal);
    expect(() => ctx.throwIfAborted()).not.toThrow();
    const reason = new UnavailableError('gone');
    controller.abort(reason);
    expect(() => ctx.throwIfAborted()).toThrow(reason);
  });
});

describe('withDeadline / withTimeout', () => {
  test('a lower deadline arms one timer that aborts the child with a DeadlineExceededError', async () => {
    vi.useFakeTimers();
    const scope = withTimeout(background, 50);
    expect(scope.context.deadline).toBe(Date.now() + 50);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(49);
    expect(scope.context.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(scope.context.signal.aborted).toBe(true);
    const reason: unknown = scope.context.signal.reason;
    expect(reason).toBeInstanceOf(DeadlineExceededError);
    expect((reason as Error).message).toBe('deadline exceeded after 50 ms');
    expect(vi.getTimerCount()).toBe(0);
    scope.release();
  });

  test('onDeadline builds the error, given the time that passed', async () => {
    vi.useFakeTimers();
    const seen: number[] = [];
    const scope = withTimeout(background, 30, (ms) => {
      seen.push(ms);
      return new DeadlineExceededError(`custom after ${ms}`);
    });
    await vi.advanceTimersByTimeAsync(30);
    expect(seen).toEqual([30]);
    expect((scope.context.signal.reason as Error).message).toBe('custom after 30');
    scope.release();
  });

  test('a later deadline than the parent arms no timer and keeps the parent deadline', () => {
    vi.useFakeTimers();
    const parent = withTimeout(background, 100);
    const child = withTimeout(parent.context, 500);
    expect(child.context.deadline).toBe(parent.context.deadline);
    expect(vi.getTimerCount()).toBe(1);
    const none = withDeadline(background, Number.POSITIVE_INFINITY);
    expect(none.context.deadline).toBe(Number.POSITIVE_INFINITY);
    expect(vi.getTimerCount()).toBe(1);
    child.release();
    none.release();
    parent.release();
    expect(vi.getTimerCount()).toBe(0);
  });

  test("the child aborts when the parent does, with the parent's reason", () => {
    const controller = new AbortController();
    const parent = background.withSignal(controller.signal);
    const scope = withDeadline(parent, Number.POSITIVE_INFINITY);
    expect(listeners(controller.signal)).toBe(1);
    const reason = new UnavailableError('upstream gone');
    controller.abort(reason);
    expect(scope.context.signal.aborted).toBe(true);
    expect(scope.context.signal.reason).toBe(reason);
    expect(listeners(controller.signal)).toBe(0);
  });

  test('a parent aborted without a reason gives the child a CancelledError', () => {
    const controller = new AbortController();
    const scope = withTimeout(background.withSignal(controller.signal), 1_000);
    controller.abort();
    expect(scope.context.signal.reason).toBeInstanceOf(CancelledError);
    scope.release();
  });

  test('aborting the child controller does not touch the parent', () => {
    const controller = new AbortController();
    const scope = withDeadline(background.withSignal(controller.signal), Number.POSITIVE_INFINITY);
    scope.controller.abort(new CancelledError('only this call'));
    expect(scope.context.signal.aborted).toBe(true);
    expect(controller.signal.aborted).toBe(false);
    scope.release();
    expect(listeners(controller.signal)).toBe(0);
  });

  test('release clears the timer and the parent listener, and can be called twice', () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const scope = withTimeout(background.withSignal(controller.signal), 1_000);
    expect(vi.getTimerCount()).toBe(1);
    expect(listeners(controller.signal)).toBe(1);
    scope.release();
    scope.release();
    expect(vi.getTimerCount()).toBe(0);
    expect(listeners(controller.signal)).toBe(0);
    controller.abort();
    // released: the child no longer follows the parent
    expect(scope.context.signal.aborted).toBe(false);
  });

  test('when the timer fires the parent listener goes too', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const scope = withTimeout(background.withSignal(controller.signal), 10);
    await vi.advanceTimersByTimeAsync(10);
    expect(listeners(controller.signal)).toBe(0);
    scope.release();
  });

  test('an already aborted parent gives an aborted child, with no timer and no listener', () => {
    vi.useFakeTimers();
    const signal = AbortSignal.abort(new UnavailableError('already'));
    const scope = withTimeout(background.withSignal(signal), 100);
    expect(scope.context.signal.aborted).toBe(true);
    expect((scope.context.signal.reason as Error).message).toBe('already');
    expect(vi.getTimerCount()).toBe(0);
    expect(listeners(signal)).toBe(0);
    scope.release();
  });

  test('a child keeps the values of its parent', () => {
    const k = contextKey<string>('k');
    const scope = withTimeout(background.withValue(k, 'v'), 1_000);
    expect(scope.context.get(k)).toBe('v');
    scope.release();
  });

  test('a deadline already passed aborts on the next timer turn', async () => {
    vi.useFakeTimers();
    const scope = withDeadline(background, Date.now() - 5);
    expect(scope.context.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(scope.context.signal.reason).toBeInstanceOf(DeadlineExceededError);
    scope.release();
  });
});

describe('linkedScope', () => {
  test('follows the parent, arms no timer, and can be stopped alone', () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const parent = background.withSignal(controller.signal);
    const one = linkedScope(parent);
    const two = linkedScope(parent);
    expect(vi.getTimerCount()).toBe(0);
    one.controller.abort(new CancelledError('hedge lost'));
    expect(one.context.signal.aborted).toBe(true);
    expect(two.context.signal.aborted).toBe(false);
    one.release();
    controller.abort();
    expect(two.context.signal.aborted).toBe(true);
    two.release();
    expect(listeners(controller.signal)).toBe(0);
  });
});

describe('newContext', () => {
  test('without options: no deadline, never aborted', () => {
    const scope = newContext();
    expect(scope.context.deadline).toBe(Number.POSITIVE_INFINITY);
    expect(scope.context.signal.aborted).toBe(false);
    scope.release();
  });

  test('timeoutMs and deadline: the sooner wins and aborts the context', async () => {
    vi.useFakeTimers();
    const now = Date.now();
    const a = newContext({ timeoutMs: 100, deadline: now + 50 });
    const b = newContext({ timeoutMs: 20, deadline: now + 50 });
    expect(a.context.deadline).toBe(now + 50);
    expect(b.context.deadline).toBe(now + 20);
    await vi.advanceTimersByTimeAsync(20);
    expect(b.context.signal.reason).toBeInstanceOf(DeadlineExceededError);
    expect(a.context.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(30);
    expect(a.context.signal.aborted).toBe(true);
    a.release();
    b.release();
  });

  test("follows the caller's signal and lets go of it on release", () => {
    const controller = new AbortController();
    const scope = newContext({ signal: controller.signal });
    expect(listeners(controller.signal)).toBe(1);
    controller.abort();
    expect(scope.context.signal.reason).toBeInstanceOf(CancelledError);
    scope.release();

    const other = new AbortController();
    const released = newContext({ signal: other.signal });
    released.release();
    expect(listeners(other.signal)).toBe(0);
  });
});

describe('abortReason', () => {
  const reasonOf = (reason?: unknown): Error => {
    const controller = new AbortController();
    controller.abort(reason);
    return abortReason(controller.signal);
  };

  test('an abort without a reason becomes a CancelledError caused by the AbortError', () => {
    const err = reasonOf();
    expect(err).toBeInstanceOf(CancelledError);
    expect((err.cause as Error).name).toBe('AbortError');
  });

  test("AbortSignal.timeout's TimeoutError becomes a DeadlineExceededError", () => {
    const err = reasonOf(new DOMException('signal timed out', 'TimeoutError'));
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect(err.message).toBe('signal timed out');
  });

  test('an Error reason is returned as it is', () => {
    const reason = new UnavailableError('x');
    expect(reasonOf(reason)).toBe(reason);
    const plain = new TypeError('t');
    expect(reasonOf(plain)).toBe(plain);
  });

  test('a non-error reason becomes a CancelledError with that text', () => {
    const err = reasonOf('user navigated away');
    expect(err).toBeInstanceOf(CancelledError);
    expect(err.message).toBe('user navigated away');
    expect(reasonOf(42).message).toBe('42');
  });
});

describe('sleep', () => {
  test('resolves after the time and leaves no listener', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    let done = false;
    const p = sleep(100, controller.signal).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(99);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(done).toBe(true);
    expect(listeners(controller.signal)).toBe(0);
  });

  test('rejects with the abort reason at once and clears its timer', async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const p = sleep(10_000, controller.signal);
    expect(vi.getTimerCount()).toBe(1);
    const reason = new UnavailableError('stop');
    controller.abort(reason);
    await expect(p).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('an aborted signal rejects without arming a timer', async () => {
    vi.useFakeTimers();
    await expect(sleep(10, AbortSignal.abort())).rejects.toBeInstanceOf(CancelledError);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('works without a signal', async () => {
    vi.useFakeTimers();
    const p = sleep(5);
    await vi.advanceTimersByTimeAsync(5);
    await expect(p).resolves.toBeUndefined();
  });
});

describe('raceSignal', () => {
  test('passes the value or the error through and removes its listener', async () => {
    const controller = new AbortController();
    await expect(raceSignal(Promise.resolve(1), controller.signal)).resolves.toBe(1);
    await expect(raceSignal(Promise.reject(new Error('inner')), controller.signal)).rejects.toThrow('inner');
    expect(listeners(controller.signal)).toBe(0);
  });

  test('rejects with the abort reason when the signal aborts first; a late rejection is not unhandled', async () => {
    const controller = new AbortController();
    let rejectInner: (e: Error) => void = () => undefined;
    const inner = new Promise<number>((_resolve, reject) => {
      rejectInner = reject;
    });
    const p = raceSignal(inner, controller.signal);
    const reason = new UnavailableError('stop');
    controller.abort(reason);
    await expect(p).rejects.toBe(reason);
    rejectInner(new Error('late'));
    // the shared setup fails the test if the late rejection goes unhandled
    await new Promise((resolve) => setImmediate(resolve));
  });

  test('an already aborted signal rejects at once', async () => {
    const inner = Promise.reject(new Error('ignored'));
    await expect(raceSignal(inner, AbortSignal.abort())).rejects.toBeInstanceOf(CancelledError);
  });
});

describe('CallControl: one deadline authority per call', () => {
  test('one timer; a whole-call child lowers it without a timer of its own, and the error says what the call waited for', async () => {
    vi.useFakeTimers();
    const expired: Error[] = [];
    const control = new CallControl(Date.now() + 1_000, (err) => expired.push(err));
    const ctx = ownedContext(control);
    control.start();
    expect(vi.getTimerCount()).toBe(1);
    const lowered = lowerDeadline(
      ctx,
      Date.now() + 100,
      (_ms, waiting) => new DeadlineExceededError(`limit (${waiting})`),
    );
    expect(lowered?.deadline).toBe(Date.now() + 100);
    expect(vi.getTimerCount()).toBe(1);
    // a part of the call (one attempt) cannot lower the whole call's deadline
    expect(
      lowered && lowerDeadline(callPart(lowered), Date.now() + 10, () => new Error('no')),
    ).toBeUndefined();
    if (lowered) noteCall(lowered, 'backoff');
    await vi.advanceTimersByTimeAsync(100);
    expect(ctx.aborted).toBe(true);
    expect(expired).toHaveLength(1);
    expect(expired[0]?.message).toBe(
      'limit (before the call reached a server again, waiting in a retry backoff)',
    );
    expect(ctx.signal.reason).toBe(expired[0]);
    expect(vi.getTimerCount()).toBe(0);
  });

  test("the call's own deadline error names the endpoint in flight; no signal exists until asked for", async () => {
    vi.useFakeTimers();
    const control = new CallControl(Date.now() + 50);
    const ctx = ownedContext(control);
    let hooked = 0;
    ctx.onAbort(() => hooked++);
    control.start();
    noteCall(ctx, 'in-flight', '127.0.0.2:50051');
    await vi.advanceTimersByTimeAsync(50);
    expect(hooked).toBe(1);
    expect(ctx.reason()).toBeInstanceOf(DeadlineExceededError);
    expect(ctx.reason().message).toBe(
      'Deadline exceeded after 50 ms waiting for the response of 127.0.0.2:50051',
    );
    expect((ctx.reason() as DeadlineExceededError).endpoint).toBe('127.0.0.2:50051');
    // created on first use, already aborted with the reason
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBe(ctx.reason());
  });

  test('a call waiting for an endpoint is described, when its deadline passes, by what the waiter says then', async () => {
    vi.useFakeTimers();
    const control = new CallControl(Date.now() + 50);
    const ctx = ownedContext(control);
    control.start();
    let ready = 0;
    let asked = 0;
    noteCall(ctx, 'endpoint', () => {
      asked++;
      return `target "orders" (${ready} ready)`;
    });
    ready = 2;
    expect(asked).toBe(0);
    await vi.advanceTimersByTimeAsync(50);
    expect(asked).toBe(1);
    expect(ctx.reason().message).toBe(
      'Deadline exceeded after 50 ms before the call reached a server, waiting for a ready endpoint for target "orders" (2 ready)',
    );
    expect((ctx.reason() as DeadlineExceededError).endpoint).toBeUndefined();
  });

  test("a scope owns its own deadline: its error is its own, and notes through it still reach the call's", async () => {
    vi.useFakeTimers();
    const control = new CallControl(Date.now() + 1_000);
    const ctx = ownedContext(control);
    control.start();
    const scope = withTimeout(ctx, 20, (ms) => new DeadlineExceededError(`scope after ${ms} ms`));
    expect(vi.getTimerCount()).toBe(2);
    noteCall(scope.context, 'in-flight', '127.0.0.3:50051');
    await vi.advanceTimersByTimeAsync(20);
    expect((scope.context.signal.reason as Error).message).toBe('scope after 20 ms');
    expect(scope.context.reason().message).toBe('scope after 20 ms');
    expect(ctx.aborted).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(980);
    expect(ctx.reason().message).toBe(
      'Deadline exceeded after 1000 ms waiting for the response of 127.0.0.3:50051',
    );
    expect(vi.getTimerCount()).toBe(0);
    scope.release();
  });

  test('an abort hook can be removed, and withDeadline under an owned context adds no signal listener', () => {
    const control = new CallControl(Number.POSITIVE_INFINITY);
    const ctx = ownedContext(control);
    let runs = 0;
    const off = ctx.onAbort(() => runs++);
    off();
    const scope = withDeadline(ctx, Number.POSITIVE_INFINITY);
    control.abort(new CancelledError('stop'));
    expect(runs).toBe(0);
    expect(scope.context.signal.aborted).toBe(true);
    expect(abortReason(scope.context.signal).message).toBe('stop');
    scope.release();
  });
});
