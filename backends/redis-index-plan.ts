/**
 * The index keys one call of the write script declares, and the index argument of each write in it
 * (one node; a Redis Cluster moves the index by a second call, `./redis-cluster-index.ts`).
 *
 * A write whose previous status may be any (guards `notFinal`, `notSuccess` without an expected
 * status) can move its entry out of any of its group's status sets: the call declares all of them
 * (`base|STATUS` in `TASK_STATUSES` order, once per group and call). A guarded write whose caller
 * knows the status it expects stored (`StateWrite.basis`) declares only that status's set and its
 * new one; when the script finds another status stored, it does nothing and answers 3, and the
 * write goes again with all its group's sets declared (`WriteBatcher`). An `absent` write either
 * finds nothing stored (its entry is new) or is refused (nothing moves): it touches only its new
 * status's set. Single sets are declared once per call, and not at all for a group whose sets are
 * all declared anyway. After the sets comes the set of indexed groups, last.
 *
 * The index argument of a write, newline-separated: the position, then the status offset, score
 * (`updatedAt`), cap, and the task id — left empty when the state key holds it as is (the script
 * cuts it out of `P:{ID}:state`, with the length of `P` taken from the groups key `P:ix-groups`).
 * The position is that of the group's first set in `KEYS` (the new set is at position + offset), or,
 * negated, that of the write's new set alone. A write that declares the set of its expected status
 * adds `8 × (8 × position + offset)` of that set to its offset field (offsets are below 8; a plain
 * offset, below 8, means none: all sets are declared, or an `absent` write).
 */
import { TASK_STATUSES, type TaskStatus } from '../src/state.js';
import { InvalidOptionError } from '../src/errors.js';
import { encodeIdForKey } from './redis-keys.js';

/** Offset of each status within a group's index keys. */
const OFFSETS = new Map<string, number>(TASK_STATUSES.map((s, i) => [s, i]));

/** What a write keeps of the index (on one node). */
export interface IndexPart {
  /** The index key base of the write's group (`P:ix|G`). */
  readonly base: string;
  /** The new status. */
  readonly status: TaskStatus;
  /** Whether the write's previous status may be any (a guarded write with no expected status): all the group's sets are declared. */
  readonly anyPrevious: boolean;
  /** A guarded write's expected previous status (its basis's), when it declares only that set and its new one; else undefined. */
  readonly expected: TaskStatus | undefined;
  /** The new status's offset. */
  readonly offset: number;
  /** The index argument after its offset: `\nscore\ncap\nid` (id '' when the state key holds it as is). */
  readonly tail: string;
}

/**
 * The {@link IndexPart} of a write of `status` for task `id`: an `absent` write's, or a guarded
 * write's — with `expected`, the status its caller expects stored (only that set and the new one
 * are declared).
 */
export function indexPart(base: string, status: TaskStatus, score: number, id: string, cap: number, absent: boolean, expected?: TaskStatus): IndexPart {
  const offset = OFFSETS.get(status);
  if (offset === undefined) throw new InvalidOptionError(`unknown task status ${JSON.stringify(status)}`);
  const idField = encodeIdForKey(id) === id ? '' : id;
  const narrowed = !absent && expected !== undefined && OFFSETS.has(expected);
  // One shape for every part (no spread): `expected` is present, undefined when not narrowed.
  return { base, status, anyPrevious: !absent && !narrowed, expected: narrowed ? expected : undefined, offset, tail: `\n${score}\n${cap}\n${idField}` };
}

/** `part` with all its group's sets declared (a write sent again after its expected status was not the stored one). */
export function widenedPart(part: IndexPart): IndexPart {
  return { base: part.base, status: part.status, anyPrevious: true, expected: undefined, offset: part.offset, tail: part.tail };
}

/** The declared index keys of a group: its sets `base|STATUS`, in `TASK_STATUSES` order. */
export function indexKeys(base: string): string[] {
  return TASK_STATUSES.map((s) => `${base}|${s}`);
}

/** The index keys of one script call and the position of each write's sets among them. */
export class IndexPlan {
  /** Groups whose sets are all declared → position of the first (1-based, in `KEYS`). */
  private readonly full = new Map<string, number>();
  /**
   * Single sets declared: index key base → position of each status's set, by offset (0: not
   * declared). Keyed by the base, not by the set's name: no key string is made to look one up.
   */
  private readonly single = new Map<string, number[]>();
  /** The declared index keys, in order (the groups key not included). */
  readonly keys: string[] = [];

  /**
   * @param parts the index parts of the call's writes, in order (undefined: a write without index)
   * @param firstPosition the position in `KEYS` of the first index key (after the writes' own keys)
   */
  constructor(parts: ReadonlyArray<IndexPart | undefined>, firstPosition: number) {
    for (const p of parts) if (p !== undefined && p.anyPrevious && !this.full.has(p.base)) this.full.set(p.base, 0);
    let at = firstPosition;
    for (const base of this.full.keys()) {
      this.full.set(base, at);
      for (const key of indexKeys(base)) this.keys.push(key);
      at += TASK_STATUSES.length;
    }
    for (const p of parts) {
      if (p === undefined || this.full.has(p.base)) continue;
      at = this.declare(p.base, p.offset, at);
      if (p.expected !== undefined) at = this.declare(p.base, OFFSETS.get(p.expected) as number, at);
    }
  }

  /** Declares the single set of `base` at `offset` at `at` unless it is declared already; returns the next position. */
  private declare(base: string, offset: number, at: number): number {
    let positions = this.single.get(base);
    if (positions === undefined) this.single.set(base, (positions = new Array<number>(TASK_STATUSES.length).fill(0)));
    if (positions[offset] !== 0) return at;
    positions[offset] = at;
    this.keys.push(`${base}|${TASK_STATUSES[offset] as TaskStatus}`);
    return at + 1;
  }

  /** The index argument of a write with `part`. */
  arg(part: IndexPart): string {
    const first = this.full.get(part.base);
    if (first !== undefined) return `${first}\n${part.offset}${part.tail}`;
    const positions = this.single.get(part.base) as number[];
    const pos = positions[part.offset] as number;
    const expected = part.expected;
    if (expected === undefined || expected === part.status) return `-${pos}\n${part.offset}${part.tail}`;
    const eo = OFFSETS.get(expected) as number;
    return `-${pos}\n${part.offset + 8 * (8 * (positions[eo] as number) + eo)}${part.tail}`;
  }
}
