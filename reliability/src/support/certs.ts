/**
 * Test certificates made with `openssl` in a temporary folder: a CA, server
 * certificates for a name given as a DNS subject alternative name, and a
 * client certificate for mutual TLS. EC P-256 keys, valid for two days.
 *
 * @module
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A key and its certificate, PEM. */
export interface KeyPair {
  readonly key: Buffer;
  readonly cert: Buffer;
}

/** What {@link makeCerts} made. */
export interface Certs {
  /** The CA certificate (PEM). */
  readonly ca: Buffer;
  /** A server certificate issued by the CA for `DNS:<name>`. */
  server(name: string): KeyPair;
  /** A client certificate issued by the CA (extended key usage clientAuth). */
  readonly client: KeyPair;
  /** A CA nobody trusts, and a server certificate it issued for `DNS:<name>`. */
  rogue(name: string): KeyPair;
  /** Removes the folder. */
  remove(): void;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Makes a CA and a client certificate now; server certificates on demand.
 *
 * @example
 * ```ts
 * const certs = makeCerts();
 * const { key, cert } = certs.server('orders.test');
 * grpc.ServerCredentials.createSsl(certs.ca, [{ private_key: key, cert_chain: cert }]);
 * ```
 */
export function makeCerts(): Certs {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-tower-certs-'));
  const ca = (name: string): void =>
    openssl(
      dir,
      'req',
      '-x509',
      ...KEY,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
    );
  const issue = (ca: string, file: string, cn: string, ext: string): KeyPair => {
    writeFileSync(join(dir, `${file}.ext`), `${ext}\n`);
    openssl(
      dir,
      'req',
      '-new',
      ...KEY,
      '-keyout',
      `${file}.key`,
      '-out',
      `${file}.csr`,
      '-subj',
      `/CN=${cn}`,
    );
    openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${file}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${file}.crt`,
      '-days',
      '2',
      '-extfile',
      `${file}.ext`,
    );
    return { key: readFileSync(join(dir, `${file}.key`)), cert: readFileSync(join(dir, `${file}.crt`)) };
  };
  ca('test-ca');
  let rogueMade = false;
  let n = 0;
  const client = issue('test-ca', 'client', 'client', 'extendedKeyUsage=clientAuth');
  return {
    ca: readFileSync(join(dir, 'test-ca.crt')),
    server: (name) =>
      issue('test-ca', `server-${n++}`, name, `subjectAltName=DNS:${name}\nextendedKeyUsage=serverAuth`),
    client,
    rogue: (name) => {
      if (!rogueMade) ca('rogue-ca');
      rogueMade = true;
      return issue(
        'rogue-ca',
        `rogue-${n++}`,
        name,
        `subjectAltName=DNS:${name}\nextendedKeyUsage=serverAuth`,
      );
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
