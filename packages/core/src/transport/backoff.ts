/**
 * The reconnect backoff of a connection, with gRPC's connection-backoff
 * parameters (as grpc-js uses them): the first wait is the initial delay,
 * each later one 1.6 times the one before, capped at the maximum, and every
 * wait is moved by up to ±20 % at random so that clients restarted together
 * do not reconnect together.
 *
 * @internal
 * @module
 */

/** Options of {@link ReconnectBackoff}. */
export interface ReconnectBackoffOptions {
  /** The first wait, in ms; default 1,000 (`grpc.initial_reconnect_backoff_ms`). */
  readonly initialMs?: number;
  /** The longest wait, in ms; default 120,000 (`grpc.max_reconnect_backoff_ms`). */
  readonly maxMs?: number;
  /** How much longer each wait is than the one before; default 1.6 (gRPC's). */
  readonly multiplier?: number;
  /** A source of numbers in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/** gRPC's connection-backoff constants. */
export const BACKOFF_MULTIPLIER = 1.6;
/** How far a wait moves at random, as a fraction of it. */
export const BACKOFF_JITTER = 0.2;
/** The default first wait, in ms. */
export const DEFAULT_INITIAL_BACKOFF_MS = 1_000;
/** The default longest wait, in ms. */
export const DEFAULT_MAX_BACKOFF_MS = 120_000;

/**
 * The waits between connection attempts.
 *
 * @internal
 * @example
 * ```ts
 * const backoff = new ReconnectBackoff({ initialMs: 100 });
 * setTimeout(connect, backoff.next()); // 80–120 ms, then 128–192 ms, …
 * backoff.reset(); // once connected
 * ```
 */
export class ReconnectBackoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #multiplier: number;
  readonly #random: () => number;
  #currentMs: number;

  constructor(options: ReconnectBackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? DEFAULT_INITIAL_BACKOFF_MS;
    // as grpc-js: a maximum below the initial wait raises the maximum
    this.#maxMs = Math.max(this.#initialMs, options.maxMs ?? DEFAULT_MAX_BACKOFF_MS);
    this.#multiplier = options.multiplier ?? BACKOFF_MULTIPLIER;
    this.#random = options.random ?? Math.random;
    this.#currentMs = this.#initialMs;
  }

  /** The wait before the next attempt, in ms; each call grows the one after. */
  next(): number {
    const base = this.#currentMs;
    this.#currentMs = Math.min(this.#maxMs, base * this.#multiplier);
    const jitter = base * BACKOFF_JITTER * (this.#random() * 2 - 1);
    return Math.max(0, Math.round(base + jitter));
  }

  /** Starts again from the initial wait (after a connection succeeded). */
  reset(): void {
    this.#currentMs = this.#initialMs;
  }
}
