/**
 * fast-check generators of bad input: values of every type, numbers at and
 * past every edge (NaN, ±Infinity, -0, 2^31, 2^53…), empty and unicode
 * strings, and address-like strings (IPv4, IPv6 in and out of brackets,
 * with zones, host names, ports out of range, stray colons), mixed with
 * values that are valid, so that both branches (accepted and refused) run.
 *
 * @module
 */
import fc from 'fast-check';

/** Numbers at and past the edges. */
export const edgeNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    0,
    -1,
    1,
    0.5,
    2,
    3,
    10,
    100,
    1000,
    65535,
    65536,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 53,
    -(2 ** 53),
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    Number.EPSILON,
  ),
  fc.double(),
  fc.integer({ min: -10, max: 5000 }),
);

/** Strings: empty, blank, unicode, control characters, long. */
export const edgeString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\0',
    '\n',
    'NaN',
    '-1',
    '١٢٣',
    '💥',
    'é',
    'a'.repeat(300),
    'ＡＢＣ',
    '\u202e',
    'ok',
  ),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
);

/** Anything at all, weighted toward the edges. */
export const junk: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: edgeNumber },
  { weight: 3, arbitrary: edgeString },
  {
    weight: 2,
    arbitrary: fc.constantFrom<unknown>(
      undefined,
      null,
      true,
      false,
      [],
      {},
      () => undefined,
      Symbol('x'),
      10n,
      new Date(Number.NaN),
    ),
  },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 1, maxKeys: 3 }) },
);

/**
 * An options object: either every key drawn from `values[key]` (valid-looking
 * values, so that inputs get accepted), or keys set to junk or to those
 * values, or junk instead of an object. Keys without a value are junk.
 */
export function options(
  keys: readonly string[],
  values: Readonly<Record<string, fc.Arbitrary<unknown>>> = {},
): fc.Arbitrary<unknown> {
  const record = (mix: boolean): fc.Arbitrary<Record<string, unknown>> =>
    fc.record(
      Object.fromEntries(
        keys.map((k) => {
          const own = values[k];
          if (own === undefined) return [k, junk];
          return [k, mix ? fc.oneof({ weight: 3, arbitrary: own }, { weight: 1, arbitrary: junk }) : own];
        }),
      ),
      { requiredKeys: [] },
    );
  return fc.oneof(
    { weight: 3, arbitrary: record(false) },
    { weight: 3, arbitrary: record(true) },
    { weight: 1, arbitrary: junk },
  );
}

/** Small valid-looking numbers for options that are numbers. */
export const smallNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0, max: 200 }),
  fc.double({ min: 0, max: 3, noNaN: true }),
);

const ipv4 = fc
  .tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }))
  .map(([a, b, c]) => `127.${a}.${b}.${c}`);

const ipv6 = fc.constantFrom(
  '::1',
  '::',
  'fe80::1%lo',
  '::ffff:127.0.0.1',
  '2001:db8::1',
  '2001:DB8:0:0:0:0:0:1',
  '1:2:3:4:5:6:7:8:9',
  ':::1',
  'fe80::1%',
);

const hostName = fc.oneof(
  fc.constantFrom(
    'localhost',
    'orders.invalid',
    'a.invalid.',
    '-bad.invalid',
    'bad-.invalid',
    'under_score.invalid',
    'xn--bcher-kva.invalid',
    'bücher.invalid',
    `${'a'.repeat(64)}.invalid`,
    `${'a.'.repeat(130)}invalid`,
    '1.2.3',
    '..',
    '.',
  ),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).map((s) => `${s}.invalid`),
);

const port = fc.oneof(
  fc.integer({ min: 1, max: 65535 }).map(String),
  fc.constantFrom('0', '-1', '65536', '99999', '', 'http', '1e3', '0x50', ' 80', '80 ', '٨٠', '0080', '1.5'),
);

/** Host-like strings: IPv4, IPv6 (bare, bracketed, with zones), host names valid and not. */
export const hostLike: fc.Arbitrary<string> = fc.oneof(
  ipv4,
  ipv6,
  ipv6.map((h) => `[${h}]`),
  hostName,
  fc.constantFrom('_grpc._tcp.orders.invalid', '_grpc._tcp', '_x.invalid', '__.invalid'),
  edgeString,
);

/** Address-like strings: valid and broken `host:port`, `[v6]:port` and worse. */
export const addressLike: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(ipv4, port).map(([h, p]) => `${h}:${p}`),
  fc.tuple(ipv6, port).map(([h, p]) => `[${h}]:${p}`),
  fc.tuple(ipv6, port).map(([h, p]) => `${h}:${p}`),
  ipv6.map((h) => `[${h}]`),
  fc.tuple(hostName, port).map(([h, p]) => `${h}:${p}`),
  ipv4,
  hostName,
  fc.constantFrom(
    ':80',
    '[]:80',
    '[::1]80',
    'a:b:c',
    'http://127.0.0.1:80',
    '127.0.0.1:80/',
    ' 127.0.0.1:80 ',
  ),
  edgeString,
);

/** Discovery entries: address strings, `{ address, weight, metadata }` objects and junk. */
export const discoveryEntry: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: addressLike },
  {
    weight: 2,
    arbitrary: fc.record(
      { address: fc.oneof(addressLike, junk), weight: fc.oneof(edgeNumber, junk), metadata: junk },
      { requiredKeys: ['address'] },
    ),
  },
  { weight: 1, arbitrary: junk },
);

/** Valid-looking values for options, so that records drawn from them are mostly accepted. */
export const valid = {
  ms: fc.integer({ min: 1, max: 1000 }),
  smallMs: fc.integer({ min: 0, max: 50 }),
  fraction: fc.double({ min: 0, max: 1, noNaN: true }),
  factor: fc.double({ min: 1, max: 3, noNaN: true }),
  count: fc.integer({ min: 1, max: 5 }),
  percent: fc.integer({ min: 0, max: 100 }),
  name: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
  address: fc.oneof(
    fc
      .tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 65535 }))
      .map(([h, p]) => `127.0.0.${h}:${p}`),
    fc.integer({ min: 1, max: 65535 }).map((p) => `[::1]:${p}`),
    fc.integer({ min: 1, max: 65535 }).map((p) => `localhost:${p}`),
  ),
} as const;

/** Backoff options (`initialMs`, `maxMs`, `multiplier`, `jitter`). */
export const backoffOptions: fc.Arbitrary<unknown> = options(['initialMs', 'maxMs', 'multiplier', 'jitter'], {
  initialMs: valid.ms,
  maxMs: fc.integer({ min: 1000, max: 30_000 }),
  multiplier: valid.factor,
  jitter: valid.fraction,
});
