import { describe, expect, test } from 'vitest';
import { InvalidTargetError, type TargetPart, parseTarget } from './target.js';

describe('parseTarget: the forms gRPC names', () => {
  test.each([
    ['dns:///orders.internal:50051', 'orders.internal', 50051, undefined, 'dns:///orders.internal:50051'],
    ['dns:orders.internal:50051', 'orders.internal', 50051, undefined, 'dns:///orders.internal:50051'],
    ['orders.internal:50051', 'orders.internal', 50051, undefined, 'dns:///orders.internal:50051'],
    ['localhost:8080', 'localhost', 8080, undefined, 'dns:///localhost:8080'],
    ['DNS:///Orders.Internal:443', 'orders.internal', 443, undefined, 'dns:///orders.internal:443'],
    ['dns://10.0.0.2:53/orders.internal:50051', 'orders.internal', 50051, '10.0.0.2:53', undefined],
    ['dns://10.0.0.2/orders.internal:50051', 'orders.internal', 50051, '10.0.0.2:53', undefined],
    ['dns://127.0.0.1:5353/echo.test:1', 'echo.test', 1, '127.0.0.1:5353', undefined],
    ['dns://[fd00::2]:5300/orders:50051', 'orders', 50051, '[fd00::2]:5300', undefined],
    ['dns://[::1]/orders:50051', 'orders', 50051, '[::1]:53', undefined],
    ['10.0.0.7:50051', '10.0.0.7', 50051, undefined, 'dns:///10.0.0.7:50051'],
    ['[::1]:50051', '::1', 50051, undefined, 'dns:///[::1]:50051'],
    ['dns:///[0:0::1]:65535', '::1', 65535, undefined, 'dns:///[::1]:65535'],
  ])('%s', (input, host, port, dnsServer, canonical) => {
    const t = parseTarget(input);
    expect(t.scheme).toBe('dns');
    if (t.scheme !== 'dns') return;
    expect({ host: t.host, port: t.port, dnsServer: t.dnsServer }).toEqual({ host, port, dnsServer });
    const expected = canonical ?? `dns://${dnsServer}/${host}:${port}`;
    expect(t.canonical).toBe(expected);
    // the canonical form reads back as the same target
    expect(parseTarget(t.canonical)).toEqual(t);
  });

  test('ipv4: a list of addresses, in order, duplicates dropped', () => {
    const t = parseTarget('ipv4:10.0.0.7:50051,10.0.0.8:50052,10.0.0.7:50051');
    expect(t).toEqual({
      scheme: 'ipv4',
      addresses: ['10.0.0.7:50051', '10.0.0.8:50052'],
      canonical: 'ipv4:10.0.0.7:50051,10.0.0.8:50052',
    });
    expect(parseTarget('ipv4:127.0.0.1:1')).toMatchObject({ addresses: ['127.0.0.1:1'] });
  });

  test('etcd: the members in the authority, the key prefix in the path', () => {
    expect(parseTarget('etcd://10.0.0.5:2379,etcd-1.internal:2379,10.0.0.5:2379/services/orders/')).toEqual({
      scheme: 'etcd',
      endpoints: ['http://10.0.0.5:2379', 'http://etcd-1.internal:2379'],
      prefix: '/services/orders/',
      canonical: 'etcd://10.0.0.5:2379,etcd-1.internal:2379/services/orders/',
    });
    expect(parseTarget('etcd://[::1]:2379/a')).toMatchObject({
      endpoints: ['http://[::1]:2379'],
      prefix: '/a',
    });
  });

  test('ipv6: bracketed addresses, canonical', () => {
    const t = parseTarget('ipv6:[::1]:50051,[fd00:0::8]:50052');
    expect(t).toEqual({
      scheme: 'ipv6',
      addresses: ['[::1]:50051', '[fd00::8]:50052'],
      canonical: 'ipv6:[::1]:50051,[fd00::8]:50052',
    });
  });
});

