/**
 * gRPC status codes, as numbered by the gRPC specification
 * (`doc/statuscodes.md`). The values are identical to `@grpc/grpc-js`'s
 * `status` enum, so the two can be compared directly; this copy keeps the
 * core free of a runtime dependency on grpc-js for plain HTTP/2 users.
 *
 * @example
 * ```ts
 * import { Status } from '@grpc-tower/core';
 * if (err.code === Status.UNAVAILABLE) retry();
 * ```
 * @module
 */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The name of a gRPC status code, such as `'UNAVAILABLE'`. */
export type StatusName = keyof typeof Status;

/** A gRPC status code number (0 to 16). */
export type StatusCode = (typeof Status)[StatusName];

const names = new Map<number, StatusName>(
  Object.entries(Status).map(([name, code]) => [code, name as StatusName]),
);

/**
 * The name of a status code, or `'CODE_<n>'` for a number outside the table.
 *
 * @example
 * ```ts
 * statusName(14); // 'UNAVAILABLE'
 * ```
 */
export function statusName(code: number): string {
  return names.get(code) ?? `CODE_${code}`;
}

/**
 * Parses a status given as a name (`'UNAVAILABLE'`, case-insensitive) or a
 * number; returns `undefined` for anything that is not a known status.
 *
 * @example
 * ```ts
 * parseStatus('unavailable'); // 14
 * parseStatus(99); // undefined
 * ```
 */
export function parseStatus(value: unknown): StatusCode | undefined {
  if (typeof value === 'number') {
    return names.has(value) ? (value as StatusCode) : undefined;
  }
  if (typeof value === 'string') {
    const key = value.trim().toUpperCase();
    return Object.hasOwn(Status, key) ? Status[key as StatusName] : undefined;
  }
  return undefined;
}
