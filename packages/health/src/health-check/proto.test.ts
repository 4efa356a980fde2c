// The hand-written encoding against proto-loader's serializers for the
// health.proto that grpc-health-check ships.
import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { protoPath } from 'grpc-health-check';
import { describe, expect, test } from 'vitest';
import { type ServingStatus, decodeHealthCheckResponse, encodeHealthCheckRequest } from './proto.js';

const def = protoLoader.loadSync(protoPath, { keepCase: true, enums: String, defaults: true });
const health = def['grpc.health.v1.Health'] as protoLoader.ServiceDefinition;
const watch = health.Watch!;
const statuses: ServingStatus[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

describe('HealthCheckRequest', () => {
  test('encodes as proto-loader does, for any service name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (service) => {
        const ours = encodeHealthCheckRequest(service);
        // protobufjs writes a set empty string as `0a 00`; proto3 leaves it out: both read as ''
        if (service.length > 0) expect(ours.equals(watch.requestSerialize({ service }))).toBe(true);
        expect(watch.requestDeserialize(ours)).toEqual({ service });
      }),
      { numRuns: 300 },
    );
  });

  test('the whole server ("") is the empty message', () => {
    expect(encodeHealthCheckRequest('')).toHaveLength(0);
  });
});

describe('HealthCheckResponse', () => {
  test.each(statuses)('decodes %s as proto-loader encodes it', (status) => {
    expect(decodeHealthCheckResponse(watch.responseSerialize({ status }))).toBe(status);
  });

  test('skips unknown fields of every wire type', () => {
    const known = watch.responseSerialize({ status: 'NOT_SERVING' });
    const extra = Buffer.from([
      0x10,
      0x96,
      0x01, // field 2 varint 150
      0x19,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8, // field 3 fixed64
      0x22,
      0x02,
      0x61,
      0x62, // field 4 bytes "ab"
      0x2d,
      1,
      2,
      3,
      4, // field 5 fixed32
    ]);
    expect(decodeHealthCheckResponse(Buffer.concat([extra, known]))).toBe('NOT_SERVING');
    expect(decodeHealthCheckResponse(Buffer.concat([known, extra]))).toBe('NOT_SERVING');
  });

  test('an empty message is UNKNOWN, an out-of-range status is UNKNOWN', () => {
    expect(decodeHealthCheckResponse(Buffer.alloc(0))).toBe('UNKNOWN');
    expect(decodeHealthCheckResponse(Buffer.from([0x08, 0x09]))).toBe('UNKNOWN');
  });

  test('malformed bytes decode as undefined, never throw', () => {
    expect(decodeHealthCheckResponse(Buffer.from([0x08]))).toBeUndefined(); // truncated varint
    expect(decodeHealthCheckResponse(Buffer.from([0x12, 0x05, 0x61]))).toBeUndefined(); // short bytes
    expect(decodeHealthCheckResponse(Buffer.from([0x0b]))).toBeUndefined(); // group wire type
    expect(decodeHealthCheckResponse(Buffer.from([0x00, 0x01]))).toBeUndefined(); // field 0
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const out = decodeHealthCheckResponse(Buffer.from(bytes));
        expect(out === undefined || statuses.includes(out)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});
