import type * as http2 from 'node:http2';
import { Readable } from 'node:stream';
import { describe, expectTypeOf, test } from 'vitest';
import { type Http2Body, http2Body } from './body.js';
import {
  Http2Endpoint,
  type Http2EndpointOptions,
  type Http2Request,
  type Http2RequestError,
  type Http2Response,
  http2Endpoint,
} from './endpoint.js';
import { isIdempotent, isReplayable } from './request.js';

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

describe('streaming bodies types', () => {
  test('a request body is a Buffer, a string, an Http2Body, a Readable or an AsyncIterable of chunks', () => {
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(1);
    }
    const bodies: Http2Request['body'][] = [
      Buffer.from('x'),
      'x',
      http2Body('x'),
      Readable.from(['x']),
      chunks(),
      undefined,
    ];
    void bodies;
    // @ts-expect-error: a number is no body
    const wrong: Http2Request = { path: '/', body: 42 };
    void wrong;
    expectTypeOf<Http2Request['response']>().toEqualTypeOf<'buffer' | 'stream' | undefined>();
  });

  test('a response has a Buffer body, an optional stream and a trailers promise', () => {
    expectTypeOf<Http2Response['body']>().toEqualTypeOf<Buffer>();
    expectTypeOf<Http2Response['stream']>().toEqualTypeOf<Readable | undefined>();
    expectTypeOf<Http2Response['trailers']>().toEqualTypeOf<Promise<http2.IncomingHttpHeaders>>();
    expectTypeOf<Http2RequestError['afterHeaders']>().toEqualTypeOf<boolean>();
    expectTypeOf<Http2Body['replayable']>().toEqualTypeOf<boolean>();
    expectTypeOf(isReplayable).toEqualTypeOf<(req: Http2Request) => boolean>();
    expectTypeOf(isIdempotent).toEqualTypeOf<(req: Http2Request) => boolean>();
  });
});
