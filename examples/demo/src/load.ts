/**
 * Open-loop load: calls are sent at a fixed rate whatever the servers do,
 * as real traffic arrives. (A closed loop, where each worker waits for its
 * previous call, would send fewer calls to a slow server and hide the very
 * latency the demo wants to show.)
 */
import type { DemoClient } from './clients.js';
import type { Recorder } from './recorder.js';

/** Where the demo's time and phase come from. */
export interface Clock {
  /** ms since the demo started. */
  now(): number;
  /** The phase calls sent now belong to. */
  readonly phase: string;
}

/** The error fields the recorder keeps. */
function describeError(err: unknown): { code: number; details: string } {
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  const code = typeof e.code === 'number' ? e.code : 2;
  const details =
    typeof e.details === 'string' && e.details.length > 0
      ? e.details
      : typeof e.message === 'string'
        ? e.message
        : String(err);
  return { code, details };
}

/** A running load generator. */
export interface Load {
  /** Calls sent and not settled. */
  readonly inFlight: number;
  /** Stops sending and waits for every call in flight to settle. */
  stop(): Promise<void>;
}

/**
 * Sends `ratePerSec` calls per second through `client` until stopped, and
 * records each outcome. `serverOf` maps an address found in an error
 * message to a server name, so failures can be charged to a server.
 * At most `maxInFlight` calls are outstanding; calls beyond it are not sent
 * and count as failed (the client could not keep up).
 */
export function startLoad(
  client: DemoClient,
  recorder: Recorder,
  clock: Clock,
  options: {
    readonly ratePerSec: number;
    readonly deadlineMs: number;
    readonly maxInFlight: number;
    readonly serverOf: (text: string) => string | undefined;
  },
): Load {
  const inFlight = new Set<Promise<void>>();
  const started = clock.now();
  let sent = 0;
  const send = (): void => {
    const phase = clock.phase;
    const startMs = clock.now();
    if (inFlight.size >= options.maxInFlight) {
      recorder.record({
        startMs,
        endMs: startMs,
        phase,
        error: { code: 8, details: `client-side: more than ${options.maxInFlight} calls in flight` },
      });
      return;
    }
    const p = client.unary(options.deadlineMs).then(
      (server) => recorder.record({ startMs, endMs: clock.now(), phase, server }),
      (err: unknown) => {
        const { code, details } = describeError(err);
        const server = options.serverOf(details);
        recorder.record({
          startMs,
          endMs: clock.now(),
          phase,
          error: server === undefined ? { code, details } : { code, details, server },
        });
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  const timer = setInterval(() => {
    const due = Math.floor(((clock.now() - started) * options.ratePerSec) / 1000);
    // after a stall (a busy event loop), catch up by at most 100 ms worth of calls
    const burst = Math.max(1, Math.ceil(options.ratePerSec / 10));
    if (due - sent > burst) sent = due - burst;
    while (sent < due) {
      sent++;
      send();
    }
  }, 5);
  return {
    get inFlight() {
      return inFlight.size;
    },
    async stop() {
      clearInterval(timer);
      await Promise.allSettled([...inFlight]);
    },
  };
}
