import { describe, expectTypeOf, test } from 'vitest';
import { Http2Endpoint, type Http2EndpointOptions, http2Endpoint } from './endpoint.js';

// Type-level only: nothing here runs, so no HTTP/2 connection is opened.
describe('http2Endpoint scheme types', () => {
  test('the scheme is a required option', () => {
    expectTypeOf<Http2EndpointOptions['scheme']>().toEqualTypeOf<'http' | 'https'>();
  });

  test('an endpoint without a scheme does not type-check', () => {
    // @ts-expect-error: the options, with their scheme, are required
    http2Endpoint('127.0.0.1:1');
    // @ts-expect-error: the scheme is required
    http2Endpoint('127.0.0.1:1', {});
    // @ts-expect-error: the scheme is required
    http2Endpoint('127.0.0.1:1', { authority: 'items.internal' });
    // @ts-expect-error: the class requires it too
    new Http2Endpoint('127.0.0.1:1');
  });

  test('an explicit scheme type-checks, cleartext or TLS', () => {
    expectTypeOf(http2Endpoint('127.0.0.1:1', { scheme: 'http' })).toEqualTypeOf<Http2Endpoint>();
    expectTypeOf(http2Endpoint('127.0.0.1:1', { scheme: 'https' })).toEqualTypeOf<Http2Endpoint>();
  });
});
