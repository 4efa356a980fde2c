/**
 * Leak checks and loopback addresses for tests.
 *
 * A leak check compares two snapshots of `process.getActiveResourcesInfo()`
 * (the timers, sockets, servers and child processes keeping Node's event
 * loop alive), counted by type. Resources released asynchronously (a socket
 * closing, a server's last session ending) need a moment, so the check
 * polls until every count is back at or below its baseline, or a settle
 * time passes. Unref'd timers and handles do not keep the loop alive and are
 * not reported by Node, so that check does not see them; {@link trackResources}
 * does (through `async_hooks`), for the resources created while it tracks.
 *
 * @module
 */
import { createHook } from 'node:async_hooks';

/**
 * Counts of active resources by type, such as `{ Timeout: 2, TCPSocketWrap: 1 }`.
 *
 * @example
 * ```ts
 * const snapshot: HandleCounts = activeHandles();
 * ```
 */
export type HandleCounts = Readonly<Record<string, number>>;

/**
 * Options of {@link expectNoLeaks}.
 *
 * @example
 * ```ts
 * await expectNoLeaks(before, { settleMs: 500, ignore: ['FSReqCallback'] });
 * ```
 */
export interface LeakCheckOptions {
  /** How long to wait for counts to return to the baseline, in ms; default 2000. */
  readonly settleMs?: number;
  /** Resource types not compared. */
  readonly ignore?: readonly string[];
}

/**
 * A snapshot of the resources keeping the event loop alive, counted by type.
 *
 * @example
 * ```ts
 * const before = activeHandles();
 * // ... open and close servers and clients ...
 * await expectNoLeaks(before);
 * ```
 */
export function activeHandles(): HandleCounts {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) {
    counts[type] = (counts[type] ?? 0) + 1;
  }
  return counts;
}

/** The types whose count in `now` is above `before`, as `Type: a → b (+n)`. */
function grown(before: HandleCounts, now: HandleCounts, ignore: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const [type, count] of Object.entries(now)) {
    if (ignore.has(type)) continue;
    const base = before[type] ?? 0;
    if (count > base) out.push(`${type}: ${base} → ${count} (+${count - base})`);
  }
  return out.sort();
}

/**
 * Resolves once no resource type has more active resources than in
 * `before`; polls every 10 ms for at most `settleMs`, then throws an error
 * that lists every type that grew.
 *
 * @example
 * ```ts
 * const before = activeHandles();
 * const server = await startEchoServer();
 * await server.stop();
 * await expectNoLeaks(before, { settleMs: 1000 });
 * ```
 */
