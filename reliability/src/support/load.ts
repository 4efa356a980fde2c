/**
 * Closed-loop load for reliability tests: `concurrency` workers each send
 * one call at a time through a client, recording every call in a ledger,
 * until stopped. Every loop is bounded by `maxCalls`.
 *
 * @module
 */
import type { EchoProtoClient } from '@grpc-tower/testing';
import type { CallOptions, CallOutcome, Ledger } from '../ledger.js';

/** Options of {@link startLoad}. */
export interface LoadOptions {
  /** Calls in flight at once; default 8. */
  readonly concurrency?: number;
  /** Each call's deadline in ms; default 5000. */
  readonly deadlineMs?: number;
  /** One call in `streamEvery` is a server stream; default 0 (unary only). */
  readonly streamEvery?: number;
  /** Replies per stream; default 10. */
  readonly streamCount?: number;
  /** The server's delay before each stream reply, in ms; default 20. */
  readonly streamDelayMs?: number;
  /** The most calls this load sends; default 100 000. */
  readonly maxCalls?: number;
  /** Options added to every call. */
  readonly call?: CallOptions;
  /** A prefix for messages; default `'m'`. */
  readonly prefix?: string;
}

/** Running load. */
export interface Load {
  /** Calls sent so far. */
  readonly sent: number;
  /** Calls finished so far. */
  readonly finished: number;
  /** Resolves once `n` more calls have finished (or the load stopped). */
  more(n: number): Promise<void>;
  /** Stops sending and resolves when every worker's last call finished. */
  stop(): Promise<void>;
}

/**
 * Starts closed-loop load.
 *
 * @example
 * ```ts
 * const load = startLoad(ledger, stack.client, { concurrency: 16 });
 * await load.more(200);
 * await load.stop();
 * ```
 */
export function startLoad(ledger: Ledger, client: EchoProtoClient, options: LoadOptions = {}): Load {
  const concurrency = options.concurrency ?? 8;
  const maxCalls = options.maxCalls ?? 100_000;
  const streamEvery = options.streamEvery ?? 0;
  const prefix = options.prefix ?? 'm';
  let running = true;
  let sent = 0;
  let finished = 0;
  const waiters: { at: number; resolve: () => void }[] = [];
  const wake = (): void => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (finished >= w.at || !running) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  };
  const one = (n: number): Promise<CallOutcome> => {
    const callOptions: CallOptions = { deadlineMs: options.deadlineMs ?? 5000, ...options.call };
    const message = `${prefix}${n}`;
    if (streamEvery > 0 && n % streamEvery === 0) {
      return ledger.serverStream(client, message, options.streamCount ?? 10, {
        ...callOptions,
        request: { delayMs: options.streamDelayMs ?? 20, ...callOptions.request },
      });
    }
    return ledger.unary(client, message, callOptions);
  };
  const worker = async (): Promise<void> => {
    while (running && sent < maxCalls) {
      const n = sent++;
      await one(n);
      finished++;
      wake();
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  void Promise.all(workers).then(() => {
    running = false;
    wake();
  });
  return {
    get sent() {
      return sent;
    },
    get finished() {
      return finished;
    },
    more(n: number): Promise<void> {
      if (!running || sent >= maxCalls) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ at: finished + n, resolve }));
    },
    async stop(): Promise<void> {
      running = false;
      wake();
      await Promise.all(workers);
    },
  };
}
