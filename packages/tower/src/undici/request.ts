/**
 * undici's dispatch options as an HTTP/2 request of the stack: the method,
 * the path with its query, the headers (checked as undici's own clients
 * check them, with HTTP/2's rules for connection-specific ones) and the
 * body, a stream of which becomes a replayable `Http2Body`.
 *
 * @module
 */
import type { OutgoingHttpHeaders } from 'node:http2';
import { stringify } from 'node:querystring';
import { Readable } from 'node:stream';
import { type Http2Request, http2Body } from '@grpc-tower/core/http2';
import { type Dispatcher, errors } from 'undici';

/** A header name: an RFC 9110 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A header value: no CR, LF, NUL or other control character but tab. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** What undici refuses in a path: control characters, spaces and anything past Latin-1. */
const BAD_PATH = /[^\u0021-\u00ff]/;

/** Connection-specific headers that HTTP/2 forbids (RFC 9113 §8.2.2) and undici's clients drop. */
const DROPPED = new Set(['connection', 'proxy-connection', 'http2-settings']);
/** Headers undici refuses in a request, whatever the protocol. */
const REFUSED = new Set(['transfer-encoding', 'keep-alive', 'upgrade']);

/** What a request needs of the dispatcher to be built. */
export interface RequestSettings {
  /** `:authority` when the request sets no `host` header: the origin's host and port. */
  readonly authority: string;
  /** The replay buffer of a stream body, in bytes. */
  readonly replayBytes: number;
}

const noop = (): void => undefined;

/**
 * The stack's request for undici's `opts`; throws undici's
 * `InvalidArgumentError` or `NotSupportedError`, as undici's clients do,
 * for what they refuse and what this dispatcher does not support.
 */
export function toHttp2Request(opts: Dispatcher.DispatchOptions, settings: RequestSettings): Http2Request {
  const method: unknown = opts.method;
  if (typeof method !== 'string' || !TOKEN.test(method)) {
    throw new errors.InvalidArgumentError('invalid request method');
  }
  if (
    method.toUpperCase() === 'CONNECT' ||
    (opts.upgrade !== undefined && opts.upgrade !== null && opts.upgrade !== false)
  ) {
    throw new errors.NotSupportedError(
      'towerDispatcher does not support CONNECT or upgrade requests (WebSocket, extended CONNECT): ' +
        'send them with an undici Agent',
    );
  }
  checkUnsupported(opts);
  const headers = requestHeaders(opts.headers, settings.authority);
  const body = requestBody(opts.body, settings.replayBytes);
  return {
    method,
    path: pathOf(opts),
    headers,
    ...(body === undefined ? {} : { body }),
    response: 'stream',
    ...(opts.idempotent === true ? { idempotent: true } : {}),
  };
}

/** The options undici 7 itself refuses, refused the same way; and `expectContinue`. */
function checkUnsupported(opts: Dispatcher.DispatchOptions): void {
  const extra = opts as { throwOnError?: unknown; maxRedirections?: unknown };
  if (extra.throwOnError !== undefined && extra.throwOnError !== null) {
    throw new errors.InvalidArgumentError(
      'throwOnError is not supported: use the responseError interceptor (dispatcher.compose(interceptors.responseError()))',
    );
  }
  if (extra.maxRedirections !== undefined && extra.maxRedirections !== null && extra.maxRedirections !== 0) {
    throw new errors.InvalidArgumentError(
      'maxRedirections is not supported: use the redirect interceptor (dispatcher.compose(interceptors.redirect()))',
    );
  }
  if (opts.expectContinue === true) {
    throw new errors.NotSupportedError('expectContinue is not supported: the body is sent with the headers');
  }
}

function pathOf(opts: Dispatcher.DispatchOptions): string {
  const path: unknown = opts.path;
  if (typeof path !== 'string') throw new errors.InvalidArgumentError('path must be a string');
  if (path[0] !== '/') throw new errors.InvalidArgumentError('path must start with a slash');
  if (BAD_PATH.test(path)) throw new errors.InvalidArgumentError('invalid request path');
  if (opts.query === undefined || opts.query === null) return path;
  if (path.includes('?') || path.includes('#')) {
    throw new errors.InvalidArgumentError(
      'query params cannot be passed when the path already contains "?" or "#"',
    );
  }
  const query = stringify(opts.query);
  return query === '' ? path : `${path}?${query}`;
}

/** One header value as undici coerces it: `null` is empty, a primitive its string. */
function headerValue(name: string, value: unknown): string {
  if (value === null) return '';
  if (typeof value === 'object' || typeof value === 'function' || typeof value === 'symbol') {
    throw new errors.InvalidArgumentError(`invalid ${name} header`);
  }
  const text = String(value);
  if (BAD_VALUE.test(text)) throw new errors.InvalidArgumentError(`invalid ${name} header`);
  return text;
}

