/**
 * The task index and the record store of the in-memory backend. The store's entries are the index:
 * a query scans them (exact, and bounded by what the store holds), so no second structure has to be
 * kept in step with the writes.
 */
import type { IndexPage, IndexQuery, RecordStore, StoredRecord, TaskIndex } from '../src/backend.js';
import type { TaskState, TaskStatus } from '../src/state.js';
import { compareNewestFirst, decodeCursor, encodeCursor, matches } from '../src/ops/index-query.js';

/** What the memory index reads: the live states of a store. */
export interface LiveStates {
  /** Every live state (copies). */
  liveStates(now: number): Iterable<TaskState>;
}

/** {@link TaskIndex} over the entries of a memory backend store. */
export class MemoryTaskIndex implements TaskIndex {
  /** @param states the store's live states */
  constructor(private readonly states: LiveStates) {}

  /** @inheritdoc */
  async list(q: IndexQuery): Promise<IndexPage> {
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const found: TaskState[] = [];
    for (const s of this.states.liveStates(Date.now())) if (matches(s, q, after)) found.push(s);
    found.sort(compareNewestFirst);
    const items = found.slice(0, q.limit);
    const last = items[items.length - 1];
    return { items, cursor: found.length > q.limit && last !== undefined ? encodeCursor(last) : null };
  }

  /** @inheritdoc */
  async groups(): Promise<string[]> {
    const out = new Set<string>();
    for (const s of this.states.liveStates(Date.now())) if (s.group !== '') out.add(s.group);
    return [...out].sort();
  }

  /** @inheritdoc */
  async statusCounts(group: string): Promise<Partial<Record<TaskStatus, number>>> {
    const out: Partial<Record<TaskStatus, number>> = {};
    for (const s of this.states.liveStates(Date.now())) if (s.group === group) out[s.status] = (out[s.status] ?? 0) + 1;
    return out;
  }
}

/** A record with its expiry (epoch ms; Infinity: none). */
interface MemoryRecord {
  value: string;
  expiresAt: number;
}

/** {@link RecordStore} in process (shared by the backends of one memory store). */
export class MemoryRecordStore implements RecordStore {
  private readonly kinds = new Map<string, Map<string, MemoryRecord>>();

  private live(kind: string, now: number): Map<string, MemoryRecord> {
    let m = this.kinds.get(kind);
    if (m === undefined) {
      m = new Map();
      this.kinds.set(kind, m);
    }
    for (const [k, r] of m) if (r.expiresAt <= now) m.delete(k);
    return m;
  }

  /** @inheritdoc */
  async put(kind: string, key: string, value: string, ttlMs: number | null): Promise<void> {
    const now = Date.now();
    this.live(kind, now).set(key, { value, expiresAt: ttlMs === null ? Infinity : now + ttlMs });
  }

  /** @inheritdoc */
  async get(kind: string, key: string): Promise<string | null> {
    return this.live(kind, Date.now()).get(key)?.value ?? null;
  }

  /** @inheritdoc */
  async list(kind: string): Promise<StoredRecord[]> {
    return [...this.live(kind, Date.now())].map(([key, r]) => ({ key, value: r.value }));
  }

  /** @inheritdoc */
  async remove(kind: string, key: string): Promise<void> {
    this.kinds.get(kind)?.delete(key);
  }

  /** @inheritdoc */
  async claim(kind: string, key: string, value: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const m = this.live(kind, now);
    if (m.has(key)) return false;
    m.set(key, { value, expiresAt: now + ttlMs });
    return true;
  }
}
