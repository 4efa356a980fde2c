/**
 * A call ledger: every call a reliability test starts is written down, and
 * the ledger checks that each one ended exactly once, with a status, within
 * a bound, and that every OK carries a real answer from a server.
 *
 * It watches at two levels. At the caller's level each call's callback (or
 * its stream's `status` event) is counted. grpc-js's client surface drops a
 * second status on its own, so a double status from the channel would be
 * invisible there; a client interceptor ({@link Ledger.interceptor}) counts
 * the statuses each call receives from the channel itself, and messages
 * that arrive after the status.
 *
 * @module
 */
import * as grpc from '@grpc/grpc-js';
import { Status, statusName } from '@grpc-tower/core';
import type { EchoProtoClient, EchoReply, EchoRequest } from '@grpc-tower/testing';

/** How one call ended, as its caller saw it. */
export interface CallOutcome {
  /** The gRPC status code. */
  readonly code: number;
  /** The status details. */
  readonly details: string;
  /** The `server` field of the (last) reply, when one arrived. */
  readonly server: string | undefined;
  /** Replies received. */
  readonly replies: number;
  /** The response headers, when they arrived. */
  readonly headers: grpc.Metadata | undefined;
  /** The trailing metadata. */
  readonly trailers: grpc.Metadata | undefined;
}

/** A call not settled yet. */
interface Entry {
  readonly id: number;
  readonly label: string;
  readonly startedAt: number;
  /** The longest the call may take before it counts as hung, in ms. */
  readonly boundMs: number;
}

/** A call that ended with a status other than OK. */
interface Failure {
  readonly id: number;
  readonly label: string;
  readonly code: number;
  readonly details: string;
}

/** Options of {@link Ledger}. */
export interface LedgerOptions {
  /**
   * How long past its deadline a call may take to settle before it counts
   * as hung, in ms; default 2000. Generous on purpose: this catches hangs,
   * it does not measure speed.
   */
  readonly slackMs?: number;
}

/** Options of one recorded call. */
export interface CallOptions {
  /** The call's deadline, relative, in ms; default 5000. */
  readonly deadlineMs?: number;
  /** Request metadata. */
  readonly metadata?: grpc.Metadata;
  /** More grpc-js call options (credentials…). */
  readonly callOptions?: Partial<grpc.CallOptions>;
  /** More request fields (echoMetadata, delayMs…). */
  readonly request?: Omit<EchoRequest, 'message'>;
  /** Streams: called with each reply as it arrives. */
  readonly onReply?: (reply: EchoReply) => void;
  /** A label for reports; default the method name. */
  readonly label?: string;
}

/** What {@link Ledger.check} expects. */
export interface LedgerExpectations {
  /** The statuses a call may end with; default any. */
  readonly allowed?: readonly (keyof typeof Status)[];
  /** The servers an OK reply may come from; default any non-empty name. */
  readonly servers?: ReadonlySet<string>;
}

/** The ledger's figures. */
export interface LedgerReport {
  /** Calls recorded. */
  readonly total: number;
  /** Calls that have not settled. */
  readonly open: number;
  /** Settled calls per status name. */
  readonly byStatus: Readonly<Record<string, number>>;
  /** Settled calls per label, then per status name. */
  readonly byLabel: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Answers per server name (OK calls). */
  readonly byServer: Readonly<Record<string, number>>;
  /** The slowest settle, in ms. */
  readonly maxSettleMs: number;
  /** How many rules were broken. */
  readonly problemCount: number;
  /** Everything that broke a rule, at most 20 lines, then a count. */
  readonly problems: readonly string[];
}

const MAX_LISTED = 20;
/** Problems and failed calls kept in detail; beyond this only counted. */
const MAX_KEPT = 1000;

/**
 * Records calls and checks them.
 *
 * @example
 * ```ts
 * const ledger = new Ledger();
 * const client = createEchoClient('echo', { channelOverride: channel, interceptors: [ledger.interceptor] });
 * await Promise.all(Array.from({ length: 100 }, (_, i) => ledger.unary(client, `m${i}`)));
 * ledger.check({ allowed: ['OK'] });
 * ```
 */
export class Ledger {
  readonly #slackMs: number;
  readonly #open = new Set<Entry>();
  readonly #waiters = new Set<() => void>();
  readonly #problems: string[] = [];
  #problemCount = 0;
  readonly #failures: Failure[] = [];
  /** Failed calls past the kept ones, counted by code (their codes are still checked). */
  readonly #droppedByCode = new Map<number, number>();
  readonly #byStatus = new Map<string, number>();
  readonly #byLabel = new Map<string, Map<string, number>>();
  readonly #byServer = new Map<string, number>();
  #total = 0;
  #maxSettleMs = 0;

  constructor(options: LedgerOptions = {}) {
    this.#slackMs = options.slackMs ?? 2000;
  }

  /** Calls recorded so far. */
  get total(): number {
    return this.#total;
  }

  /** Calls not settled yet. */
  get open(): number {
    return this.#open.size;
  }

