/**
 * `poll`: the lookup-service model for any registry. An async `resolve`
 * function returns the full current set; `poll` calls it every
 * `intervalMs` (spread by jitter so that many clients do not query in
 * step), diffs each answer against the last one and emits only the changes.
 *
 * A failing registry never empties the pool: when `resolve` throws or runs
 * past `resolveTimeoutMs`, the last set is kept, a `failed` event is
 * reported and the next attempt backs off exponentially (1 s doubling to
 * 30 s, with jitter) until a round succeeds. An empty answer is treated as
 * a glitch by default and also keeps the last set (with an `empty-kept`
 * event). This is the behaviour of ginepro's `LookupService` probe loop for
 * tonic, with backoff added.
 *
 * @module
 */
import { CancelledError, GrpcTowerError, raceSignal } from '@grpc-tower/core';
import { MAX_TIMER_MS, optionChecks } from '@grpc-tower/core/internal';
import { type DiscoveredAddress, toDiscoveredAddress } from './address.js';
import {
  InvalidAddressError,
  InvalidRecordError,
  ResolveError,
  ResolveTimeoutError,
  describe,
} from './errors.js';
import { type DiscoverySource, type SourceContext, sharedSource } from './source.js';
import {
  type Backoff,
  type BackoffOptions,
  DELAY_RULE,
  backoffConfig,
  backoffDelay,
  jittered,
  unrefTimer,
} from './timing.js';

/**
 * An input a resolver rejected, reported as an `invalid` event.
 *
 * @example
 * ```ts
 * const bad: InvalidInput = { input: 'x', error: new InvalidAddressError('x', 'the port is missing') };
 * ```
 */
export interface InvalidInput {
  readonly input: string;
  readonly error: InvalidAddressError | InvalidRecordError;
}

/**
 * A resolver's answer with extra information.
 *
 * @example
 * ```ts
 * const answer: PollAnswer = { addresses: ['10.0.0.1:80'], validForMs: 30_000 };
 * ```
 */
export interface PollAnswer {
  /** The full current set. */
  readonly addresses: Iterable<string | DiscoveredAddress>;
  /** Do not poll again sooner than this (a record TTL, say). */
  readonly validForMs?: number;
  /** Inputs the resolver skipped, reported as `invalid` events. */
  readonly invalid?: readonly InvalidInput[];
}

/**
 * What `resolve` returns: the addresses (strings or {@link DiscoveredAddress}
 * objects), or a {@link PollAnswer}.
 *
 * @example
 * ```ts
 * const r: PollResult = ['10.0.0.1:80', { address: '10.0.0.2:80', weight: 2 }];
 * ```
 */
export type PollResult = Iterable<string | DiscoveredAddress> | PollAnswer;

/**
 * The function {@link poll} calls each round. It should stop when `signal`
 * aborts (at `resolveTimeoutMs`, or when the source stops).
 *
 * @example
 * ```ts
 * const resolve: ResolveFn = async (signal) => (await fetch(url, { signal })).json();
 * ```
 */
export type ResolveFn = (signal: AbortSignal) => PollResult | PromiseLike<PollResult>;

/**
 * Options of {@link poll}.
 *
 * @example
 * ```ts
 * const opts: PollOptions = { intervalMs: 10_000, keepLastOnEmpty: false };
 * ```
 */
export interface PollOptions {
  /** The source's name in events and errors; default `'poll'`. */
  readonly name?: string;
  /** Time from the end of a successful round to the start of the next; default 5000 ms. */
  readonly intervalMs?: number;
  /** Spread of the interval as a fraction (0 to 1); default 0.1 (±10 %). */
  readonly jitter?: number;
  /** Longest a round may take; default `intervalMs`. */
  readonly resolveTimeoutMs?: number;
  /** Backoff while rounds fail; default 1 s doubling to 30 s, ±10 %. */
  readonly backoff?: BackoffOptions;
  /**
   * Keep the last set when a round answers with no address (default
   * `true`), reporting an `empty-kept` event. `false` trusts the empty
   * answer and removes everything.
   */
  readonly keepLastOnEmpty?: boolean;
}

