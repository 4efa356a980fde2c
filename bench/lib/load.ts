/**
 * Load generators for the echo service's unary method.
 *
 * - {@link closedLoop}: a fixed number of callers, each starting its next
 *   call when its last one ended (throughput at a fixed concurrency, and the
 *   latency each call saw under that load);
 * - {@link sequential}: one call at a time (latency with no queueing);
 * - {@link openLoop}: calls started on a fixed schedule whatever happens to
 *   the earlier ones, as a service's own callers would (steady traffic
 *   through a failure, where a closed loop would slow down and hide it).
 *
 * @module
 */
import * as grpc from '@grpc/grpc-js';
import type { EchoProtoClient } from '@grpc-tower/testing';
import { selfCpuUs } from './cpu.js';

/**
 * One unary call: resolves with the name of the server that answered.
 *
 * @example
 * ```ts
 * const server = await unary(client); // 'fast0'
 * ```
 */
export function unary(client: EchoProtoClient, deadlineMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    client.Unary(
      { message: 'x' },
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (err, reply) => {
        if (err) reject(err);
        else resolve(reply?.server ?? '?');
      },
    );
  });
}

/**
 * What a load run measured.
 *
 * @example
 * ```ts
 * const r: LoopResult = await closedLoop(client, { concurrency: 32, durationMs: 1000 });
 * r.calls / (r.elapsedMs / 1000); // calls per second
 * ```
 */
export interface LoopResult {
  /** Calls that succeeded. */
  readonly calls: number;
  /** Calls that failed. */
  readonly failures: number;
  readonly elapsedMs: number;
  /** Latency of each successful call, ms, in completion order. */
  readonly latencies: number[];
  /** Successful calls per answering server. */
  readonly byServer: Map<string, number>;
  /** This process's CPU time over the run, µs. */
  readonly cpuUs: number;
  /** Failures by gRPC status code (or -1 when the error had none). */
  readonly errors: Map<number, number>;
}

const codeOf = (err: unknown): number => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : -1;
};

class Tally {
  calls = 0;
  failures = 0;
  readonly latencies: number[] = [];
  readonly byServer = new Map<string, number>();
  readonly errors = new Map<number, number>();

  ok(server: string, ms: number): void {
    this.calls++;
    this.latencies.push(ms);
    this.byServer.set(server, (this.byServer.get(server) ?? 0) + 1);
  }

  failed(err: unknown): void {
    this.failures++;
    const code = codeOf(err);
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}

/**
 * Runs `concurrency` callers for `durationMs`, each starting its next call
 * when its last one ended.
 *
 * @example
 * ```ts
 * const r = await closedLoop(client, { concurrency: 16, durationMs: 2000 });
 * ```
 */
export function closedLoop(
  client: EchoProtoClient,
  options: { readonly concurrency: number; readonly durationMs: number; readonly deadlineMs?: number },
): Promise<LoopResult> {
  return closedLoopOf(() => unary(client, options.deadlineMs), options);
}

/**
 * {@link closedLoop} over any call: `call` resolves with the name of what
 * answered (a server, or `'?'`) and rejects when the call failed.
 *
 * @example
 * ```ts
 * const r = await closedLoopOf(() => fetchOnce(), { concurrency: 32, durationMs: 1000 });
 * ```
 */
export async function closedLoopOf(
  call: () => Promise<string>,
  options: { readonly concurrency: number; readonly durationMs: number },
): Promise<LoopResult> {
  const tally = new Tally();
  const cpu0 = selfCpuUs();
  const start = performance.now();
  const end = start + options.durationMs;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          const server = await call();
          tally.ok(server, performance.now() - t);
        } catch (err) {
          tally.failed(err);
        }
      }
    }),
  );
  const elapsedMs = performance.now() - start;
  return { ...tally, latencies: tally.latencies, elapsedMs, cpuUs: selfCpuUs() - cpu0 };
}

/**
 * Makes `n` calls one after the other; returns their latencies in ms (failed
 * calls are left out and counted).
 *
 * @example
 * ```ts
 * const { latencies } = await sequential(client, 1000);
 * ```
 */
export async function sequential(
  client: EchoProtoClient,
  n: number,
): Promise<{ latencies: number[]; failures: number }> {
  const latencies: number[] = [];
  let failures = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    try {
      await unary(client);
      latencies.push(performance.now() - t);
    } catch {
      failures++;
    }
  }
  return { latencies, failures };
}

/**
 * One call of an open loop: when it started and ended (ms on
 * `performance.now()`'s clock), and the server that answered or the code
 * it failed with.
 *
 * @example
 * ```ts
 * const firstC = loop.records.find((r) => r.server === 'C');
 * ```
 */
export interface CallRecord {
  /** When the schedule said the call should start (`started` or earlier, when the loop fell behind). */
  readonly scheduled: number;
  readonly started: number;
  readonly ended: number;
  readonly server: string | undefined;
  readonly code: number | undefined;
}

/**
 * Steady traffic: starts a call every `1000 / ratePerSecond` ms until
 * `stop()`; `stop()` resolves once every call started has ended. Every call
 * is recorded, and `onReply` sees each answer as it arrives.
 *
 * @example
 * ```ts
 * const loop = openLoop(client, { ratePerSecond: 200 });
 * await sleep(1000);
 * const records = await loop.stop();
 * ```
 */
export function openLoop(
  client: EchoProtoClient,
  options: {
    readonly ratePerSecond: number;
    readonly deadlineMs?: number;
    readonly onReply?: (record: CallRecord) => void;
  },
): { readonly records: CallRecord[]; stop(): Promise<CallRecord[]> } {
  const records: CallRecord[] = [];
  const inFlight = new Set<Promise<void>>();
  const interval = 1000 / options.ratePerSecond;
  const start = performance.now();
  let sent = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const fire = (scheduled: number): void => {
    const started = performance.now();
    const p = unary(client, options.deadlineMs).then(
      (server) => {
        const r: CallRecord = { scheduled, started, ended: performance.now(), server, code: undefined };
        records.push(r);
        options.onReply?.(r);
      },
      (err: unknown) => {
        const r: CallRecord = {
          scheduled,
          started,
          ended: performance.now(),
          server: undefined,
          code: codeOf(err),
        };
        records.push(r);
        options.onReply?.(r);
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  const tick = (): void => {
    timer = undefined;
    if (stopped) return;
    // catch up on calls that fell due while the event loop was busy
    const due = Math.floor((performance.now() - start) / interval) + 1;
    while (sent < due) {
      fire(start + sent * interval);
      sent++;
    }
    timer = setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
  };
  tick();
  return {
    records,
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      while (inFlight.size > 0) await Promise.all([...inFlight]);
      return records;
    },
  };
}

/**
 * An open loop at `ratePerSecond` for `ms`, then stopped: every call it
 * started, once all have ended.
 *
 * @example
 * ```ts
 * const records = await openLoopFor(client, 400, 4_000);
 * ```
 */
export async function openLoopFor(
  client: EchoProtoClient,
  ratePerSecond: number,
  ms: number,
): Promise<readonly CallRecord[]> {
  const loop = openLoop(client, { ratePerSecond });
  await new Promise((resolve) => setTimeout(resolve, ms));
  return loop.stop();
}
