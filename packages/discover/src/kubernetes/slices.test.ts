// Reading EndpointSlice objects: conditions, ports by name or number,
// zones and hints, and bad objects reported as problems, never thrown.
import { describe, expect, test } from 'vitest';
import { mergeSlices, readSlice } from './slices.js';

const SRC = 'kubernetes:default/orders:grpc';

function slice(endpoints: unknown, ports: unknown = [{ name: 'grpc', port: 50051, protocol: 'TCP' }]) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'orders-abc', namespace: 'default', resourceVersion: '7' },
    addressType: 'IPv4',
    endpoints,
    ports,
  };
}

describe('readSlice', () => {
  test('conditions decide the state: ready, terminating (serving or not), not serving; absent ones default as the API says', () => {
    const r = readSlice(
      SRC,
      slice([
        { addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false } },
        { addresses: ['10.0.0.2'], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ['10.0.0.3'], conditions: { ready: false, serving: false, terminating: true } },
        { addresses: ['10.0.0.4'], conditions: { ready: false, serving: false, terminating: false } },
        { addresses: ['10.0.0.5'], conditions: {} },
        { addresses: ['10.0.0.6'] },
      ]),
      'grpc',
    );
    expect(r.invalid).toEqual([]);
    expect(r.endpoints.map((e) => [e.key, e.state, e.serving])).toEqual([
      ['10.0.0.1:50051', 'ready', true],
      ['10.0.0.2:50051', 'terminating', true],
      ['10.0.0.3:50051', 'terminating', false],
      ['10.0.0.4:50051', 'not-serving', false],
      ['10.0.0.5:50051', 'ready', true],
      ['10.0.0.6:50051', 'ready', true],
    ]);
  });

  test('the port by name or by endpoint port number; IPv6 addresses in brackets', () => {
    const s = {
      ...slice(
        [{ addresses: ['fd00::0:7'], conditions: { ready: true } }],
        [
          { name: 'http', port: 8080 },
          { name: 'grpc', port: 50051 },
        ],
      ),
      addressType: 'IPv6',
    };
    expect(readSlice(SRC, s, 'grpc').endpoints[0]?.key).toBe('[fd00::7]:50051');
    expect(readSlice(SRC, s, 8080).endpoints[0]?.key).toBe('[fd00::7]:8080');
  });

  test('zone, hints, pod and node travel with the address', () => {
    const r = readSlice(
      SRC,
      slice([
        {
          addresses: ['10.0.0.1'],
          conditions: { ready: true },
          zone: 'zone-a',
          nodeName: 'node-1',
          targetRef: { kind: 'Pod', name: 'orders-1', namespace: 'default' },
          hints: { forZones: [{ name: 'zone-a' }, { name: 'zone-b' }] },
        },
      ]),
      'grpc',
    );
    expect(r.endpoints[0]?.value).toEqual({
      address: '10.0.0.1:50051',
      zone: 'zone-a',
      forZones: ['zone-a', 'zone-b'],
      metadata: { pod: 'orders-1', node: 'node-1' },
    });
    expect(r.endpoints[0]?.pod).toBe('orders-1');
  });

  test('bad objects are problems naming the slice and the endpoint, never exceptions', () => {
    const noPorts = readSlice(SRC, slice([{ addresses: ['10.0.0.1'] }], []), 'grpc');
    expect(noPorts.endpoints).toEqual([]);
    expect(noPorts.invalid[0]?.message).toMatch(/EndpointSlice default\/orders-abc.*lists no ports/);

    const wrongPort = readSlice(SRC, slice([{ addresses: ['10.0.0.1'] }]), 'http');
    expect(wrongPort.invalid[0]?.message).toMatch(/no port named "http" \(it has grpc:50051\)/);

    const missingPorts = readSlice(
      SRC,
      { ...slice([{ addresses: ['10.0.0.1'] }]), ports: undefined },
      'grpc',
    );
    expect(missingPorts.invalid).toHaveLength(1);

    const bad = readSlice(
      SRC,
      slice([
        { addresses: ['10.0.0.1'], conditions: { ready: 'yes' } },
        { addresses: [] },
        { addresses: ['not an ip!'] },
        { addresses: ['10.0.0.2'], hints: { forZones: [{}] } },
        'junk',
        { addresses: ['10.0.0.3'], conditions: { ready: true } },
      ]),
      'grpc',
    );
    expect(bad.endpoints.map((e) => e.key)).toEqual(['10.0.0.3:50051']);
    expect(bad.invalid.map((e) => e.message)).toEqual([
      expect.stringMatching(/endpoints\[0\].*condition "ready" is "yes", not a boolean/),
      expect.stringMatching(/endpoints\[1\].*no address/),
      expect.stringMatching(/endpoints\[2\].*not an ip!/),
      expect.stringMatching(/endpoints\[3\].*forZones has an entry without a name/),
      expect.stringMatching(/endpoints\[4\].*not an object/),
    ]);
    expect(readSlice(SRC, null, 'grpc').invalid).toHaveLength(1);
    expect(readSlice(SRC, slice('many'), 'grpc').invalid[0]?.message).toMatch(/"endpoints" is not a list/);
  });

  test('an address listed twice in one slice is a duplicate; the first is used', () => {
    const r = readSlice(
      SRC,
      slice([
        { addresses: ['10.0.0.1'], conditions: { ready: true }, targetRef: { name: 'first' } },
        { addresses: ['10.0.0.1'], conditions: { ready: false }, targetRef: { name: 'second' } },
      ]),
      'grpc',
    );
    expect(r.endpoints).toHaveLength(1);
    expect(r.endpoints[0]?.pod).toBe('first');
    expect(r.duplicates).toEqual([
      { key: '10.0.0.1:50051', inputs: [expect.any(String), expect.any(String)] },
    ]);
  });
});

describe('mergeSlices', () => {
  test('an address in two slices counts once, in its most usable state', () => {
    const a = readSlice(SRC, slice([{ addresses: ['10.0.0.1'], conditions: { ready: false } }]), 'grpc');
    const b = readSlice(
      SRC,
      slice([
        { addresses: ['10.0.0.1'], conditions: { ready: true } },
        { addresses: ['10.0.0.2'], conditions: { ready: true } },
      ]),
      'grpc',
    );
    const merged = mergeSlices([a, b]);
    expect([...merged].map(([k, e]) => [k, e.state])).toEqual([
      ['10.0.0.1:50051', 'ready'],
      ['10.0.0.2:50051', 'ready'],
    ]);
  });
});
