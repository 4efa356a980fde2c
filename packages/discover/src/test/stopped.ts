/**
 * Recordings that stop themselves after each test (kept apart from
 * `record.ts` because it needs vitest, and the benchmarks load that one).
 *
 * @module
 */
import { afterEach } from 'vitest';
import type { Recording } from './record.js';

/**
 * A test file's recordings, each stopped after the test that made it:
 * wrap a `record(...)` in the returned function.
 *
 * @example
 * ```ts
 * const rec = stoppedAfterEach();
 * const r = rec(record(staticList(['127.0.0.2:1'])));
 * ```
 */
export function stoppedAfterEach(): <V>(recording: Recording<V>) => Recording<V> {
  const open: Recording<unknown>[] = [];
  afterEach(() => {
    for (const r of open.splice(0)) r.stop();
  });
  return (recording) => {
    open.push(recording as Recording<unknown>);
    return recording;
  };
}
