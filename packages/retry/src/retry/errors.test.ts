// neverReachedServer: the transport's delivery fact first, grpc-js's words
// for the endpoint that has only those.
import { ClosedError, Status, UnavailableError } from '@grpc-tower/core';
import { GrpcStatusError } from '@grpc-tower/core/grpc';
import { Metadata } from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { neverReachedServer } from './errors.js';

const status = (details: string, delivery?: 'not-sent' | 'refused' | 'goaway' | 'lost') =>
  new GrpcStatusError(
    { code: Status.UNAVAILABLE, details, metadata: new Metadata() },
    { endpoint: 'a:1', serverResponded: false, ...(delivery === undefined ? {} : { delivery }) },
  );

describe('neverReachedServer', () => {
  test.each([
    ['not-sent', true],
    ['refused', true],
    ['goaway', true],
    ['lost', false],
  ] as const)('delivery %s: %s, whatever the details say', (delivery, expected) => {
    expect(
      neverReachedServer(status(expected ? 'Connection dropped' : 'Stream refused by server', delivery)),
    ).toBe(expected);
    expect(neverReachedServer(new UnavailableError('x', { delivery }))).toBe(expected);
  });

  test("without a delivery, grpc-js's details decide", () => {
    expect(neverReachedServer(status('Stream refused by server'))).toBe(true);
    expect(neverReachedServer(status('No connection established. Last error: x'))).toBe(true);
    expect(neverReachedServer(status('Connection dropped'))).toBe(false);
    expect(neverReachedServer(new ClosedError('draining'))).toBe(true);
  });
});
