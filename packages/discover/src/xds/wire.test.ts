// The protobuf wire reader and writer on their own: round trips, and the
// malformed inputs a broken control plane could send (each a named error,
// never a crash). The Envoy messages themselves are checked against
// proto-loader's encoding through the stand-in server in source.test.ts.
import { describe, expect, test } from 'vitest';
import { XdsResourceError, decodeCluster, decodeClusterLoadAssignment, decodeListener } from './resources.js';
import { WireError, Writer, msg, num, readFields, str, strs, uint32Value } from './wire.js';

describe('wire', () => {
  test('strings, varints up to 2^53 and nested messages round-trip', () => {
    const inner = new Writer().uint(1, 7).finish();
    const bytes = new Writer()
      .string(1, 'orders')
      .string(3, 'a')
      .string(3, 'b')
      .uint(4, 2 ** 40 + 3)
      .bytes(5, inner)
      .string(6, 'é✓')
      .finish();
    const f = readFields(bytes);
    expect(str(f, 1)).toBe('orders');
    expect(strs(f, 3)).toEqual(['a', 'b']);
    expect(num(f, 4)).toBe(2 ** 40 + 3);
    expect(uint32Value(f, 5)).toBe(7);
    expect(str(f, 6)).toBe('é✓');
    // unset fields read as proto3 defaults
    expect(str(f, 9)).toBe('');
    expect(num(f, 9)).toBe(0);
    expect(msg(f, 9)).toBeUndefined();
  });

  test('malformed bytes are a WireError naming the problem', () => {
    expect(() => readFields(Uint8Array.from([0x0a, 0x05, 0x61]))).toThrow(/field 1 runs past the end/);
    expect(() => readFields(Uint8Array.from([0x08, 0xff, 0xff]))).toThrow(/truncated or overlong varint/);
    expect(() => readFields(Uint8Array.from([0x0b]))).toThrow(/unsupported wire type 3/);
    expect(() => readFields(Uint8Array.from([0x00, 0x01]))).toThrow(/field number 0/);
    expect(() => str(readFields(Uint8Array.from([0x0a, 0x01, 0xff])), 1)).toThrow(/not valid UTF-8/);
    expect(() => str(readFields(Uint8Array.from([0x08, 0x01])), 1)).toThrow(WireError);
  });
});

describe('resources', () => {
  const cla = (host: string, port: number) =>
    new Writer()
      .string(1, 'orders')
      .bytes(
        2,
        new Writer()
          .bytes(
            2,
            new Writer()
              .bytes(
                1,
                new Writer()
                  .bytes(
                    1,
                    new Writer().bytes(1, new Writer().string(2, host).uint(3, port).finish()).finish(),
                  )
                  .finish(),
              )
              .finish(),
          )
          .finish(),
      )
      .finish();

  test('a ClusterLoadAssignment endpoint must be an IP or host name with a port from 1 to 65535', () => {
    expect(decodeClusterLoadAssignment(cla('10.0.0.7', 50051)).localities[0]?.endpoints[0]).toEqual({
      address: '10.0.0.7:50051',
      health: 'UNKNOWN',
      weight: 1,
    });
    expect(() => decodeClusterLoadAssignment(cla('not a host', 1))).toThrow(XdsResourceError);
    expect(() => decodeClusterLoadAssignment(cla('10.0.0.7', 70000))).toThrow(/port 70000, not 1 to 65535/);
  });

  test('resources without a name, or of a shape this client cannot use, say so', () => {
    expect(() => decodeListener(new Writer().finish())).toThrow(/Listener has no name/);
    expect(() => decodeCluster(new Writer().string(1, 'c').uint(2, 2).finish())).toThrow(
      /type LOGICAL_DNS is not supported/,
    );
    expect(() =>
      decodeCluster(new Writer().string(1, 'c').uint(2, 3).bytes(38, new Uint8Array()).finish()),
    ).toThrow(/custom cluster_type/);
    expect(decodeCluster(new Writer().string(1, 'c').uint(2, 3).finish())).toEqual({
      name: 'c',
      edsServiceName: 'c',
      outlierDetection: undefined,
      maxRequests: undefined,
      ignoredBreakers: [],
    });
  });
});
