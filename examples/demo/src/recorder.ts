/**
 * What the demo measures, per client: every call's outcome, counted per
 * server and per phase, in time buckets for the chart, and in a rolling
 * one-second window for the live view. Nothing here is estimated: each
 * number is a count of calls that happened, or a percentile of their
 * measured latencies.
 */
import { statusName } from '@grpc-tower/core';

/** How one call ended. */
export interface CallOutcome {
  /** When the call was sent, ms since the demo started. */
  readonly startMs: number;
  /** When it settled, ms since the demo started. */
  readonly endMs: number;
  /** The phase in which it was sent. */
  readonly phase: string;
  /** The server that answered (from the reply), when it succeeded. */
  readonly server?: string;
  /** The failure, when it failed. */
  readonly error?: {
    readonly code: number;
    readonly details: string;
    /** The server the error names, when it names one. */
    readonly server?: string;
  };
}

/** Counts of one phase. */
export interface PhaseCounts {
  ok: number;
  failed: number;
  readonly perServer: Map<string, number>;
  readonly latencies: number[];
  /** Failure messages (code and details) with how often each happened. */
  readonly failures: Map<string, number>;
}

/** Counts of one time bucket (for the chart). */
export interface Bucket {
  readonly perServer: Map<string, number>;
  errors: number;
  /** The latencies of the calls that succeeded in it, ms. */
  readonly latencies: number[];
}

/** Counts of the live view's window for one server. */
export interface WindowCounts {
  calls: number;
  errors: number;
  readonly latencies: number[];
}

/** The p-th percentile (0–100) of `values`, nearest rank; undefined when empty. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Records the outcomes of one client's calls. */
export class Recorder {
  readonly label: string;
  readonly bucketMs: number;
  readonly phases = new Map<string, PhaseCounts>();
  readonly buckets: Bucket[] = [];
  #window = new Map<string, WindowCounts>();
  #windowUnattributed = 0;
  readonly #firstReply = new Map<string, { readonly since: number; at: number | undefined }>();
  total = { ok: 0, failed: 0 };

  constructor(label: string, bucketMs: number) {
    this.label = label;
    this.bucketMs = bucketMs;
  }

  /** Starts watching for the first reply from `server` at or after `sinceMs`. */
  watchFirstReply(server: string, sinceMs: number): void {
    this.#firstReply.set(server, { since: sinceMs, at: undefined });
  }

  /** When the watched server first answered, ms since the demo started; undefined if not yet. */
  firstReplyAt(server: string): number | undefined {
    return this.#firstReply.get(server)?.at;
  }

  record(o: CallOutcome): void {
    let phase = this.phases.get(o.phase);
    if (phase === undefined) {
      phase = { ok: 0, failed: 0, perServer: new Map(), latencies: [], failures: new Map() };
      this.phases.set(o.phase, phase);
    }
    const index = Math.max(0, Math.floor(o.endMs / this.bucketMs));
    while (this.buckets.length <= index)
      this.buckets.push({ perServer: new Map(), errors: 0, latencies: [] });
    const bucket = this.buckets[index] as Bucket;
    const latency = o.endMs - o.startMs;
    if (o.server !== undefined) {
      this.total.ok++;
      phase.ok++;
      phase.perServer.set(o.server, (phase.perServer.get(o.server) ?? 0) + 1);
      phase.latencies.push(latency);
      bucket.perServer.set(o.server, (bucket.perServer.get(o.server) ?? 0) + 1);
      bucket.latencies.push(latency);
      const w = this.#windowOf(o.server);
      w.calls++;
      w.latencies.push(latency);
      const watch = this.#firstReply.get(o.server);
      if (watch !== undefined && watch.at === undefined && o.endMs >= watch.since) watch.at = o.endMs;
    } else if (o.error !== undefined) {
      this.total.failed++;
      phase.failed++;
      bucket.errors++;
      const key = `${statusName(o.error.code)}: ${o.error.details}`;
      phase.failures.set(key, (phase.failures.get(key) ?? 0) + 1);
      if (o.error.server !== undefined) this.#windowOf(o.error.server).errors++;
      else this.#windowUnattributed++;
    }
  }

  /** The live window's counts since the last call, then starts a new window. */
  takeWindow(): { perServer: Map<string, WindowCounts>; unattributedErrors: number } {
    const out = { perServer: this.#window, unattributedErrors: this.#windowUnattributed };
    this.#window = new Map();
    this.#windowUnattributed = 0;
    return out;
  }

  #windowOf(server: string): WindowCounts {
    let w = this.#window.get(server);
    if (w === undefined) {
      w = { calls: 0, errors: 0, latencies: [] };
      this.#window.set(server, w);
    }
    return w;
  }
}