export async function expectNoLeaks(before: HandleCounts, options: LeakCheckOptions = {}): Promise<void> {
  const settleMs = options.settleMs ?? 2000;
  if (!Number.isFinite(settleMs) || settleMs < 0) {
    throw new RangeError(`expectNoLeaks: settleMs must be a finite number >= 0, got ${String(settleMs)}`);
  }
  const ignore = new Set(options.ignore ?? []);
  const until = Date.now() + settleMs;
  for (;;) {
    // sampled after the poll timer fired, so that timer is not counted
    const growth = grown(before, activeHandles(), ignore);
    if (growth.length === 0) return;
    if (Date.now() >= until) {
      throw new Error(`resources leaked (still active after ${settleMs} ms): ${growth.join(', ')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The IPv4 loopback address `127.0.0.<n>`, for n from 1 to 254.
 *
 * @example
 * ```ts
 * loopbackAddress(7); // '127.0.0.7'
 * ```
 */
export function loopbackAddress(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 254) {
    throw new RangeError(`loopbackAddress: n must be an integer from 1 to 254, got ${String(n)}`);
  }
  return `127.0.0.${n}`;
}

/** Hosts 127.0.0.2 to 127.0.0.241 are split into blocks, one block per test process. */
const FIRST_HOST = 2;
const BLOCK_SIZE = 24;
const BLOCKS = 10;

function processBlock(): number {
  const poolId = Number.parseInt(process.env.VITEST_POOL_ID ?? '', 10);
  if (Number.isInteger(poolId) && poolId > 0) {
    // workers of one run have distinct pool ids; the parent pid shifts separate runs apart
    return (poolId - 1 + process.ppid) % BLOCKS;
  }
  return process.pid % BLOCKS;
}

let cursor = 0;

/**
 * `count` distinct loopback hosts (127.0.0.x) from this process's block of
 * 24 hosts, so that test files running in parallel in other
 * processes use other hosts. Successive calls continue through the block and
 * wrap around after it is used up. Bind each host with port 0.
 *
 * @example
 * ```ts
 * const [a, b, c] = pickHosts(3);
 * const servers = await Promise.all([a, b, c].map((host) => startEchoServer({ host })));
 * ```
 */
export function pickHosts(count: number): string[] {
  if (!Number.isInteger(count) || count < 1 || count > BLOCK_SIZE) {
    throw new RangeError(`pickHosts: count must be an integer from 1 to ${BLOCK_SIZE}, got ${String(count)}`);
  }
  const base = FIRST_HOST + processBlock() * BLOCK_SIZE;
  if (cursor + count > BLOCK_SIZE) cursor = 0;
  const hosts: string[] = [];
  for (let i = 0; i < count; i++) hosts.push(loopbackAddress(base + cursor + i));
  cursor += count;
  return hosts;
}

/**
 * What {@link trackResources} returns: the resources created since it
 * started that are still alive, and the function that stops tracking.
 */
export interface ResourceTracker {
  /** Live resources created since tracking started, counted by type (`Timeout`, `TCPWRAP`…). */
  live(): HandleCounts;
  /** Resolves once nothing created since tracking started is alive (polls for `settleMs`), else throws listing what is. */
  expectNone(options?: { settleMs?: number }): Promise<void>;
  /** Stops tracking. */
  stop(): void;
}

/**
 * The resource types that keep a process busy and whose end Node reports
 * at once (a timer when it fires or is cleared, a handle when it closes).
 * Others (HTTP2SESSION, request wraps) are reported destroyed only when
 * garbage-collected, so they cannot be checked without forcing a GC; an
 * HTTP/2 session lives on its TCPWRAP, which is tracked.
 */
const TRACKED = new Set([
  'Timeout',
  'TCPWRAP',
  'TCPSERVERWRAP',
  'PIPEWRAP',
  'PIPESERVERWRAP',
  'PROCESSWRAP',
  'UDPWRAP',
  'SIGNALWRAP',
]);

/**
 * Tracks every timer, socket, server, pipe and child process created from
 * now on — unref'd timers included, which `process.getActiveResourcesInfo()`
 * does not show — through `async_hooks`, until they are destroyed. A timer
 * is destroyed when it fires (once) or is cleared; a socket when it closes.
 *
 * @example
 * ```ts
 * const tracker = trackResources();
 * const channel = buildChannel();
 * await channel.closeAsync();
 * await tracker.expectNone();
 * tracker.stop();
 * ```
 */
export function trackResources(): ResourceTracker {
  const alive = new Map<number, string>();
  let paused = false;
  const hook = createHook({
    init(asyncId, type) {
      if (!paused && TRACKED.has(type)) alive.set(asyncId, type);
    },
    destroy(asyncId) {
      alive.delete(asyncId);
    },
  });
  hook.enable();
  const live = (): HandleCounts => {
    const counts: Record<string, number> = {};
    for (const type of alive.values()) counts[type] = (counts[type] ?? 0) + 1;
    return counts;
  };
  return {
    live,
    async expectNone(options = {}) {
      const until = Date.now() + (options.settleMs ?? 2000);
      for (;;) {
        const now = live();
        if (Object.keys(now).length === 0) return;
        if (Date.now() >= until) {
          const list = Object.entries(now)
            .map(([type, n]) => `${type} × ${n}`)
            .join(', ');
          throw new Error(`resources still alive: ${list}`);
        }
        // the poll's own timer is not tracked (paused only while it is created)
        paused = true;
        const wait = new Promise<void>((resolve) => {
          setTimeout(resolve, 20);
        });
        paused = false;
        await wait;
      }
    },
    stop() {
      hook.disable();
    },
  };
}
