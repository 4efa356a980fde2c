/**
 * A clock that stops while this process's event loop is blocked.
 *
 * A call's round-trip time is measured by the client's own event loop: the
 * response callback runs when the loop gets to it. When the loop is blocked
 * (a garbage-collection pause, a long synchronous task, the process waiting
 * for a CPU), every response that arrives meanwhile is seen late, and the
 * delay is added to the round-trip time of whichever endpoints had calls in
 * flight. PeakEWMA keeps such a peak for seconds (its decay is 10 s), so a
 * client-side pause of 20–30 ms, common in Node, makes a 1 ms server look
 * like a 30 ms one and sends calls to servers that really are slower.
 *
 * The loop clock measures the blocks: while calls are in flight, a
 * heartbeat timer is due every {@link BEAT_MS}; when it fires late by more
 * than {@link TOLERANCE_MS}, the loop was blocked from the due time (plus
 * the tolerance) until the timer ran. {@link LoopClock.now} is
 * `performance.now()` minus the blocked time so far (including a block
 * still going on), so the difference of two readings is the time the loop
 * was free to run in between. A block shorter than the heartbeat period may
 * go unseen, and a long one is seen from the first due time inside it: the
 * clock errs toward counting a block as round-trip time, never the reverse.
 *
 * The heartbeat runs only while calls are in flight (one beat at most after
 * the last ends), its timer is `unref`'d so it never keeps a process alive,
 * and one clock serves every balancer of the process. A heartbeat that
 * never runs (its timer lost, as when a test's fake timers are removed
 * with a beat pending) is replaced when the next call starts.
 *
 * @module
 */

/** Heartbeat period in ms: the least block the clock is sure to see. */
export const BEAT_MS = 2;
/** Lateness of a timer that is not a block: timers fire on a 1 ms grid. */
export const TOLERANCE_MS = 1;
/** A heartbeat this late when a call starts is taken for lost, and replaced. */
export const LOST_MS = 1_000;

/**
 * The loop clock, as used by the balancer: `enter` when a call starts,
 * `leave` when it ends, `now` to read the clock.
 *
 * @example
 * ```ts
 * const clock = new LoopClock();
 * clock.enter();
 * const started = clock.now();
 * // ... the call ...
 * const rttMs = clock.now() - started; // without the time the loop was blocked
 * clock.leave();
 * ```
 */
export class LoopClock {
  readonly #wall: () => number;
  readonly #beatMs: number;
  /** Blocked time of the blocks already over, ms. */
  #blocked = 0;
  /** When the heartbeat is due, or NaN while it is not running. */
  #due = Number.NaN;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Calls in flight. */
  #active = 0;
  /** Which scheduled heartbeat is the live one. */
  #generation = 0;

  constructor(wall: () => number = () => performance.now(), beatMs = BEAT_MS) {
    this.#wall = wall;
    this.#beatMs = beatMs;
  }

  /** Wall time minus the time the event loop was blocked, ms. */
  now(): number {
    return this.at(this.#wall());
  }

  /** The clock at wall time `t` (a reading of the wall clock just taken), ms. */
  at(t: number): number {
    return t - this.#blocked - this.#ongoing(t);
  }

  /** Total blocked time seen so far, ms (for stats and tests). */
  blockedMs(): number {
    return this.#blocked + this.#ongoing(this.#wall());
  }

  /** Whether the heartbeat timer is scheduled. */
  get beating(): boolean {
    return this.#timer !== undefined;
  }

  /** A call started: the heartbeat runs while any call is in flight. */
  enter(): void {
    this.#active++;
    if (this.#timer === undefined) {
      this.#schedule(this.#wall());
      return;
    }
    const t = this.#wall();
    if (t - this.#due > LOST_MS) {
      // the heartbeat never ran: its timer was lost (fake timers in a test
      // that were uninstalled, say). Count the time as blocked, as a beat
      // would have, and start a new heartbeat; the old one, should it run
      // after all, is ignored.
      this.#blocked += this.#ongoing(t);
      this.#schedule(t);
    }
  }

  /** A call ended. */
  leave(): void {
    if (this.#active > 0) this.#active--;
  }

  /** The part of a block still going on at `t`: the heartbeat is overdue. */
  #ongoing(t: number): number {
    const late = t - this.#due - TOLERANCE_MS;
    // biome-ignore lint/complexity/useMathMinMax: late is NaN while no heartbeat runs; Math.max would keep the NaN
    return late > 0 ? late : 0;
  }

  #schedule(t: number): void {
    this.#due = t + this.#beatMs;
    const generation = ++this.#generation;
    this.#timer = setTimeout(() => this.#beat(generation), this.#beatMs);
    this.#timer.unref?.();
  }

  #beat(generation: number): void {
    if (generation !== this.#generation) return;
    const t = this.#wall();
    this.#blocked += this.#ongoing(t);
    this.#timer = undefined;
    if (this.#active > 0) this.#schedule(t);
    else this.#due = Number.NaN;
  }
}

/** The clock every balancer of this process shares. */
export const loopClock = new LoopClock();
