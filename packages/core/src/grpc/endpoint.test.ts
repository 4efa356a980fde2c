// The options and facts every grpcEndpoint has, over both transports: why it
// is not ready (its last connection error, published together with
// `failed`), credentials, weight, zone, and the delivery fact of a call that
// never reached a server. And what only the grpc-js endpoint does: turning
// grpc-js's status wording into those facts. Real sockets on loopback: a
// port nobody listens on, and a real grpc-js echo server.
import * as grpc from '@grpc/grpc-js';
import {
  GeneratedEchoRequest as EchoRequest,
  closedPort,
  insecure,
  pickHosts,
  startEchoServer,
  type TestTransport,
  TRANSPORTS,
} from '@grpc-tower/testing';
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, test } from 'vitest';
import { newContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { Status } from '../status.js';
import {
  GrpcEndpoint,
  type GrpcEndpointOptions,
  connectionErrorOf,
  grpcJsDelivery,
  grpcJsEndpoint,
} from './endpoint.js';
import { grpcEndpoint } from './grpc-endpoint.js';
import type { NativeGrpcEndpoint } from './native/endpoint.js';
import { grpcRequest } from './test/request.js';
import { GrpcStatusError } from './types.js';

/**
 * grpcEndpoint over each transport, its options passed as they are (so that
 * no options at all stays no options): the default is native, and grpc-js
 * is the grpc-js endpoint's own factory.
 */
const endpointOver: Record<
  TestTransport,
  (address: string, options: GrpcEndpointOptions) => GrpcEndpoint | NativeGrpcEndpoint
> = {
  native: (address, options) => grpcEndpoint(address, options),
  'grpc-js': grpcJsEndpoint,
};

describe('connectionErrorOf', () => {
  test('the failure time grpc-js 1.12 appends is left out', () => {
    expect(
      connectionErrorOf(
        'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.9:50051 (2026-12-02T16:00:00.123Z). Resolution note: ',
      ),
    ).toBe('connect ECONNREFUSED 127.0.0.9:50051');
  });

  test.each([
    [
      "grpc-js's no-connection status",
      'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.9:50051. Resolution note: ',
      'connect ECONNREFUSED 127.0.0.9:50051',
    ],
    [
      'an OpenSSL error',
      'No connection established. Last error: 807C8BD9F17F0000:error:0A00010B:SSL routines:ssl3_get_record:' +
        'wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:. Resolution note: ',
      'TLS error: wrong version number (SSL routines:ssl3_get_record)',
    ],
    ['details of another shape, as they are', 'Connection dropped', 'Connection dropped'],
    [
      'an empty reason keeps the details',
      'No connection established. Last error: ',
      'No connection established. Last error: ',
    ],
  ])('%s', (_name, details, reason) => {
    expect(connectionErrorOf(details)).toBe(reason);
  });
});

describe.each(TRANSPORTS)('lastError over the %s transport', (transport) => {
  const grpcEndpoint = endpointOver[transport];
  test('an endpoint whose server refuses connections is failed with the connection error, from the first failure', async () => {
    const [host] = pickHosts(1) as [string];
    const port = await closedPort(host);
    const ep = grpcEndpoint(`${host}:${port}`, { credentials: insecure });
    try {
      expect(ep.lastError).toBeUndefined();
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'failed')));
      // published together: whoever sees `failed` can say why
      expect(ep.lastError).toBe(`connect ECONNREFUSED ${host}:${port}`);
    } finally {
      await ep.close({ graceMs: 0 });
    }
  });

  test('an endpoint that connects has no error and its server sees no call but ours', async () => {
    const [host] = pickHosts(1) as [string];
    const server = await startEchoServer({ host });
    const ep = grpcEndpoint(server.address, { credentials: insecure });
    try {
      await firstValueFrom(ep.readiness$.pipe(filter((r) => r === 'ready')));
      expect(ep.lastError).toBeUndefined();
      expect(server.calls.total).toBe(0);
    } finally {
      await ep.close({ graceMs: 0 });
      await server.stop(0);
    }
  });
});

test.each(TRANSPORTS)(
  '%s: an authority or user-agent option that is not a string is refused, naming it',
  (transport) => {
    const grpcEndpoint = endpointOver[transport];
    // the native transport also refuses an empty authority, and its words say so
    expect(() =>
      grpcEndpoint('127.0.0.1:1', {
        credentials: insecure,
        channelOptions: { 'grpc.default_authority': 5 } as never,
      }),
    ).toThrow(
      transport === 'native'
        ? /channelOptions\.grpc\.default_authority" must be a non-empty string, got 5/
        : /channelOptions\.grpc\.default_authority.*a string/,
    );
    expect(() =>
      grpcEndpoint('127.0.0.1:1', {
        credentials: insecure,
        channelOptions: { 'grpc.primary_user_agent': 1 } as never,
      }),
    ).toThrow(ConfigError);
  },
);

