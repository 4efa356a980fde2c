// neverReachedServer: the transport's delivery fact first, grpc-js's words
// for the endpoint that has only those.
import { ClosedError, type Delivery, Status, UnavailableError } from '@grpc-tower/core';
import { grpcJsDelivery } from '@grpc-tower/core/internal';
import { GrpcStatusError } from '@grpc-tower/core/grpc';
import { Metadata } from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { neverReachedServer } from './errors.js';

const status = (details: string, delivery?: Delivery) =>
  new GrpcStatusError(
    { code: Status.UNAVAILABLE, details, metadata: new Metadata() },
    { endpoint: 'a:1', serverResponded: false, ...(delivery === undefined ? {} : { delivery }) },
  );

describe('neverReachedServer', () => {
  test.each([
    ['not-sent', true],
    ['unconnected', true],
    ['refused', true],
    ['goaway', true],
    ['lost', false],
  ] as const)('delivery %s: %s, whatever the details say', (delivery, expected) => {
    expect(
      neverReachedServer(status(expected ? 'Connection dropped' : 'Stream refused by server', delivery)),
    ).toBe(expected);
    expect(neverReachedServer(new UnavailableError('x', { delivery }))).toBe(expected);
  });

  test("grpc-js's words decide only through the delivery the grpc-js endpoint reads from them", () => {
    const grpcJs = (details: string) => status(details, grpcJsDelivery(details)?.delivery);
    expect(neverReachedServer(grpcJs('Stream refused by server'))).toBe(true);
    expect(neverReachedServer(grpcJs('No connection established. Last error: x'))).toBe(true);
    expect(neverReachedServer(grpcJs('Failed to start HTTP/2 stream with error x'))).toBe(true);
    expect(neverReachedServer(grpcJs('Connection dropped'))).toBe(false);
    expect(neverReachedServer(grpcJs('Received RST_STREAM with code 2'))).toBe(false);
    expect(neverReachedServer(new ClosedError('draining'))).toBe(true);
  });

  test('without a delivery the words count for nothing: the ordinary path', () => {
    expect(neverReachedServer(status('Stream refused by server'))).toBe(false);
    expect(neverReachedServer(status('No connection established. Last error: x'))).toBe(false);
  });
});
