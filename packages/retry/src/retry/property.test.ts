// Property tests of the retry loop. They drive the layer with an in-process
// service that plays back a generated sequence of attempt outcomes: a few
// hundred generated cases cannot each start real servers, and what is
// checked here (how many attempts, which delays) does not depend on the
// network. The behaviour against real servers is in layer.test.ts.
import * as grpc from '@grpc/grpc-js';
import { Status, background } from '@grpc-tower/core';
import { GrpcStatusError, type GrpcRequest, type GrpcResponse, RequestMessages } from '@grpc-tower/core/grpc';
import fc from 'fast-check';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { backoffCeiling, fullJitterDelay } from './backoff.js';
import { type RetryEvent, retry } from './layer.js';

type Outcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'fail'; readonly code: number; readonly pushback: string | undefined }
  | { readonly kind: 'refused' };

const outcome: fc.Arbitrary<Outcome> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Outcome>({ kind: 'ok' }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('fail' as const),
      code: fc.oneof(
        { weight: 3, arbitrary: fc.constant(Status.UNAVAILABLE) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 16 }) },
      ),
      pushback: fc.oneof(
        { weight: 4, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }).map(String) },
        { weight: 1, arbitrary: fc.constantFrom('-1', 'x', '2.5', '') },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.constant<Outcome>({ kind: 'refused' }) },
);

const policy = fc
  .record({
    maxAttempts: fc.integer({ min: 1, max: 8 }),
    maxAttemptsLimit: fc.integer({ min: 1, max: 8 }),
    initialBackoffMs: fc.integer({ min: 0, max: 3 }),
    extra: fc.integer({ min: 0, max: 6 }),
    backoffMultiplier: fc.double({ min: 1, max: 3, noNaN: true }),
  })
  .map(({ extra, ...p }) => ({ ...p, maxBackoffMs: p.initialBackoffMs + extra }));

function unavailable(pushback?: string): Outcome {
  return { kind: 'fail', code: Status.UNAVAILABLE, pushback };
}

function response(): GrpcResponse {
  const metadata = new grpc.Metadata();
  return {
    endpoint: 'fake:1',
    headers: metadata,
    stream: { start: () => undefined, read: () => undefined, cancel: () => undefined },
    done: Promise.resolve({ code: Status.OK, details: '', metadata }),
  };
}

function failure(o: Exclude<Outcome, { kind: 'ok' }>): GrpcStatusError {
  const metadata = new grpc.Metadata();
  if (o.kind === 'refused') {
    return new GrpcStatusError(
      { code: Status.UNAVAILABLE, details: 'Stream refused by server', metadata },
      // as both gRPC endpoints raise it: the transport's fact on the error
      { endpoint: 'fake:1', serverResponded: false, delivery: 'refused' },
    );
  }
  if (o.pushback !== undefined) metadata.set('grpc-retry-pushback-ms', o.pushback);
  return new GrpcStatusError(
    { code: o.code, details: 'generated', metadata },
    { endpoint: 'fake:1', serverResponded: true },
  );
}

/** What the A6 rules say should happen to `outcomes` under `maxAttempts`. */
function model(
  outcomes: readonly Outcome[],
  maxAttempts: number,
): { sends: number; ok: boolean; counted: number } {
  let counted = 1;
  let sends = 0;
  let transparentUsed = false;
  for (;;) {
    const o = outcomes[sends] ?? { kind: 'fail', code: Status.UNAVAILABLE, pushback: undefined };
    sends++;
    if (o.kind === 'ok') return { sends, ok: true, counted };
    if (o.kind === 'refused' && !transparentUsed) {
      transparentUsed = true;
      continue;
    }
    const code = o.kind === 'refused' ? Status.UNAVAILABLE : o.code;
    const pushback = o.kind === 'fail' ? o.pushback : undefined;
    const stop = pushback !== undefined && !/^\d+$/.test(pushback);
    if (code !== Status.UNAVAILABLE || stop || counted >= maxAttempts) return { sends, ok: false, counted };
    counted++;
  }
}