describe.each(TRANSPORTS)('credentials are required, over the %s transport', (transport) => {
  const grpcEndpoint = endpointOver[transport];
  test.each<[string, () => unknown]>([
    ['no options at all', () => grpcEndpoint('127.0.0.1:1', undefined as never)],
    ['options without credentials', () => grpcEndpoint('127.0.0.1:1', {} as never)],
    ['credentials: undefined', () => grpcEndpoint('127.0.0.1:1', { credentials: undefined as never })],
    // the grpc-js endpoint's class names grpcEndpoint too (the native one's names its own factory)
    ...(transport === 'grpc-js'
      ? [
          [
            'the class, without credentials',
            () => new GrpcEndpoint('127.0.0.1:1', { authority: 'a' } as never),
          ] as [string, () => unknown],
        ]
      : []),
  ])('%s: refused, naming the option and how to choose TLS or plaintext', (_name, make) => {
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(
      expect.objectContaining({
        where: 'grpcEndpoint',
        option: 'credentials',
        value: undefined,
        message:
          'grpcEndpoint: option "credentials" must be grpc-js ChannelCredentials: ' +
          'grpc.credentials.createSsl(…) for TLS, or grpc.credentials.createInsecure() to choose plaintext, ' +
          'got undefined',
      }),
    );
  });

  test.each([
    ['an empty object', {}],
    ['null', null],
    ['a string', 'insecure'],
    ['a boolean', false],
    [
      'call credentials',
      grpc.credentials.createFromMetadataGenerator((_p, cb) => cb(null, new grpc.Metadata())),
    ],
    ['an object with a non-function _isSecure', { _isSecure: true }],
  ])('%s is refused, naming the option', (_name, credentials) => {
    const make = () => grpcEndpoint('127.0.0.1:1', { credentials: credentials as never });
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(
      expect.objectContaining({
        option: 'credentials',
        value: credentials,
        message: expect.stringContaining('grpc.credentials.createInsecure() to choose plaintext'),
      }),
    );
  });

  test('insecure credentials choose plaintext, TLS credentials TLS', async () => {
    const plain = grpcEndpoint('127.0.0.1:1', { credentials: grpc.credentials.createInsecure() });
    const tls = grpcEndpoint('127.0.0.1:1', { credentials: grpc.credentials.createSsl() });
    try {
      expect(plain.secure).toBe(false);
      expect(tls.secure).toBe(true);
    } finally {
      await plain.close({ graceMs: 0 });
      await tls.close({ graceMs: 0 });
    }
  });
});

describe.each(TRANSPORTS)('weight over the %s transport', (transport) => {
  const grpcEndpoint = endpointOver[transport];
  test('a weight from discovery is kept; none is undefined', async () => {
    const weighted = grpcEndpoint('127.0.0.1:1', { credentials: insecure, weight: 3 });
    const zero = grpcEndpoint('127.0.0.1:1', { credentials: insecure, weight: 0 });
    const plain = grpcEndpoint('127.0.0.1:1', { credentials: insecure });
    try {
      expect([weighted.weight, zero.weight, plain.weight]).toEqual([3, 0, undefined]);
    } finally {
      await Promise.all([weighted, zero, plain].map((e) => e.close({ graceMs: 0 })));
    }
  });

  test.each([-1, Number.NaN, Number.POSITIVE_INFINITY, '2'])(
    'weight %j is a ConfigError naming it',
    (weight) => {
      expect(() => grpcEndpoint('127.0.0.1:1', { credentials: insecure, weight: weight as number })).toThrow(
        /grpcEndpoint: option "weight" must be a finite number >= 0/,
      );
    },
  );
});

