/**
 * TLS from the grpc-js `ChannelCredentials` users already pass. grpc-js
 * keeps a credential's TLS settings behind internal members that changed
 * between the releases grpc-tower supports: from 1.13 on,
 * `_createSecureConnector(target, options)` returns a connector that
 * upgrades a socket; 1.12 has `_getConnectionOptions()`, the options for
 * `tls.connect`. Either way the connection offers ALPN `h2` only, names the
 * server (SNI) by the override or the host, checks the certificate against
 * that name (or the credential's own `checkServerIdentity`), and fails
 * (never falls back to plaintext) when the server does not speak `h2`.
 *
 * @internal
 * @module
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { ChannelCredentials } from '../grpc/grpc-js.js';
import type { SecureUpgrade } from './connection.js';

/** grpc-js ≥ 1.13's connector (internal to grpc-js). */
interface SecureConnector {
  connect(socket: net.Socket): Promise<{ socket: Duplex; secure: boolean }>;
  destroy(): void;
}

/** The internal members of a grpc-js credential this module reads. */
interface CredentialInternals {
  _createSecureConnector?: (
    target: { scheme?: string; authority?: string; path: string },
    options: Record<string, unknown>,
  ) => SecureConnector;
  _getConnectionOptions?: () => tls.ConnectionOptions | null;
}

/**
 * An OpenSSL error message made readable, as both gRPC endpoints report
 * it: `807C…:error:0A00010B:SSL routines:ssl3_get_record:wrong version
 * number:file.c:350:` becomes `TLS error: wrong version number (SSL
 * routines:ssl3_get_record)`; any other message as it is.
 *
 * @internal
 * @example
 * ```ts
 * readableTlsError('connect ECONNREFUSED 127.0.0.9:50051'); // unchanged
 * ```
 */
export function readableTlsError(message: string): string {
  const openssl = /^[0-9A-F]+:error:[0-9A-F]+:([^:]+):([^:]+):([^:]+):/.exec(message);
  return openssl === null ? message : `TLS error: ${openssl[3]} (${openssl[1]}:${openssl[2]})`;
}

/** The socket a TLS handshake produced, checked for ALPN `h2`. */
function checkAlpn(socket: Duplex): Duplex {
  if (socket instanceof tls.TLSSocket && socket.alpnProtocol !== 'h2') {
    socket.destroy();
    throw new Error(
      `TLS server did not negotiate ALPN "h2" (got ${socket.alpnProtocol === false ? 'none' : String(socket.alpnProtocol)})`,
    );
  }
  return socket;
}

/**
 * The TLS upgrade of a secure grpc-js credential for a connection to
 * `host`, with `serverName` (the authority or `ssl_target_name_override`)
 * as the name the certificate must carry.
 *
 * @internal
 * @example
 * ```ts
 * const upgrade = secureUpgrade(grpc.credentials.createSsl(ca), '10.0.0.7', 'orders.internal');
 * ```
 */
export function secureUpgrade(
  creds: ChannelCredentials,
  host: string,
  serverName: string | undefined,
): SecureUpgrade {
  const internals = creds as unknown as CredentialInternals;
  if (typeof internals._createSecureConnector === 'function') {
    const options: Record<string, unknown> =
      serverName === undefined ? {} : { 'grpc.ssl_target_name_override': serverName };
    return async (socket) => {
      const connector = (
        internals._createSecureConnector as NonNullable<CredentialInternals['_createSecureConnector']>
      )({ scheme: 'dns', path: host }, options);
      try {
        const result = await connector.connect(socket);
        return checkAlpn(result.socket);
      } finally {
        connector.destroy();
      }
    };
  }
  if (typeof internals._getConnectionOptions === 'function') {
    const getOptions = internals._getConnectionOptions.bind(creds);
    return (socket) =>
      new Promise<Duplex>((resolve, reject) => {
        const base = getOptions();
        if (base === null) {
          reject(new Error('the TLS credentials have no certificates yet'));
          return;
        }
        const name = serverName ?? host;
        const check = base.checkServerIdentity ?? tls.checkServerIdentity;
        const secured = tls.connect({
          ...base,
          socket,
          ALPNProtocols: ['h2'],
          ...(isIp(name) ? {} : { servername: name }),
          checkServerIdentity: (_host, cert) => check(name, cert),
        });
        secured.once('secureConnect', () => {
          if ((base.rejectUnauthorized ?? true) && !secured.authorized) {
            secured.destroy();
            reject(secured.authorizationError);
            return;
          }
          try {
            resolve(checkAlpn(secured));
          } catch (err) {
            reject(err);
          }
        });
        secured.on('error', reject);
      });
  }
  throw new Error('these ChannelCredentials expose neither _createSecureConnector nor _getConnectionOptions');
}

/**
 * The TLS upgrade for Node's own TLS options (`ca`, client certificates,
 * `servername`, `checkServerIdentity`, `rejectUnauthorized`…, as
 * `tls.connect` takes them) for a connection to `host`: ALPN `h2` only,
 * SNI `serverName` (none when absent), the certificate checked by
 * `tls.connect` against `serverName`, else `host`, and a named failure
 * when the server does not speak `h2`. The secure context is made once,
 * here, so bad certificates or keys throw now, not at each connection.
 *
 * @internal
 * @example
 * ```ts
 * const upgrade = tlsUpgrade({ ca: readFileSync('ca.pem') }, '10.0.0.7', 'items.internal');
 * ```
 */
export function tlsUpgrade(
  options: tls.ConnectionOptions,
  host: string,
  serverName: string | undefined,
): SecureUpgrade {
  const base: tls.ConnectionOptions = {
    ...options,
    host,
    secureContext: options.secureContext ?? tls.createSecureContext(options),
    ALPNProtocols: ['h2'],
    ...(serverName === undefined ? {} : { servername: serverName }),
  };
  return (socket) =>
    new Promise<Duplex>((resolve, reject) => {
      const secured = tls.connect({ ...base, socket });
      secured.once('secureConnect', () => {
        try {
          resolve(checkAlpn(secured));
        } catch (err) {
          reject(err);
        }
      });
      secured.on('error', reject);
    });
}

const isIp = (name: string): boolean => /^[\d.]+$/.test(name) || name.includes(':');