function request(): GrpcRequest {
  return {
    method: '/pkg.Svc/M',
    kind: 'unary',
    metadata: new grpc.Metadata(),
    messages: RequestMessages.of(Buffer.from('x')),
    host: undefined,
    credentials: undefined,
    attempt: 0,
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('retry loop properties', () => {
  test('for any sequence of outcomes: attempts ≤ maxAttempts, the A6 decisions, and every delay within the backoff bounds', async () => {
    await fc.assert(
      fc.asyncProperty(
        policy,
        fc.array(outcome, { maxLength: 12 }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        async (p, outcomes, r) => {
          // the jitter draws `r` every time, so each delay is known exactly
          vi.spyOn(Math, 'random').mockReturnValue(r);
          const layer = retry(p);
          const seen: RetryEvent[] = [];
          const sub = layer.events$.subscribe((e) => seen.push(e));
          const previous: string[] = [];
          let sends = 0;
          const svc = layer({
            call: async (req) => {
              // the endpoint sends `attempt` as grpc-previous-rpc-attempts (layer.test.ts checks the header)
              previous.push(req.attempt === 0 ? '-' : String(req.attempt));
              const o = outcomes[sends] ?? { kind: 'fail', code: Status.UNAVAILABLE, pushback: undefined };
              sends++;
              if (o.kind === 'ok') return response();
              throw failure(o);
            },
          });
          const ok = await svc.call(request(), background).then(
            () => true,
            () => false,
          );
          sub.unsubscribe();

          const max = Math.min(p.maxAttempts, p.maxAttemptsLimit);
          const expected = model(outcomes, max);
          expect(ok).toBe(expected.ok);
          expect(sends).toBe(expected.sends);
          const counted = seen.filter((e) => e.type === 'attempt' && !e.transparent).length;
          expect(counted).toBeLessThanOrEqual(max);
          expect(counted).toBe(expected.counted);
          expect(previous).toEqual(previous.map((_, i) => (i === 0 ? '-' : String(i))));

          // delays: backoff steps grow from 0 and restart after a pushback
          let step = 0;
          const pushbacks = outcomes
            .slice(0, sends)
            .filter(
              (o): o is Extract<Outcome, { kind: 'fail' }> => o.kind === 'fail' && o.pushback !== undefined,
            );
          for (const e of seen) {
            if (e.type !== 'retry') continue;
            if (e.cause === 'transparent') {
              expect(e.delayMs).toBe(0);
            } else if (e.cause === 'pushback') {
              expect(pushbacks.map((o) => Number(o.pushback))).toContain(e.delayMs);
              step = 0;
            } else {
              expect(e.delayMs).toBeGreaterThanOrEqual(0);
              expect(e.delayMs).toBeLessThanOrEqual(backoffCeiling(step, p));
              expect(e.delayMs).toBeLessThanOrEqual(p.maxBackoffMs);
              expect(e.delayMs).toBe(fullJitterDelay(step, p, () => r));
              step++;
            }
          }
          vi.restoreAllMocks();
        },
      ),
      {
        numRuns: 200,
        examples: [
          // two backoffs, a pushback, then a backoff that must start again from the first step
          [
            {
              maxAttempts: 5,
              maxAttemptsLimit: 5,
              initialBackoffMs: 2,
              maxBackoffMs: 8,
              backoffMultiplier: 2,
            },
            [unavailable(), unavailable(), unavailable('1'), unavailable(), { kind: 'ok' }],
            0.999,
          ],
        ],
      },
    );
  });

  test('a full-jitter delay is a whole number in [0, min(cap, initial × multiplier^step)]', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        (step, initial, extra, multiplier, r) => {
          const settings = {
            initialBackoffMs: initial,
            maxBackoffMs: initial + extra,
            backoffMultiplier: multiplier,
          };
          const d = fullJitterDelay(step, settings, () => r);
          const ceiling = Math.min(initial + extra, initial * multiplier ** step);
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(ceiling);
        },
      ),
    );
  });
});
