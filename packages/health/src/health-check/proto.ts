/**
 * The two `grpc.health.v1` messages the health checker sends and reads,
 * encoded by hand, so the checker needs no protobuf runtime (gRPC A17
 * names hand-rolled serialization as an option for exactly this):
 *
 * - `HealthCheckRequest { string service = 1; }`: one length-delimited
 *   field (tag byte `0x0a`), left out when the name is empty (proto3);
 * - `HealthCheckResponse { ServingStatus status = 1; }`: one varint field
 *   (tag byte `0x08`). The decoder skips fields it does not know, as any
 *   protobuf reader must, so a newer server's additions do not break it.
 *
 * The encoding is checked against `@grpc/proto-loader`'s serializers for
 * the proto that `grpc-health-check` ships (see `proto.test.ts`).
 *
 * @module
 */

/**
 * The full method name of `Health/Watch`.
 *
 * @example
 * ```ts
 * const req = { method: WATCH_METHOD, kind: 'serverStream' as const };
 * ```
 */
export const WATCH_METHOD = '/grpc.health.v1.Health/Watch';
/**
 * The full method name of `Health/Check`.
 *
 * @example
 * ```ts
 * const req = { method: CHECK_METHOD, kind: 'unary' as const };
 * ```
 */
export const CHECK_METHOD = '/grpc.health.v1.Health/Check';

/**
 * A `grpc.health.v1.HealthCheckResponse.ServingStatus`, by name. A number
 * outside the enum decodes as `'UNKNOWN'`.
 *
 * @example
 * ```ts
 * const s: ServingStatus = 'NOT_SERVING';
 * ```
 */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

const STATUS_NAMES: readonly ServingStatus[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function writeVarint(out: number[], value: number): void {
  let v = value >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
}

/**
 * Encodes a `HealthCheckRequest` for `service` (`''` asks for the whole
 * server and encodes as an empty message).
 *
 * @example
 * ```ts
 * encodeHealthCheckRequest('grpctower.testing.Echo'); // <0a 16 67 72 …>
 * ```
 */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service.length === 0) return Buffer.alloc(0);
  const name = Buffer.from(service, 'utf8');
  const head: number[] = [0x0a];
  writeVarint(head, name.length);
  return Buffer.concat([Buffer.from(head), name]);
}

/** Reads a varint at `pos`; returns the value and the next position, or undefined when truncated. */
function readVarint(buf: Buffer, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  let factor = 1;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    const byte = buf[i]!;
    // values above 2^53 lose precision; only the low bits of an enum matter here
    value += (byte & 0x7f) * factor;
    factor *= 128;
    if ((byte & 0x80) === 0) return { value, next: i + 1 };
  }
  return undefined;
}

/**
 * Decodes a `HealthCheckResponse` and returns its status, or `undefined`
 * when the bytes are not a valid message. A missing status field is
 * `'UNKNOWN'` (proto3 default).
 *
 * @example
 * ```ts
 * decodeHealthCheckResponse(Buffer.from([0x08, 0x01])); // 'SERVING'
 * ```
 */
export function decodeHealthCheckResponse(buf: Buffer): ServingStatus | undefined {
  let status: ServingStatus = 'UNKNOWN';
  let pos = 0;
  while (pos < buf.length) {
    const key = readVarint(buf, pos);
    if (key === undefined) return undefined;
    pos = key.next;
    const field = Math.floor(key.value / 8);
    const wire = key.value % 8;
    if (field === 0) return undefined;
    switch (wire) {
      case 0: {
        const v = readVarint(buf, pos);
        if (v === undefined) return undefined;
        pos = v.next;
        if (field === 1) status = STATUS_NAMES[v.value] ?? 'UNKNOWN';
        break;
      }
      case 1:
        pos += 8;
        break;
      case 2: {
        const len = readVarint(buf, pos);
        if (len === undefined) return undefined;
        pos = len.next + len.value;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        return undefined;
    }
    if (pos > buf.length) return undefined;
  }
  return status;
}
