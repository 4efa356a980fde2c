// Security through the full stack: TLS and mutual TLS to servers discovered
// as bare IP addresses, verified against the service's logical host name; a
// certificate for another name (or from another CA) is refused; call
// credentials travel only over secure endpoints; and one call's metadata
// never shows up on another call. Each over both transports: TLS is each
// transport's own (grpc-js's, or the native connection layer's), and both
// must verify, refuse and isolate alike. Certificates are made with openssl.
import * as grpc from '@grpc/grpc-js';
import { Status } from '@grpc-tower/core';
import { type GrpcEndpointOptions, grpcEndpoint } from '@grpc-tower/core/grpc';
import { staticList } from '@grpc-tower/discover';
import {
  type EchoServer,
  insecure,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { Ledger } from './ledger.js';
import { type Certs, type KeyPair, makeCerts } from './support/certs.js';
import { type FullStack, type FullStackOptions, fullStack } from './support/stack.js';

const AUTHORITY = 'orders.test';

let certs: Certs;
const servers: EchoServer[] = [];
beforeAll(() => {
  certs = makeCerts();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop(0)));
  certs?.remove();
});

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Echo servers on fresh loopback hosts, with TLS (`pair`), mutual TLS (`mutual`) or none. */
async function serve(
  names: readonly string[],
  tls: { pair: KeyPair; mutual?: boolean } | undefined,
): Promise<EchoServer[]> {
  const hosts = pickHosts(names.length);
  const made = await Promise.all(
    names.map((name, i) =>
      startEchoServer({
        host: hosts[i]!,
        name,
        health: true,
        ...(tls === undefined
          ? {}
          : {
              credentials: grpc.ServerCredentials.createSsl(
                certs.ca,
                [{ private_key: tls.pair.key, cert_chain: tls.pair.cert }],
                tls.mutual ?? false,
              ),
            }),
      }),
    ),
  );
  servers.push(...made);
  return made;
}

/** The full stack with per-address endpoint options. */
function secureStack(
  transport: TestTransport,
  targets: readonly EchoServer[],
  ledger: Ledger,
  endpointFor: (address: string) => GrpcEndpointOptions,
  more: Partial<FullStackOptions> = {},
): FullStack {
  const stack = fullStack({
    source: staticList(targets.map((s) => s.address)),
    ledger,
    makeEndpoint: (address) => grpcEndpoint(address, { ...endpointFor(address), transport }),
    ...more,
  });
  cleanup.push(() => stack.close());
  return stack;
}

const tlsTo = (pair?: KeyPair): GrpcEndpointOptions => ({
  credentials:
    pair === undefined
      ? grpc.credentials.createSsl(certs.ca)
      : grpc.credentials.createSsl(certs.ca, pair.key, pair.cert),
  authority: AUTHORITY,
});

/** Call credentials that add `x-token: <token>` to the call's metadata. */
const token = (value: string): grpc.CallCredentials =>
  grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const md = new grpc.Metadata();
    md.set('x-token', value);
    callback(null, md);
  });