/** Every `[name, value]` of undici's header forms: an object, a flat array, or an iterable of pairs. */
function* entriesOf(headers: Dispatcher.DispatchOptions['headers']): Generator<[unknown, unknown]> {
  if (headers === undefined || headers === null) return;
  if (Array.isArray(headers)) {
    if (headers.length % 2 !== 0) throw new errors.InvalidArgumentError('headers array must be even');
    for (let i = 0; i < headers.length; i += 2) yield [headers[i], headers[i + 1]];
    return;
  }
  if (typeof headers !== 'object')
    throw new errors.InvalidArgumentError('headers must be an object or an array');
  if (typeof (headers as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function') {
    for (const pair of headers as Iterable<unknown>) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new errors.InvalidArgumentError('headers must be in key-value pair format');
      }
      yield [pair[0], pair[1]];
    }
    return;
  }
  for (const [name, value] of Object.entries(headers)) yield [name, value];
}

/**
 * The request's headers for HTTP/2: lower-case names, `host` as
 * `:authority`, the connection-specific headers dropped (or refused, as
 * undici refuses them), `te` only as `trailers`.
 */
function requestHeaders(raw: Dispatcher.DispatchOptions['headers'], authority: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':authority': authority };
  let host = false;
  for (const [key, value] of entriesOf(raw)) {
    if (value === undefined) continue;
    const name = typeof key === 'string' ? key.toLowerCase() : '';
    if (!TOKEN.test(name)) throw new errors.InvalidArgumentError('invalid header key');
    const values = Array.isArray(value)
      ? value.map((v: unknown) => headerValue(name, v))
      : [headerValue(name, value)];
    if (name === 'host') {
      if (host || values.length !== 1) throw new errors.InvalidArgumentError('invalid host header');
      host = true;
      out[':authority'] = values[0] as string;
      continue;
    }
    if (DROPPED.has(name)) continue;
    if (REFUSED.has(name)) throw new errors.InvalidArgumentError(`invalid ${name} header`);
    if (name === 'expect') throw new errors.NotSupportedError('expect header not supported');
    if (name === 'te' && values.some((v) => v.trim().toLowerCase() !== 'trailers')) {
      throw new errors.InvalidArgumentError('invalid te header: HTTP/2 allows only "trailers"');
    }
    if (name === 'content-length' && (values.length !== 1 || !/^\d+$/.test(values[0] as string))) {
      throw new errors.InvalidArgumentError('invalid content-length header');
    }
    const before = out[name];
    if (before === undefined) out[name] = values.length === 1 ? (values[0] as string) : values;
    else out[name] = [...(Array.isArray(before) ? before : [String(before)]), ...values];
  }
  return out;
}

/** A body undici accepts, as the endpoint takes it; a stream is wrapped to be replayable within its buffer. */
function requestBody(body: unknown, replayBytes: number): Http2Request['body'] {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body.length === 0 ? undefined : body;
  if (body instanceof Uint8Array) {
    if (body.byteLength === 0) return undefined;
    return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }
  if (body instanceof ArrayBuffer) return body.byteLength === 0 ? undefined : Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (typeof body !== 'object') {
    throw new errors.InvalidArgumentError(
      'body must be a string, a Buffer, a Readable stream, an iterable, or an async iterable',
    );
  }
  if (isFormData(body)) {
    throw new errors.NotSupportedError(
      'a FormData body is not supported: send it with fetch(), which encodes it',
    );
  }
  const options = { replayBytes };
  if (isBlob(body)) return http2Body(body.stream() as unknown as AsyncIterable<Uint8Array>, options);
  if (typeof (body as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function') {
    return http2Body(body as AsyncIterable<Uint8Array | string>, options);
  }
  if (typeof (body as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function') {
    return http2Body(Readable.from(body as Iterable<Uint8Array | string>), options);
  }
  throw new errors.InvalidArgumentError(
    'body must be a string, a Buffer, a Readable stream, an iterable, or an async iterable',
  );
}

const isFormData = (body: object): boolean =>
  (body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] === 'FormData';

const isBlob = (body: object): body is Blob =>
  typeof (body as Partial<Blob>).stream === 'function' &&
  typeof (body as Partial<Blob>).arrayBuffer === 'function' &&
  /^(Blob|File)$/.test(String((body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag]));

/**
 * Ends what a request body reads from, once the request is over and did
 * not read it to its end: destroys a Readable, returns a generator (as
 * undici does when a request fails before its body was sent).
 */
export function releaseBody(body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  if (body instanceof Readable) {
    if (!body.readableEnded && !body.destroyed) body.destroy();
    return;
  }
  const generator = body as Partial<AsyncGenerator<unknown>>;
  if (
    typeof generator.return === 'function' &&
    typeof generator.next === 'function' &&
    typeof generator.throw === 'function'
  ) {
    generator.return(undefined).then(noop, noop);
  }
}
