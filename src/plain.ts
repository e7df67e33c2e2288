/**
 * Fast path of the value codec for the common case: values that are plain JSON already (strings,
 * finite numbers, booleans, null, arrays and plain objects of those). For them superjson's document
 * is `{"json": value}` with no `meta`, so the walk and the transformation of `encodeValue` can be
 * skipped; anything else (Date, Map, undefined, -0, NaN, class instances, cycles, very deep values...)
 * goes through `encodeValue` unchanged.
 */
import { encodeValue, type EncodedValue } from './message.js';

const MAX_DEPTH = 32;

/** True when `v` is plain JSON whose superjson document has no `meta`. */
export function isPlainJson(v: unknown, depth = 0): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v) && !Object.is(v, -0);
    case 'object': {
      if (v === null) return true;
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const x: unknown = v[i];
          if (x === undefined || !isPlainJson(x, depth + 1)) return false;
        }
        return true;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const k in v) {
        if (k === '__proto__' || k === 'constructor' || k === 'prototype') return false;
        const x: unknown = (v as Record<string, unknown>)[k];
        if (x === undefined || !isPlainJson(x, depth + 1)) return false;
      }
      // Symbol keys and non-enumerable own properties are not carried by either path; inherited
      // enumerable keys are impossible with these prototypes.
      return true;
    }
    default:
      return false;
  }
}

/** {@link encodeValue} with the plain-JSON fast path. */
export function encodeValueFast(value: unknown, what?: string): EncodedValue {
  let plain: boolean;
  try {
    plain = isPlainJson(value);
  } catch {
    // A getter or proxy trap threw: the full walk reports it as NotSerializableError with its path.
    plain = false;
  }
  return plain ? { json: value } : encodeValue(value, what);
}

/** JSON text of {@link encodeValueFast}. */
export function encodeValueTextFast(value: unknown, what?: string): string {
  return JSON.stringify(encodeValueFast(value, what));
}