/** Resolved {@link PollOptions}. @internal */
export interface PollConfig {
  readonly name: string;
  readonly intervalMs: number;
  readonly jitter: number;
  readonly resolveTimeoutMs: number;
  readonly backoff: Backoff;
  readonly keepLastOnEmpty: boolean;
}

/** Checks and fills in {@link PollOptions}; throws a `ConfigError`. @internal */
export function pollConfig(where: string, defaultName: string, options: PollOptions | undefined): PollConfig {
  const check = optionChecks(where);
  const o = check.object<PollOptions>('options', options, {});
  const name = check.string('name', o.name, defaultName);
  const intervalMs = check.number('intervalMs', o.intervalMs, DELAY_RULE, 5000);
  const jitter = check.number('jitter', o.jitter, { min: 0, max: 1 }, 0.1);
  const resolveTimeoutMs = check.number('resolveTimeoutMs', o.resolveTimeoutMs, DELAY_RULE, intervalMs);
  const keepLastOnEmpty = check.boolean('keepLastOnEmpty', o.keepLastOnEmpty, true);
  return {
    name,
    intervalMs,
    jitter,
    resolveTimeoutMs,
    backoff: backoffConfig(where, o.backoff),
    keepLastOnEmpty,
  };
}

/**
 * Polls `resolve` and emits the changes between its answers. Lazy and shared
 * (see {@link DiscoverySource}); the first round runs as soon as the first
 * subscriber arrives. Never errors or completes.
 *
 * @example
 * ```ts
 * const orders = poll(async (signal) => {
 *   const res = await fetch('http://registry.internal/v1/orders', { signal });
 *   return (await res.json()) as string[];          // ['10.0.0.7:50051', …]
 * }, { intervalMs: 10_000 });
 * orders.events$.subscribe((e) => e.type === 'failed' && console.warn(e.error.message));
 * ```
 */
export function poll(resolve: ResolveFn, options?: PollOptions): DiscoverySource {
  optionChecks('poll').function('resolve', resolve);
  const config = pollConfig('poll', 'poll', options);
  return pollSource(resolve, config);
}

/** {@link poll} with checked settings. @internal */
export function pollSource(resolve: ResolveFn, config: PollConfig): DiscoverySource {
  return sharedSource(config.name, (ctx) => runPoll(ctx, resolve, config));
}

/**
 * {@link pollSource} whose resolve function is made anew each time the
 * source starts, with the source's `emit`: a resolver that remembers
 * something between rounds (the last answer of each DNS address family)
 * forgets it when the last subscriber leaves, as the source forgets its set,
 * and reports what it noticed on `events$`. @internal
 */
export function pollSourceWith(
  makeResolve: (ctx: Pick<SourceContext, 'emit' | 'name'>) => ResolveFn,
  config: PollConfig,
): DiscoverySource {
  return sharedSource(config.name, (ctx) => runPoll(ctx, makeResolve(ctx), config));
}

function isPollAnswer(result: PollResult): result is PollAnswer {
  return (
    typeof result === 'object' &&
    result !== null &&
    !(Symbol.iterator in result) &&
    'addresses' in (result as object)
  );
}

/**
 * Normalizes a list of entries into a set keyed by address; reports each
 * invalid entry and each address given more than once. @internal
 */
export function normalizeAddresses(
  ctx: Pick<SourceContext, 'emit' | 'name'>,
  entries: Iterable<string | DiscoveredAddress>,
  inputName: (entry: unknown) => string = describe,
): Map<string, DiscoveredAddress> {
  const out = new Map<string, DiscoveredAddress>();
  const firstInput = new Map<string, unknown>();
  let dupes: Map<string, string[]> | undefined;
  for (const entry of entries) {
    let value: DiscoveredAddress;
    try {
      value = toDiscoveredAddress(entry, ctx.name);
    } catch (err) {
      const error =
        err instanceof InvalidAddressError
          ? err
          : new InvalidAddressError(entry, 'unreadable entry', { source: ctx.name, cause: err });
      ctx.emit(() => ({ type: 'invalid', source: ctx.name, input: inputName(entry), error }));
      continue;
    }
    if (!out.has(value.address)) {
      out.set(value.address, value);
      firstInput.set(value.address, entry);
      continue;
    }
    dupes ??= new Map();
    const inputs = dupes.get(value.address) ?? [inputName(firstInput.get(value.address))];
    inputs.push(inputName(entry));
    dupes.set(value.address, inputs);
  }
  if (dupes !== undefined) {
    for (const [key, inputs] of dupes) ctx.emit(() => ({ type: 'duplicate', source: ctx.name, key, inputs }));
  }
  return out;
}

