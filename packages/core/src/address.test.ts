// The one address module: RFC 5952's examples, every spelling of an address
// giving one key, and formatting that is idempotent.
import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  canonicalHost,
  formatAddress,
  grpcTarget,
  isHost,
  isHostName,
  isServiceName,
  parseAddress,
  tryParseAddress,
} from './address.js';
import { ConfigError } from './errors.js';
import { splitHostPort } from './internal/index.js';

describe('RFC 5952 canonical IPv6', () => {
  test.each([
    // 4.1: leading zeros are dropped
    ['2001:0db8::0001', '2001:db8::1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    // 4.2.1: "::" shortens as much as possible
    ['2001:db8::0:1', '2001:db8::1'],
    // 4.2.2: a single zero group is not shortened
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // 4.2.3: the longest run; the first of two runs as long
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    // 4.3: lower case
    ['2001:DB8::ABCD', '2001:db8::abcd'],
    // section 2's spellings of one address
    ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8::1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:0:1::1', '2001:db8::1:0:0:1'],
    ['2001:db8:0000:0:1::1', '2001:db8::1:0:0:1'],
    ['2001:DB8:0:0:1::1', '2001:db8::1:0:0:1'],
    // all zeros, loopback, runs at either end
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:1:0:0:0:1:0', '0:0:1::1:0'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    // section 5: IPv4-mapped in mixed notation
    ['0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1'],
    ['::FFFF:192.0.2.1', '::ffff:192.0.2.1'],
    ['::ffff:0:0', '::ffff:0.0.0.0'],
    // other IPv4 tails (no well-known mapped prefix) are written in hex
    ['::1.2.3.4', '::102:304'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
  ])('%s is written %s', (spelling, canonical) => {
    expect(canonicalHost(spelling)).toBe(canonical);
    expect(formatAddress(spelling, 443)).toBe(`[${canonical}]:443`);
  });

  test('the two spellings of the loopback address are one key', () => {
    const long = parseAddress('[0:0:0:0:0:0:0:1]:50051', 'test');
    const short = parseAddress('[::1]:50051', 'test');
    expect(long).toEqual({ host: '::1', port: 50051, family: 6 });
    expect(formatAddress(long.host, long.port)).toBe('[::1]:50051');
    expect(formatAddress(short.host, short.port)).toBe('[::1]:50051');
  });

  test('IPv4 and host names: dotted decimal as given, names in lower case', () => {
    expect(formatAddress('127.0.0.1', 80)).toBe('127.0.0.1:80');
    expect(formatAddress('Orders.Internal', 80)).toBe('orders.internal:80');
    expect(parseAddress('Orders.Internal:80', 'test')).toEqual({
      host: 'orders.internal',
      port: 80,
      family: 0,
    });
  });
});

describe('parsing', () => {
  test('zone ids are refused, naming the zone', () => {
    const r = tryParseAddress('[fe80::1%eth0]:50051');
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toMatch(/zone id "%eth0" is not supported/);
    expect(isHost('fe80::1%eth0')).toBe(false);
    expect(isHost('fe80::1')).toBe(true);
  });

  test.each([
    ['no port', 'host.example', 'the port is missing'],
    ['port 0', 'host.example:0', 'port 0 is out of range'],
    ['port out of range', 'host.example:65536', 'port 65536 is out of range'],
    ['port not a number', 'host.example:http', 'port "http" is not a number'],
    ['bare IPv6', '::1:50051', 'must be written in brackets'],
    ['bad IPv6 in brackets', '[zz::1]:80', '"zz::1" is not an IPv6 address'],
    ['IPv4 in brackets', '[127.0.0.1]:80', 'is not an IPv6 address'],
    ['unclosed bracket', '[::1:80', 'expected "[ipv6]:port"'],
    ['underscore in a host name', 'bad_host.example:80', 'nor an RFC 1123 host name'],
    ['all-numeric name', '999.1.1.1:80', 'nor an RFC 1123 host name'],
    ['white space', ' 127.0.0.1:80', 'nor an RFC 1123 host name'],
    ['empty host', ':80', 'nor an RFC 1123 host name'],
  ])('refuses %s with the reason', (_, input, reason) => {
    const r = tryParseAddress(input);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toContain(reason);
  });

  test('parseAddress throws a ConfigError naming where, the option, the input and the reason', () => {
    let caught: unknown;
    try {
      parseAddress('orders:0', 'grpcEndpoint', 'target');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const err = caught as ConfigError;
    expect(err.where).toBe('grpcEndpoint');
    expect(err.option).toBe('target');
    expect(err.value).toBe('orders:0');
    expect(err.message).toBe(
      'grpcEndpoint: option "target" must be a "host:port" string with a port from 1 to 65535 ' +
        '(IPv6 as "[::1]:50051"), but port 0 is out of range 1..65535, got "orders:0"',
    );
    expect(() => parseAddress(42, 'grpcEndpoint')).toThrow(/option "address" must be a "host:port" string/);
  });

  test('host names by RFC 1123, SRV names with underscores', () => {
    expect(isHostName('a.b-c.example.')).toBe(true);
    expect(isHostName(`${'a'.repeat(64)}.example`)).toBe(false);
    expect(isHostName('_grpc._tcp.svc.test')).toBe(false);
    expect(isServiceName('_grpc._tcp.svc.test')).toBe(true);
  });

  test('splitHostPort splits by syntax alone and leaves the judging to its caller', () => {
    expect(splitHostPort('[::1]:53')).toEqual({ host: '::1', port: '53', bracketed: true });
    expect(splitHostPort('[fd00::2]')).toEqual({ host: 'fd00::2', port: undefined, bracketed: true });
    expect(splitHostPort('[10.0.0.2]:')).toEqual({ host: '10.0.0.2', port: '', bracketed: true });
    expect(splitHostPort('10.0.0.2:99999')).toEqual({ host: '10.0.0.2', port: '99999', bracketed: false });
    expect(splitHostPort('orders')).toEqual({ host: 'orders', port: undefined, bracketed: false });
    // two colons or more without brackets: an IPv6 address, all host
    expect(splitHostPort('fd00::2')).toEqual({ host: 'fd00::2', port: undefined, bracketed: false });
    expect(splitHostPort('[::1')).toBeUndefined();
    expect(splitHostPort('[::1]x:53')).toBeUndefined();
  });

  test('grpcTarget: ipv4:, ipv6: and dns: targets', () => {
    expect(grpcTarget(parseAddress('10.0.0.7:50051', 'test'))).toBe('ipv4:10.0.0.7:50051');
    expect(grpcTarget(parseAddress('[0::1]:50051', 'test'))).toBe('ipv6:[::1]:50051');
    expect(grpcTarget(parseAddress('orders.internal:443', 'test'))).toBe('dns:orders.internal:443');
  });
});

// Eight groups, zeros common so that runs of every length occur.
const groups = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
  ),
  { minLength: 8, maxLength: 8 },
);

/** How to spell eight groups: widths, case, which zero run (if any) becomes "::", an IPv4 tail. */
const style = fc.record({
  widths: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 8, maxLength: 8 }),
  upper: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
  cutStart: fc.integer({ min: 0, max: 7 }),
  cutLength: fc.integer({ min: 1, max: 8 }),
  ipv4Tail: fc.boolean(),
});

