/**
 * What the scenarios that wait for a new server share (churn, xds): each
 * contender under an open loop watching for the new server's first answer,
 * the wait until every contender has reached the old servers and then the
 * new one, and the tally of a round.
 *
 * @module
 */
import { statusName } from '@grpc-tower/core';
import { type CallRecord, openLoop } from './load.js';
import { roundOrder, sleep } from './rounds.js';
import type { ChildEchoServer } from '@grpc-tower/testing';
import { stopServers } from './servers.js';
import { type Contender, closeAll } from './stacks.js';
import type { RoundRecorder } from './stats.js';

/** One contender under load, and when the watched server first answered it. */
export interface Watch {
  readonly contender: Contender;
  readonly seen: Set<string>;
  first: number | undefined;
  readonly loop: ReturnType<typeof openLoop>;
}

/**
 * Starts an open loop on each contender (in the round's order), noting the
 * servers that answer and the first answer of `server`.
 *
 * @example
 * ```ts
 * const watches = watchFor(contenders, r, 200, 'C');
 * ```
 */
export function watchFor(
  contenders: readonly Contender[],
  round: number,
  ratePerSecond: number,
  server: string,
): Watch[] {
  return roundOrder(contenders, round).map((contender) => {
    const seen = new Set<string>();
    const w: Watch = {
      contender,
      seen,
      first: undefined,
      loop: openLoop(contender.client, {
        ratePerSecond,
        deadlineMs: 5_000,
        onReply: (call: CallRecord) => {
          if (call.server === undefined) return;
          seen.add(call.server);
          if (call.server === server && w.first === undefined) w.first = call.ended;
        },
      }),
    };
    return w;
  });
}

/** Waits (at most 10 s) until every contender has been answered by each of `servers`; returns those that were not. */
export async function reachAll(watches: readonly Watch[], servers: readonly string[]): Promise<Watch[]> {
  const start = performance.now();
  const missing = () => watches.filter((w) => !servers.every((s) => w.seen.has(s)));
  while (missing().length > 0 && performance.now() - start < 10_000) await sleep(10);
  return missing();
}

/** Waits until the watched server has answered every contender, or `capMs` after `since`. */
export async function untilFirst(watches: readonly Watch[], since: number, capMs: number): Promise<void> {
  while (watches.some((w) => w.first === undefined) && performance.now() - since < capMs) await sleep(2);
}

/** The censored rounds and failure codes of a scenario, by contender, for its notes. */
export class FirstCallTally {
  readonly censored = new Map<string, number>();
  readonly failureCodes = new Map<string, Map<number, number>>();

  /**
   * Stops each loop and records `failedCalls`, `calls` and `timeToCMs`
   * (from `since`; `capMs` when the server never answered) into `rec`;
   * returns each contender's records.
   */
  async record(rec: RoundRecorder, watches: readonly Watch[], since: number, capMs: number) {
    const out: { watch: Watch; records: CallRecord[] }[] = [];
    for (const w of watches) {
      const records = await w.loop.stop();
      const who = w.contender.name;
      const failed = records.filter((x) => x.code !== undefined);
      const codes = this.failureCodes.get(who) ?? new Map<number, number>();
      for (const f of failed) codes.set(f.code as number, (codes.get(f.code as number) ?? 0) + 1);
      this.failureCodes.set(who, codes);
      rec.add(who, 'failedCalls', failed.length);
      rec.add(who, 'calls', records.length);
      if (w.first === undefined) {
        this.censored.set(who, (this.censored.get(who) ?? 0) + 1);
        rec.add(who, 'timeToCMs', capMs);
      } else {
        rec.add(who, 'timeToCMs', w.first - since);
      }
      out.push({ watch: w, records });
    }
    return out;
  }

  /** The notes: rounds in which the server never answered (`censoredNote`), and failed calls by status. */
  notes(censoredNote: (n: number) => string): string[] {
    const notes: string[] = [];
    for (const [who, n] of this.censored) notes.push(`${who}: ${censoredNote(n)}`);
    for (const [who, codes] of this.failureCodes) {
      if (codes.size === 0) continue;
      notes.push(
        `${who}: failed calls by status: ${[...codes].map(([code, n]) => `${statusName(code)} × ${n}`).join(', ')}`,
      );
    }
    return notes;
  }
}

/** Each contender's time to the watched server, for the round's log line. */
export function describeFirst(watches: readonly Watch[], since: number, server: string): string {
  return watches
    .map(
      (w) =>
        `${w.contender.name}: ${server} ${w.first === undefined ? 'not seen' : `after ${(w.first - since).toFixed(0)} ms`}`,
    )
    .join('; ');
}

/** The end of a round, however it ended: the loops stopped, the contenders closed, the servers stopped. */
export async function endRound(
  watches: readonly Watch[],
  servers: readonly ChildEchoServer[],
): Promise<void> {
  await Promise.allSettled(watches.map((w) => w.loop.stop()));
  await closeAll(watches.map((w) => w.contender));
  await stopServers(servers);
}