function toResolveError(name: string, err: unknown): GrpcTowerError {
  if (err instanceof GrpcTowerError) return err;
  const message = err instanceof Error ? err.message : describe(err);
  return new ResolveError(name, `resolve failed: ${message}`, { cause: err });
}

function runPoll(ctx: SourceContext, resolve: ResolveFn, config: PollConfig): () => void {
  const { name } = config;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inflight: AbortController | undefined;
  let failures = 0;

  const schedule = (ms: number): void => {
    if (ctx.stopped) return;
    timer = unrefTimer(() => {
      timer = undefined;
      void round();
    }, ms);
  };

  const fail = (err: unknown): void => {
    failures++;
    ctx.emit(() => ({ type: 'failed', source: name, error: toResolveError(name, err), failures }));
    const delayMs = backoffDelay(failures, config.backoff);
    ctx.emit(() => ({ type: 'backoff', source: name, delayMs, failures }));
    schedule(delayMs);
  };

  const accept = (result: PollResult): void => {
    const answer: PollAnswer = isPollAnswer(result) ? result : { addresses: result };
    if (
      answer.addresses === null ||
      typeof answer.addresses !== 'object' ||
      !(Symbol.iterator in answer.addresses)
    ) {
      throw new ResolveError(
        name,
        `resolve returned ${describe(answer.addresses)}, expected a list of addresses`,
      );
    }
    const reported: unknown = answer.invalid ?? [];
    for (const bad of Array.isArray(reported) ? (reported as unknown[]) : [reported]) {
      const entry = (typeof bad === 'object' && bad !== null ? bad : {}) as Partial<InvalidInput>;
      const input = typeof entry.input === 'string' ? entry.input : describe(bad);
      // what is not an InvalidInput is still reported, with a named error
      const error =
        entry.error instanceof InvalidAddressError || entry.error instanceof InvalidRecordError
          ? entry.error
          : new InvalidRecordError(name, input, 'reported invalid by the resolver');
      ctx.emit(() => ({ type: 'invalid', source: name, input, error }));
    }
    const next = normalizeAddresses(ctx, answer.addresses);
    failures = 0;
    let nextPollMs = jittered(config.intervalMs, config.jitter);
    const validFor = answer.validForMs;
    if (typeof validFor === 'number' && Number.isFinite(validFor) && validFor > nextPollMs) {
      nextPollMs = Math.min(MAX_TIMER_MS, Math.ceil(validFor));
    }
    if (next.size === 0 && config.keepLastOnEmpty && ctx.current.size > 0) {
      ctx.emit(() => ({ type: 'empty-kept', source: name, kept: ctx.current.size }));
    } else {
      const { inserted, removed } = ctx.replace(next);
      ctx.emit(() => ({
        type: 'resolved',
        source: name,
        count: ctx.current.size,
        inserted,
        removed,
        nextPollMs,
      }));
    }
    schedule(nextPollMs);
  };

  const round = async (): Promise<void> => {
    const controller = new AbortController();
    inflight = controller;
    const timeout = unrefTimer(
      () => controller.abort(new ResolveTimeoutError(name, config.resolveTimeoutMs)),
      config.resolveTimeoutMs,
    );
    let result: PollResult;
    try {
      result = await raceSignal(
        Promise.resolve().then(() => resolve(controller.signal)),
        controller.signal,
      );
    } catch (err) {
      if (!ctx.stopped) fail(err);
      return;
    } finally {
      clearTimeout(timeout);
      if (inflight === controller) inflight = undefined;
    }
    if (ctx.stopped) return;
    try {
      accept(result);
    } catch (err) {
      fail(err);
    }
  };

  void round();
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    inflight?.abort(new CancelledError(`${name} stopped`));
    inflight = undefined;
  };
}