type Style = typeof style extends fc.Arbitrary<infer T> ? T : never;

/** One valid RFC 4291 text form of `g` (section 2.2: any zero run may be "::"). */
function spell(g: readonly number[], s: Style): string {
  const hex = g.map((x, i) => {
    const h = x.toString(16).padStart(s.widths[i] ?? 1, '0');
    return s.upper[i] === true ? h.toUpperCase() : h;
  });
  const at = (i: number): number => g[i] ?? 0;
  const tail = s.ipv4Tail ? `${at(6) >> 8}.${at(6) & 0xff}.${at(7) >> 8}.${at(7) & 0xff}` : '';
  const parts = s.ipv4Tail ? hex.slice(0, 6) : hex;
  const end = Math.min(parts.length, s.cutStart + s.cutLength);
  const cut = s.cutStart < parts.length && g.slice(s.cutStart, end).every((x) => x === 0);
  const head = cut
    ? `${parts.slice(0, s.cutStart).join(':')}::${parts.slice(end).join(':')}`
    : parts.join(':');
  if (!s.ipv4Tail) return head;
  return head.endsWith('::') ? `${head}${tail}` : `${head}:${tail}`;
}

const plain = (g: readonly number[]): string => g.map((x) => x.toString(16)).join(':');
const isMapped = (g: readonly number[]): boolean => g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;

describe('properties', () => {
  test('every spelling of an address gives one key', () => {
    fc.assert(
      fc.property(groups, style, style, fc.integer({ min: 1, max: 65535 }), (g, a, b, port) => {
        const first = spell(g, a);
        const second = spell(g, b);
        expect(isIP(first)).toBe(6);
        expect(isIP(second)).toBe(6);
        const key = formatAddress(plain(g), port);
        expect(formatAddress(first, port)).toBe(key);
        expect(formatAddress(second, port)).toBe(key);
        const parsed = parseAddress(`[${first}]:${port}`, 'test');
        expect(formatAddress(parsed.host, parsed.port)).toBe(key);
      }),
      { numRuns: 2000 },
    );
  });

  test('formatting is idempotent and its output parses back to itself', () => {
    fc.assert(
      fc.property(groups, style, fc.integer({ min: 1, max: 65535 }), (g, s, port) => {
        const once = canonicalHost(spell(g, s));
        expect(canonicalHost(once)).toBe(once);
        const key = formatAddress(once, port);
        const parsed = parseAddress(key, 'test');
        expect(formatAddress(parsed.host, parsed.port)).toBe(key);
      }),
      { numRuns: 2000 },
    );
  });

  test('outside IPv4-mapped addresses, the canonical form is what the WHATWG URL serializer writes', () => {
    // an independent implementation of the same compression rules (URL Standard, "IPv6 serializer")
    fc.assert(
      fc.property(groups, style, (g, s) => {
        fc.pre(!isMapped(g));
        expect(new URL(`http://[${spell(g, s)}]/`).hostname).toBe(`[${canonicalHost(plain(g))}]`);
      }),
      { numRuns: 2000 },
    );
  });

  test('an IPv6 literal is accepted exactly when node:net accepts it (zone ids aside)', () => {
    const chars = '0123456789abcdefABCDEF:.'.split('');
    // random text, and valid spellings with one character replaced, dropped or kept
    const text = fc.oneof(
      fc.string({ unit: fc.constantFrom(...chars), maxLength: 45 }),
      fc.tuple(groups, style, fc.nat(), fc.constantFrom(...chars, '')).map(([g, s, i, c]) => {
        const t = spell(g, s);
        const k = i % (t.length + 1);
        return i % 5 === 0 ? t : `${t.slice(0, k)}${c}${t.slice(k + 1)}`;
      }),
    );
    fc.assert(
      fc.property(text, (t) => {
        expect(tryParseAddress(`[${t}]:1`).ok).toBe(isIP(t) === 6);
      }),
      { numRuns: 5000 },
    );
  });
});