describe.each(TRANSPORTS)('zone and forZones over the %s transport', (transport) => {
  const grpcEndpoint = endpointOver[transport];
  test('a zone and topology hints from discovery are kept (the hints copied); none are undefined', async () => {
    const hints = ['eu-1a', 'eu-1b'];
    const zoned = grpcEndpoint('127.0.0.1:1', { credentials: insecure, zone: 'eu-1a', forZones: hints });
    const plain = grpcEndpoint('127.0.0.1:1', { credentials: insecure });
    try {
      hints.push('eu-1c');
      expect([zoned.zone, zoned.forZones]).toEqual(['eu-1a', ['eu-1a', 'eu-1b']]);
      expect([plain.zone, plain.forZones]).toEqual([undefined, undefined]);
    } finally {
      await Promise.all([zoned, plain].map((e) => e.close({ graceMs: 0 })));
    }
  });

  test.each(['', 3, null])('zone %j is a ConfigError naming it', (zone) => {
    expect(() => grpcEndpoint('127.0.0.1:1', { credentials: insecure, zone: zone as string })).toThrow(
      /grpcEndpoint: option "zone" must be a non-empty string/,
    );
  });

  test.each([['eu-1a', ''], 'eu-1a', [1], null])('forZones %j is a ConfigError naming it', (forZones) => {
    expect(() =>
      grpcEndpoint('127.0.0.1:1', { credentials: insecure, forZones: forZones as string[] }),
    ).toThrow(/grpcEndpoint: option "forZones" must be an array of non-empty strings/);
  });

  test('a priority and a group from discovery are kept; none is undefined; bad ones are ConfigErrors', async () => {
    const standby = grpcEndpoint('127.0.0.1:1', {
      credentials: insecure,
      priority: 2,
      group: 'canary',
      groupWeight: 10,
    });
    try {
      expect([standby.priority, standby.group, standby.groupWeight]).toEqual([2, 'canary', 10]);
      expect(() => grpcEndpoint('127.0.0.1:1', { credentials: insecure, group: '' })).toThrow(
        /grpcEndpoint: option "group" must be a non-empty string/,
      );
      expect(() => grpcEndpoint('127.0.0.1:1', { credentials: insecure, groupWeight: 0 })).toThrow(
        /grpcEndpoint: option "groupWeight" must be a finite number > 0/,
      );
    } finally {
      await standby.close({ graceMs: 0 });
    }
    for (const priority of [-1, 1.5, Number.NaN, '1', null]) {
      expect(() =>
        grpcEndpoint('127.0.0.1:1', { credentials: insecure, priority: priority as number }),
      ).toThrow(/grpcEndpoint: option "priority" must be an integer >= 0/);
    }
  });
});

describe("grpc-js's words turned into the delivery fact", () => {
  test.each([
    ['Failed to start HTTP/2 stream with error x', { delivery: 'not-sent', restart: true }],
    ['Getting metadata from plugin failed with error: x', { delivery: 'not-sent', restart: false }],
    ['No connection established. Last error: x', { delivery: 'unconnected', restart: false }],
    ['Stream refused by server', { delivery: 'refused', restart: false }],
    ['Connection dropped', { delivery: 'lost', restart: false }],
    [
      'Received RST_STREAM with code 2 triggered by internal client error',
      { delivery: 'lost', restart: false },
    ],
    ['"authorization" metadata cannot have multiple values', undefined],
    ['Stream refused by server, maybe', undefined],
  ])('%s', (details, expected) => {
    expect(grpcJsDelivery(details)).toEqual(expected);
  });
});

describe.each(TRANSPORTS)('the delivery fact over the %s transport', (transport) => {
  const grpcEndpoint = endpointOver[transport];

  /** One unary call of the echo service straight on `ep`; its error. */
  const fail = async (
    ep: GrpcEndpoint | NativeGrpcEndpoint,
    fields: { failCode?: number },
  ): Promise<GrpcStatusError> => {
    const scope = newContext({ timeoutMs: 5_000 });
    try {
      const body = Buffer.from(EchoRequest.encode(EchoRequest.fromPartial(fields)).finish());
      const err = await ep
        .call(grpcRequest('/grpctower.testing.Echo/Unary', { messages: [body] }), scope.context)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(GrpcStatusError);
      return err as GrpcStatusError;
    } finally {
      scope.release();
    }
  };

  test('a call on an endpoint that cannot connect is unconnected; a status the server sent has no delivery', async () => {
    const [host, other] = pickHosts(2) as [string, string];
    const port = await closedPort(host);
    const down = grpcEndpoint(`${host}:${port}`, { credentials: insecure });
    const server = await startEchoServer({ host: other });
    const up = grpcEndpoint(server.address, { credentials: insecure });
    try {
      const unconnected = await fail(down, {});
      expect(unconnected.code).toBe(Status.UNAVAILABLE);
      expect(unconnected.serverResponded).toBe(false);
      expect(unconnected.delivery).toBe('unconnected');
      const sent = await fail(up, { failCode: Status.UNAVAILABLE });
      expect(sent.code).toBe(Status.UNAVAILABLE);
      expect(sent.serverResponded).toBe(true);
      expect(sent.delivery).toBeUndefined();
    } finally {
      await down.close({ graceMs: 0 });
      await up.close({ graceMs: 0 });
      await server.stop(0);
    }
  });
});