  /**
   * A grpc-js client interceptor that checks, for every call, that the
   * channel delivers exactly one status and no message after it.
   */
  readonly interceptor: grpc.Interceptor = (options, nextCall) => {
    const method = options.method_definition.path;
    let statuses = 0;
    return new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, _listener, next) => {
        next(metadata, {
          onReceiveMessage: (message: unknown, nextMessage: (m: unknown) => void) => {
            if (statuses > 0) this.#problem(`${method}: a message delivered after the status`);
            nextMessage(message);
          },
          onReceiveStatus: (status, nextStatus) => {
            statuses++;
            if (statuses > 1)
              this.#problem(`${method}: the channel delivered ${statuses} statuses for one call`);
            nextStatus(status);
          },
        });
      },
    });
  };

  #problem(text: string): void {
    this.#problemCount++;
    if (this.#problems.length < MAX_KEPT) this.#problems.push(text);
  }

  /**
   * Records one call: `start` starts it and must call `settle` when it
   * ends. Resolves with the first outcome (never rejects); later settles
   * are counted as double callbacks. Only calls still open are held in
   * memory, so a ledger can record millions of calls.
   */
  record(
    label: string,
    boundMs: number,
    start: (settle: (outcome: CallOutcome) => void) => void,
  ): Promise<CallOutcome> {
    const entry: Entry = { id: this.#total++, label, startedAt: performance.now(), boundMs };
    this.#open.add(entry);
    let settles = 0;
    return new Promise<CallOutcome>((resolve) => {
      const settle = (outcome: CallOutcome): void => {
        settles++;
        if (settles > 1) {
          this.#problem(
            `call #${entry.id} (${label}): settled ${settles} times (again with ${statusName(outcome.code)})`,
          );
          return;
        }
        this.#settled(entry, outcome);
        resolve(outcome);
      };
      try {
        start(settle);
      } catch (err) {
        this.#problem(`call #${entry.id} (${label}): threw while starting: ${String(err)}`);
        settle({
          code: Status.UNKNOWN,
          details: String(err),
          server: undefined,
          replies: 0,
          headers: undefined,
          trailers: undefined,
        });
      }
    });
  }

  #settled(entry: Entry, o: CallOutcome): void {
    this.#open.delete(entry);
    const took = performance.now() - entry.startedAt;
    this.#maxSettleMs = Math.max(this.#maxSettleMs, took);
    const where = `call #${entry.id} (${entry.label})`;
    if (took > entry.boundMs) this.#problem(`${where}: settled after ${Math.round(took)} ms, past its bound`);
    const name = statusName(o.code);
    this.#byStatus.set(name, (this.#byStatus.get(name) ?? 0) + 1);
    const perLabel = this.#byLabel.get(entry.label) ?? new Map<string, number>();
    this.#byLabel.set(entry.label, perLabel);
    perLabel.set(name, (perLabel.get(name) ?? 0) + 1);
    if (o.code === Status.OK) {
      if (o.server !== undefined && o.server !== '') {
        this.#byServer.set(o.server, (this.#byServer.get(o.server) ?? 0) + 1);
      } else if (o.replies > 0) {
        this.#problem(`${where}: OK reply without a server name`);
      }
      if (o.replies === 0 && entry.label !== 'ServerStream') this.#problem(`${where}: OK without a reply`);
    } else if (this.#failures.length < MAX_KEPT) {
      this.#failures.push({ id: entry.id, label: entry.label, code: o.code, details: o.details });
    } else {
      this.#droppedByCode.set(o.code, (this.#droppedByCode.get(o.code) ?? 0) + 1);
    }
    if (this.#open.size === 0) for (const w of [...this.#waiters]) w();
  }

  /**
   * A unary echo call of `message`. An OK outcome must echo `message` and
   * name a server, or the ledger notes a problem.
   */
  unary(client: EchoProtoClient, message: string, options: CallOptions = {}): Promise<CallOutcome> {
    const deadlineMs = options.deadlineMs ?? 5000;
    return this.record(options.label ?? 'Unary', deadlineMs + this.#slackMs, (settle) => {
      let headers: grpc.Metadata | undefined;
      let trailers: grpc.Metadata | undefined;
      const call = client.Unary(
        { ...options.request, message },
        options.metadata ?? new grpc.Metadata(),
        { ...options.callOptions, deadline: Date.now() + deadlineMs },
        (err: grpc.ServiceError | null, reply?: EchoReply) => {
          if (err === null && reply?.message !== message) {
            this.#problem(`Unary ${message}: reply echoes "${reply?.message}"`);
          }
          // grpc-js emits 'status' (with the trailers) right after the callback
          queueMicrotask(() =>
            settle(
              err !== null
                ? {
                    code: err.code,
                    details: err.details,
                    server: undefined,
                    replies: 0,
                    headers,
                    trailers: err.metadata,
                  }
                : {
                    code: Status.OK,
                    details: '',
                    server: reply?.server,
                    replies: reply === undefined ? 0 : 1,
                    headers,
                    trailers,
                  },
            ),
          );
        },
      );
      call.on('metadata', (md: grpc.Metadata) => {
        headers = md;
      });
      call.on('status', (s: grpc.StatusObject) => {
        trailers = s.metadata;
      });
    });
  }

  /**
   * A server-streaming echo call that asks for `count` replies. An OK
   * outcome must carry all `count` replies, each echoing `message` from a
   * named server.
   */
  serverStream(
    client: EchoProtoClient,
    message: string,
    count: number,
    options: CallOptions = {},
  ): Promise<CallOutcome> {
    const deadlineMs = options.deadlineMs ?? 5000;
    return this.record(options.label ?? 'ServerStream', deadlineMs + this.#slackMs, (settle) => {
      let headers: grpc.Metadata | undefined;
      let replies = 0;
      let server: string | undefined;
      const stream = client.ServerStream(
        { ...options.request, message, count },
        options.metadata ?? new grpc.Metadata(),
        { ...options.callOptions, deadline: Date.now() + deadlineMs },
      );
      stream.on('metadata', (md: grpc.Metadata) => {
        headers = md;
      });
      stream.on('data', (reply: EchoReply) => {
        replies++;
        server = reply.server;
        options.onReply?.(reply);
        if (reply.message !== message || reply.server === '') {
          this.#problem(
            `ServerStream ${message}: reply #${replies} is "${reply.message}" from "${reply.server}"`,
          );
        }
      });
      // 'error' precedes 'status' for a failed call; the status is what counts
      stream.on('error', () => undefined);
      stream.on('status', (status: grpc.StatusObject) => {
        if (status.code === Status.OK && replies !== count) {
          this.#problem(`ServerStream ${message}: OK after ${replies} of ${count} replies`);
        }
        settle({
          code: status.code,
          details: status.details,
          server,
          replies,
          headers,
          trailers: status.metadata,
        });
      });
    });
  }

  /**
   * Resolves when every recorded call has settled, or when the longest
   * bound of the open calls has passed (then {@link check} reports them).
   */
  async settled(): Promise<void> {
    if (this.#open.size === 0) return;
    const now = performance.now();
    let until = now;
    for (const e of this.#open) until = Math.max(until, e.startedAt + e.boundMs);
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, until - now) + 10);
      this.#waiters.add(done);
    });
  }

  /** The figures, and every problem found so far. */
  report(expect: LedgerExpectations = {}): LedgerReport {
    const problems = [...this.#problems];
    let count = this.#problemCount;
    const add = (text: string): void => {
      count++;
      if (problems.length < MAX_KEPT) problems.push(text);
    };
    const now = performance.now();
    for (const e of this.#open) {
      if (now - e.startedAt > e.boundMs) {
        add(`call #${e.id} (${e.label}): never settled (${Math.round(now - e.startedAt)} ms)`);
      }
    }
    if (expect.allowed !== undefined) {
      const allowed = new Set<number>(expect.allowed.map((n) => Status[n]));
      for (const f of this.#failures) {
        if (!allowed.has(f.code)) add(`call #${f.id} (${f.label}): ${statusName(f.code)} (${f.details})`);
      }
      for (const [code, n] of this.#droppedByCode) {
        if (!allowed.has(code)) add(`${n} more call(s) ended ${statusName(code)} (details not kept)`);
      }
      const oks = this.#byStatus.get('OK') ?? 0;
      if (!allowed.has(Status.OK) && oks > 0) add(`${oks} call(s) ended OK, which was not expected`);
    }
    if (expect.servers !== undefined) {
      for (const [server, n] of this.#byServer) {
        if (!expect.servers.has(server))
          add(`${n} OK repl${n === 1 ? 'y' : 'ies'} from unknown server "${server}"`);
      }
    }
    const listed = problems.slice(0, MAX_LISTED);
    if (count > listed.length) listed.push(`… and ${count - listed.length} more`);
    return {
      total: this.#total,
      open: this.#open.size,
      byStatus: Object.fromEntries(this.#byStatus),
      byLabel: Object.fromEntries([...this.#byLabel].map(([label, m]) => [label, Object.fromEntries(m)])),
      byServer: Object.fromEntries(this.#byServer),
      maxSettleMs: Math.round(this.#maxSettleMs),
      problemCount: count,
      problems: listed,
    };
  }

  /**
   * Waits for every call to settle (or its bound to pass), then throws an
   * error listing every broken rule: a call that never settled, settled
   * twice or past its bound, ended with a status not allowed, or an OK
   * without a real answer. Returns the report when all is well.
   */
  async check(expect: LedgerExpectations = {}): Promise<LedgerReport> {
    await this.settled();
    const report = this.report(expect);
    if (report.problemCount > 0) {
      throw new Error(
        `ledger: ${report.problemCount} problem(s) in ${report.total} calls ` +
          `(${JSON.stringify(report.byStatus)}):\n  ${report.problems.join('\n  ')}`,
      );
    }
    return report;
  }
}
