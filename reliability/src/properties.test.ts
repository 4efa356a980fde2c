// Bad input, generated: every public options object, every discovery input,
// createChannel's targets and call metadata. Each generated input either
// works (and what it built then serves calls, which settle) or is refused
// with a named grpc-tower error — a subclass of GrpcTowerError, and for
// options a ConfigError naming the option. Nothing may throw anything else,
// throw asynchronously (the setup fails a test that leaves an unhandled
// rejection) or hang.
//
// Balancers and wrappers are exercised over in-memory endpoints here: a
// thousand generated cases cannot each start servers, and what is checked
// (option handling) does not depend on the network. The gRPC path (grpcEndpoint,
// createChannel, metadata, discovery from etcd) runs against real servers,
// its calls and metadata over both transports.
import * as grpc from '@grpc/grpc-js';
import {
  type Balancer,
  type LoadMetric,
  p2c,
  peakEwma,
  pendingRequests,
  roundRobin,
} from '@grpc-tower/balance';
import {
  type CallContext,
  ConfigError,
  type Endpoint,
  GrpcTowerError,
  type Readiness,
  type Service,
  UnavailableError,
  attemptTimeout,
  concurrencyLimit,
  loadShed,
  newContext,
  rateLimit,
  serviceFn,
  sleep,
  timeout,
  type Change,
  parseAddress,
} from '@grpc-tower/core';
import {
  type GrpcRequest,
  type GrpcResponse,
  RequestMessages,
  createChannel,
  grpcEndpoint,
} from '@grpc-tower/core/grpc';
import { http2Endpoint } from '@grpc-tower/core/http2';
import {
  type DiscoveredAddress,
  type DiscoveryEvent,
  connect,
  dns,
  dnsSrv,
  merge,
  poll,
  diff,
  staticList,
  toDiscoveredAddress,
} from '@grpc-tower/discover';
import { etcd } from '@grpc-tower/discover/etcd';
import { healthChecked, outlierDetection, slowStart } from '@grpc-tower/health';
import { hedge, retry, retryBudget, retryThrottling } from '@grpc-tower/retry';
import {
  type EchoReply,
  type EchoServer,
  createEchoClient,
  insecure,
  loadEchoPackage,
  pickHosts,
  startEchoServer,
  TRANSPORTS,
} from '@grpc-tower/testing';
import fc from 'fast-check';
import { BehaviorSubject, type Observable, Subject, of } from 'rxjs';
import { afterAll, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest';
import { startEtcd } from '../../packages/discover/src/test/index.js';
import {
  addressLike,
  discoveryEntry,
  edgeNumber,
  edgeString,
  hostLike,
  junk,
  backoffOptions,
  options,
  smallNumber,
  valid,
} from './support/arbitraries.js';
import { type FullStack, fullStack } from './support/stack.js';

// ---------------------------------------------------------------- harness

function describeValue(x: unknown): string {
  if (x instanceof Error) return `${x.constructor.name}: ${x.message}`;
  try {
    return typeof x === 'bigint' ? `${x}n` : (JSON.stringify(x) ?? String(x));
  } catch {
    return String(x);
  }
}

/** Throws unless `err` is a named grpc-tower error (a ConfigError must name its option). */
function expectNamed(err: unknown, what: string): void {
  const named = err instanceof GrpcTowerError && err.constructor !== GrpcTowerError;
  if (!named) throw new Error(`${what} failed with ${describeValue(err)}, not a named grpc-tower error`);
  if (err instanceof ConfigError && typeof err.option !== 'string') {
    throw new Error(`${what}: ConfigError without an option name: ${err.message}`);
  }
}

/** How often each builder accepted and refused its input in the current test. */
const tally = new Map<string, { accepted: number; refused: number }>();
beforeEach(() => tally.clear());

/** Runs `build`: returns what it built, or `undefined` when it was refused with a named error. */
function built<T>(what: string, build: () => T): T | undefined {
  const t = tally.get(what) ?? { accepted: 0, refused: 0 };
  tally.set(what, t);
  try {
    const made = build();
    t.accepted++;
    return made;
  } catch (err) {
    expectNamed(err, what);
    t.refused++;
    return undefined;
  }
}

/** Both branches ran for each of `whats`: some input was accepted and some refused. */
function expectBothBranches(...whats: string[]): void {
  for (const what of whats) {
    const t = tally.get(what);
    expect(t?.accepted, `${what} accepted nothing`).toBeGreaterThan(0);
    expect(t?.refused, `${what} refused nothing`).toBeGreaterThan(0);
  }
}

/** Waits for `p` at most `ms`; a value or a named error is fine, anything else or a hang fails. */
async function settles<T>(what: string, p: Promise<T>, ms = 3_000): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = Symbol('hang');
  const bound = new Promise<typeof hang>((resolve) => {
    timer = setTimeout(() => resolve(hang), ms);
  });
  try {
    const r = await Promise.race([p, bound]);
    if (r === hang) throw new Error(`${what} did not settle within ${ms} ms`);
    return r as T;
  } catch (err) {
    if (err instanceof Error && err.message.endsWith(`did not settle within ${ms} ms`)) throw err;
    expectNamed(err, what);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** A call with a bounded context, released afterwards. */
async function boundedCall<Req, Res>(
  svc: Service<Req, Res>,
  req: Req,
  what: string,
  ms = 200,
): Promise<void> {
  const scope = newContext({ timeoutMs: ms });
  try {
    await settles(
      what,
      Promise.resolve().then(() => svc.call(req, scope.context)),
    );
  } finally {
    scope.release();
  }
}

const run = { numRuns: 150 };

// ------------------------------------------------------- in-memory peers

/** An in-memory endpoint: ready at once, answers with its address. */
class MemoryEndpoint implements Endpoint<string, string> {
  readonly readiness$: BehaviorSubject<Readiness>;
  pending = 0;
  constructor(
    readonly address: string,
    readiness: Readiness = 'ready',
  ) {
    this.readiness$ = new BehaviorSubject<Readiness>(readiness);
  }
  get readiness(): Readiness {
    return this.readiness$.value;
  }
  async call(_req: string, ctx: CallContext): Promise<string> {
    this.pending++;
    try {
      await sleep(0, ctx.signal);
      return this.address;
    } finally {
      this.pending--;
    }
  }
  async close(): Promise<void> {
    if (this.readiness$.closed) return;
    this.readiness$.next('closed');
    this.readiness$.complete();
  }
}

const inner = serviceFn(async (req: string, ctx: CallContext) => {
  await sleep(1, ctx.signal);
  return req;
});

function response(endpoint: string): GrpcResponse {
  const metadata = new grpc.Metadata();
  return {
    endpoint,
    headers: metadata,
    stream: { start: () => undefined, read: () => undefined, cancel: () => undefined },
    done: Promise.resolve({ code: grpc.status.OK, details: '', metadata }),
  };
}

/** A gRPC-shaped service whose first attempt fails UNAVAILABLE and later ones succeed. */
function flaky(): Service<GrpcRequest, GrpcResponse> {
  return {
    call: async (req, ctx) => {
      await sleep(1, ctx.signal);
      if (req.attempt === 0) throw new UnavailableError('first attempt refused', { endpoint: 'mem:1' });
      return response('mem:2');
    },
  };
}

const request = (): GrpcRequest => ({
  method: '/grpctower.testing.Echo/Unary',
  kind: 'unary',
  metadata: new grpc.Metadata(),
  messages: RequestMessages.of(Buffer.from('x')),
  host: undefined,
  credentials: undefined,
  attempt: 0,
});

const statusList = fc.oneof(
  fc.array(fc.constantFrom('UNAVAILABLE', 'unavailable', 'DEADLINE_EXCEEDED', 14, 4), { maxLength: 3 }),
  fc.array(fc.oneof(fc.constantFrom('OK', 'NOPE', 0, 17, -1, 2.5), junk), { minLength: 1, maxLength: 3 }),
);
const callback = fc.constantFrom<unknown>(
  () => true,
  () => false,
  () => undefined,
  () => 'yes',
  () => Number.NaN,
);

// ------------------------------------------------------------ properties

describe('core layers', () => {
  test.each([
    ['timeout', (o: unknown) => timeout(o as never)],
    ['attemptTimeout', (o: unknown) => attemptTimeout(o as never)],
  ])('%s: every options object works or is refused with a named error', async (what, layer) => {
    await fc.assert(
      fc.asyncProperty(options(['ms'], { ms: smallNumber }), async (o) => {
        const l = built(what, () => layer(o));
        if (l === undefined) return;
        const svc = l(inner);
        await Promise.all([0, 1, 2].map((i) => boundedCall(svc, `r${i}`, what)));
      }),
      run,
    );
    expectBothBranches(what);
  });

  test('concurrencyLimit, rateLimit and loadShed: every options object works or is refused with a named error', async () => {
    await fc.assert(
      fc.asyncProperty(
        options(['max', 'queue'], {
          max: fc.integer({ min: 0, max: 3 }),
          queue: fc.integer({ min: 0, max: 3 }),
        }),
        options(['perSecond', 'burst', 'wait'], {
          perSecond: smallNumber,
          burst: smallNumber,
          wait: fc.boolean(),
        }),
        options(['isReady'], { isReady: callback }),
        async (c, r, s) => {
          const layers = [
            built('concurrencyLimit', () => concurrencyLimit(c as never)),
            built('rateLimit', () => rateLimit(r as never)),
            built('loadShed', () => loadShed(s as never)),
          ];
          for (const l of layers) {
            if (l === undefined) continue;
            const svc = built('applying the layer', () => l(inner));
            if (svc === undefined) continue;
            await Promise.all([0, 1, 2].map((i) => boundedCall(svc, `r${i}`, 'a limited call')));
          }
        },
      ),
      run,
    );
    expectBothBranches('concurrencyLimit', 'rateLimit', 'loadShed');
  });
});

describe('contexts and other small constructors', () => {
  // (the panic threshold is the balancers' panicThresholdPercent, in their options' property below)
  test('newContext and diff: every argument works or is refused with a named error', async () => {
    await fc.assert(
      fc.asyncProperty(
        options(['timeoutMs', 'deadline', 'signal'], {
          timeoutMs: valid.ms,
          deadline: fc.constant(null).map(() => Date.now() + 100),
          signal: fc.constant(null).map(() => new AbortController().signal),
        }),
        options(['equals'], {
          equals: fc.constantFrom(
            Object.is,
            () => false,
            () => true,
          ),
        }),
        async (c, d) => {
          const scope = built('newContext', () => newContext(c as never));
          if (scope !== undefined) {
            try {
              const svc = timeout({ ms: 200 })(inner);
              await settles(
                'a call on a new context',
                Promise.resolve().then(() => svc.call('x', scope.context)),
              );
            } finally {
              scope.release();
            }
          }
          const op = built('diff', () => diff<string, string>(d as never));
          if (op !== undefined) {
            const seen: Change<string, string>[] = [];
            let failed: unknown;
            of(
              new Map([['a', '1']]),
              new Map([
                ['a', '2'],
                ['b', '1'],
              ]),
            )
              .pipe(op)
              .subscribe({ next: (change) => seen.push(change), error: (e: unknown) => (failed = e) });
            if (failed !== undefined) expectNamed(failed, 'diff');
            else expect(seen.filter((x) => x.type === 'insert').map((x) => x.key)).toContain('b');
          }
        },
      ),
      run,
    );
    expectBothBranches('newContext', 'diff');
  });

  test('http2Endpoint: every address and options object works or is refused with a named error', async () => {
    const http2Options = options(
      [
        'scheme',
        'authority',
        'connectOptions',
        'initialBackoffMs',
        'maxBackoffMs',
        'maxResponseBytes',
        'closeGraceMs',
      ],
      {
        scheme: fc.constantFrom('http', 'https', 'ftp'),
        authority: fc.oneof(valid.name, edgeString),
        connectOptions: options(['maxSessionMemory', 'settings', 'peerMaxConcurrentStreams']),
        initialBackoffMs: valid.ms,
        maxBackoffMs: fc.integer({ min: 1_000, max: 10_000 }),
        maxResponseBytes: fc.integer({ min: 1, max: 1 << 20 }),
        closeGraceMs: valid.smallMs,
      },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(valid.address, addressLike, junk), http2Options, async (address, o) => {
        const ep = built('http2Endpoint', () => http2Endpoint(address as never, o as never));
        // never a cleartext default: without a scheme of its own nothing is built
        const scheme = (o as { scheme?: unknown } | null | undefined)?.scheme;
        if (scheme !== 'http' && scheme !== 'https') expect(ep).toBeUndefined();
        if (ep === undefined) return;
        await boundedCall(ep, { path: '/' }, 'an http2 call to nowhere', 100);
        await settles('http2Endpoint close', ep.close({ graceMs: 0 }));
      }),
      { numRuns: 100 },
    );
    expectBothBranches('http2Endpoint');
  });
});

describe('retry, budgets and hedging', () => {
  const settingsKeys = [
    'maxAttempts',
    'retryableStatusCodes',
    'initialBackoffMs',
    'maxBackoffMs',
    'backoffMultiplier',
    'perAttemptTimeoutMs',
    'shouldRetry',
  ];
  const settingsValues = {
    maxAttempts: fc.integer({ min: 1, max: 6 }),
    retryableStatusCodes: statusList,
    initialBackoffMs: valid.smallMs,
    maxBackoffMs: fc.integer({ min: 50, max: 250 }),
    backoffMultiplier: valid.factor,
    perAttemptTimeoutMs: valid.ms,
    shouldRetry: callback,
  };

  test('retryBudget and retryThrottling: every options object works or is refused with a named error', () => {
    fc.assert(
      fc.property(
        options(['ttlMs', 'minPerSec', 'percent'], {
          ttlMs: fc.integer({ min: 1_000, max: 60_000 }),
          minPerSec: fc.integer({ min: 0, max: 100 }),
          percent: valid.fraction,
        }),
        options(['maxTokens', 'tokenRatio'], {
          maxTokens: fc.integer({ min: 1, max: 1000 }),
          tokenRatio: valid.fraction,
        }),
        (b, t) => {
          for (const limiter of [
            built('retryBudget', () => retryBudget(b as never)),
            built('retryThrottling', () => retryThrottling(t as never)),
          ]) {
            if (limiter === undefined) continue;
            limiter.onCall();
            limiter.onOutcome('failure');
            expect(typeof limiter.tryAcquire()).toBe('boolean');
            expect(Number.isFinite(limiter.level)).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
    expectBothBranches('retryBudget', 'retryThrottling');
  });

  test('retry: every policy works or is refused with a named error, and calls through it settle', async () => {
    const policy = options([...settingsKeys, 'maxAttemptsLimit', 'budget', 'transparentRetry', 'overrides'], {
      ...settingsValues,
      maxAttemptsLimit: fc.integer({ min: 1, max: 6 }),
      budget: fc.constant(null).map(() => retryBudget()),
      transparentRetry: fc.boolean(),
      overrides: fc.dictionary(
        fc.constantFrom('grpctower.testing.Echo', '/grpctower.testing.Echo/Unary', 'a/b/c', '', '/', 'x'),
        options(settingsKeys, settingsValues),
        { maxKeys: 2 },
      ),
    });
    await fc.assert(
      fc.asyncProperty(policy, async (p) => {
        const layer = built('retry', () => retry(p as never));
        if (layer === undefined) return;
        await boundedCall(layer(flaky()), request(), 'a retried call', 300);
      }),
      run,
    );
    expectBothBranches('retry');
  });

  test('hedge: every policy works or is refused with a named error, and calls through it settle', async () => {
    const hedgeKeys = ['maxAttempts', 'hedgingDelayMs', 'nonFatalStatusCodes'];
    const hedgeValues = {
      maxAttempts: fc.integer({ min: 0, max: 6 }),
      hedgingDelayMs: smallNumber,
      nonFatalStatusCodes: statusList,
    };
    const policy = options([...hedgeKeys, 'maxAttemptsLimit', 'budget', 'transparentRetry', 'overrides'], {
      ...hedgeValues,
      maxAttemptsLimit: fc.integer({ min: 0, max: 6 }),
      budget: fc.constant(null).map(() => retryBudget()),
      transparentRetry: fc.boolean(),
      overrides: fc.dictionary(
        fc.constantFrom('grpctower.testing.Echo', 'a/b/c', ''),
        options(hedgeKeys, hedgeValues),
        {
          maxKeys: 2,
        },
      ),
    });
    await fc.assert(
      fc.asyncProperty(policy, async (p) => {
        const layer = built('hedge', () => hedge(p as never));
        if (layer === undefined) return;
        await boundedCall(layer(flaky()), request(), 'a hedged call', 300);
      }),
      run,
    );
    expectBothBranches('hedge');
  });
});

describe('balancers', () => {
  const randoms = fc.constantFrom<unknown>(
    Math.random,
    () => 0,
    () => 0.999_999_9,
    () => 1,
    () => -1,
    () => Number.NaN,
    () => 7,
  );
  const metrics = fc
    .oneof(
      fc.constant('pending' as const),
      options(['defaultRttMs', 'decayMs', 'floorMs'], {
        defaultRttMs: smallNumber,
        decayMs: smallNumber,
        floorMs: smallNumber,
      }),
    )
    .map((o): LoadMetric | { bad: unknown } => {
      if (o === 'pending') return pendingRequests();
      try {
        return peakEwma(o as never);
      } catch (err) {
        expectNamed(err, 'peakEwma');
        return { bad: o };
      }
    });
  const weights = options(['windowMs', 'aggression', 'minWeightPercent'], {
    windowMs: smallNumber,
    aggression: smallNumber,
    minWeightPercent: smallNumber,
  }).map((o) => {
    try {
      return slowStart(o as never) as unknown;
    } catch (err) {
      expectNamed(err, 'slowStart');
      return o;
    }
  });
  const balancerOptions = options(
    [
      'target',
      'failFastMs',
      'waitForReady',
      'random',
      'drainGraceMs',
      'statsIntervalMs',
      'panicThresholdPercent',
      'load',
      'slowStart',
    ],
    {
      target: edgeString,
      failFastMs: valid.smallMs,
      waitForReady: fc.boolean(),
      random: randoms,
      drainGraceMs: valid.smallMs,
      statsIntervalMs: valid.ms,
      panicThresholdPercent: valid.percent,
      load: metrics,
      slowStart: weights,
    },
  );

  test.each([
    ['p2c', (d: Observable<Change<string, Endpoint<string, string>>>, o: unknown) => p2c(d, o as never)],
    [
      'roundRobin',
      (d: Observable<Change<string, Endpoint<string, string>>>, o: unknown) => roundRobin(d, o as never),
    ],
  ])(
    '%s: every options object works or is refused with a named error, and calls settle',
    async (what, make) => {
      await fc.assert(
        fc.asyncProperty(balancerOptions, fc.integer({ min: 0, max: 4 }), async (o, ready) => {
          const changes = new Subject<Change<string, Endpoint<string, string>>>();
          const balancer = built(what, () => make(changes, o)) as
            | Balancer<string, string, string>
            | undefined;
          if (balancer === undefined) return;
          try {
            for (let i = 0; i < 4; i++) {
              const ep = new MemoryEndpoint(`mem-${i}:1`, i < ready ? 'ready' : 'connecting');
              changes.next({ type: 'insert', key: ep.address, endpoint: ep });
            }
            await Promise.all(
              [0, 1, 2, 3, 4].map((i) => boundedCall(balancer, `r${i}`, `a ${what} call`, 100)),
            );
            changes.next({ type: 'remove', key: 'mem-0:1' });
            await boundedCall(balancer, 'after', `a ${what} call`, 100);
            expect(balancer.stats().counts.known).toBe(3);
          } finally {
            await settles(`${what} close`, balancer.close());
          }
        }),
        run,
      );
      expectBothBranches(what);
    },
  );
});

describe('health checking and outlier detection', () => {
  test('healthChecked and outlierDetection: every options object works or is refused with a named error', async () => {
    const health = options(['service', 'mode', 'intervalMs', 'timeoutMs', 'backoff', 'random'], {
      service: edgeString,
      mode: fc.constantFrom('watch', 'check'),
      intervalMs: valid.ms,
      timeoutMs: valid.ms,
      backoff: backoffOptions,
      random: fc.constantFrom(
        Math.random,
        () => Number.NaN,
        () => 2,
      ),
    });
    const outlier = options(
      [
        'consecutiveFailures',
        'failureCodes',
        'intervalMs',
        'baseEjectionTimeMs',
        'maxEjectionTimeMs',
        'maxEjectionPercent',
        'successRateEjection',
        'failurePercentageEjection',
        'random',
      ],
      {
        consecutiveFailures: valid.count,
        failureCodes: statusList,
        intervalMs: valid.ms,
        baseEjectionTimeMs: valid.ms,
        maxEjectionTimeMs: fc.integer({ min: 1_000, max: 300_000 }),
        maxEjectionPercent: valid.percent,
        successRateEjection: fc.oneof(
          fc.boolean(),
          options(['stdevFactor', 'enforcementPercentage', 'minimumHosts', 'requestVolume'], {
            stdevFactor: valid.factor,
            enforcementPercentage: valid.percent,
            minimumHosts: valid.count,
            requestVolume: valid.count,
          }),
        ),
        failurePercentageEjection: fc.oneof(
          fc.boolean(),
          options(['threshold', 'enforcementPercentage', 'minimumHosts', 'requestVolume'], {
            threshold: valid.percent,
            enforcementPercentage: valid.percent,
            minimumHosts: valid.count,
            requestVolume: valid.count,
          }),
        ),
        random: fc.constantFrom(Math.random, () => Number.NaN),
      },
    );
    await fc.assert(
      fc.asyncProperty(health, outlier, async (h, o) => {
        const checker = built('healthChecked', () => healthChecked(h as never));
        if (checker !== undefined) {
          // not ready: no health call is made, the wrapper only follows it
          const ep = checker(new MemoryEndpoint('mem:1', 'connecting') as never);
          expect(ep.readiness).not.toBe('ready');
          await settles('health wrapper close', ep.close());
        }
        const detector = built('outlierDetection', () => outlierDetection(o as never));
        if (detector !== undefined) {
          try {
            const ep = detector.wrap(new MemoryEndpoint('mem:2'));
            for (let i = 0; i < 6; i++) await boundedCall(ep, `r${i}`, 'a call through outlier detection');
            await settles('outlier wrapper close', ep.close());
          } finally {
            detector.close();
          }
        }
      }),
      run,
    );
    expectBothBranches('healthChecked', 'outlierDetection');
  });
});

describe('discovery input', () => {
  test('staticList: every list of addresses works or is refused with a named error; what it emits is canonical', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 5, arbitrary: fc.array(discoveryEntry, { maxLength: 6 }) },
          { weight: 1, arbitrary: junk },
        ),
        options(['name'], { name: edgeString }),
        (list, o) => {
          const source = built('staticList', () => staticList(list as never, o as never));
          if (source === undefined) return;
          const seen: Change<string, DiscoveredAddress>[] = [];
          let failed: unknown;
          const sub = source.subscribe({ next: (c) => seen.push(c), error: (e: unknown) => (failed = e) });
          sub.unsubscribe();
          expect(failed).toBeUndefined();
          for (const c of seen) {
            expect(c.type).toBe('insert');
            const hp = parseAddress(c.key, 'a discovered key');
            expect(c.key).toBe(hp.family === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`);
          }
        },
      ),
      { numRuns: 500 },
    );
    expectBothBranches('staticList');
  });

  test('poll: any options and any answer (junk, broken addresses, throws) never end or error the stream', async () => {
    const answer = fc.oneof(
      fc.array(discoveryEntry, { maxLength: 6 }),
      fc.record(
        {
          addresses: fc.oneof(fc.array(discoveryEntry, { maxLength: 4 }), junk),
          validForMs: junk,
          invalid: junk,
        },
        { requiredKeys: [] },
      ),
      junk,
      fc.constant('throw'),
      fc.constant('reject'),
    );
    const pollOptions = options(
      ['name', 'intervalMs', 'jitter', 'resolveTimeoutMs', 'backoff', 'keepLastOnEmpty'],
      {
        name: valid.name,
        intervalMs: valid.ms,
        jitter: valid.fraction,
        resolveTimeoutMs: valid.ms,
        backoff: backoffOptions,
        keepLastOnEmpty: fc.boolean(),
      },
    );
    await fc.assert(
      fc.asyncProperty(answer, pollOptions, async (a, o) => {
        const resolve = (): unknown => {
          if (a === 'throw') throw new Error('registry exploded');
          if (a === 'reject') return Promise.reject(new Error('registry refused'));
          return a;
        };
        const source = built('poll', () => poll(resolve as never, o as never));
        if (source === undefined) return;
        const seen: Change<string, DiscoveredAddress>[] = [];
        const events: DiscoveryEvent[] = [];
        let ended: unknown;
        const firstRound = new Promise<void>((done) => {
          const evs = source.events$.subscribe((e) => {
            events.push(e);
            if (e.type === 'resolved' || e.type === 'failed' || e.type === 'empty-kept') {
              evs.unsubscribe();
              done();
            }
          });
        });
        const sub = source.subscribe({
          next: (c) => seen.push(c),
          error: (e: unknown) => (ended = e),
          complete: () => (ended = 'complete'),
        });
        try {
          await settles('the first poll round', firstRound);
        } finally {
          sub.unsubscribe();
        }
        expect(ended).toBeUndefined();
        for (const c of seen) expect(() => parseAddress(c.key, 'a discovered key')).not.toThrow();
        for (const e of events) if (e.type === 'failed' || e.type === 'invalid') expectNamed(e.error, e.type);
      }),
      run,
    );
    expectBothBranches('poll');
  });

  test('a DNS server with port 0 is refused (Node aborts the process on it)', () => {
    for (const server of [
      '127.0.0.1:0',
      '[::1]:0',
      '127.0.0.1:4294967296',
      '127.0.0.1:65536',
      '::1:99999999999',
      'fe80::1:70000',
    ]) {
      expect(() => dns('orders.invalid', 50051, { servers: [server] })).toThrow(ConfigError);
      expect(() => dnsSrv('_grpc._tcp.orders.invalid', { servers: ['127.0.0.1', server] })).toThrow(
        ConfigError,
      );
    }
  });

  test('dns, dnsSrv, etcd, connect and merge: every argument works or is refused with a named error', () => {
    const dnsOptions = options(
      [
        'servers',
        'family',
        'respectTtl',
        'queryTimeoutMs',
        'tries',
        'intervalMs',
        'resolveTimeoutMs',
        'name',
      ],
      {
        servers: fc.oneof(
          fc.array(fc.constantFrom('127.0.0.1', '::1', '[::1]:53', '127.0.0.1:5353'), {
            minLength: 1,
            maxLength: 2,
          }),
          fc.array(
            fc.oneof(
              addressLike,
              fc.constantFrom('127.0.0.1:99999', '127.0.0.1:0', '[::1]:0', '127.0.0.1:4294967296'),
            ),
            { maxLength: 2 },
          ),
        ),
        family: fc.constantFrom('any', 4, 6),
        respectTtl: fc.boolean(),
        queryTimeoutMs: valid.ms,
        tries: fc.integer({ min: 1, max: 10 }),
        intervalMs: valid.ms,
        resolveTimeoutMs: valid.ms,
        name: valid.name,
      },
    );
    fc.assert(
      fc.property(
        fc.oneof({ weight: 4, arbitrary: hostLike }, { weight: 1, arbitrary: junk }),
        fc.oneof({ weight: 4, arbitrary: edgeNumber }, { weight: 1, arbitrary: junk }),
        fc.oneof(fc.constantFrom('_grpc._tcp.orders.invalid', 'orders.invalid', '_a._b.c.'), hostLike, junk),
        dnsOptions,
        fc.oneof(
          fc.constantFrom('http://127.0.0.1:2379', ['127.0.0.1:2379', 'https://[::1]:2379']),
          fc.array(fc.oneof(addressLike, edgeString), { maxLength: 2 }),
          addressLike,
          junk,
        ),
        fc.oneof(fc.constantFrom('/services/orders/', 'x'), edgeString, junk),
        options(['name', 'requestTimeoutMs', 'backoff', 'watchBackoff'], {
          name: valid.name,
          requestTimeoutMs: valid.ms,
          backoff: backoffOptions,
          watchBackoff: backoffOptions,
        }),
        options(['name', 'graceMs'], { name: valid.name, graceMs: valid.smallMs }),
        (host, port, srv, o, endpoints, prefix, eo, co) => {
          built('dns', () => dns(host as never, port as never, o as never));
          built('dnsSrv', () => dnsSrv(srv as never, o as never));
          built('etcd', () => etcd(endpoints as never, prefix as never, eo as never));
          const base = staticList(['127.0.0.1:1']);
          const c = built('connect', () => connect(base, (a) => new MemoryEndpoint(a.address), co as never));
          if (c !== undefined) c.subscribe().unsubscribe();
          built('merge', () => merge([base, base], co as never));
          built('merge', () => merge(endpoints as never, co as never));
        },
      ),
      { numRuns: 500 },
    );
    expectBothBranches('dns', 'dnsSrv', 'etcd', 'connect', 'merge');
  });
});

// the endpoint's options, over either transport (the property draws it)
describe('grpcEndpoint options', () => {
  test('grpcEndpoint: every address and options object works or is refused with a named error', async () => {
    // either transport (or, mixed in, junk that names none): each refuses what it does not take with a named error
    const endpointOptions = options(
      ['credentials', 'authority', 'channelOptions', 'closeGraceMs', 'transport'],
      {
        transport: fc.constantFrom('native', 'grpc-js'),
        credentials: fc.constant(null).map(() => grpc.credentials.createInsecure()),
        authority: fc.oneof(edgeString, fc.constantFrom('orders.test', 'orders.test:443')),
        channelOptions: fc.dictionary(
          fc.constantFrom(
            'grpc.max_receive_message_length',
            'grpc.keepalive_time_ms',
            'grpc.default_authority',
            'grpc.initial_reconnect_backoff_ms',
            'grpc.service_config',
            'grpc.enable_retries',
            'grpc.use_local_subchannel_pool',
            'x-unknown',
          ),
          junk,
          { maxKeys: 3 },
        ),
        closeGraceMs: smallNumber,
      },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(valid.address, addressLike, junk), endpointOptions, async (address, o) => {
        const ep = built('grpcEndpoint', () => grpcEndpoint(address as never, o as never));
        // never a plaintext default: without channel credentials nothing is built
        const credentials = (o as { credentials?: { _isSecure?: unknown } } | null | undefined)?.credentials;
        if (typeof credentials?._isSecure !== 'function') expect(ep).toBeUndefined();
        if (ep === undefined) return;
        // what it accepted parses
        parseAddress(ep.address, 'check');
        await settles('grpcEndpoint close', ep.close({ graceMs: 0 }));
        expect(ep.readiness).toBe('closed');
      }),
      { numRuns: 200 },
    );
    expectBothBranches('grpcEndpoint');
  });
});

// calls, their metadata and odd metadata are meant to fare alike over both transports
describe.each(TRANSPORTS)('the gRPC path, over the %s transport', (transport) => {
  let server: EchoServer;
  let stack: FullStack;
  beforeAll(async () => {
    const [host] = pickHosts(1);
    server = await startEchoServer({ host: host!, name: 'echo', health: true });
    stack = fullStack({
      source: staticList([server.address]),
      endpoint: { credentials: insecure, transport },
    });
    await vi.waitFor(() => expect(stack.balancer.counts().ready).toBe(1), { timeout: 10_000 });
  });
  afterAll(async () => {
    await stack?.close();
    await server?.stop(0);
  });

  const unary = (
    client: ReturnType<typeof createEchoClient>,
    metadata: grpc.Metadata,
    message = 'hi',
  ): Promise<{
    err: grpc.ServiceError | null;
    reply: EchoReply | undefined;
    headers: grpc.Metadata | undefined;
  }> =>
    new Promise((resolve) => {
      let headers: grpc.Metadata | undefined;
      const call = client.Unary(
        { message, echoMetadata: true },
        metadata,
        { deadline: Date.now() + 5_000 },
        (err, reply) => resolve({ err, reply, headers }),
      );
      call.on('metadata', (md: grpc.Metadata) => {
        headers = md;
      });
    });

  test('createChannel: every target and options object works or is refused with a named error, and calls settle', async () => {
    const { EchoService } = loadEchoPackage();
    const channelOptions = options(['target', 'services', 'replay', 'readiness', 'owns'], {
      target: fc.oneof(edgeString, addressLike),
      services: fc.constantFrom<unknown>([EchoService], [], [{}]),
      replay: options(['perCallBytes', 'perChannelBytes'], {
        perCallBytes: edgeNumber,
        perChannelBytes: edgeNumber,
      }),
      readiness: fc.constantFrom<unknown>(undefined),
      owns: fc.constantFrom<unknown>([]),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof({ weight: 5, arbitrary: fc.constant('stack') }, { weight: 1, arbitrary: junk }),
        channelOptions,
        async (s, o) => {
          const channel = built('createChannel', () =>
            createChannel((s === 'stack' ? stackService() : s) as never, o as never),
          );
          if (channel === undefined) return;
          const client = createEchoClient(channel.getTarget(), { channelOverride: channel });
          const r = await settles('a call through the channel', unary(client, new grpc.Metadata()), 6_000);
          expect(r).toBeDefined();
          if (r?.err === null) expect(r.reply?.server).toBe('echo');
          await settles('channel close', channel.closeAsync());
        },
      ),
      { numRuns: 100 },
    );
    expectBothBranches('createChannel');
  });

  /** The stack behind the shared channel, as a plain service (not owned by the channels made here). */
  function stackService(): Service<GrpcRequest, GrpcResponse> {
    return { call: (req, ctx) => stack.balancer.call(req, ctx) };
  }

  test('metadata: any valid x- metadata comes back exactly, on its own call only', async () => {
    const key = fc.stringMatching(/^x-[0-9a-z_.-]{1,12}$/).filter((k) => !k.endsWith('-bin'));
    const text = fc.stringMatching(/^[!-~]([ -~]{0,30}[!-~])?$/);
    const entry = fc.oneof(
      fc.tuple(key, text),
      fc.tuple(
        key.map((k) => `${k}-bin`),
        fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)),
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { maxLength: 6 }), fc.nat(), async (entries, id) => {
        const md = new grpc.Metadata();
        md.set('x-call-id', String(id));
        for (const [k, v] of entries) if (k !== 'x-call-id') md.add(k, v);
        const { err, headers } = await unary(stack.client, md);
        expect(err).toBeNull();
        for (const k of Object.keys(md.getMap())) {
          // HTTP/2 joins repeated values of a text key with ", "; binary values stay apart
          if (k.endsWith('-bin')) expect(headers?.get(k)).toEqual(md.get(k));
          else expect(headers?.get(k).join(', ')).toBe(md.get(k).join(', '));
        }
        for (const k of Object.keys(headers?.getMap() ?? {})) {
          if (k.startsWith('x-')) expect(md.get(k).length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 100 },
    );
  });

  test('metadata: reserved, odd and oversized entries end the call with a status, never a crash or a hang', async () => {
    const key = fc.constantFrom(
      'content-type',
      'te',
      'user-agent',
      'grpc-timeout',
      'grpc-status',
      'grpc-message',
      'grpc-encoding',
      'grpc-accept-encoding',
      'authorization',
      'host',
      'connection',
      'grpc-tower-endpoint',
      'grpc-previous-rpc-attempts',
      'grpc-retry-pushback-ms',
      'x-big',
    );
    const value = fc.oneof(
      fc.stringMatching(/^[ -~]{0,40}$/),
      fc.constantFrom('', ' ', 'gzip', '1S', '-5m', 'application/grpc', 'trailers'),
      fc.integer({ min: 1, max: 64 }).map((k) => 'v'.repeat(k * 1024)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(key, value), { maxLength: 4 }), async (entries) => {
        const md = new grpc.Metadata();
        for (const [k, v] of entries) {
          try {
            md.add(k, v);
          } catch {
            // grpc-js refuses some values before any call exists: nothing to test
          }
        }
        const r = await settles('a call with odd metadata', unary(stack.client, md), 6_000);
        expect(r).toBeDefined();
        if (r?.err !== null) expect(typeof r?.err?.code).toBe('number');
      }),
      { numRuns: 100 },
    );
  });
});

describe('discovery input from a real etcd', () => {
  test('any value under the prefix becomes a canonical address or an invalid event; the stream never ends', async () => {
    const server = await startEtcd();
    try {
      const values = fc.sample(
        fc.oneof(
          addressLike,
          discoveryEntry.map((e) => {
            try {
              return JSON.stringify(e) ?? 'undefined';
            } catch {
              return '{';
            }
          }),
          fc.constantFrom('{', '{"address":1}', '{"address":"127.0.0.9:80","weight":-1}', '', '   ', 'null'),
        ),
        { numRuns: 60, seed: 42 },
      );
      await Promise.all(values.map((v, i) => server.put(`/fuzz/k${String(i).padStart(3, '0')}`, v)));
      const source = etcd(server.url, '/fuzz/', { requestTimeoutMs: 2_000 });
      const events: DiscoveryEvent[] = [];
      const seen = new Map<string, DiscoveredAddress>();
      let ended: unknown;
      const evs = source.events$.subscribe((e) => events.push(e));
      const sub = source.subscribe({
        next: (c) => (c.type === 'insert' ? seen.set(c.key, c.endpoint) : seen.delete(c.key)),
        error: (e: unknown) => (ended = e),
        complete: () => (ended = 'complete'),
      });
      try {
        await expect.poll(() => events.some((e) => e.type === 'resolved'), { timeout: 10_000 }).toBe(true);
      } finally {
        sub.unsubscribe();
        evs.unsubscribe();
      }
      expect(ended).toBeUndefined();
      for (const key of seen.keys()) expect(() => parseAddress(key, 'a discovered key')).not.toThrow();
      const invalid = events.filter((e) => e.type === 'invalid');
      for (const e of invalid) expectNamed(e.type === 'invalid' ? e.error : undefined, 'invalid');
      // the oracle: the package's own address parser, on the value or its JSON
      const expected = new Set<string>();
      let refused = 0;
      for (const v of values) {
        const text = v.trim();
        try {
          expected.add(toDiscoveredAddress(text.startsWith('{') ? JSON.parse(text) : text).address);
        } catch {
          refused++;
        }
      }
      expect([...seen.keys()].sort()).toEqual([...expected].sort());
      expect(invalid.length).toBe(refused);
    } finally {
      await server.close();
    }
  });
});
