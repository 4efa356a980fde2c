/**
 * The round-robin pick: the next ready member in turn, whatever its load,
 * skipping those the call avoids. The baseline P2C is measured against.
 *
 * @internal
 * @module
 */
import type { Candidate, Picker } from './picker.js';

/**
 * Round robin over the ready set. Its order changes as members come and go.
 *
 * @example
 * ```ts
 * const picker = roundRobinPicker<Slot>();
 * const slot = picker.pick(readySet, undefined);
 * ```
 */
export function roundRobinPicker<T extends Candidate>(): Picker<T> {
  let cursor = 0;
  return {
    pick(set, avoid) {
      const n = set.size;
      if (n === 0) return undefined;
      if (cursor >= n) cursor = 0;
      if (avoid !== undefined && avoid.size > 0) {
        const avoided = set.countAddresses(avoid);
        if (avoided > 0 && avoided < n) {
          // at most `avoided` members are skipped
          for (let k = 0; k < n; k++) {
            const m = set.at(cursor);
            cursor = cursor + 1 < n ? cursor + 1 : 0;
            if (!avoid.has(m.address)) return m;
          }
        }
      }
      const m = set.at(cursor);
      cursor = cursor + 1 < n ? cursor + 1 : 0;
      return m;
    },
  };
}
