/**
 * The protobuf wire format, as much of it as the xDS source needs: reading
 * the fields of a message into a map by field number, and writing strings,
 * varints and nested messages. The source decodes the few Envoy API fields
 * it reads by their numbers (from the Envoy API's .proto files) rather
 * than loading those files, so `@grpc-tower/discover/xds` needs no protobuf
 * library and no copy of the Envoy protos. The tests check both directions
 * against messages that `@grpc/proto-loader` builds from the real protos.
 *
 * @module
 */

/** A field's values: varints as numbers, length-delimited fields as bytes. */
export type Field = number | Uint8Array;

/** The fields of one message by number, each with its values in order (repeated fields have several). */
export type Fields = ReadonlyMap<number, readonly Field[]>;

/** Bytes that are not a well-formed protobuf message. */
export class WireError extends Error {
  constructor(message: string) {
    super(`malformed protobuf: ${message}`);
    this.name = 'WireError';
  }
}

/** Reads a varint at `at`; returns its value (exact below 2^53) and the next offset. */
function varint(buf: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const byte = buf[i] as number;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return [value, i + 1];
  }
  throw new WireError(`truncated or overlong varint at byte ${at}`);
}

/**
 * The fields of the message in `buf`. Fixed-width fields (wire types 1 and
 * 5) are kept as their bytes; groups (3, 4) are refused.
 *
 * @example
 * ```ts
 * const fields = readFields(bytes);
 * const name = str(fields, 1);
 * ```
 */
export function readFields(buf: Uint8Array): Fields {
  const out = new Map<number, Field[]>();
  let at = 0;
  while (at < buf.length) {
    const [key, next] = varint(buf, at);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (field === 0) throw new WireError(`field number 0 at byte ${at}`);
    let value: Field;
    at = next;
    if (wire === 0) {
      [value, at] = varint(buf, at);
    } else if (wire === 2) {
      const [len, start] = varint(buf, at);
      if (start + len > buf.length) throw new WireError(`field ${field} runs past the end`);
      value = buf.subarray(start, start + len);
      at = start + len;
    } else if (wire === 1 || wire === 5) {
      const len = wire === 1 ? 8 : 4;
      if (at + len > buf.length) throw new WireError(`field ${field} runs past the end`);
      value = buf.subarray(at, at + len);
      at += len;
    } else {
      throw new WireError(`unsupported wire type ${wire} for field ${field}`);
    }
    const list = out.get(field);
    if (list === undefined) out.set(field, [value]);
    else list.push(value);
  }
  return out;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function text(v: Field, n: number): string {
  if (typeof v === 'number') throw new WireError(`field ${n} is a varint where a string belongs`);
  try {
    return decoder.decode(v);
  } catch {
    throw new WireError(`field ${n} is not valid UTF-8`);
  }
}

/** The last value of a string field, or `''` when unset. */
export function str(fields: Fields, n: number): string {
  const v = fields.get(n)?.at(-1);
  return v === undefined ? '' : text(v, n);
}

/** Every value of a repeated string field. */
export function strs(fields: Fields, n: number): string[] {
  return (fields.get(n) ?? []).map((v) => text(v, n));
}

/** The last value of a varint field (unsigned), or `0` when unset. */
export function num(fields: Fields, n: number): number {
  const v = fields.get(n)?.at(-1);
  if (v === undefined) return 0;
  if (typeof v !== 'number') throw new WireError(`field ${n} is bytes where a number belongs`);
  return v;
}

/** The bytes of a message field, or undefined when unset. */
export function msg(fields: Fields, n: number): Uint8Array | undefined {
  const v = fields.get(n)?.at(-1);
  if (v === undefined) return undefined;
  if (typeof v === 'number') throw new WireError(`field ${n} is a varint where a message belongs`);
  return v;
}

/** The bytes of every value of a repeated message field. */
export function msgs(fields: Fields, n: number): Uint8Array[] {
  return (fields.get(n) ?? []).map((v) => {
    if (typeof v === 'number') throw new WireError(`field ${n} is a varint where a message belongs`);
    return v;
  });
}

/** A `google.protobuf.UInt32Value` field: its value, or undefined when the wrapper is unset. */
export function uint32Value(fields: Fields, n: number): number | undefined {
  const m = msg(fields, n);
  return m === undefined ? undefined : num(readFields(m), 1);
}

const encoder = new TextEncoder();

/** Builds a message field by field. */
export class Writer {
  readonly #parts: Uint8Array[] = [];

  #varint(value: number): void {
    const bytes: number[] = [];
    let v = value;
    while (v >= 0x80) {
      bytes.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    bytes.push(v);
    this.#parts.push(Uint8Array.from(bytes));
  }

  /** A varint field (skipped when 0, as proto3 does). */
  uint(n: number, value: number): this {
    if (value === 0) return this;
    this.#varint(n * 8);
    this.#varint(value);
    return this;
  }

  /** A length-delimited field. */
  bytes(n: number, value: Uint8Array): this {
    this.#varint(n * 8 + 2);
    this.#varint(value.length);
    this.#parts.push(value);
    return this;
  }

  /** A string field (skipped when empty, as proto3 does). */
  string(n: number, value: string): this {
    return value === '' ? this : this.bytes(n, encoder.encode(value));
  }

  /** The message so far. */
  finish(): Uint8Array {
    return Buffer.concat(this.#parts);
  }
}
