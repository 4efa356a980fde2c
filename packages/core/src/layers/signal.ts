/**
 * Abort listening for waiting calls.
 *
 * @internal
 * @module
 */
import { background } from '../context/index.js';

/**
 * Calls `onAbort` once when `signal` aborts and returns the function that
 * stops listening. The root context's signal never aborts, so nothing is
 * attached to it: thousands of calls waiting under `background` would
 * otherwise pile listeners onto one shared signal.
 *
 * @internal
 * @example
 * ```ts
 * const stop = onAbort(ctx.signal, () => queue.remove(node));
 * // ...when the call got what it waited for:
 * stop();
 * ```
 */
export function onAbort(signal: AbortSignal, listener: () => void): () => void {
  if (signal === background.signal) return noop;
  signal.addEventListener('abort', listener, { once: true });
  return () => signal.removeEventListener('abort', listener);
}

function noop(): void {}
