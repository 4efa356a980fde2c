// The classifier on the errors the endpoints and layers really raise (built
// here as those classes build them; the echo-server tests in health and
// balance show the same through real calls).
import { Metadata } from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import {
  CancelledError,
  ClosedError,
  DeadlineExceededError,
  GrpcTowerError,
  OverloadedError,
  UnavailableError,
} from '../errors.js';
import { grpcJsDelivery } from '../grpc/endpoint.js';
import { GrpcStatusError } from '../grpc/types.js';
import { Http2RequestError } from '../http2/endpoint.js';
import { Status } from '../status.js';
import {
  DEFAULT_DEADLINE_RULE,
  deadlineHadFairChance,
  deadlineRuleOptions,
  failureOrigin,
} from './failure.js';
import { optionChecks } from './options.js';

const status = (code: number, details: string, serverResponded: boolean) =>
  new GrpcStatusError({ code, details, metadata: new Metadata() }, { endpoint: 'a:1', serverResponded });
/** A status grpc-js made up, with the delivery the grpc-js endpoint reads from its words. */
const grpcJs = (code: number, details: string) => {
  const delivery = grpcJsDelivery(details)?.delivery;
  return new GrpcStatusError(
    { code, details, metadata: new Metadata() },
    { endpoint: 'a:1', serverResponded: false, ...(delivery === undefined ? {} : { delivery }) },
  );
};

describe('failureOrigin', () => {
  test.each([
    ['not-sent', 'local'],
    ['unconnected', 'connection'],
    ['refused', 'local'],
    ['goaway', 'local'],
    ['lost', 'connection'],
  ] as const)("the transport's delivery %s is read before any text: %s", (delivery, origin) => {
    // details worded to mislead a text match the other way
    const err = new GrpcStatusError(
      {
        code: Status.UNAVAILABLE,
        details:
          delivery === 'lost' || delivery === 'unconnected'
            ? 'Stream refused by server'
            : 'Connection dropped',
        metadata: new Metadata(),
      },
      { endpoint: 'a:1', serverResponded: false, delivery },
    );
    expect(failureOrigin(err, false)).toBe(origin);
    expect(failureOrigin(new UnavailableError('x', { delivery }), false)).toBe(origin);
  });

  test.each([
    ['a status the server sent', status(Status.INTERNAL, 'boom', true), 'server'],
    ['UNAVAILABLE the server sent', status(Status.UNAVAILABLE, 'shutting down', true), 'server'],
    ['no connection', grpcJs(Status.UNAVAILABLE, 'No connection established'), 'connection'],
    ['a dropped connection', grpcJs(Status.UNAVAILABLE, 'Connection dropped'), 'connection'],
    ['a reset stream', grpcJs(Status.INTERNAL, 'Received RST_STREAM with code 2'), 'connection'],
    [
      'a stream grpc-js could not start',
      grpcJs(Status.INTERNAL, 'Failed to start HTTP/2 stream with error x'),
      'local',
    ],
    [
      'call credentials that failed here',
      grpcJs(Status.UNAVAILABLE, 'Getting metadata from plugin failed with error: x'),
      'local',
    ],
    [
      'a status grpc-js made up',
      grpcJs(Status.INTERNAL, '"authorization" metadata cannot have multiple values'),
      'local',
    ],
    [
      'an UNAVAILABLE without a response the transport did not account for (a proxy page)',
      status(Status.UNAVAILABLE, 'Received HTTP status code 503', false),
      'connection',
    ],
    [
      'a deadline the server enforced',
      status(Status.DEADLINE_EXCEEDED, 'Deadline exceeded', true),
      'deadline',
    ],
    ["the call's own deadline", new DeadlineExceededError('deadline'), 'deadline'],
    ['a cancel', new CancelledError(), 'caller'],
    ['a CANCELLED status', status(Status.CANCELLED, 'Cancelled', true), 'caller'],
    ['a draining endpoint', new ClosedError('draining'), 'local'],
    ['a local limit', new OverloadedError('full'), 'local'],
    [
      'an UnavailableError (connect failure of an HTTP/2 endpoint)',
      new UnavailableError('refused'),
      'connection',
    ],
    [
      'an HTTP/2 stream the server refused (REFUSED_STREAM, a GOAWAY)',
      new Http2RequestError('refused', { endpoint: 'a:1', refused: true }),
      'local',
    ],
    [
      'an HTTP/2 request whose connection broke after it was sent',
      new Http2RequestError('closed', { endpoint: 'a:1', refused: false }),
      'connection',
    ],
    ['a foreign error, taken at its code', new Error('boom'), 'server'],
    ['a committed stream status', { code: Status.UNAVAILABLE, details: 'x' }, 'server'],
  ])('%s', (_name, failure, origin) => {
    expect(failureOrigin(failure, false)).toBe(origin);
  });

  test('a call stopped by its caller or a layer is never the server: only its deadline may be', () => {
    expect(failureOrigin(status(Status.UNAVAILABLE, 'x', true), true)).toBe('caller');
    expect(failureOrigin(new GrpcTowerError(Status.INTERNAL, 'x'), true)).toBe('caller');
    expect(failureOrigin(new DeadlineExceededError('deadline'), true)).toBe('deadline');
  });
});

describe('deadlineHadFairChance', () => {
  test('at least minMs, or latencyFactor × the typical latency (floored at 10 ms)', () => {
    const rule = DEFAULT_DEADLINE_RULE;
    expect(deadlineHadFairChance(2, undefined, rule)).toBe(false);
    expect(deadlineHadFairChance(999, undefined, rule)).toBe(false);
    expect(deadlineHadFairChance(1000, undefined, rule)).toBe(true);
    expect(deadlineHadFairChance(2, 20, rule)).toBe(false);
    expect(deadlineHadFairChance(199, 20, rule)).toBe(false);
    expect(deadlineHadFairChance(200, 20, rule)).toBe(true);
    expect(deadlineHadFairChance(50, 0.5, rule)).toBe(false);
    expect(deadlineHadFairChance(100, 0.5, rule)).toBe(true);
    expect(deadlineHadFairChance(1000, 500, rule)).toBe(true);
  });

  test('the options are checked with the shared validator', () => {
    const check = optionChecks('test');
    expect(deadlineRuleOptions(check, {})).toBe(DEFAULT_DEADLINE_RULE);
    expect(deadlineRuleOptions(check, { deadlineMinMs: 50, deadlineLatencyFactor: 2 })).toEqual({
      minMs: 50,
      latencyFactor: 2,
    });
    expect(() => deadlineRuleOptions(check, { deadlineLatencyFactor: 0.5 })).toThrow(/deadlineLatencyFactor/);
    expect(() => deadlineRuleOptions(check, { deadlineMinMs: -1 })).toThrow(/deadlineMinMs/);
  });
});
