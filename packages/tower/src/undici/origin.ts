/**
 * The origin a `towerDispatcher` serves, checked and split, and the origin
 * of each request's `opts.origin`, as `URL.origin` writes both.
 *
 * @module
 */
import { ConfigError } from '@grpc-tower/core';
import { WHERE } from './options.js';

/** The origin, split: `http://orders.internal:8080` → scheme, host, port, `:authority`. */
export interface Origin {
  /** As `URL.origin` writes it (lower-case host, no default port). */
  readonly origin: string;
  readonly scheme: 'http' | 'https';
  /** Without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
  /** `host[:port]`, as `URL.host` writes it. */
  readonly authority: string;
}

/** What an origin must be. */
const ORIGIN_EXPECTED =
  'an http: or https: origin such as "http://orders.internal:8080" or "https://orders.internal" ' +
  '(scheme, host and port only)';

/** Checks and splits the dispatcher's origin; a ConfigError names what is wrong. */
export function parseOrigin(origin: unknown): Origin {
  if (typeof origin !== 'string' || !URL.canParse(origin)) {
    throw new ConfigError(WHERE, 'origin', origin, ORIGIN_EXPECTED);
  }
  const url = new URL(origin);
  const scheme = url.protocol === 'http:' ? 'http' : url.protocol === 'https:' ? 'https' : undefined;
  if (
    scheme === undefined ||
    url.username !== '' ||
    url.password !== '' ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search !== '' ||
    url.hash !== '' ||
    url.hostname === ''
  ) {
    throw new ConfigError(WHERE, 'origin', origin, ORIGIN_EXPECTED);
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port);
  return { origin: url.origin, scheme, host, port, authority: url.host };
}

/** The last origin string parsed, and its origin: a client sends the same one request after request. */
let lastOrigin: { readonly text: string; readonly origin: string | undefined } | undefined;

/** The origin of a request's `opts.origin`, as `URL.origin` writes it, or `undefined` when it cannot be read. */
export function originOf(value: unknown): string | undefined {
  if (value instanceof URL) return value.origin;
  if (typeof value !== 'string') return undefined;
  if (lastOrigin?.text === value) return lastOrigin.origin;
  const origin = URL.canParse(value) ? new URL(value).origin : undefined;
  lastOrigin = { text: value, origin };
  return origin;
}
