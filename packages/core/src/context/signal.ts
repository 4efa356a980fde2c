/**
 * Helpers over an `AbortSignal`: the reason it aborted as an Error, a sleep
 * and a race that stop when it aborts.
 *
 * @module
 */
import { CancelledError, DeadlineExceededError } from '../errors.js';

/**
 * The reason a signal aborted, as an Error: the signal's own reason when it
 * is an Error, otherwise a {@link CancelledError}.
 *
 * @example
 * ```ts
 * signal.addEventListener('abort', () => reject(abortReason(signal)));
 * ```
 */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) {
    // AbortSignal.abort() without a reason yields a DOMException 'AbortError'.
    if (reason.name === 'AbortError') return new CancelledError(undefined, { cause: reason });
    if (reason.name === 'TimeoutError') return new DeadlineExceededError(reason.message, { cause: reason });
    return reason;
  }
  return new CancelledError(reason === undefined ? undefined : String(reason));
}

/**
 * Resolves after `ms`, or rejects with the abort reason as soon as `signal`
 * aborts; the timer and the listener are released either way.
 *
 * @example
 * ```ts
 * await sleep(25, ctx.signal);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Races `promise` against `signal`: rejects with the abort reason when the
 * signal aborts first, and removes its listener when the promise settles.
 * The promise itself is not cancelled; pass the signal to it for that.
 *
 * @example
 * ```ts
 * const res = await raceSignal(fetchSomething(), ctx.signal);
 * ```
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => undefined);
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
