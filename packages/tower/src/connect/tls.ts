/**
 * TLS for `towerTransport`: Node's TLS options, as connect-node users give
 * them, and the grpc-js credentials the native gRPC endpoints take from
 * them.
 *
 * @module
 */
import * as tls from 'node:tls';
import { type ChannelCredentials, credentials } from '@grpc/grpc-js';
import { optionChecks } from '@grpc-tower/core/internal';

/**
 * TLS of every connection, as connect-node's `nodeOptions` take it: Node's
 * TLS options (`ca`, `cert`, `key`, `pfx`, `passphrase`, `ciphers`…) and
 * `servername`, the name the server's certificate must carry (default:
 * the target's host name, or each endpoint's address for an IP target).
 *
 * @example
 * ```ts
 * const tlsOptions: TowerTransportTls = { ca: readFileSync('ca.pem'), servername: 'orders.internal' };
 * ```
 */
export interface TowerTransportTls extends tls.SecureContextOptions {
  /** The TLS server name (SNI) and the name the certificate is checked against. */
  readonly servername?: string;
  /** Checks the server's certificate once the chain is trusted (Node's `checkServerIdentity`). */
  readonly checkServerIdentity?: (hostname: string, cert: tls.PeerCertificate) => Error | undefined;
}

/**
 * The grpc-js credentials the native endpoints take, from Node's TLS
 * options (`false`: plaintext); a `ConfigError` naming `where` for options
 * Node refuses or `rejectUnauthorized`.
 *
 * @example
 * ```ts
 * const creds = credentialsOf('towerTransport', { ca: readFileSync('ca.pem') });
 * ```
 */
export function credentialsOf(where: string, value: TowerTransportTls | false): ChannelCredentials {
  if (value === false) return credentials.createInsecure();
  const check = optionChecks(where);
  if (typeof value !== 'object' || value === null) {
    throw check.error(
      'tls',
      value,
      "Node's TLS options ({ ca, cert, key, servername… }; {} for the system's CAs), or false to choose plaintext",
    );
  }
  if ('rejectUnauthorized' in value) {
    throw check.error(
      'tls.rejectUnauthorized',
      (value as { rejectUnauthorized?: unknown }).rejectUnauthorized,
      "no such option: give the server's CA as tls.ca instead of turning verification off",
    );
  }
  const { servername: _servername, checkServerIdentity, ...context } = value;
  if (checkServerIdentity !== undefined)
    check.function('tls.checkServerIdentity', checkServerIdentity, 'a function');
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext(context);
  } catch (err) {
    throw check.error('tls', value, `TLS options Node accepts (${(err as Error).message})`);
  }
  return credentials.createFromSecureContext(
    secureContext,
    checkServerIdentity === undefined ? {} : { checkServerIdentity },
  );
}
