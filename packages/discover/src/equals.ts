/**
 * Structural equality of plain data, used to decide whether a value under a
 * known key changed. It has no dependencies so that the diff can be loaded
 * alone (the benchmark does).
 *
 * @module
 */

/**
 * Structural equality for plain data (primitives, arrays, plain objects):
 * the default equality of discovered values, so a registry answer that
 * repeats the same data yields no change.
 *
 * @example
 * ```ts
 * valueEquals({ address: 'a:1', metadata: { z: 1 } }, { address: 'a:1', metadata: { z: 1 } }); // true
 * ```
 */
export function valueEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    // NaN equals NaN here, as in a Map key.
    return typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!valueEquals(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b) || !isPlain(a) || !isPlain(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let count = 0;
  for (const k in ra) {
    if (!Object.hasOwn(ra, k)) continue;
    if (!Object.hasOwn(rb, k) || !valueEquals(ra[k], rb[k])) return false;
    count++;
  }
  for (const k in rb) if (Object.hasOwn(rb, k)) count--;
  return count === 0;
}

function isPlain(o: object): boolean {
  const proto: unknown = Object.getPrototypeOf(o);
  return proto === Object.prototype || proto === null;
}