describe.each(TRANSPORTS)('over the %s transport', (transport) => {
  describe('TLS to endpoints discovered as IP addresses', () => {
    test('is verified against the logical host name, and every call succeeds', async () => {
      const targets = await serve(['t0', 't1'], { pair: certs.server(AUTHORITY) });
      const ledger = new Ledger();
      const stack = secureStack(transport, targets, ledger, () => tlsTo());
      await expect.poll(() => stack.balancer.counts().ready, { timeout: 10_000 }).toBe(2);
      await Promise.all(Array.from({ length: 200 }, (_, i) => ledger.unary(stack.client, `m${i}`)));
      const report = await ledger.check({ allowed: ['OK'], servers: new Set(['t0', 't1']) });
      expect(Object.keys(report.byServer).sort()).toEqual(['t0', 't1']);
    });

    test('without the logical name the IP does not match the certificate: calls fail UNAVAILABLE, none is served', async () => {
      const targets = await serve(['t2'], { pair: certs.server(AUTHORITY) });
      const ledger = new Ledger();
      const stack = secureStack(
        transport,
        targets,
        ledger,
        () => ({ credentials: grpc.credentials.createSsl(certs.ca) }),
        {
          balancer: { failFastMs: 300 },
          retry: { maxAttempts: 2 },
        },
      );
      await Promise.all(Array.from({ length: 10 }, (_, i) => ledger.unary(stack.client, `m${i}`)));
      const report = await ledger.check({ allowed: ['UNAVAILABLE'] });
      expect(report.byStatus).toEqual({ UNAVAILABLE: 10 });
      expect(targets[0]!.calls.total).toBe(0);
    });

    test.each([
      ['a certificate for another name', (c: Certs) => c.server('wrong.test')],
      ['a certificate from an untrusted CA', (c: Certs) => c.rogue(AUTHORITY)],
    ])('%s is refused: calls fail UNAVAILABLE and the server never sees one', async (_, pair) => {
      const targets = await serve(['w0'], { pair: pair(certs) });
      const ledger = new Ledger();
      const stack = secureStack(transport, targets, ledger, () => tlsTo(), {
        balancer: { failFastMs: 300 },
        retry: { maxAttempts: 2 },
      });
      await Promise.all(Array.from({ length: 10 }, (_, i) => ledger.unary(stack.client, `m${i}`)));
      const report = await ledger.check({ allowed: ['UNAVAILABLE'] });
      expect(report.byStatus).toEqual({ UNAVAILABLE: 10 });
      expect(targets[0]!.calls.total).toBe(0);
      expect(stack.balancer.counts().ready).toBe(0);
    });

    test('mutual TLS: with the client certificate every call succeeds; without it none reaches the server', async () => {
      const targets = await serve(['m0'], { pair: certs.server(AUTHORITY), mutual: true });
      const withCert = new Ledger();
      const good = secureStack(transport, targets, withCert, () => tlsTo(certs.client));
      await expect.poll(() => good.balancer.counts().ready, { timeout: 10_000 }).toBe(1);
      await Promise.all(Array.from({ length: 50 }, (_, i) => withCert.unary(good.client, `m${i}`)));
      await withCert.check({ allowed: ['OK'], servers: new Set(['m0']) });
      const served = targets[0]!.calls.total;

      const without = new Ledger();
      const bad = secureStack(transport, targets, without, () => tlsTo(), {
        balancer: { failFastMs: 300 },
        retry: { maxAttempts: 2 },
      });
      await Promise.all(Array.from({ length: 10 }, (_, i) => without.unary(bad.client, `n${i}`)));
      const report = await without.check({ allowed: ['UNAVAILABLE'] });
      expect(report.byStatus).toEqual({ UNAVAILABLE: 10 });
      expect(targets[0]!.calls.total).toBe(served);
    });
  });

  describe('call credentials', () => {
    test('travel over TLS, and are refused (UNAUTHENTICATED) before an insecure endpoint sends anything', async () => {
      const [secure] = await serve(['s0'], { pair: certs.server(AUTHORITY) });
      const [plain] = await serve(['p0'], undefined);
      const ledger = new Ledger();
      // one pool, one secure and one insecure endpoint
      const stack = secureStack(transport, [secure!, plain!], ledger, (address) =>
        address === secure!.address ? tlsTo() : { credentials: insecure },
      );
      await expect.poll(() => stack.balancer.counts().ready, { timeout: 10_000 }).toBe(2);
      const plainBefore = plain!.calls.total;
      const outcomes = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          ledger.unary(stack.client, `m${i}`, {
            callOptions: { credentials: token(`secret-${i}`) },
            request: { echoMetadata: true },
          }),
        ),
      );
      const report = await ledger.check({ allowed: ['OK', 'UNAUTHENTICATED'], servers: new Set(['s0']) });
      // the insecure server never saw a call that carried credentials
      expect(plain!.calls.total).toBe(plainBefore);
      for (const [i, o] of outcomes.entries()) {
        if (o.code === Status.OK) {
          expect(o.server).toBe('s0');
          expect(o.headers?.get('x-token')).toEqual([`secret-${i}`]);
        } else {
          expect(o.code).toBe(Status.UNAUTHENTICATED);
          expect(o.details).toContain('not secure');
        }
      }
      expect(report.byStatus.OK ?? 0).toBeGreaterThan(0);
      expect(report.byStatus.UNAUTHENTICATED ?? 0).toBeGreaterThan(0);
    });
  });

  describe('metadata isolation', () => {
    test('concurrent calls with their own metadata and credentials, some retried: each reply echoes only its own', async () => {
      const targets = await serve(['i0', 'i1', 'i2'], { pair: certs.server(AUTHORITY) });
      const ledger = new Ledger();
      const stack = secureStack(transport, targets, ledger, () => tlsTo(), {
        retry: { maxAttempts: 3 },
        outlier: false,
      });
      await expect.poll(() => stack.balancer.counts().ready, { timeout: 10_000 }).toBe(3);
      // some attempts fail and are retried with the same metadata on another server
      targets[0]!.failNext(40, Status.UNAVAILABLE);
      const outcomes = await Promise.all(
        Array.from({ length: 600 }, (_, i) => {
          const md = new grpc.Metadata();
          md.set('x-call', String(i));
          md.set('x-tag-bin', Buffer.from([i & 0xff, i >> 8]));
          if (i % 3 === 0) md.add('x-multi', `a${i}`);
          if (i % 3 === 0) md.add('x-multi', `b${i}`);
          return ledger.unary(stack.client, `m${i}`, {
            metadata: md,
            callOptions: { credentials: token(`t${i}`) },
            request: { echoMetadata: true },
          });
        }),
      );
      await ledger.check({ allowed: ['OK'], servers: new Set(['i0', 'i1', 'i2']) });
      expect(stack.retries.stats().retries).toBeGreaterThan(0);
      for (const [i, o] of outcomes.entries()) {
        const h = o.headers;
        expect(h?.get('x-call')).toEqual([String(i)]);
        expect(h?.get('x-token')).toEqual([`t${i}`]);
        expect(h?.get('x-tag-bin')).toEqual([Buffer.from([i & 0xff, i >> 8])]);
        // HTTP/2 joins repeated values of a text key with ", "
        expect(h?.get('x-multi').join(', ')).toBe(i % 3 === 0 ? `a${i}, b${i}` : '');
        expect(o.trailers?.get('x-call-trailer')).toEqual([String(i)]);
      }
    });
  });
});
