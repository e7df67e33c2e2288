/**
 * Delta writes of the Redis result backend (option `deltaWrites`, off by default): when a writer knows the state stored before its write
 * (`StateWrite.basis`: the worker's claim after the client's `sent`, its final write after its claim),
 * the write script is sent only the edits that turn that state's text into the new one, checked
 * against the stored text (its length and a SHA-1 prefix): the script rebuilds the new text from the
 * stored one with plain string operations. A stored text other than the basis (another writer came
 * between, the state expired) is left as it is and the write is sent again whole (`./redis-writes.ts`).
 *
 * The delta argument, newline-separated (JSON text never holds a raw newline): the basis's length in
 * bytes, the first 16 hex digits of its SHA-1, then per edit its offset in the basis (bytes), how
 * many bytes of the basis it replaces and the text it puts there — edits in order, not overlapping.
 */
import { createHash } from 'node:crypto';

/** Hex digits of the basis's SHA-1 the script compares (64 bits: a false match is out of reach). */
export const DELTA_HASH_DIGITS = 16;

/** A delta is used only when it saves at least this many bytes over the whole text. */
const MIN_SAVING = 24;

/** True when every character of `s` is ASCII (then its offsets are byte offsets, as in Lua). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Most edits in one delta (past them, one edit replaces the rest). */
const MAX_EDITS = 8;

/** Characters of the basis looked for in the new text to resume matching after a difference. */
const PROBE = 12;

/**
 * The edits that turn `basis` into `next`, newline-separated (`offset\ncount\ntext` each). Walks
 * both texts while they match; at a difference, the basis resumes at the end of its current value
 * (its next `,` or `}`), found again in the new text by its next {@link PROBE} characters; what the
 * new text has before that is the edit's text. By construction the edits rebuild `next` exactly.
 */
function edits(basis: string, next: string): string[] {
  const out: string[] = [];
  let i = 0;
  let j = 0;
  for (;;) {
    while (i < basis.length && j < next.length && basis.charCodeAt(i) === next.charCodeAt(j)) {
      i++;
      j++;
    }
    if (i === basis.length && j === next.length) return out;
    if (i === basis.length || j === next.length || out.length === MAX_EDITS - 1) {
      out.push(`${i}\n${basis.length - i}\n${next.slice(j)}`);
      return out;
    }
    let k = i;
    while (k < basis.length && basis[k] !== ',' && basis[k] !== '}') k++;
    const r = k === basis.length ? -1 : next.indexOf(basis.slice(k, k + PROBE), j);
    if (r < 0) {
      out.push(`${i}\n${basis.length - i}\n${next.slice(j)}`);
      return out;
    }
    out.push(`${i}\n${k - i}\n${next.slice(j, r)}`);
    i = k;
    j = r;
  }
}

/**
 * The delta argument that turns `basis` into `next` (both state JSON texts), or undefined when it
 * would not save {@link MIN_SAVING} bytes, when the texts are the same, or when one is not ASCII
 * (offsets would not be bytes).
 */
export function stateDelta(basis: string, next: string): string | undefined {
  if (next.length < MIN_SAVING * 2 || !isAscii(basis) || !isAscii(next)) return undefined;
  const list = edits(basis, next);
  if (list.length === 0) return undefined;
  const hash = createHash('sha1').update(basis).digest('hex').slice(0, DELTA_HASH_DIGITS);
  const delta = `${basis.length}\n${hash}\n${list.join('\n')}`;
  return delta.length + MIN_SAVING <= next.length ? delta : undefined;
}

/**
 * Applies a delta to `basis` as the script does (for tests and checks): the new text, or undefined
 * when `basis` is not the text the delta was made from.
 */
export function applyStateDelta(basis: string, delta: string): string | undefined {
  const parts = delta.split('\n');
  if (Number(parts[0]) !== basis.length) return undefined;
  if (createHash('sha1').update(basis).digest('hex').slice(0, DELTA_HASH_DIGITS) !== parts[1]) return undefined;
  let out = '';
  let pos = 0;
  for (let i = 2; i + 2 < parts.length; i += 3) {
    const at = Number(parts[i]);
    out += basis.slice(pos, at) + (parts[i + 2] as string);
    pos = at + Number(parts[i + 1]);
  }
  return out + basis.slice(pos);
}