describe('parseTarget: bad targets name the part that is wrong and quote the target', () => {
  const cases: [string, TargetPart, RegExp][] = [
    // unknown scheme
    [
      'xds:///orders',
      'scheme',
      /unknown scheme "xds"; use "dns:", "ipv4:", "ipv6:", "etcd:" or a bare host:port/,
    ],
    ['unix:///tmp/orders.sock', 'scheme', /unknown scheme "unix"/],
    ['consul:///orders', 'scheme', /pass your own source as the "discovery" option/],
    ['consul://10.0.0.5:8500,10.0.0.6:8500/orders', 'scheme', /unknown scheme "consul"/],
    // etcd: members and a prefix
    [
      'etcd:///services/orders/',
      'authority',
      /no etcd member is named; write "etcd:\/\/10.0.0.5:2379\/services\/orders\/"/,
    ],
    ['etcd:services/orders', 'authority', /name the etcd members in the authority/],
    [
      'etcd://10.0.0.5/services/orders/',
      'port',
      /the port is missing after "10.0.0.5"; .*"etcd:\/\/10.0.0.5:50051"/,
    ],
    [
      'etcd://10.0.0.5:2379',
      'prefix',
      /the key prefix is missing .*"etcd:\/\/10.0.0.5:2379\/services\/orders\/"/,
    ],
    ['etcd://10.0.0.5:2379/', 'prefix', /the key prefix is missing/],
    ['etcd://10.0.0.5:0/p/', 'port', /port 0 is out of range/],
    // missing port
    [
      'dns:///orders.internal',
      'port',
      /the port is missing after "orders.internal"; .*"dns:\/\/\/orders.internal:50051"/,
    ],
    [
      'orders.internal',
      'port',
      /the port is missing .*"orders.internal:50051" \(grpc-tower does not assume 443\)/,
    ],
    ['dns://10.0.0.2/orders', 'port', /the port is missing after "orders"/],
    ['ipv4:10.0.0.7', 'port', /the port is missing after "10.0.0.7"; .*"ipv4:10.0.0.7:50051"/],
    ['ipv6:::1', 'port', /the port is missing after "::1"; .*"ipv6:\[::1\]:50051"/],
    ['orders:', 'port', /port "" is not a number/],
    // port out of range
    ['dns:///orders:0', 'port', /port 0 is out of range 1..65535/],
    ['orders.internal:70000', 'port', /port 70000 is out of range 1..65535/],
    ['ipv4:10.0.0.7:123456', 'port', /port "123456" is not a number from 1 to 65535/],
    [
      'dns://10.0.0.2:99999/orders:50051',
      'port',
      /the DNS server's port "99999" is not a port from 1 to 65535/,
    ],
    // empty host list
    ['ipv4:', 'address list', /the address list is empty; write ipv4: and addresses separated by commas/],
    ['ipv6:', 'address list', /the address list is empty/],
    ['ipv4:10.0.0.7:1,,10.0.0.8:1', 'address list', /the address list has an empty entry/],
    ['ipv4:10.0.0.7:1,', 'address list', /empty entry/],
    // a DNS authority that is not an address
    [
      'dns://resolver.local/orders:50051',
      'authority',
      /the DNS server "resolver.local" is not an IP address/,
    ],
    [
      'dns://resolver.local:53/orders:50051',
      'authority',
      /the DNS server "resolver.local:53" is not an IP address/,
    ],
    ['dns://[10.0.0.2]:53/orders:50051', 'authority', /is not an IP address/],
    [
      'dns://fd00::2/orders:50051',
      'authority',
      /write the IPv6 DNS server in brackets, as "dns:\/\/\[fd00::2\]:53/,
    ],
    ['dns://orders.internal:50051', 'authority', /write "dns:\/\/\/orders.internal:50051" \(three slashes\)/],
    // hosts that are not hosts
    ['dns:///', 'host', /the host is missing/],
    [
      'dns:///bad_name:50051',
      'host',
      /"bad_name:50051": "bad_name" is neither an IP address nor an RFC 1123 host name/,
    ],
    [
      'ipv4:orders.internal:50051',
      'host',
      /"orders.internal:50051" is not an IPv4 address .*use "dns:\/\/\/name:port"/,
    ],
    ['ipv6:[::1]:1,10.0.0.7:1', 'host', /"10.0.0.7:1" is not an IPv6 address/],
    ['ipv4:[::1]:50051', 'host', /is not an IPv4 address/],
    // a list of addresses without the ipv4: or ipv6: scheme
    [
      '127.0.0.11:50551,127.0.0.12:50551',
      'scheme',
      /"127.0.0.11:50551,127.0.0.12:50551" is a list of addresses, which needs the ipv4: \(or ipv6:\) scheme: write "ipv4:127.0.0.11:50551,127.0.0.12:50551"$/,
    ],
    [
      'dns:///10.0.0.7:50051,10.0.0.8:50051',
      'scheme',
      /needs the ipv4: \(or ipv6:\) scheme: write "ipv4:10.0.0.7:50051,10.0.0.8:50051"$/,
    ],
    ['[fd00::7]:50051,[fd00::8]:50051', 'scheme', /write "ipv6:\[fd00::7\]:50051,\[fd00::8\]:50051"$/],
    [
      'orders-1:50051,orders-2:50051',
      'scheme',
      /is a list of addresses, which needs the ipv4: \(or ipv6:\) scheme: the entries must then be IP addresses .*use one DNS name that resolves to all of them/,
    ],
    ['10.0.0.7:50051,[fd00::8]:50051', 'scheme', /the entries must then be IP addresses/],
    // not a target at all
    ['', 'target', /expected a non-empty string/],
    ['dns:/// orders:50051', 'target', /contains white space/],
  ];
  test.each(cases)('%j → %s', (input, part, message) => {
    let error: unknown;
    try {
      parseTarget(input);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidTargetError);
    const e = error as InvalidTargetError;
    expect(e.part).toBe(part);
    expect(e.target).toBe(input);
    expect(e.codeName).toBe('INVALID_ARGUMENT');
    expect(e.name).toBe('InvalidTargetError');
    expect(e.message.startsWith(`target ${JSON.stringify(input)}: `)).toBe(true);
    expect(e.message).toMatch(message);
  });

  test('a value that is not a string', () => {
    expect(() => parseTarget(undefined as unknown as string)).toThrow(
      /target undefined: expected a non-empty string such as "dns:\/\/\/orders:50051"/,
    );
  });
});
