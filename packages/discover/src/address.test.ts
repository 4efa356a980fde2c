import { describe, expect, it } from 'vitest';
import {
  formatAddress,
  isHostName,
  isPort,
  isServiceName,
  parseAddress,
  toDiscoveredAddress,
} from './address.js';
import { valueEquals } from './equals.js';
import { InvalidAddressError } from './errors.js';

describe('addresses', () => {
  it('formats IPv6 in brackets, canonical and lower case, as grpc-js expects', () => {
    expect(formatAddress('2001:DB8:0:0:0:0:0:1', 443)).toBe('[2001:db8::1]:443');
    expect(formatAddress('::1', 50051)).toBe('[::1]:50051');
    expect(formatAddress('127.0.0.1', 80)).toBe('127.0.0.1:80');
    expect(formatAddress('Orders.Internal', 80)).toBe('orders.internal:80');
  });

  it('parses host:port and [v6]:port', () => {
    expect(parseAddress('[::1]:50051')).toEqual({ host: '::1', port: 50051, family: 6 });
    expect(parseAddress('10.1.2.3:1')).toEqual({ host: '10.1.2.3', port: 1, family: 4 });
    expect(parseAddress('a-b.example.com:65535')).toEqual({
      host: 'a-b.example.com',
      port: 65535,
      family: 0,
    });
  });

  it.each([
    ['no port', 'host.example'],
    ['port 0', 'host.example:0'],
    ['port out of range', 'host.example:65536'],
    ['port not a number', 'host.example:http'],
    ['bare IPv6', '::1:50051'],
    ['bad IPv6 in brackets', '[zz::1]:80'],
    ['label starting with a hyphen', '-bad.example:80'],
    ['underscore in a host name', 'bad_host.example:80'],
    ['all-numeric name that is not an IPv4', '999.1.1.1:80'],
    ['IPv6 zone id', '[fe80::1%eth0]:80'],
    ['empty', ''],
  ])('rejects %s with an InvalidAddressError naming the input', (_, input) => {
    let caught: unknown;
    try {
      parseAddress(input, 'test-source');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidAddressError);
    expect((caught as InvalidAddressError).input).toBe(input);
    expect((caught as InvalidAddressError).message).toContain(JSON.stringify(input));
    expect((caught as InvalidAddressError).message).toContain('test-source');
  });

  it('checks host names by RFC 1123 and SRV names with underscores', () => {
    expect(isHostName('a.b-c.example.')).toBe(true);
    expect(isHostName(`${'a'.repeat(64)}.example`)).toBe(false);
    expect(isHostName(`${'a.'.repeat(127)}ab`)).toBe(false);
    expect(isServiceName('_grpc._tcp.svc.test')).toBe(true);
    expect(isHostName('_grpc._tcp.svc.test')).toBe(false);
    expect(isPort(1)).toBe(true);
    expect(isPort(65535)).toBe(true);
    expect(isPort(1.5)).toBe(false);
    expect(isPort('80')).toBe(false);
  });

  it('normalizes entries and rejects bad weights and metadata', () => {
    expect(toDiscoveredAddress('[0:0::1]:80')).toEqual({ address: '[::1]:80' });
    expect(toDiscoveredAddress(' [0:0:0:0:0:0:0:1]:50051 ')).toEqual({ address: '[::1]:50051' });
    expect(toDiscoveredAddress('[::FFFF:7f00:1]:80')).toEqual({ address: '[::ffff:127.0.0.1]:80' });
    expect(toDiscoveredAddress({ address: 'a.example:80', weight: 2, metadata: { zone: 'b' } })).toEqual({
      address: 'a.example:80',
      weight: 2,
      metadata: { zone: 'b' },
    });
    expect(() => toDiscoveredAddress({ address: 'a.example:80', weight: -1 })).toThrow(InvalidAddressError);
    expect(() => toDiscoveredAddress({ address: 'a.example:80', metadata: 'x' })).toThrow(
      InvalidAddressError,
    );
    expect(() => toDiscoveredAddress(42)).toThrow(InvalidAddressError);
  });

  it('keeps a zone and topology hints; rejects empty or non-string ones', () => {
    expect(toDiscoveredAddress({ address: '10.0.0.1:80', zone: 'a', forZones: ['a', 'b'] })).toEqual({
      address: '10.0.0.1:80',
      zone: 'a',
      forZones: ['a', 'b'],
    });
    expect(() => toDiscoveredAddress({ address: '10.0.0.1:80', zone: '' })).toThrow(
      /zone must be a non-empty string/,
    );
    expect(() => toDiscoveredAddress({ address: '10.0.0.1:80', forZones: ['a', 1] })).toThrow(
      /forZones must be an array of non-empty strings/,
    );
  });

  it('keeps a priority and a group; rejects a priority that is not an integer >= 0 and a bad group', () => {
    expect(
      toDiscoveredAddress({ address: '10.0.0.1:80', priority: 1, group: 'canary', groupWeight: 5 }),
    ).toEqual({
      address: '10.0.0.1:80',
      priority: 1,
      group: 'canary',
      groupWeight: 5,
    });
    expect(() => toDiscoveredAddress({ address: '10.0.0.1:80', group: '' })).toThrow(/group must be/);
    expect(() => toDiscoveredAddress({ address: '10.0.0.1:80', groupWeight: 0 })).toThrow(
      /groupWeight 0 is not a finite number > 0/,
    );
    for (const priority of [-1, 0.5, '1']) {
      expect(() => toDiscoveredAddress({ address: '10.0.0.1:80', priority })).toThrow(
        /priority .* is not an integer >= 0/,
      );
    }
  });

  it('compares plain data by structure', () => {
    expect(valueEquals({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(valueEquals({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(valueEquals([1], { 0: 1 })).toBe(false);
    expect(valueEquals(new Date(0), new Date(0))).toBe(false);
  });
});
